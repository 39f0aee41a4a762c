"""Parties and their registered real addresses on PostgreSQL: relay/store/parties.py's functions,
async, on a connection inside a transaction (PgParties runs each in its own)."""

from __future__ import annotations

import time

import asyncpg

from relay.model import Party, Role
from relay.store import parties as _sqlite_parties
from relay.store.errors import Conflict, NotFound
from relay.store.pg import audit
from relay.store.pg.db import PgRepo

#: statuses an operator may set (relay/store/parties.py)
STATUSES = _sqlite_parties.STATUSES


async def _check_addresses(conn: asyncpg.Connection, emails: list[str], party_id: int | None = None) -> None:
    """Refuse an empty or repeated list, or an address registered to another party than `party_id`."""
    if not emails:
        raise Conflict("a party needs at least one address")
    if len(set(emails)) != len(emails):
        raise Conflict("the same address is given twice")
    for address in emails:
        owner = await conn.fetchval("SELECT party_id FROM party_emails WHERE address = $1", address)
        if owner is not None and owner != party_id:
            raise Conflict(f"address already registered: {address}")


async def _insert_emails(conn: asyncpg.Connection, party_id: int, emails: list[str]) -> None:
    try:
        await conn.executemany("INSERT INTO party_emails (address, party_id, position) VALUES ($1, $2, $3)",
                               [(a, party_id, i) for i, a in enumerate(emails)])
    except asyncpg.UniqueViolationError:  # registered by another node since the check
        raise Conflict("address already registered") from None


