-- PostgreSQL (same tables and types as the SQLite migration).
-- VPC objects with no CloudStack counterpart (internet gateways, route tables, DHCP options sets,
-- per-VPC and per-subnet attributes), shared by every gateway on this store (docs/vpc.md).
-- `doc` is the object as JSON; `version` makes every change a compare-and-set.
CREATE TABLE vpc_objects (
    ec2_id     TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    vpc_id     TEXT,
    doc        TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX vpc_objects_owner_kind ON vpc_objects (owner, kind);

-- Uniqueness across gateways: `igw-attachment:<vpc>`, `rtb-association:<subnet>`, `main-rtb:<vpc>`.
CREATE TABLE vpc_claims (
    claim      TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX vpc_claims_holder ON vpc_claims (holder);
