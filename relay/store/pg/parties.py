"""Parties and their registered real addresses on PostgreSQL: relay/store/parties.py's functions,
async, on a connection inside a transaction (PgParties runs each in its own)."""

from __future__ import annotations

import time

import asyncpg

from relay.model import Party, Role
from relay.store.errors import Conflict, NotFound
from relay.store.pg import audit
from relay.store.pg.db import PgRepo


async def add(conn: asyncpg.Connection, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party:
    if not emails:
        raise Conflict("a party needs at least one address")
    if len(set(emails)) != len(emails):
        raise Conflict("the same address is given twice")
    for address in emails:
        if await conn.fetchval("SELECT 1 FROM party_emails WHERE address = $1", address):
            raise Conflict(f"address already registered: {address}")
    if ref is not None and await conn.fetchval("SELECT 1 FROM parties WHERE role = $1 AND ref = $2", role.value, ref):
        raise Conflict(f"a {role.value} with ref {ref!r} exists already")
    now = time.time()
    party_id = int(await conn.fetchval(
        "INSERT INTO parties (role, name, ref, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        role.value, name, ref, now))
    try:
        await conn.executemany("INSERT INTO party_emails (address, party_id, position) VALUES ($1, $2, $3)",
                               [(a, party_id, i) for i, a in enumerate(emails)])
    except asyncpg.UniqueViolationError:  # registered by another node since the check above
        raise Conflict("address already registered") from None
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
