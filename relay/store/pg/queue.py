"""The delivery queue on PostgreSQL, shared by several relay nodes: relay/store/queue.py's
semantics (leases, fencing tokens, the audit events of each result), for concurrent claimers.

- claim_due: one statement in its own short transaction: the due rows are picked with
  FOR UPDATE SKIP LOCKED (two nodes never wait for, nor take, the same row) and updated to
  'sending' with attempts + 1, the owner (node:pid:nonce), lease_until and lease_token + 1. The
  row lock ends at COMMIT: none is held while the SMTP conversation runs; the lease is the claim.
- every result (mark_delivered, defer, bounce) and renew is written only where the row is still
  'sending' under the claim's token (fencing): a holder whose lease was taken back writes nothing.
- reclaim: any node returns rows whose lease ran out; a process that is gone is recognised only
  on its own node (node:pid:… with this relay.node, `alive(pid)` false), as relay/store/queue.py does.
- a row that becomes due now (a notice, a returned claim) sends NOTIFY relay_queue at COMMIT;
  idle workers await wait_for_work() (relay/store/pg/db.py's listening connection).

Module functions take a connection inside a transaction; PgQueue runs each in its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from relay.store.errors import Conflict, NotFound
from relay.store.pg import audit, messages
from relay.store.pg.db import QUEUE_CHANNEL, PgDatabase
from relay.store.queue import QueueItem, QueueStats

_COLS = ("q.id, q.message_id, q.recipient, q.envelope_from, q.blob_sha256, q.state, q.attempts, q.created_at,"
         " q.next_attempt_at, q.last_attempt_at, q.expires_at, q.last_error, q.kind, m.thread_id, q.lease_token")
_FROM = "FROM queue q JOIN messages m ON m.id = q.message_id"


def _item(row: Any) -> QueueItem:
    return QueueItem(*row)


async def notify_work(conn: asyncpg.Connection) -> None:
    """Wake the idle workers of every node when this transaction commits (not before: a worker
    woken early would find nothing)."""
    await conn.execute("SELECT pg_notify($1, '')", QUEUE_CHANNEL)


async def get(conn: asyncpg.Connection, queue_id: int) -> QueueItem:
    row = await conn.fetchrow(f"SELECT {_COLS} {_FROM} WHERE q.id = $1", queue_id)
    if row is None:
        raise NotFound(f"no such queue entry: {queue_id}")
    return _item(row)


async def listing(conn: asyncpg.Connection, state: str | None = None, limit: int = 1000) -> list[QueueItem]:
    if state:
        rows = await conn.fetch(f"SELECT {_COLS} {_FROM} WHERE q.state = $1 ORDER BY q.id LIMIT $2", state, limit)
    else:
        rows = await conn.fetch(f"SELECT {_COLS} {_FROM} ORDER BY q.id LIMIT $1", limit)
    return [_item(r) for r in rows]


_CLAIM = (
    "WITH due AS (SELECT id FROM queue WHERE state = 'queued' AND next_attempt_at <= $1"
    " ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE queue q SET state = 'sending', attempts = q.attempts + 1, last_attempt_at = $1, claimed_by = $3,"
    " lease_until = $4, lease_token = q.lease_token + 1"
    " FROM due, messages m WHERE q.id = due.id AND m.id = q.message_id"
    f" RETURNING {_COLS}")


async def claim_due(conn: asyncpg.Connection, now: float, limit: int, owner: str = "",
                    lease: float = 300.0) -> list[QueueItem]:
    """Lease up to `limit` due rows to `owner` until now + `lease`; rows another node is claiming at
    this moment are skipped, not waited for. Run it in a transaction of its own (the row locks last
    until it commits)."""
    rows = await conn.fetch(_CLAIM, now, limit, owner, now + lease)
    return sorted((_item(r) for r in rows), key=lambda i: (i.next_attempt_at, i.id))


async def renew(conn: asyncpg.Connection, held: list[tuple[int, int]], until: float) -> list[int]:
    """Extend the leases still ours ((queue id, token) pairs) to `until`; return the ids lost."""
    if not held:
        return []
    kept = {r[0] for r in await conn.fetch(
        "UPDATE queue q SET lease_until = $1 FROM unnest($2::bigint[], $3::bigint[]) AS h(id, token)"
        " WHERE q.id = h.id AND q.state = 'sending' AND q.lease_token = h.token RETURNING q.id",
        until, [qid for qid, _ in held], [token for _, token in held])}
    return [qid for qid, _ in held if qid not in kept]


async def next_due_at(conn: asyncpg.Connection) -> float | None:
    value = await conn.fetchval("SELECT MIN(next_attempt_at) FROM queue WHERE state = 'queued'")
    return float(value) if value is not None else None


async def _still_sending(conn: asyncpg.Connection, item: QueueItem, sql: str, *params: Any) -> bool:
    """Apply a result only to a row that is still ours ('sending' under this claim's token)."""
    n = len(params) + 1
    status = await conn.execute(f"{sql} AND state = 'sending' AND lease_token = ${n}", *params, item.lease_token)
    return bool(status == "UPDATE 1")


async def _set_message_state(conn: asyncpg.Connection, message_id: int, state: str,
                             reason: str | None = None) -> None:
    """relay/store/messages.py's set_state (the messages repository's, when it has a PostgreSQL twin)."""
    if reason is None:
        await conn.execute("UPDATE messages SET state = $1 WHERE id = $2", state, message_id)
    else:
        await conn.execute("UPDATE messages SET state = $1, reason = $2 WHERE id = $3", state, reason, message_id)


async def mark_delivered(conn: asyncpg.Connection, item: QueueItem, now: float, response: str) -> bool:
    if not await _still_sending(conn, item, "UPDATE queue SET state = 'delivered', last_error = NULL WHERE id = $1",
                                item.id):
        return False
    if item.kind == "message":
        await _set_message_state(conn, item.message_id, "delivered")
    await audit.append(conn, "delivery.delivered" if item.kind == "message" else "notice.delivered", reason="ok",
                       thread_id=item.thread_id, message_id=item.message_id,
                       detail={"queue": item.id, "attempt": item.attempts, "response": response[:200]}, ts=now)
    return True


async def defer(conn: asyncpg.Connection, item: QueueItem, now: float, next_at: float, error: str, *,
                ambiguous: bool = False) -> bool:
    if not await _still_sending(conn, item, "UPDATE queue SET state = 'queued', next_attempt_at = $1,"
                                " last_error = $2 WHERE id = $3", next_at, error[:500], item.id):
        return False
    if ambiguous and item.kind == "message":
        await _set_message_state(conn, item.message_id, "queued", "delivery.outcome_unknown")
    await audit.append(conn, "delivery.ambiguous" if ambiguous else "delivery.deferred",
                       reason="delivery.outcome_unknown" if ambiguous else "delivery.tempfail",
                       thread_id=item.thread_id, message_id=item.message_id,
                       detail={"queue": item.id, "attempt": item.attempts, "error": error[:200],
                               "next_attempt_at": next_at}, ts=now)
    if next_at <= now:
        await notify_work(conn)
    return True


async def bounce(conn: asyncpg.Connection, item: QueueItem, now: float, reason: str, error: str,
                 notice: tuple[str, str, bytes] | None) -> int | None:
    if not await _still_sending(conn, item, "UPDATE queue SET state = 'bounced', last_error = $1 WHERE id = $2",
                                error[:500], item.id):
        return None
    if item.kind == "message":
        await _set_message_state(conn, item.message_id, "bounced", reason)
    await audit.append(conn, "delivery.bounced" if item.kind == "message" else "notice.bounced", reason=reason,
                       thread_id=item.thread_id, message_id=item.message_id,
                       detail={"queue": item.id, "attempt": item.attempts, "error": error[:200]}, ts=now)
    if notice is None:
        return None
    return await enqueue_notice(conn, item.message_id, item.thread_id, now, *notice)


async def enqueue_notice(conn: asyncpg.Connection, message_id: int, thread_id: int | None, now: float,
                         recipient: str, envelope_from: str, data: bytes, lifetime: float = 5 * 86400,
                         later: audit.Deferred | None = None) -> int:
    """Queue a notice for the sender; its event appended at once, or held in `later` for the end of
    the transaction."""
    digest = await messages.put_blob(conn, data)
    qid = int(await conn.fetchval(
        "INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at, next_attempt_at,"
        " expires_at, kind) VALUES ($1, $2, $3, $4, 'queued', $5, $5, $6, 'notice') RETURNING id",
        message_id, recipient, envelope_from, digest, now, now + lifetime))
    events = later if later is not None else audit.Deferred()
    events.append("notice.queued", reason="notice", thread_id=thread_id, message_id=message_id,
                  detail={"queue": qid, "notice_sha256": digest}, ts=now)
    if later is None:
        await events.flush(conn)
    await notify_work(conn)
    return qid


_SENDING = ("SELECT q.id, q.message_id, m.thread_id, q.claimed_by, q.lease_token"
            " FROM queue q JOIN messages m ON m.id = q.message_id WHERE q.state = 'sending'")


async def _return(conn: asyncpg.Connection, rows: list[Any], now: float, reason: str) -> int:
    """Back to the queue, each row only if it is still under the claim it was seen with (another
    node may have returned it, or its holder finished, since)."""
    count = 0
    for qid, mid, tid, owner, token in rows:
        status = await conn.execute("UPDATE queue SET state = 'queued', next_attempt_at = $1, lease_until = NULL"
                                    " WHERE id = $2 AND state = 'sending' AND lease_token = $3", now, qid, token)
        if status != "UPDATE 1":
            continue
        await audit.append(conn, "delivery.recovered", reason=reason, thread_id=tid, message_id=mid,
                           detail={"queue": qid, "owner": owner}, ts=now)
        count += 1
    if count:
        await notify_work(conn)
    return count


async def recover(conn: asyncpg.Connection, now: float, owner: str | None = None, *, prefix: bool = False) -> int:
    """Rows left 'sending' go back to the queue: all, `owner`'s, or (prefix) those of every owner
    starting so. Rows locked by another node's transaction right now are left to it."""
    lock = " ORDER BY q.id FOR UPDATE OF q SKIP LOCKED"
    if owner is None:
        rows = await conn.fetch(_SENDING + lock)
    elif prefix:
        rows = await conn.fetch(_SENDING + " AND left(q.claimed_by, $1) = $2" + lock, len(owner), owner)
    else:
        rows = await conn.fetch(_SENDING + " AND q.claimed_by = $1" + lock, owner)
    return await _return(conn, list(rows), now, "delivery.interrupted")


async def reclaim(conn: asyncpg.Connection, now: float, node: str, alive: Callable[[int], bool]) -> int:
    """Take back the rows whose lease ran out (any node's), and those of a process of this node
    (`node`) that is gone; a live owner's rows, or another node's unexpired ones, keep their lease.
    The expired rows are locked SKIP LOCKED: two nodes sweeping at once share them out."""
    expired = list(await conn.fetch(_SENDING + " AND (q.lease_until IS NULL OR q.lease_until < $1)"
                                    " ORDER BY q.id FOR UPDATE OF q SKIP LOCKED", now))
    seen = {r[0] for r in expired}
    gone = []
    for row in await conn.fetch(_SENDING + " AND split_part(q.claimed_by, ':', 1) = $1 ORDER BY q.id", node):
        parts = (row[3] or "").split(":")
        pid = parts[1] if len(parts) == 3 and parts[0] == node else ""
        if row[0] not in seen and pid.isdigit() and not alive(int(pid)):
            gone.append(row)
    return (await _return(conn, expired, now, "delivery.lease_expired")
            + await _return(conn, gone, now, "delivery.owner_gone"))


async def expired_leases(conn: asyncpg.Connection, now: float) -> int:
    return int(await conn.fetchval("SELECT COUNT(*) FROM queue WHERE state = 'sending'"
                                   " AND (lease_until IS NULL OR lease_until < $1)", now))


async def stats(conn: asyncpg.Connection) -> QueueStats:
    depth = {"queued": 0, "sending": 0, "held": 0}
    for state, count in await conn.fetch("SELECT state, COUNT(*) FROM queue"
                                         " WHERE state IN ('queued', 'sending', 'held') GROUP BY state"):
        depth[state] = int(count)
    oldest = await conn.fetchval("SELECT MIN(created_at) FROM queue WHERE state IN ('queued', 'sending')")
    return QueueStats(depth, oldest, await next_due_at(conn))


async def set_held(conn: asyncpg.Connection, queue_id: int, held: bool, now: float, reason: str) -> QueueItem:
    """An operator holds a queued row or releases a held one (relay/store/queue.py's set_held); the
    row is locked first, so a claim or another operator's change in between is seen, not overwritten."""
    await conn.execute("SELECT id FROM queue WHERE id = $1 FOR UPDATE", queue_id)
    item = await get(conn, queue_id)
    if held and item.state != "queued":
        raise Conflict(f"queue entry {queue_id} is {item.state}, not queued")
    if not held and item.state != "held":
        raise Conflict(f"queue entry {queue_id} is {item.state}, not held")
    new = "held" if held else "queued"
    await conn.execute("UPDATE queue SET state = $1, next_attempt_at = $2 WHERE id = $3", new, now, queue_id)
    if item.kind == "message":
        await _set_message_state(conn, item.message_id, new)
    await audit.append(conn, "queue.held" if held else "queue.released", reason=reason, thread_id=item.thread_id,
                       message_id=item.message_id, detail={"queue": queue_id}, ts=now)
    if not held:
        await notify_work(conn)
    return await get(conn, queue_id)


async def rows_of_message(conn: asyncpg.Connection, message_id: int, *, lock: bool = False) -> list[QueueItem]:
    sql = f"SELECT {_COLS} {_FROM} WHERE q.message_id = $1 AND q.kind = 'message' ORDER BY q.id"
    return [_item(r) for r in await conn.fetch(sql + (" FOR UPDATE OF q" if lock else ""), message_id)]


async def release_message(conn: asyncpg.Connection, message_id: int, now: float,
                          later: audit.Deferred | None = None) -> int:
    """The message's rows locked first, its event appended last (or held in `later` for the end of
    the caller's transaction)."""
    rows = [r for r in await rows_of_message(conn, message_id, lock=True) if r.state == "held"]
    if not rows:
        raise Conflict(f"message {message_id} is not held")
    await conn.execute("UPDATE queue SET state = 'queued', next_attempt_at = $1 WHERE id = ANY($2::bigint[])"
                       " AND state = 'held'", now, [r.id for r in rows])
    await _set_message_state(conn, message_id, "queued")
    events = later if later is not None else audit.Deferred()
    events.append("message.released", reason="operator.release", thread_id=rows[0].thread_id,
                  message_id=message_id, detail={"queue": [r.id for r in rows]}, ts=now)
    await notify_work(conn)
    if later is None:
        await events.flush(conn)
    return len(rows)


async def drop_message(conn: asyncpg.Connection, message_id: int, now: float, reason: str,
                       notice: tuple[str, str, bytes] | None, later: audit.Deferred | None = None) -> int:
    """The message's rows locked first, the events (the drop's, the notice's) appended last (or held
    in `later` for the end of the caller's transaction)."""
    rows = [r for r in await rows_of_message(conn, message_id, lock=True) if r.state in ("held", "queued")]
    if not rows:
        raise Conflict(f"message {message_id} is neither held nor queued")
    await conn.execute("UPDATE queue SET state = 'dropped' WHERE id = ANY($1::bigint[])", [r.id for r in rows])
    await _set_message_state(conn, message_id, "dropped", reason)
    events = later if later is not None else audit.Deferred()
    events.append("message.dropped", reason=reason, thread_id=rows[0].thread_id, message_id=message_id,
                  detail={"queue": [r.id for r in rows]}, ts=now)
    if notice is not None:
        await enqueue_notice(conn, message_id, rows[0].thread_id, now, *notice, later=events)
    if later is None:
        await events.flush(conn)
    return len(rows)


async def retry(conn: asyncpg.Connection, queue_id: int | None, now: float) -> list[int]:
    if queue_id is not None:
        item = await get(conn, queue_id)
        if item.state != "queued":
            raise Conflict(f"queue entry {queue_id} is {item.state}, not queued")
        ids = [r[0] for r in await conn.fetch("UPDATE queue SET next_attempt_at = $1 WHERE id = $2"
                                              " AND state = 'queued' RETURNING id", now, queue_id)]
    else:
        ids = sorted(r[0] for r in await conn.fetch("UPDATE queue SET next_attempt_at = $1 WHERE state = 'queued'"
                                                    " RETURNING id", now))
    if ids:
        await audit.append(conn, "queue.retried", reason="operator", detail={"queue": ids[:100], "count": len(ids)},
                           ts=now)
        await notify_work(conn)
    return ids


async def drop(conn: asyncpg.Connection, queue_id: int, now: float,
               notice: tuple[str, str, bytes] | None) -> int | None:
    """Refused for a row being delivered ('sending'), as on SQLite; the row is locked first."""
    await conn.execute("SELECT id FROM queue WHERE id = $1 FOR UPDATE", queue_id)
    item = await get(conn, queue_id)
    if item.state not in ("queued", "held"):
        raise Conflict(f"queue entry {queue_id} is {item.state}; only queued or held entries can be dropped")
    await conn.execute("UPDATE queue SET state = 'dropped' WHERE id = $1", queue_id)
    if item.kind == "message":
        await _set_message_state(conn, item.message_id, "dropped", "queue.dropped")
    await audit.append(conn, "queue.dropped", reason="queue.dropped", thread_id=item.thread_id,
                       message_id=item.message_id, detail={"queue": queue_id, "kind": item.kind, "was": item.state},
                       ts=now)
    if notice is None or item.kind != "message":
        return None
    return await enqueue_notice(conn, item.message_id, item.thread_id, now, *notice)


class PgQueue:
    """store.queue on PostgreSQL: each call its own short transaction (a claim's row locks last
    only as long as that)."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def get(self, queue_id: int) -> QueueItem:
        async with self.db.connection() as conn:
            return await get(conn, queue_id)

    async def listing(self, state: str | None = None, limit: int = 1000) -> list[QueueItem]:
        async with self.db.connection() as conn:
            return await listing(conn, state, limit)

    async def claim_due(self, now: float, limit: int, owner: str = "", lease: float = 300.0) -> list[QueueItem]:
        async with self.db.transaction() as conn:
            return await claim_due(conn, now, limit, owner, lease)

    async def renew(self, held: list[tuple[int, int]], until: float) -> list[int]:
        async with self.db.transaction() as conn:
            return await renew(conn, held, until)

    async def next_due_at(self) -> float | None:
        async with self.db.connection() as conn:
            return await next_due_at(conn)

    async def mark_delivered(self, item: QueueItem, now: float, response: str) -> bool:
        async with self.db.transaction() as conn:
            return await mark_delivered(conn, item, now, response)

    async def defer(self, item: QueueItem, now: float, next_at: float, error: str, *,
                    ambiguous: bool = False) -> bool:
        async with self.db.transaction() as conn:
            return await defer(conn, item, now, next_at, error, ambiguous=ambiguous)

    async def bounce(self, item: QueueItem, now: float, reason: str, error: str,
                     notice: tuple[str, str, bytes] | None) -> int | None:
        async with self.db.transaction() as conn:
            return await bounce(conn, item, now, reason, error, notice)

    async def enqueue_notice(self, message_id: int, thread_id: int | None, now: float, recipient: str,
                             envelope_from: str, data: bytes, lifetime: float = 5 * 86400) -> int:
        async with self.db.transaction() as conn:
            return await enqueue_notice(conn, message_id, thread_id, now, recipient, envelope_from, data, lifetime)

    async def recover(self, now: float, owner: str | None = None, *, prefix: bool = False) -> int:
        async with self.db.transaction() as conn:
            return await recover(conn, now, owner, prefix=prefix)

    async def reclaim(self, now: float, node: str, alive: Callable[[int], bool]) -> int:
        async with self.db.transaction() as conn:
            return await reclaim(conn, now, node, alive)

    async def expired_leases(self, now: float) -> int:
        async with self.db.connection() as conn:
            return await expired_leases(conn, now)

    async def stats(self) -> QueueStats:
        async with self.db.snapshot() as conn:
            return await stats(conn)

    async def set_held(self, queue_id: int, held: bool, now: float, reason: str) -> QueueItem:
        async with self.db.transaction() as conn:
            return await set_held(conn, queue_id, held, now, reason)

    async def rows_of_message(self, message_id: int) -> list[QueueItem]:
        async with self.db.connection() as conn:
            return await rows_of_message(conn, message_id)

    async def release_message(self, message_id: int, now: float) -> int:
        async with self.db.transaction() as conn:
            return await release_message(conn, message_id, now)

    async def drop_message(self, message_id: int, now: float, reason: str,
                           notice: tuple[str, str, bytes] | None) -> int:
        async with self.db.transaction() as conn:
            return await drop_message(conn, message_id, now, reason, notice)

    async def retry(self, queue_id: int | None, now: float) -> list[int]:
        async with self.db.transaction() as conn:
            return await retry(conn, queue_id, now)

    async def drop(self, queue_id: int, now: float, notice: tuple[str, str, bytes] | None) -> int | None:
        async with self.db.transaction() as conn:
            return await drop(conn, queue_id, now, notice)

    async def wait_for_work(self, timeout: float) -> bool:
        """Until a row may have become due (NOTIFY relay_queue from any node: True) or `timeout`
        (False). An idle worker awaits this with timeout = until next_due_at(), at most its poll."""
        return await self.db.wait_for_notify(timeout)
