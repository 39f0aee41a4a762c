"""Shared keys, encrypted (table secrets, migration 0017): one row per name, its version raised by
one each time the key is replaced. This module stores and reads ciphertext only; relay/keys.py
encrypts and decrypts with the key-encryption key, which is never in the database.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SecretRow:
    name: str
    version: int
    nonce: bytes
    data: bytes  # AES-256-GCM ciphertext with its tag
    created_at: float
    node: str

    def __repr__(self) -> str:  # never the ciphertext in a log line or a test failure
        return f"SecretRow(name={self.name!r}, version={self.version}, node={self.node!r})"


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What `relay keys list` shows of a key: never its material."""

    name: str
    version: int
    created_at: float
    node: str


def put(conn: sqlite3.Connection, name: str, version: int, nonce: bytes, data: bytes, created_at: float,
        node: str) -> bool:
    """Store `name` at `version` when it is newer than the stored one (or there is none); False when
    another writer got there first (the caller read an older version: it must read again)."""
    cur = conn.execute(
        "INSERT INTO secrets (name, version, nonce, data, created_at, node) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET version = excluded.version, nonce = excluded.nonce,"
        " data = excluded.data, created_at = excluded.created_at, node = excluded.node"
        " WHERE excluded.version > secrets.version",
        (name, version, nonce, data, created_at, node))
    return cur.rowcount == 1


def get(conn: sqlite3.Connection, name: str) -> SecretRow | None:
    row = conn.execute("SELECT name, version, nonce, data, created_at, node FROM secrets WHERE name = ?",
                       (name,)).fetchone()
    return None if row is None else SecretRow(row[0], row[1], bytes(row[2]), bytes(row[3]), row[4], row[5])


def names(conn: sqlite3.Connection) -> list[SecretInfo]:
    return [SecretInfo(*r) for r in conn.execute(
        "SELECT name, version, created_at, node FROM secrets ORDER BY name")]
