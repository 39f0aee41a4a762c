"""Audit events: append-only rows chained by SHA-256.

hash = SHA-256(prev_hash || "\\n" || canonical JSON of the event), where the canonical
JSON has sorted keys and covers seq, ts, event, reason, thread, party, message and detail.
The first event's prev_hash is GENESIS. Appends happen inside the writer's transaction,
which holds SQLite's write lock, so the head read here is the true head.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    ts: float
    event: str
    reason: str
    thread_id: int | None
    party_id: int | None
    message_id: int | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "ts": self.ts, "event": self.event, "reason": self.reason,
            "thread": self.thread_id, "party": self.party_id, "message": self.message_id,
            "detail": self.detail, "prev_hash": self.prev_hash, "hash": self.hash,
        }


def canonical(seq: int, ts: float, event: str, reason: str, thread_id: int | None, party_id: int | None,
              message_id: int | None, detail: Mapping[str, Any]) -> bytes:
    return orjson.dumps(
        {"seq": seq, "ts": ts, "event": event, "reason": reason, "thread": thread_id,
         "party": party_id, "message": message_id, "detail": detail},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def append(conn: sqlite3.Connection, event: str, *, reason: str = "", thread_id: int | None = None,
           party_id: int | None = None, message_id: int | None = None,
           detail: Mapping[str, Any] | None = None, ts: float | None = None) -> AuditEvent:
    """Append one event to the chain; must run inside a write transaction."""
    last_seq, prev = head(conn)
    seq = last_seq + 1
    ts = time.time() if ts is None else ts
    detail = dict(detail or {})
    body = canonical(seq, ts, event, reason, thread_id, party_id, message_id, detail)
    digest = chain_hash(prev, body)
    conn.execute(
        "INSERT INTO audit_events (seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, event, reason, thread_id, party_id, message_id,
         orjson.dumps(detail, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode(), prev, digest),
    )
    return AuditEvent(seq, ts, event, reason, thread_id, party_id, message_id, detail, prev, digest)


def _row(row: tuple[Any, ...]) -> AuditEvent:
    return AuditEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6], orjson.loads(row[7]), row[8], row[9])


_COLUMNS = "seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash, hash"


def events_after(conn: sqlite3.Connection, after_seq: int = 0, *, limit: int = 1000,
                 thread_id: int | None = None, party_id: int | None = None, event: str | None = None,
                 since: float | None = None) -> list[AuditEvent]:
    where: list[str] = ["seq > ?"]
    args: list[Any] = [after_seq]
    if thread_id is not None:
        where.append("thread_id = ?")
        args.append(thread_id)
    if party_id is not None:
        where.append("party_id = ?")
        args.append(party_id)
    if event is not None:
        where.append("(event = ? OR event LIKE ?)")
        args += [event, event + ".%"]
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    sql = f"SELECT {_COLUMNS} FROM audit_events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
    return [_row(r) for r in conn.execute(sql, (*args, limit))]


def last_events(conn: sqlite3.Connection, n: int, **filters: Any) -> list[AuditEvent]:
    """The newest n events matching the filters, oldest first."""
    rows: list[AuditEvent] = []
    after = 0
    while True:
        chunk = events_after(conn, after, limit=5000, **filters)
        if not chunk:
            break
        rows = (rows + chunk)[-n:] if n else []
        after = chunk[-1].seq
    return rows


def iter_all(conn: sqlite3.Connection, batch: int = 5000) -> Iterator[AuditEvent]:
    after = 0
    while True:
        chunk = events_after(conn, after, limit=batch)
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq
