-- Contents of 256 KiB or more (relay/store/pg/messages.py, CHUNK_BYTES): their blobs row keeps
-- size, wire and clearing with data = '' and in_file = 1 ("outside the row", as SQLite's files),
-- and the bytes are here in pieces of CHUNK_BYTES, seq from 0. Clearing deletes the pieces.
-- SQLite has the same (unused) table under the same version (migrations/0016_blob_chunks.sql).
CREATE TABLE blob_chunks (
    digest      TEXT NOT NULL REFERENCES blobs(sha256),
    seq         BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (digest, seq)
);
