"""`relay audit verify` on PostgreSQL: relay/store/audit_verify.py's walk and diagnosis, unchanged,
reading the chain through PgSource.

The walk is synchronous code; it runs in a thread (a chain of millions of events takes a while)
and each read it makes is sent to the event loop, which runs it on one pooled connection inside a
read-only REPEATABLE READ transaction: the whole walk sees one state of the chain, however many
nodes append meanwhile (the rows are fetched in batches, never all at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import asyncpg

from relay.store.audit_verify import (
    _SQL,
    Result,
    _Row,
    check_events_source,
    missing_anchors_source,
    verify_source,
)
from relay.store.pg.db import PgDatabase

T = TypeVar("T")

_WHERE = {"from": "e.seq >= $1", "after": "e.seq > $1", "after_linking": "e.seq > $1 AND e.prev_hash = $2"}


class PgSource:
    """audit_verify.Source on one connection, called from a thread beside `loop`."""

    def __init__(self, conn: asyncpg.Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn, self.loop = conn, loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def rows(self, kind: str, args: tuple[Any, ...], limit: int) -> list[_Row]:
        sql = f"{_SQL} WHERE {_WHERE[kind]} ORDER BY e.seq LIMIT ${len(args) + 1}"
        return [_Row(*r) for r in self._run(self.conn.fetch(sql, *args, limit))]

    def erasure_details(self) -> Iterable[str]:
        return [r[0] for r in self._run(self.conn.fetch(
            "SELECT detail FROM audit_events WHERE event = 'party.erased' ORDER BY seq"))]

    def link(self, seq: int) -> tuple[str, str] | None:
        row = self._run(self.conn.fetchrow("SELECT hash, prev_hash FROM audit_events WHERE seq = $1", seq))
        return (row[0], row[1]) if row else None

    def hashes_among(self, hashes: list[str]) -> set[str]:
        return {r[0] for r in self._run(self.conn.fetch(
            "SELECT hash FROM audit_events WHERE hash = ANY($1::text[])", hashes))}


async def _walk(db: PgDatabase, check: Callable[[PgSource], T]) -> T:
    loop = asyncio.get_running_loop()
    async with db.snapshot() as conn:
        return await asyncio.to_thread(check, PgSource(conn, loop))


async def verify(db: PgDatabase, batch: int = 5000) -> Result:
    return await _walk(db, lambda src: verify_source(src, batch))


async def check_events(db: PgDatabase, events: list[dict[str, Any]]) -> list[str]:
    return await _walk(db, lambda src: check_events_source(src, events))


async def missing_anchors(db: PgDatabase, anchors: list[str]) -> list[str]:
    return await _walk(db, lambda src: missing_anchors_source(src, anchors))