async def add(conn: asyncpg.Connection, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party:
    await _check_addresses(conn, emails)
    if ref is not None and await conn.fetchval("SELECT 1 FROM parties WHERE role = $1 AND ref = $2", role.value, ref):
        raise Conflict(f"a {role.value} with ref {ref!r} exists already")
    now = time.time()
    try:
        party_id = int(await conn.fetchval(
            "INSERT INTO parties (role, name, ref, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            role.value, name, ref, now))
    except asyncpg.UniqueViolationError:  # the same ref, added by another node since the check
        raise Conflict(f"a {role.value} with ref {ref!r} exists already") from None
    await _insert_emails(conn, party_id, emails)
    await audit.append(conn, "party.added", reason="cli.party_add", party_id=party_id,
                       detail={"role": role.value, "addresses": len(emails)}, ts=now)
    return await get(conn, party_id)


async def get(conn: asyncpg.Connection, party_id: int) -> Party:
    row = await conn.fetchrow("SELECT id, role, name, status, ref FROM parties WHERE id = $1", party_id)
    if row is None:
        raise NotFound(f"no such party: {party_id}")
    emails = tuple(r[0] for r in await conn.fetch(
        "SELECT address FROM party_emails WHERE party_id = $1 ORDER BY position", party_id))
    return Party(id=row[0], role=Role(row[1]), name=row[2], status=row[3], ref=row[4], emails=emails)


async def find(conn: asyncpg.Connection, key: str) -> Party:
    if key.isdigit():
        return await get(conn, int(key))
    pid = await conn.fetchval("SELECT party_id FROM party_emails WHERE address = $1", key.lower())
    if pid is None:
        pid = await conn.fetchval("SELECT id FROM parties WHERE ref = $1 ORDER BY id LIMIT 1", key)
    if pid is None:
        raise NotFound(f"no such party: {key}")
    return await get(conn, pid)


async def by_address(conn: asyncpg.Connection, address: str) -> int | None:
    pid = await conn.fetchval("SELECT party_id FROM party_emails WHERE address = $1", address.lower())
    return int(pid) if pid is not None else None


async def addresses_of(conn: asyncpg.Connection, party_ids: list[int]) -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {pid: [] for pid in party_ids}
    for addr, pid in await conn.fetch("SELECT address, party_id FROM party_emails WHERE party_id = ANY($1::bigint[])"
                                      " ORDER BY party_id, position", list(party_ids)):
        out[pid].append(addr)
    return {k: tuple(v) for k, v in out.items()}


async def party_at(conn: asyncpg.Connection, address: str) -> Party | None:
    party_id = await by_address(conn, address) if address else None
    return await get(conn, party_id) if party_id is not None else None


async def ensure(conn: asyncpg.Connection, role: Role, name: str, emails: list[str], ref: str) -> tuple[Party, bool]:
    """relay/store/parties.py's ensure. Two nodes ensuring the same ref at once: a transaction-scoped
    advisory lock on (role, ref), taken first, makes the second wait for the first's commit and then
    read (READ COMMITTED: a new snapshot per statement) the party it added."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"relay.party.ref:{role.value}:{ref}")
    party_id = await conn.fetchval("SELECT id FROM parties WHERE role = $1 AND ref = $2", role.value, ref)
    if party_id is None:
        return await add(conn, role, name, emails, ref), True
    party = await get(conn, party_id)
    if party.status == "erased":
        raise Conflict(f"the {role.value} with ref {ref!r} (party {party.id}) was erased")
    differ = [what for what, same in (("name", party.name == name), ("addresses", list(party.emails) == emails))
              if not same]
    if differ:
        raise Conflict(f"a {role.value} with ref {ref!r} exists already (party {party.id}) with another "
                       f"{' and other '.join(differ)}; `relay party update {party.id}` changes them")
    return party, False


async def update(conn: asyncpg.Connection, party_id: int, *, name: str | None = None,
                 emails: list[str] | None = None, status: str | None = None,
                 now: float | None = None) -> tuple[Party, list[str]]:
    """relay/store/parties.py's update; the party's row is locked first (two operators' updates, an
    erasure: one after the other), the audit event appended last."""
    if await conn.fetchval("SELECT id FROM parties WHERE id = $1 FOR UPDATE", party_id) is None:
        raise NotFound(f"no such party: {party_id}")
    party = await get(conn, party_id)
    if party.status == "erased":
        raise Conflict(f"party {party_id} is erased")
    if status is not None and status not in STATUSES:
        raise Conflict(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    changed = []
    if name is not None and name != party.name:
        if not name:
            raise Conflict("the name must not be empty")
        await conn.execute("UPDATE parties SET name = $1 WHERE id = $2", name, party_id)
        changed.append("name")
    if emails is not None and emails != list(party.emails):
        await _check_addresses(conn, emails, party_id)
        await conn.execute("DELETE FROM party_emails WHERE party_id = $1", party_id)
        await _insert_emails(conn, party_id, emails)
        changed.append("addresses")
    if status is not None and status != party.status:
        await conn.execute("UPDATE parties SET status = $1 WHERE id = $2", status, party_id)
        changed.append("status")
    if not changed:
        return party, []
    detail: dict[str, object] = {"fields": changed}
    if "status" in changed:
        detail["status"] = status
    if "addresses" in changed:
        detail["addresses"] = len(emails or ())
    await audit.append(conn, "party.updated", reason="cli.party_update", party_id=party_id, detail=detail,
                       ts=time.time() if now is None else now)
    return await get(conn, party_id), changed


async def listing(conn: asyncpg.Connection, role: Role | None = None, *, after: int = 0,
                  limit: int = 1000) -> list[Party]:
    """Parties with an id above `after` (of one role, or all), by id, at most `limit`: one page."""
    if role is None:
        rows = await conn.fetch("SELECT id, role, name, status, ref FROM parties WHERE id > $1 ORDER BY id LIMIT $2",
                                after, limit)
    else:
        rows = await conn.fetch("SELECT id, role, name, status, ref FROM parties WHERE id > $1 AND role = $2"
                                " ORDER BY id LIMIT $3", after, role.value, limit)
    emails = await addresses_of(conn, [r[0] for r in rows]) if rows else {}
    return [Party(id=r[0], role=Role(r[1]), name=r[2], status=r[3], ref=r[4], emails=emails[r[0]]) for r in rows]


class PgParties(PgRepo):
    async def party_at(self, address: str) -> Party | None:
        async with self.db.connection() as conn:
            return await party_at(conn, address)

    async def add(self, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party:
        async with self.db.transaction() as conn:
            return await add(conn, role, name, emails, ref)

    async def get(self, party_id: int) -> Party:
        async with self.db.connection() as conn:
            return await get(conn, party_id)

    async def find(self, key: str) -> Party:
        async with self.db.connection() as conn:
            return await find(conn, key)

    async def by_address(self, address: str) -> int | None:
        async with self.db.connection() as conn:
            return await by_address(conn, address)

    async def addresses_of(self, party_ids: list[int]) -> dict[int, tuple[str, ...]]:
        async with self.db.connection() as conn:
            return await addresses_of(conn, party_ids)

    async def ensure(self, role: Role, name: str, emails: list[str], ref: str) -> tuple[Party, bool]:
        async with self.db.transaction() as conn:
            return await ensure(conn, role, name, emails, ref)

    async def update(self, party_id: int, *, name: str | None = None, emails: list[str] | None = None,
                     status: str | None = None, now: float | None = None) -> tuple[Party, list[str]]:
        async with self.db.transaction() as conn:
            return await update(conn, party_id, name=name, emails=emails, status=status, now=now)

    async def listing(self, role: Role | None = None, *, after: int = 0, limit: int = 1000) -> list[Party]:
        async with self.db.snapshot() as conn:
            return await listing(conn, role, after=after, limit=limit)
