-- The chain's hashes are not indexed any more. UNIQUE(hash) kept an index whose keys are random, so
-- every append wrote a page at a random place in it, and that index grew by ~70 bytes per event:
-- on a store of 200,000 events it cost ~120 µs of CPU per message (5 events). Nothing looks an
-- event up by its hash on a hot path; `relay audit verify --anchor` finds anchors in one scan.
-- SQLite cannot drop a column's constraint in place: the table is copied, rows and seq unchanged.
CREATE TABLE audit_events_new (
    seq         INTEGER PRIMARY KEY,
    ts          REAL NOT NULL,
    event       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    thread_id   INTEGER,
    party_id    INTEGER,
    message_id  INTEGER,
    detail      TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    pii_commit  TEXT
);
INSERT INTO audit_events_new (seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash, hash,
                              pii_commit)
    SELECT seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash, hash, pii_commit
    FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_thread ON audit_events(thread_id, seq);
CREATE INDEX audit_party ON audit_events(party_id, seq);
CREATE INDEX audit_event_party ON audit_events(event, party_id, ts);
