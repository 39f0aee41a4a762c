-- Messaging rules: opt-outs, vacations, what the rules stage learned about each accepted
-- message (for limits and response-time metrics), and "no response needed" marks.

-- A buyer's opt-out of non-critical seller messages: of one seller, or (seller_id NULL) of all.
CREATE TABLE optouts (
    buyer_id    INTEGER NOT NULL REFERENCES parties(id),
    seller_id   INTEGER REFERENCES parties(id),
    created_at  REAL NOT NULL,
    via         TEXT NOT NULL              -- cli | mail | https
);
CREATE UNIQUE INDEX optouts_pair ON optouts(buyer_id, IFNULL(seller_id, 0));

-- A seller's vacations (kept after they end: metrics exclude orders placed during them).
-- Active from started_at until the earlier of until_at and ended_at (either may be NULL).
CREATE TABLE vacations (
    id          INTEGER PRIMARY KEY,
    seller_id   INTEGER NOT NULL REFERENCES parties(id),
    started_at  REAL NOT NULL,
    until_at    REAL,
    ended_at    REAL
);
CREATE INDEX vacations_seller ON vacations(seller_id, started_at);

-- One automatic vacation reply per thread and vacation.
CREATE TABLE vacation_replies (
    vacation_id INTEGER NOT NULL REFERENCES vacations(id),
    thread_id   INTEGER NOT NULL REFERENCES threads(id),
    message_id  INTEGER NOT NULL REFERENCES messages(id),   -- the reply itself
    PRIMARY KEY (vacation_id, thread_id)
);

-- Written in the same transaction as the accepted message it describes.
CREATE TABLE message_rules (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id),
    thread_id   INTEGER NOT NULL REFERENCES threads(id),
    direction   TEXT NOT NULL,
    received_at REAL NOT NULL,
    kind        TEXT NOT NULL,     -- buyer | reply | unsolicited | critical | vacation_reply
    automatic   TEXT,              -- why it is automatic (RFC 3834 …); NULL: a person wrote it
    order_ref   TEXT,              -- the order it is tied to
    important   TEXT               -- NULL | justified | unjustified
);
CREATE INDEX message_rules_thread ON message_rules(thread_id, received_at);

CREATE TABLE no_response_needed (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id),
    marked_at   REAL NOT NULL,
    via         TEXT NOT NULL
);

CREATE INDEX audit_event_party ON audit_events(event, party_id, ts);
