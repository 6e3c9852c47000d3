-- (PostgreSQL; same as the SQLite migration.) Signed requests already used (SOAP WS-Security replays, single-use registration calls), shared by
-- every gateway on this store. `digest`: hex SHA-256 of what was verified; `expires_at`: Unix
-- seconds after which the request would be refused as expired anyway, so the row may go.
CREATE TABLE used_signatures (
    digest     TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_signatures_expires_at ON used_signatures (expires_at);

-- 1 when the registration proved possession of the certificate's private key (a signature over
-- the registration request made with it); such a binding replaces an unproven one of another user.
ALTER TABLE certificates ADD COLUMN proven BIGINT NOT NULL DEFAULT 0;
