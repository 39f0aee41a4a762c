"""Threads, their two aliases and their orders on PostgreSQL: relay/store/threads.py's functions,
async (PgThreads runs each write in its own transaction). Opening a pair's thread twice at once on
two nodes is decided by the threads (buyer_id, seller_id) key: the second waits for the first's
commit and then returns its thread."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from relay.model import AliasTarget, Party, Role, Thread
from relay.store.errors import Conflict, NotFound
from relay.store.pg import audit, messages, parties
from relay.store.pg.db import PgRepo
from relay.store.threads import IMPORTED_ALIAS, Order, new_alias_local


async def _thread(conn: asyncpg.Connection, row: Any) -> Thread:
    tid, buyer_id, seller_id, created = row
    aliases = {r[0]: r[1] for r in await conn.fetch(
        "SELECT party_id, local FROM aliases WHERE thread_id = $1 AND revoked_at IS NULL", tid)}
    return Thread(id=tid, buyer_id=buyer_id, seller_id=seller_id, buyer_alias=aliases.get(buyer_id, ""),
                  seller_alias=aliases.get(seller_id, ""), created_at=created)


async def get(conn: asyncpg.Connection, thread_id: int) -> Thread:
    row = await conn.fetchrow("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE id = $1", thread_id)
    if row is None:
        raise NotFound(f"no such thread: {thread_id}")
    return await _thread(conn, row)


async def _check_import(conn: asyncpg.Connection, local: str) -> str:
    local = local.strip().lower()
    if not IMPORTED_ALIAS.match(local):
        raise Conflict(f"alias {local!r} must be 8 to 64 characters of a-z and 0-9")
    if await conn.fetchval("SELECT 1 FROM aliases WHERE local = $1", local):
        raise Conflict(f"alias {local!r} is taken")
    return local


async def _fresh_alias(conn: asyncpg.Connection) -> str:
    while True:
        local = new_alias_local()
        if not await conn.fetchval("SELECT 1 FROM aliases WHERE local = $1", local):
            return local


async def open_thread(conn: asyncpg.Connection, buyer_id: int, seller_id: int, *, order: str | None = None,
                      buyer_alias: str | None = None, seller_alias: str | None = None,
                      now: float | None = None) -> tuple[Thread, bool]:
    now = time.time() if now is None else now
    buyer = await parties.get(conn, buyer_id)
    seller = await parties.get(conn, seller_id)
    if buyer.role is not Role.BUYER:
        raise Conflict(f"party {buyer_id} is a {buyer.role.value}, not a buyer")
    if seller.role is not Role.SELLER:
        raise Conflict(f"party {seller_id} is a {seller.role.value}, not a seller")
    # the pair's key decides between two nodes opening it at once (the loser waits, then reads it)
    tid = await conn.fetchval("INSERT INTO threads (buyer_id, seller_id, created_at) VALUES ($1, $2, $3)"
                              " ON CONFLICT (buyer_id, seller_id) DO NOTHING RETURNING id", buyer_id, seller_id, now)
    created = tid is not None
    if created:
        b_local = await _check_import(conn, buyer_alias) if buyer_alias else await _fresh_alias(conn)
        s_local = await _check_import(conn, seller_alias) if seller_alias else await _fresh_alias(conn)
        if b_local == s_local:
            raise Conflict("the two aliases must differ")
        try:
            await conn.executemany("INSERT INTO aliases (local, thread_id, party_id, created_at) VALUES ($1, $2, $3, $4)",
                                   [(b_local, tid, buyer_id, now), (s_local, tid, seller_id, now)])
        except asyncpg.UniqueViolationError:
            raise Conflict("an alias of the thread was taken meanwhile") from None
        await audit.append(conn, "thread.opened", reason="cli.thread_open", thread_id=tid,
                           detail={"buyer": buyer_id, "seller": seller_id,
                                   "imported": bool(buyer_alias or seller_alias)}, ts=now)
        thread = await get(conn, tid)
    else:
        row = await conn.fetchrow("SELECT id, buyer_id, seller_id, created_at FROM threads"
                                  " WHERE buyer_id = $1 AND seller_id = $2", buyer_id, seller_id)
        thread = await _thread(conn, row)
        for wanted, have in ((buyer_alias, thread.buyer_alias), (seller_alias, thread.seller_alias)):
            if wanted and wanted.strip().lower() != have:
                raise Conflict(f"thread {thread.id} already exists with other aliases")
    if order:
        await add_order(conn, thread.id, order, now=now)
    return thread, created


async def add_order(conn: asyncpg.Connection, thread_id: int, ref: str, *, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    added = await conn.fetchval("INSERT INTO orders (thread_id, ref, placed_at) VALUES ($1, $2, $3)"
                                " ON CONFLICT (thread_id, ref) DO NOTHING RETURNING id", thread_id, ref, now)
    if added is not None:
        await audit.append(conn, "order.recorded", reason="cli.order", thread_id=thread_id,
                           detail={"order": ref}, ts=now)
    return added is not None


async def orders(conn: asyncpg.Connection, thread_id: int) -> list[Order]:
    return [Order(r[0], r[1]) for r in await conn.fetch(
        "SELECT ref, placed_at FROM orders WHERE thread_id = $1 ORDER BY placed_at, id", thread_id)]


async def resolve_alias(conn: asyncpg.Connection, local: str) -> AliasTarget | None:
    row = await conn.fetchrow(
        "SELECT a.local, a.thread_id, a.party_id, p.role, a.revoked_at FROM aliases a"
        " JOIN parties p ON p.id = a.party_id WHERE a.local = $1", local.lower())
    if row is None:
        return None
    return AliasTarget(alias=row[0], thread_id=row[1], party_id=row[2], role=Role(row[3]),
                       revoked=row[4] is not None)


async def alias_of(conn: asyncpg.Connection, thread_id: int, party_id: int) -> str | None:
    value = await conn.fetchval("SELECT local FROM aliases WHERE thread_id = $1 AND party_id = $2"
                                " AND revoked_at IS NULL", thread_id, party_id)
    return str(value) if value is not None else None


async def revoke_alias(conn: asyncpg.Connection, local: str, *, now: float | None = None) -> AliasTarget:
    target = await resolve_alias(conn, local)
    if target is None:
        raise NotFound(f"no such alias: {local}")
    now = time.time() if now is None else now
    status = await conn.execute("UPDATE aliases SET revoked_at = $1 WHERE local = $2 AND revoked_at IS NULL",
                                now, target.alias)
    if target.revoked or status != "UPDATE 1":  # revoked before, or by another node just now
        raise Conflict(f"alias {target.alias} is already revoked")
    await audit.append(conn, "alias.revoked", reason="cli.alias_revoke", thread_id=target.thread_id,
                       party_id=target.party_id, detail={"alias": target.alias}, ts=now)
    return target


async def threads_of(conn: asyncpg.Connection, party_id: int) -> list[int]:
    return [r[0] for r in await conn.fetch(
        "SELECT id FROM threads WHERE buyer_id = $1 OR seller_id = $1 ORDER BY id", party_id)]


async def _with_orders(conn: asyncpg.Connection, rows: list[Any]) -> list[tuple[Thread, list[Order]]]:
    """Threads (their live aliases) and their orders from thread rows, in three queries."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    live: dict[tuple[int, int], str] = {}
    for tid, pid, local in await conn.fetch(
            "SELECT thread_id, party_id, local FROM aliases WHERE thread_id = ANY($1::bigint[])"
            " AND revoked_at IS NULL", ids):
        live[(tid, pid)] = local
    placed: dict[int, list[Order]] = {tid: [] for tid in ids}
    for tid, ref, at in await conn.fetch(
            "SELECT thread_id, ref, placed_at FROM orders WHERE thread_id = ANY($1::bigint[])"
            " ORDER BY placed_at, id", ids):
        placed[tid].append(Order(ref, at))
    return [(Thread(id=tid, buyer_id=b, seller_id=s, buyer_alias=live.get((tid, b), ""),
                    seller_alias=live.get((tid, s), ""), created_at=created), placed[tid])
            for tid, b, s, created in rows]


