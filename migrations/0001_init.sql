-- Core schema: parties, threads and their aliases, orders, messages, queue, audit chain.
-- Times are UNIX seconds (REAL). Addresses are stored lower-cased.

CREATE TABLE parties (
    id          INTEGER PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('buyer', 'seller')),
    name        TEXT NOT NULL,
    ref         TEXT,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'erased')),
    created_at  REAL NOT NULL
);
CREATE UNIQUE INDEX parties_ref ON parties(role, ref) WHERE ref IS NOT NULL;

CREATE TABLE party_emails (
    address     TEXT PRIMARY KEY,            -- lower-cased real address
    party_id    INTEGER NOT NULL REFERENCES parties(id),
    position    INTEGER NOT NULL DEFAULT 0   -- 0 = primary (where notices go)
);
CREATE INDEX party_emails_party ON party_emails(party_id);

CREATE TABLE threads (
    id          INTEGER PRIMARY KEY,
    buyer_id    INTEGER NOT NULL REFERENCES parties(id),
    seller_id   INTEGER NOT NULL REFERENCES parties(id),
    created_at  REAL NOT NULL,
    UNIQUE (buyer_id, seller_id)
);

CREATE TABLE aliases (
    local       TEXT PRIMARY KEY,            -- lower-case a-z0-9 local part at relay.domain
    thread_id   INTEGER NOT NULL REFERENCES threads(id),
    party_id    INTEGER NOT NULL REFERENCES parties(id),   -- the party the alias stands for
    created_at  REAL NOT NULL,
    revoked_at  REAL
);
CREATE INDEX aliases_thread ON aliases(thread_id);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    thread_id   INTEGER NOT NULL REFERENCES threads(id),
    ref         TEXT NOT NULL,
    placed_at   REAL NOT NULL,
    UNIQUE (thread_id, ref)
);

-- Message contents, addressed by their SHA-256. Retention clears data, keeps the hash.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    data        BLOB
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    thread_id       INTEGER REFERENCES threads(id),
    direction       TEXT,
    sender_id       INTEGER REFERENCES parties(id),
    recipient_id    INTEGER REFERENCES parties(id),
    state           TEXT NOT NULL,       -- queued, held, delivered, bounced, rejected, dropped
    reason          TEXT NOT NULL DEFAULT 'ok',
    received_at     REAL NOT NULL,
    envelope_from   TEXT NOT NULL,
    rcpt_alias      TEXT NOT NULL,
    subject         TEXT,
    original_sha256 TEXT REFERENCES blobs(sha256),
    delivered_sha256 TEXT REFERENCES blobs(sha256),
    orig_message_id TEXT,                -- Message-ID as the sender's client wrote it
    relay_message_id TEXT                -- Message-ID the recipient sees
);
CREATE INDEX messages_thread ON messages(thread_id, received_at);
CREATE INDEX messages_state ON messages(state);

-- Two-way Message-ID map per thread: what the sender knows (orig) and what the recipient sees (relay).
CREATE TABLE message_ids (
    relay_id    TEXT PRIMARY KEY,
    orig_id     TEXT NOT NULL,
    thread_id   INTEGER NOT NULL REFERENCES threads(id),
    sender_id   INTEGER NOT NULL REFERENCES parties(id),
    message_id  INTEGER NOT NULL REFERENCES messages(id)
);
CREATE INDEX message_ids_orig ON message_ids(thread_id, orig_id);

CREATE TABLE queue (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    recipient       TEXT NOT NULL,           -- envelope recipient: a real address
    envelope_from   TEXT NOT NULL,           -- envelope sender we use outbound ('' = null)
    blob_sha256     TEXT NOT NULL REFERENCES blobs(sha256),
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'held', 'delivered', 'bounced', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_attempt_at REAL,
    expires_at      REAL NOT NULL,
    last_error      TEXT,
    kind            TEXT NOT NULL DEFAULT 'message'   -- message | notice
);
CREATE INDEX queue_due ON queue(state, next_attempt_at);
CREATE INDEX queue_message ON queue(message_id);

-- Append-only, hash-chained audit trail. hash = SHA-256(prev_hash || canonical(event)).
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    ts          REAL NOT NULL,
    event       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    thread_id   INTEGER,
    party_id    INTEGER,
    message_id  INTEGER,
    detail      TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_thread ON audit_events(thread_id, seq);
CREATE INDEX audit_party ON audit_events(party_id, seq);
