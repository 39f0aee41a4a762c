-- Audit privacy and retention (issue 6).
-- Personal data (addresses, names) never enters the hashed part of an audit event: it is kept
-- in audit_pii and the chain hashes only a salted commitment (audit_events.pii_commit).
-- Erasure replaces audit_pii.data and drops the salt; the chain still verifies.
ALTER TABLE audit_events ADD COLUMN pii_commit TEXT;

CREATE TABLE audit_pii (
    seq         INTEGER PRIMARY KEY,     -- audit_events.seq
    salt        TEXT,                    -- NULL once erased
    data        TEXT NOT NULL,           -- canonical JSON of the personal fields
    erased_at   REAL
);

-- Retention and erasure clear blobs.data and say when and why; sha256 and size stay.
ALTER TABLE blobs ADD COLUMN cleared_at REAL;
ALTER TABLE blobs ADD COLUMN cleared_reason TEXT;

CREATE INDEX messages_received ON messages(received_at);
