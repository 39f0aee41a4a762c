"""Parties (buyers and sellers) and their registered real addresses."""

from __future__ import annotations

import sqlite3
import time

from relay.model import Party, Role
from relay.store import audit
from relay.store.errors import Conflict, NotFound

#: statuses an operator may set (`erased` is set only by erasure, relay/store/erasure.py)
STATUSES = ("active", "suspended")


def _check_addresses(conn: sqlite3.Connection, emails: list[str], party_id: int | None = None) -> None:
    """Refuse an empty or repeated list, or an address registered to another party than `party_id`."""
    if not emails:
        raise Conflict("a party needs at least one address")
    if len(set(emails)) != len(emails):
        raise Conflict("the same address is given twice")
    for address in emails:
        row = conn.execute("SELECT party_id FROM party_emails WHERE address = ?", (address,)).fetchone()
        if row is not None and row[0] != party_id:
            raise Conflict(f"address already registered: {address}")


def add(conn: sqlite3.Connection, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party:
    """Create a party. `emails` must already be validated and normalised (lower case)."""
    _check_addresses(conn, emails)
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


def ensure(conn: sqlite3.Connection, role: Role, name: str, emails: list[str], ref: str) -> tuple[Party, bool]:
    """The party of this role with this marketplace ref: created (True) if there is none, returned
    unchanged (False) if it has the same name and addresses (in the same order), else Conflict naming
    what differs. One transaction: two callers asking for the same ref together get one party."""
    row = conn.execute("SELECT id FROM parties WHERE role = ? AND ref = ?", (role.value, ref)).fetchone()
    if row is None:
        return add(conn, role, name, emails, ref), True
    party = get(conn, row[0])
    if party.status == "erased":
        raise Conflict(f"the {role.value} with ref {ref!r} (party {party.id}) was erased")
    differ = [what for what, same in (("name", party.name == name), ("addresses", list(party.emails) == emails))
              if not same]
    if differ:
        raise Conflict(f"a {role.value} with ref {ref!r} exists already (party {party.id}) with another "
                       f"{' and other '.join(differ)}; `relay party update {party.id}` changes them")
    return party, False


def update(conn: sqlite3.Connection, party_id: int, *, name: str | None = None, emails: list[str] | None = None,
           status: str | None = None, now: float | None = None) -> tuple[Party, list[str]]:
    """Change a party's name, its addresses (the whole list, the first is the primary) or its status
    (active | suspended); return it and the fields that changed (audited as party.updated, without
    the values: they are personal). An erased party cannot be changed."""
    party = get(conn, party_id)
    if party.status == "erased":
        raise Conflict(f"party {party_id} is erased")
    if status is not None and status not in STATUSES:
        raise Conflict(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    changed = []
    if name is not None and name != party.name:
        if not name:
            raise Conflict("the name must not be empty")
        conn.execute("UPDATE parties SET name = ? WHERE id = ?", (name, party_id))
        changed.append("name")
    if emails is not None and emails != list(party.emails):
        _check_addresses(conn, emails, party_id)
        conn.execute("DELETE FROM party_emails WHERE party_id = ?", (party_id,))
        conn.executemany("INSERT INTO party_emails (address, party_id, position) VALUES (?, ?, ?)",
                         [(a, party_id, i) for i, a in enumerate(emails)])
        changed.append("addresses")
    if status is not None and status != party.status:
        conn.execute("UPDATE parties SET status = ? WHERE id = ?", (status, party_id))
        changed.append("status")
    if not changed:
        return party, []
    detail: dict[str, object] = {"fields": changed}
    if "status" in changed:
        detail["status"] = status
    if "addresses" in changed:
        detail["addresses"] = len(emails or ())
    audit.append(conn, "party.updated", reason="cli.party_update", party_id=party_id, detail=detail,
                 ts=time.time() if now is None else now)
    return get(conn, party_id), changed


def listing(conn: sqlite3.Connection, role: Role | None = None, *, after: int = 0,
            limit: int = 1000) -> list[Party]:
    """Parties with an id above `after` (of one role, or all), by id, at most `limit`: one page."""
    where, args = ("id > ? AND role = ?", (after, role.value)) if role is not None else ("id > ?", (after,))
    rows = conn.execute(f"SELECT id, role, name, status, ref FROM parties WHERE {where} ORDER BY id LIMIT ?",
                        (*args, limit)).fetchall()
    emails = addresses_of(conn, [r[0] for r in rows]) if rows else {}
    return [Party(id=r[0], role=Role(r[1]), name=r[2], status=r[3], ref=r[4], emails=emails[r[0]]) for r in rows]