async def listing(conn: asyncpg.Connection, party_id: int | None = None, *, after: int = 0,
                  limit: int = 1000) -> list[tuple[Thread, list[Order]]]:
    """Threads with an id above `after` (of one party, buyer or seller, or all), by id, at most
    `limit`, each with its orders: one page."""
    if party_id is None:
        rows = await conn.fetch("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE id > $1"
                                " ORDER BY id LIMIT $2", after, limit)
    else:
        rows = await conn.fetch("SELECT id, buyer_id, seller_id, created_at FROM threads"
                                " WHERE id > $1 AND (buyer_id = $2 OR seller_id = $2) ORDER BY id LIMIT $3",
                                after, party_id, limit)
    return await _with_orders(conn, list(rows))


async def find_by_order(conn: asyncpg.Connection, ref: str) -> list[tuple[Thread, list[Order]]]:
    """The threads on which this order reference was recorded (normally one), by id."""
    rows = await conn.fetch("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE id IN"
                            " (SELECT thread_id FROM orders WHERE ref = $1) ORDER BY id", ref)
    return await _with_orders(conn, list(rows))


async def find_by_alias(conn: asyncpg.Connection, local: str) -> tuple[Thread, list[Order], AliasTarget] | None:
    """The thread of an alias (live or revoked), its orders, and what the alias stands for."""
    target = await resolve_alias(conn, local)
    if target is None:
        return None
    thread = await get(conn, target.thread_id)
    return thread, await orders(conn, thread.id), target


