"""Parties (buyers and sellers) and their registered real addresses."""

from __future__ import annotations

import sqlite3
import time

from relay.model import Party, Role
from relay.store import audit
from relay.store.errors import Conflict, NotFound


def add(conn: sqlite3.Connection, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party:
    """Create a party. `emails` must already be validated and normalised (lower case)."""
    if not emails:
        raise Conflict("a party needs at least one address")
    if len(set(emails)) != len(emails):
        raise Conflict("the same address is given twice")
    for address in emails:
        if conn.execute("SELECT 1 FROM party_emails WHERE address = ?", (address,)).fetchone():
            raise Conflict(f"address already registered: {address}")
    if ref is not None and conn.execute(
        "SELECT 1 FROM parties WHERE role = ? AND ref = ?", (role.value, ref)
    ).fetchone():
        raise Conflict(f"a {role.value} with ref {ref!r} exists already")
    now = time.time()
    cur = conn.execute(
        "INSERT INTO parties (role, name, ref, created_at) VALUES (?, ?, ?, ?)", (role.value, name, ref, now)
    )
    party_id = int(cur.lastrowid or 0)
    conn.executemany(
        "INSERT INTO party_emails (address, party_id, position) VALUES (?, ?, ?)",
        [(a, party_id, i) for i, a in enumerate(emails)],
    )
    audit.append(conn, "party.added", reason="cli.party_add", party_id=party_id,
                 detail={"role": role.value, "addresses": len(emails)}, ts=now)
    return get(conn, party_id)


def get(conn: sqlite3.Connection, party_id: int) -> Party:
    row = conn.execute(
        "SELECT id, role, name, status, ref FROM parties WHERE id = ?", (party_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no such party: {party_id}")
    emails = tuple(r[0] for r in conn.execute(
        "SELECT address FROM party_emails WHERE party_id = ? ORDER BY position", (party_id,)))
    return Party(id=row[0], role=Role(row[1]), name=row[2], status=row[3], ref=row[4], emails=emails)


def find(conn: sqlite3.Connection, key: str) -> Party:
    """A party by id, by ref, or by one of its addresses (what an operator types)."""
    if key.isdigit():
        return get(conn, int(key))
    row = conn.execute("SELECT party_id FROM party_emails WHERE address = ?", (key.lower(),)).fetchone()
    if row is None:
        row = conn.execute("SELECT id FROM parties WHERE ref = ?", (key,)).fetchone()
    if row is None:
        raise NotFound(f"no such party: {key}")
    return get(conn, row[0])


def by_address(conn: sqlite3.Connection, address: str) -> int | None:
    row = conn.execute("SELECT party_id FROM party_emails WHERE address = ?", (address.lower(),)).fetchone()
    return row[0] if row else None


def addresses_of(conn: sqlite3.Connection, party_ids: list[int]) -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {pid: [] for pid in party_ids}
    marks = ",".join("?" * len(party_ids))
    for addr, pid in conn.execute(
        f"SELECT address, party_id FROM party_emails WHERE party_id IN ({marks}) ORDER BY party_id, position",
        party_ids,
    ):
        out[pid].append(addr)
    return {k: tuple(v) for k, v in out.items()}


def party_at(conn: sqlite3.Connection, address: str) -> Party | None:
    """The party registered at `address` (no party for the empty null sender)."""
    party_id = by_address(conn, address) if address else None
    return get(conn, party_id) if party_id is not None else None
