-- SMTP AUTH passwords of parties (submission listener); one scrypt hash per party.
CREATE TABLE party_credentials (
    party_id    INTEGER PRIMARY KEY REFERENCES parties(id),
    password    TEXT NOT NULL,               -- scrypt$n$r$p$salt$hash (relay/trust/passwords.py)
    updated_at  REAL NOT NULL
);
