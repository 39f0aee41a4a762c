-- Keys shared by the relay nodes (issue 23): the DKIM private keys and the unsubscribe secret,
-- each encrypted with AES-256-GCM under the key-encryption key (store.key_file, on every node and
-- never in the database), its name as associated data (relay/keys.py). One row per name; version
-- goes up by one each time the key is replaced. node: which relay node installed it.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,            -- "dkim/<selector>", "unsubscribe"
    version     INTEGER NOT NULL,
    nonce       BLOB NOT NULL,               -- 96 random bits, new for every encryption
    data        BLOB NOT NULL,               -- ciphertext and GCM tag
    created_at  REAL NOT NULL,
    node        TEXT NOT NULL
);
