"""Relayed messages on PostgreSQL: contents (by hash), rows, the two-way Message-ID map and their
queue rows; relay/store/messages.py's functions, async.

Contents live in the database (a shared server has no directory beside it for SQLite's content
files): one blobs row per sha256; below CHUNK_BYTES the bytes are in blobs.data, from CHUNK_BYTES on
(SQLite's blobfiles.FILE_BYTES, the size it moves to a file) blobs.data is '' with in_file = 1 and
the bytes are in blob_chunks, pieces of CHUNK_BYTES numbered from 0 (migration 0016): no single
value grows past what one round trip should carry, and a reader can stop after the size. A
delivered copy that ends with its original's body is stored as its head on the original
(base, base_from), as on SQLite. A cleared content has data NULL and no pieces.

Module functions take a connection inside a transaction. record_accepted() can hold its audit
events back (pg/audit.Deferred) so that accept() takes the chain's lock last (docs/postgresql.md).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from relay.scan import known_clean, remember_clean
from relay.store.accept import AcceptHook
from relay.store.blobfiles import FILE_BYTES
from relay.store.messages import Accepted, MessageRow, Refused
from relay.store.pg import audit
from relay.store.pg.db import QUEUE_CHANNEL, PgRepo

#: From this size a content is kept in pieces of this size (blob_chunks).
CHUNK_BYTES = FILE_BYTES

_PUT = ("INSERT INTO blobs (sha256, size, data, in_file, wire, base, base_from) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (sha256) DO UPDATE SET data = excluded.data, in_file = excluded.in_file, wire = excluded.wire,"
        " base = excluded.base, base_from = excluded.base_from, cleared_at = NULL, cleared_reason = NULL"
        " WHERE blobs.data IS NULL RETURNING sha256")


async def put_blob(conn: asyncpg.Connection, data: bytes, digest: str | None = None, *,
                   base: tuple[str, int] | None = None) -> str:
    """Store a content once (content-addressed); a cleared row is filled again. Two transactions
    storing the same content at once: the second waits on the key, then finds it stored."""
    digest = digest or hashlib.sha256(data).hexdigest()
    size = len(data)
    wire = int(known_clean(data))
    if base is not None:
        base_size = await conn.fetchval("SELECT size FROM blobs WHERE sha256 = $1 AND data IS NOT NULL"
                                        " AND base IS NULL", base[0])
        head = size - (base_size - base[1]) if base_size is not None else -1
        if 0 <= head < CHUNK_BYTES:
            await conn.fetchval(_PUT, digest, size, data[:head], 0, wire, base[0], base[1])
            return digest
    if size < CHUNK_BYTES:
        await conn.fetchval(_PUT, digest, size, data, 0, wire, None, None)
        return digest
    if await conn.fetchval(_PUT, digest, size, b"", 1, wire, None, None) is not None:  # new, or refilled
        await conn.execute("DELETE FROM blob_chunks WHERE digest = $1", digest)
        view = memoryview(data)
        await conn.copy_records_to_table(
            "blob_chunks", columns=("digest", "seq", "data"),
            records=[(digest, i, bytes(view[off:off + CHUNK_BYTES]))
                     for i, off in enumerate(range(0, size, CHUNK_BYTES))])
    return digest


_ROW = "SELECT in_file, size, length(data), wire, base, base_from FROM blobs WHERE sha256 = $1"


async def _chunks(conn: asyncpg.Connection, digest: str) -> bytes:
    return b"".join(r[0] for r in await conn.fetch(
        "SELECT data FROM blob_chunks WHERE digest = $1 ORDER BY seq", digest))


async def get_blob(conn: asyncpg.Connection, digest: str) -> bytes | None:
    row = await conn.fetchrow(_ROW, digest)
    if row is None or row[2] is None:  # never stored, or cleared
        return None
    in_file, _size, _length, wire, base, base_from = row
    content: bytes | None
    if base is not None:
        rest = await get_blob(conn, base)
        head = await conn.fetchval("SELECT data FROM blobs WHERE sha256 = $1", digest)
        content = None if rest is None or head is None else bytes(head) + memoryview(rest)[base_from:]
    elif in_file:
        content = await _chunks(conn, digest)
    else:
        content = await conn.fetchval("SELECT data FROM blobs WHERE sha256 = $1", digest)
    if wire and content is not None:
        remember_clean(content)
    return content


async def small_blob(conn: asyncpg.Connection, digest: str, below: int) -> tuple[int | None, bytes | None]:
    """(size, content) of a stored content, the content only when smaller than `below`."""
    row = await conn.fetchrow(_ROW, digest)
    if row is None or row[2] is None:
        return None, None
    size = int(row[1])
    if size >= below:
        return size, None
    content = await get_blob(conn, digest)
    return (size, content) if content is not None else (None, None)


async def record_accepted(conn: asyncpg.Connection, msg: Accepted,
                          later: audit.Deferred | None = None) -> tuple[int, int]:
    """Insert message, contents, id map, queue row and audit events (appended at once, or held in
    `later` for the end of the transaction); return (message id, queue id)."""
    events = later if later is not None else audit.Deferred()
    orig = await put_blob(conn, msg.original, msg.digests.get(id(msg.original)))
    out = await put_blob(conn, msg.delivered, msg.digests.get(id(msg.delivered)),
                         base=None if msg.delivered_from is None else (orig, msg.delivered_from))
    state = "held" if msg.held else "queued"
    message_id = int(await conn.fetchval(
        "INSERT INTO messages (thread_id, direction, sender_id, recipient_id, state, reason, received_at,"
        " envelope_from, rcpt_alias, subject, original_sha256, delivered_sha256, orig_message_id, relay_message_id)"
        " VALUES ($1, $2, $3, $4, $5, 'ok', $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        msg.thread_id, msg.direction, msg.sender_id, msg.recipient_id, state, msg.received_at, msg.envelope_from,
        msg.rcpt_alias, msg.subject, orig, out, msg.orig_message_id, msg.relay_message_id))
    await conn.execute(
        "INSERT INTO message_ids (relay_id, orig_id, thread_id, sender_id, message_id) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (relay_id) DO NOTHING",
        msg.relay_message_id, msg.orig_message_id or msg.relay_message_id, msg.thread_id, msg.sender_id, message_id)
    queue_id = int(await conn.fetchval(
        "INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at, next_attempt_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
        message_id, msg.out_recipient, msg.out_envelope_from, out, state, msg.received_at, msg.expires_at))
    common: dict[str, Any] = {"thread_id": msg.thread_id, "message_id": message_id, "ts": msg.received_at}
    events.append("message.accepted", reason="ok", party_id=msg.sender_id,
                  detail={"direction": msg.direction, "alias": msg.rcpt_alias, "size": len(msg.original),
                          "original_sha256": orig, "delivered_sha256": out}, **common)
    for ev in msg.events:
        events.append(ev.event, reason=ev.reason, party_id=msg.sender_id, detail=ev.detail, **common)
    events.append("message.held" if msg.held else "message.queued", reason="ok",
                  party_id=msg.recipient_id, detail={"queue": queue_id}, **common)
    if later is None:
        await events.flush(conn)
    if not msg.held:
        await conn.execute("SELECT pg_notify($1, '')", QUEUE_CHANNEL)  # due now: wake idle workers at COMMIT
    return message_id, queue_id


async def record_refused(conn: asyncpg.Connection, msg: Refused) -> int:
    orig = await put_blob(conn, msg.original) if msg.original is not None else None
    message_id = int(await conn.fetchval(
        "INSERT INTO messages (thread_id, direction, sender_id, recipient_id, state, reason, received_at,"
        " envelope_from, rcpt_alias, subject, original_sha256) VALUES ($1, $2, $3, $4, 'rejected', $5, $6, $7, $8,"
        " $9, $10) RETURNING id",
        msg.thread_id, msg.direction, msg.sender_id, msg.recipient_id, msg.reason, msg.received_at,
        msg.envelope_from, msg.rcpt_alias, msg.subject, orig))
    for ev in msg.events:
        await audit.append(conn, ev.event, reason=ev.reason, thread_id=msg.thread_id, party_id=msg.sender_id,
                           message_id=message_id, detail=ev.detail, ts=msg.received_at)
    await audit.append(conn, "message.rejected", reason=msg.reason, thread_id=msg.thread_id, party_id=msg.sender_id,
                       message_id=message_id, detail={"reply": msg.reply, "alias": msg.rcpt_alias,
                                                      "original_sha256": orig}, ts=msg.received_at)
    return message_id


async def translate_ids(conn: asyncpg.Connection, thread_id: int, recipient_id: int,
                        ids: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for mid in ids:
        row = await conn.fetchrow("SELECT orig_id, sender_id FROM message_ids WHERE relay_id = $1 AND thread_id = $2",
                                  mid, thread_id)
        if row is not None:
            out[mid] = row[0] if row[1] == recipient_id else mid
            continue
        row = await conn.fetchrow("SELECT relay_id, sender_id FROM message_ids WHERE orig_id = $1 AND thread_id = $2"
                                  " ORDER BY message_id LIMIT 1", mid, thread_id)
        if row is not None:
            out[mid] = mid if row[1] == recipient_id else row[0]
    return out


async def set_state(conn: asyncpg.Connection, message_id: int, state: str, reason: str | None = None) -> None:
    if reason is None:
        await conn.execute("UPDATE messages SET state = $1 WHERE id = $2", state, message_id)
    else:
        await conn.execute("UPDATE messages SET state = $1, reason = $2 WHERE id = $3", state, reason, message_id)


_MSG_COLS = ("id, thread_id, direction, sender_id, recipient_id, state, reason, received_at, envelope_from,"
             " rcpt_alias, subject, original_sha256, delivered_sha256, orig_message_id, relay_message_id")


async def get(conn: asyncpg.Connection, message_id: int) -> MessageRow | None:
    row = await conn.fetchrow(f"SELECT {_MSG_COLS} FROM messages WHERE id = $1", message_id)
    return MessageRow(*row) if row else None


async def of_thread(conn: asyncpg.Connection, thread_id: int) -> list[MessageRow]:
    return [MessageRow(*r) for r in await conn.fetch(
        f"SELECT {_MSG_COLS} FROM messages WHERE thread_id = $1 ORDER BY received_at, id", thread_id)]


def _digests(contents: Sequence[bytes]) -> dict[int, str]:
    return {id(d): hashlib.sha256(d).hexdigest() for d in contents if len(d) >= CHUNK_BYTES}


class PgMessages(PgRepo):
    async def write_large(self, contents: Sequence[bytes], files: Mapping[int, Path] | None = None,
                          derived: Collection[int] = ()) -> dict[int, str]:
        """Nothing to write ahead here (contents go into the transaction); the large ones are hashed
        off the loop, so that accept() does not hash them on it."""
        return await asyncio.to_thread(_digests, contents)

    async def accept(self, rows: Sequence[Accepted],
                     hooks: Sequence[Sequence[AcceptHook]]) -> list[tuple[int, int]]:
        from relay.store.pg import accept as accept_pg  # the hooks' repositories import this module

        async with self.db.transaction() as conn:
            return await accept_pg.accept(conn, rows, hooks)

    async def get_blob(self, digest: str) -> bytes | None:
        async with self.db.snapshot() as conn:  # one snapshot for the row and its pieces
            return await get_blob(conn, digest)

    async def small_blob(self, digest: str, below: int) -> tuple[int | None, bytes | None]:
        async with self.db.snapshot() as conn:
            return await small_blob(conn, digest, below)

    async def record_accepted(self, msg: Accepted) -> tuple[int, int]:
        async with self.db.transaction() as conn:
            return await record_accepted(conn, msg)

    async def record_refused(self, msg: Refused) -> int:
        async with self.db.transaction() as conn:
            return await record_refused(conn, msg)

    async def translate_ids(self, thread_id: int, recipient_id: int, ids: Iterable[str]) -> dict[str, str]:
        async with self.db.connection() as conn:
            return await translate_ids(conn, thread_id, recipient_id, ids)

    async def set_state(self, message_id: int, state: str, reason: str | None = None) -> None:
        async with self.db.transaction() as conn:
            await set_state(conn, message_id, state, reason)

    async def get(self, message_id: int) -> MessageRow | None:
        async with self.db.connection() as conn:
            return await get(conn, message_id)

    async def of_thread(self, thread_id: int) -> list[MessageRow]:
        async with self.db.connection() as conn:
            return await of_thread(conn, thread_id)
