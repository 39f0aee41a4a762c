"""Audit events on PostgreSQL: the chain of relay/store/audit.py, appended by several nodes.

The event, its hash and its personal fields are computed by the same pure functions (split_pii,
canonical, chain_hash, pii_commitment), so relay/store/audit_verify.py checks a chain written here
as it checks SQLite's. One chain for every node: an append takes a transaction-scoped advisory
lock (AUDIT_LOCK) before it reads the head, and holds it to COMMIT, so seq is contiguous and each
prev_hash is the previous event's hash. Take it as late in a transaction as possible (after the
other rows are written): every chained commit waits for the one before it (docs/postgresql.md).

Module functions take a connection inside a transaction (for the other repositories' units);
PgAudit runs each in its own transaction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

from relay.store.audit import GENESIS, AuditEvent, canonical, chain_hash, dumps, pii_commitment, split_pii
from relay.store.audit_verify import Result
from relay.store.pg.db import PgDatabase

#: pg_advisory_xact_lock key of the audit chain ("relayaud" as a 64-bit number)
AUDIT_LOCK = int.from_bytes(b"relayaud", "big") - (1 << 63)


async def head(conn: asyncpg.Connection) -> tuple[int, str]:
    row = await conn.fetchrow("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
    return (int(row[0]), row[1]) if row else (0, GENESIS)


async def append(conn: asyncpg.Connection, event: str, *, reason: str = "", thread_id: int | None = None,
                 party_id: int | None = None, message_id: int | None = None,
                 detail: Mapping[str, Any] | None = None, ts: float | None = None,
                 pii: Mapping[str, Any] | None = None) -> AuditEvent:
    """Append one event to the chain; must run inside a transaction (relay/store/audit.py's append)."""
    ts = time.time() if ts is None else ts
    chained, personal = split_pii(detail or {}, pii)
    commit = salt = data = None
    if personal:
        salt = secrets.token_hex(16)
        data = dumps(personal).decode()
        commit = pii_commitment(salt, data)
    # The lock, then the head: READ COMMITTED takes a new snapshot per statement, so the head read
    # after the lock is granted sees the last committed append (and this transaction's own).
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK)
    last_seq, prev = await head(conn)
    seq = last_seq + 1
    body = canonical(seq, ts, event, reason, thread_id, party_id, message_id, chained, commit)
    digest = chain_hash(prev, body)
    await conn.execute(
        "INSERT INTO audit_events (seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash, hash,"
        " pii_commit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        seq, ts, event, reason, thread_id, party_id, message_id, dumps(chained).decode(), prev, digest, commit)
    if commit is not None:
        await conn.execute("INSERT INTO audit_pii (seq, salt, data) VALUES ($1, $2, $3)", seq, salt, data)
    return AuditEvent(seq, ts, event, reason, thread_id, party_id, message_id, chained | personal, prev, digest,
                      commit, tuple(personal))


_COLUMNS = ("e.seq, e.ts, e.event, e.reason, e.thread_id, e.party_id, e.message_id, e.detail, e.prev_hash, e.hash,"
            " e.pii_commit, p.data")
_FROM = "FROM audit_events e LEFT JOIN audit_pii p ON p.seq = e.seq"


def _row(row: Any) -> AuditEvent:
    detail = orjson.loads(row[7])
    personal = orjson.loads(row[11]) if row[11] else {}
    return AuditEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6], detail | personal, row[8], row[9],
                      row[10], tuple(personal))


async def events_after(conn: asyncpg.Connection, after_seq: int = 0, *, limit: int = 1000,
                       thread_id: int | None = None, party_id: int | None = None, event: str | None = None,
                       since: float | None = None, message_id: int | None = None) -> list[AuditEvent]:
    args: list[Any] = [after_seq]
    where = ["e.seq > $1"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if thread_id is not None:
        where.append(f"e.thread_id = {arg(thread_id)}")
    if party_id is not None:
        where.append(f"e.party_id = {arg(party_id)}")
    if message_id is not None:
        where.append(f"e.message_id = {arg(message_id)}")
    if event is not None:
        where.append(f"(e.event = {arg(event)} OR e.event ILIKE {arg(_like_prefix(event))} ESCAPE '\\')")
    if since is not None:
        where.append(f"e.ts >= {arg(since)}")
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT {arg(limit)}"
    return [_row(r) for r in await conn.fetch(sql, *args)]


def _like_prefix(event: str) -> str:
    """`event` + ".%" as SQLite's LIKE reads it (case-insensitive for ASCII, '_' and '%' wildcards,
    no escape character): ILIKE, with '\\' (PostgreSQL's escape) taken literally."""
    return event.replace("\\", "\\\\") + ".%"


class PgAudit:
    """store.audit on PostgreSQL: each call its own short transaction."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def append(self, event: str, **kwargs: Any) -> AuditEvent:
        async with self.db.transaction() as conn:
            return await append(conn, event, **kwargs)

    async def head(self) -> tuple[int, str]:
        async with self.db.connection() as conn:
            return await head(conn)

    async def events_after(self, after_seq: int = 0, **kwargs: Any) -> list[AuditEvent]:
        async with self.db.connection() as conn:
            return await events_after(conn, after_seq, **kwargs)

    async def last_events(self, n: int, **filters: Any) -> list[AuditEvent]:
        async with self.db.snapshot() as conn:
            return await last_events(conn, n, **filters)

    async def events_in(self, seqs: list[int]) -> list[AuditEvent]:
        async with self.db.connection() as conn:
            return await events_in(conn, seqs)

    async def verify(self, batch: int = 5000) -> Result:
        """relay/store/audit_verify.py's walk over one snapshot of the chain (pg/audit_verify.py)."""
        from relay.store.pg import audit_verify

        return await audit_verify.verify(self.db, batch)

    async def check_events(self, events: list[dict[str, Any]]) -> list[str]:
        from relay.store.pg import audit_verify

        return await audit_verify.check_events(self.db, events)

    async def missing_anchors(self, anchors: list[str]) -> list[str]:
        from relay.store.pg import audit_verify

        return await audit_verify.missing_anchors(self.db, anchors)


class Deferred:
    """Audit appends held back to the end of a transaction: the chain's lock is then the last lock
    a unit takes (no unit waits for a row lock while holding it: no deadlock with the limits' row
    locks, relay/store/pg/accept.py), and it is held for the shortest time. Order is kept."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def append(self, event: str, **kwargs: Any) -> None:
        self.items.append((event, kwargs))

    async def flush(self, conn: asyncpg.Connection) -> list[AuditEvent]:
        out = [await append(conn, event, **kwargs) for event, kwargs in self.items]
        self.items.clear()
        return out


async def last_events(conn: asyncpg.Connection, n: int, **filters: Any) -> list[AuditEvent]:
    """The newest n events matching the filters, oldest first."""
    if n <= 0:
        return []
    rows: list[AuditEvent] = []
    after = 0
    while True:
        chunk = await events_after(conn, after, limit=5000, **filters)
        if not chunk:
            return rows
        rows = (rows + chunk)[-n:]
        after = chunk[-1].seq


async def iter_all(conn: asyncpg.Connection, **filters: Any) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    after = 0
    while True:
        chunk = await events_after(conn, after, limit=5000, **filters)
        if not chunk:
            return out
        out += chunk
        after = chunk[-1].seq


async def events_in(conn: asyncpg.Connection, seqs: list[int]) -> list[AuditEvent]:
    if not seqs:
        return []
    return [_row(r) for r in await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE e.seq = ANY($1::bigint[]) ORDER BY e.seq", list(seqs))]
