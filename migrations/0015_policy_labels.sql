-- An operator's decision on a held message (`relay message release|drop`), kept as a label for
-- retraining the policy model (`relay policy export-labels`; never retrained automatically).
-- held_for: the corpus categories (marketing, review, contact) of the findings the hold was
-- for; categories: what the operator judged (their --label when given, else held_for).
-- released = those categories were not violations; dropped = confirmed. The latest decision on
-- a message wins (a released message dropped while still queued). No message text here: the
-- export reads the stored original, so retention and erasure clear what a label would show.
CREATE TABLE policy_labels (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id),
    thread_id   INTEGER REFERENCES threads(id),
    direction   TEXT,
    decision    TEXT NOT NULL CHECK (decision IN ('released', 'dropped')),
    held_for    TEXT NOT NULL,           -- JSON list of categories
    categories  TEXT NOT NULL,           -- JSON list of categories
    corrected   INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    decided_by  TEXT NOT NULL,
    decided_at  REAL NOT NULL
);
CREATE INDEX policy_labels_decided ON policy_labels(decided_at);
