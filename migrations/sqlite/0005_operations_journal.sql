-- The operations journal (docs/gateway-state.md): work a gateway started and has not finished
-- (taken over by another gateway when its lease runs out), and ClientToken records with their
-- first answer. `cs_secret` is sealed with the store key. Times are unix seconds.
CREATE TABLE operations (
    op_id       TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    region      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    token       TEXT UNIQUE,
    cs_key      TEXT NOT NULL,
    cs_secret   TEXT NOT NULL,
    done        BIGINT NOT NULL,
    doc         TEXT NOT NULL,
    version     BIGINT NOT NULL,
    holder      TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX operations_lease ON operations (done, region, lease_until);
CREATE INDEX operations_holder ON operations (holder);

-- Terminated instances as DescribeInstances shows them, bounded by age and count per owner.
CREATE TABLE tombstones (
    ec2_id     TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX tombstones_owner ON tombstones (owner, created_at);
