-- Contents of 256 KiB or more on PostgreSQL live in pieces beside their blobs row (a shared server
-- has no directory beside the database for SQLite's content files, relay/store/blobfiles.py). SQLite
-- keeps writing those to files and never fills this table: it exists so that both dialects have
-- the same schema under the same version (tests/integration/test_pg_schema.py).
CREATE TABLE blob_chunks (
    digest      TEXT NOT NULL REFERENCES blobs(sha256),
    seq         INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (digest, seq)
);