async def resolve_recipient(conn: asyncpg.Connection, local: str,
                            sender: str) -> tuple[AliasTarget | None, int | None, int | None]:
    target = await resolve_alias(conn, local)
    if target is None or target.revoked:
        return target, None, None
    thread = await get(conn, target.thread_id)
    other = thread.seller_id if target.party_id == thread.buyer_id else thread.buyer_id
    return target, await parties.by_address(conn, sender) if sender else None, other


async def resolve_message(conn: asyncpg.Connection, local: str,
                          quoted_ids: Sequence[str]) -> tuple[Thread, Party, Party, dict[str, str]] | None:
    t = await resolve_alias(conn, local)
    if t is None or t.revoked:
        return None
    thread = await get(conn, t.thread_id)
    recipient = await parties.get(conn, t.party_id)
    other = thread.seller_id if t.party_id == thread.buyer_id else thread.buyer_id
    ids = await messages.translate_ids(conn, thread.id, recipient.id, quoted_ids) if quoted_ids else {}
    return thread, await parties.get(conn, other), recipient, ids


class PgThreads(PgRepo):
    async def resolve_recipient(self, local: str, sender: str) -> tuple[AliasTarget | None, int | None, int | None]:
        async with self.db.connection() as conn:
            return await resolve_recipient(conn, local, sender)

    async def resolve_message(self, local: str, quoted_ids: Sequence[str]
                              ) -> tuple[Thread, Party, Party, dict[str, str]] | None:
        async with self.db.connection() as conn:
            return await resolve_message(conn, local, quoted_ids)

    async def get(self, thread_id: int) -> Thread:
        async with self.db.connection() as conn:
            return await get(conn, thread_id)

    async def open_thread(self, buyer_id: int, seller_id: int, *, order: str | None = None,
                          buyer_alias: str | None = None, seller_alias: str | None = None,
                          now: float | None = None) -> tuple[Thread, bool]:
        async with self.db.transaction() as conn:
            return await open_thread(conn, buyer_id, seller_id, order=order, buyer_alias=buyer_alias,
                                     seller_alias=seller_alias, now=now)

    async def add_order(self, thread_id: int, ref: str, *, now: float | None = None) -> bool:
        async with self.db.transaction() as conn:
            return await add_order(conn, thread_id, ref, now=now)

    async def orders(self, thread_id: int) -> list[Order]:
        async with self.db.connection() as conn:
            return await orders(conn, thread_id)

    async def resolve_alias(self, local: str) -> AliasTarget | None:
        async with self.db.connection() as conn:
            return await resolve_alias(conn, local)

    async def alias_of(self, thread_id: int, party_id: int) -> str | None:
        async with self.db.connection() as conn:
            return await alias_of(conn, thread_id, party_id)

    async def revoke_alias(self, local: str, *, now: float | None = None) -> AliasTarget:
        async with self.db.transaction() as conn:
            return await revoke_alias(conn, local, now=now)

    async def threads_of(self, party_id: int) -> list[int]:
        async with self.db.connection() as conn:
            return await threads_of(conn, party_id)

    async def listing(self, party_id: int | None = None, *, after: int = 0,
                      limit: int = 1000) -> list[tuple[Thread, list[Order]]]:
        async with self.db.snapshot() as conn:
            return await listing(conn, party_id, after=after, limit=limit)

    async def find_by_order(self, ref: str) -> list[tuple[Thread, list[Order]]]:
        async with self.db.snapshot() as conn:
            return await find_by_order(conn, ref)

    async def find_by_alias(self, local: str) -> tuple[Thread, list[Order], AliasTarget] | None:
        async with self.db.snapshot() as conn:
            return await find_by_alias(conn, local)
