"""Party credentials for SMTP AUTH (table party_credentials, migration 0003)."""

from __future__ import annotations

import sqlite3
import time

from relay.store import audit, parties


def set_password(conn: sqlite3.Connection, party_id: int, password_hash: str, now: float | None = None) -> None:
    conn.execute(
        "INSERT INTO party_credentials (party_id, password, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(party_id) DO UPDATE SET password = excluded.password, updated_at = excluded.updated_at",
        (party_id, password_hash, time.time() if now is None else now))


def password_hash(conn: sqlite3.Connection, party_id: int) -> str | None:
    row = conn.execute("SELECT password FROM party_credentials WHERE party_id = ?", (party_id,)).fetchone()
    return row[0] if row else None


def password_of_address(conn: sqlite3.Connection, address: str) -> tuple[int | None, str | None]:
    """SMTP AUTH: the party registered at `address` and its password hash (None, None: no such party)."""
    party_id = parties.by_address(conn, address)
    return party_id, password_hash(conn, party_id) if party_id is not None else None


def change_password(conn: sqlite3.Connection, party_id: int, password_hash: str, *, reason: str = "cli",
                    now: float | None = None) -> None:
    """An operator's new password for a party (its scrypt hash) and its audit event party.password_set,
    in one transaction; NotFound for an unknown party."""
    parties.get(conn, party_id)
    now = time.time() if now is None else now
    set_password(conn, party_id, password_hash, now)
    audit.append(conn, "party.password_set", reason=reason, party_id=party_id, ts=now)
