-- migrations/0017_keys.sql: the keys shared by the relay nodes, encrypted under store.key_file.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    nonce       BYTEA NOT NULL,
    data        BYTEA NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    node        TEXT NOT NULL
);
