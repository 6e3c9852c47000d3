-- ec2bridge store, PostgreSQL (same tables and types as the SQLite migration). Times are RFC 3339 UTC text; secrets are AES-GCM sealed (base64).
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE user_keys (
    access_key TEXT PRIMARY KEY NOT NULL,
    secret_enc TEXT NOT NULL,
    account    TEXT NOT NULL,
    domain     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    access_key  TEXT NOT NULL REFERENCES user_keys (access_key) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    pem         TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX certificates_access_key ON certificates (access_key);

CREATE TABLE id_map (
    ec2_id     TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    uuid       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
