-- Tags the gateway keeps for one account (docs/gateway-state.md "Tags kept by the gateway"):
-- on resources CloudStack will not tag for the caller (images another account owns) and on
-- resources only the store holds (snapshots of never-attached volumes). A tag is seen by its
-- owner only, as EC2 tags on another account's AMI are. Shared by every gateway on this store.
CREATE TABLE account_tags (
    owner         TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    tag_key       TEXT NOT NULL,
    tag_value     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (owner, resource_id, tag_key)
);
CREATE INDEX account_tags_owner_type ON account_tags (owner, resource_type);
