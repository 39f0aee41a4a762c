"""The delivery queue: due rows, claims, results, and the audit events that go with them.

A row is claimed ('sending', attempts+1) in its own committed transaction before the
transport is called, and its result is recorded right after. A claim is a lease
(relay/delivery/lease.py): it runs out at lease_until unless renewed, and its lease_token
fences the result (written only while the token is the claim's). A crash in between leaves
the row 'sending': its own process returns it at stop (recover(owner=…)), a sibling or the
next start once the lease has run out or its local process is gone (reclaim()).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from relay.store import audit
from relay.store import messages as messages_repo
from relay.store.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    message_id: int
    recipient: str
    envelope_from: str
    blob_sha256: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_attempt_at: float | None
    expires_at: float
    last_error: str | None
    kind: str
    thread_id: int | None = None
    #: the fencing token of the claim this item came from (0: not claimed)
    lease_token: int = 0


_COLS = ("q.id, q.message_id, q.recipient, q.envelope_from, q.blob_sha256, q.state, q.attempts, q.created_at,"
         " q.next_attempt_at, q.last_attempt_at, q.expires_at, q.last_error, q.kind, m.thread_id, q.lease_token")
_FROM = "FROM queue q JOIN messages m ON m.id = q.message_id"


def _item(row: tuple[object, ...]) -> QueueItem:
    return QueueItem(*row)  # type: ignore[arg-type]


def get(conn: sqlite3.Connection, queue_id: int) -> QueueItem:
    row = conn.execute(f"SELECT {_COLS} {_FROM} WHERE q.id = ?", (queue_id,)).fetchone()
    if row is None:
        raise NotFound(f"no such queue entry: {queue_id}")
    return _item(row)


def listing(conn: sqlite3.Connection, state: str | None = None, limit: int = 1000) -> list[QueueItem]:
    if state:
        rows = conn.execute(f"SELECT {_COLS} {_FROM} WHERE q.state = ? ORDER BY q.id LIMIT ?", (state, limit))
    else:
        rows = conn.execute(f"SELECT {_COLS} {_FROM} ORDER BY q.id LIMIT ?", (limit,))
    return [_item(r) for r in rows]


def claim_due(conn: sqlite3.Connection, now: float, limit: int, owner: str = "",
              lease: float = 300.0) -> list[QueueItem]:
    """Lease up to `limit` due rows to `owner` until now + `lease` ('sending', attempt recorded
    before the send, a new fencing token) and return them."""
    rows = conn.execute(
        f"SELECT {_COLS} {_FROM} WHERE q.state = 'queued' AND q.next_attempt_at <= ? ORDER BY q.next_attempt_at, q.id"
        " LIMIT ?", (now, limit)).fetchall()
    items = []
    for row in rows:
        item = _item(row)
        conn.execute("UPDATE queue SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?, claimed_by = ?,"
                     " lease_until = ?, lease_token = lease_token + 1 WHERE id = ?", (now, owner, now + lease, item.id))
        items.append(QueueItem(item.id, item.message_id, item.recipient, item.envelope_from, item.blob_sha256,
                               "sending", item.attempts + 1, item.created_at, item.next_attempt_at, now,
                               item.expires_at, item.last_error, item.kind, item.thread_id, item.lease_token + 1))
    return items


def renew(conn: sqlite3.Connection, held: list[tuple[int, int]], until: float) -> list[int]:
    """Extend the leases still ours ((queue id, token) pairs) to `until`; return the ids lost."""
    lost = []
    for qid, token in held:
        if conn.execute("UPDATE queue SET lease_until = ? WHERE id = ? AND state = 'sending' AND lease_token = ?",
                        (until, qid, token)).rowcount != 1:
            lost.append(qid)
    return lost


def next_due_at(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT MIN(next_attempt_at) FROM queue WHERE state = 'queued'").fetchone()
    return row[0] if row else None


def _still_sending(conn: sqlite3.Connection, item: QueueItem, sql: str, params: tuple[object, ...]) -> bool:
    """Apply a result only to a row that is still ours ('sending' under this claim's token): an
    operator's hold or drop made meanwhile from another process (`relay queue …`) is never
    overwritten, nor the claim of a process that took the row over after our lease ran out."""
    return conn.execute(sql + " AND state = 'sending' AND lease_token = ?", (*params, item.lease_token)).rowcount == 1


def mark_delivered(conn: sqlite3.Connection, item: QueueItem, now: float, response: str) -> bool:
    if not _still_sending(conn, item, "UPDATE queue SET state = 'delivered', last_error = NULL WHERE id = ?",
                          (item.id,)):
        return False
    if item.kind == "message":
        messages_repo.set_state(conn, item.message_id, "delivered")
    audit.append(conn, "delivery.delivered" if item.kind == "message" else "notice.delivered", reason="ok",
                 thread_id=item.thread_id, message_id=item.message_id,
                 detail={"queue": item.id, "attempt": item.attempts, "response": response[:200]}, ts=now)
    return True


def defer(conn: sqlite3.Connection, item: QueueItem, now: float, next_at: float, error: str, *,
          ambiguous: bool = False) -> bool:
    """Back to the queue until `next_at`. `ambiguous`: the smarthost may have taken it (it went away
    after our final dot, before its reply); the message row and the audit say so."""
    if not _still_sending(conn, item, "UPDATE queue SET state = 'queued', next_attempt_at = ?, last_error = ?"
                          " WHERE id = ?", (next_at, error[:500], item.id)):
        return False
    if ambiguous and item.kind == "message":
        messages_repo.set_state(conn, item.message_id, "queued", "delivery.outcome_unknown")
    audit.append(conn, "delivery.ambiguous" if ambiguous else "delivery.deferred",
                 reason="delivery.outcome_unknown" if ambiguous else "delivery.tempfail", thread_id=item.thread_id,
                 message_id=item.message_id,
                 detail={"queue": item.id, "attempt": item.attempts, "error": error[:200], "next_attempt_at": next_at},
                 ts=now)
    return True


def bounce(conn: sqlite3.Connection, item: QueueItem, now: float, reason: str, error: str,
           notice: tuple[str, str, bytes] | None) -> int | None:
    """Mark bounced; queue `notice` = (envelope recipient, envelope sender, message) if given.

    Returns the notice's queue id; None when there is no notice or the row is no longer ours."""
    if not _still_sending(conn, item, "UPDATE queue SET state = 'bounced', last_error = ? WHERE id = ?",
                          (error[:500], item.id)):
        return None
    if item.kind == "message":
        messages_repo.set_state(conn, item.message_id, "bounced", reason)
    audit.append(conn, "delivery.bounced" if item.kind == "message" else "notice.bounced", reason=reason,
                 thread_id=item.thread_id, message_id=item.message_id,
                 detail={"queue": item.id, "attempt": item.attempts, "error": error[:200]}, ts=now)
    if notice is None:
        return None
    return enqueue_notice(conn, item.message_id, item.thread_id, now, *notice)


def enqueue_notice(conn: sqlite3.Connection, message_id: int, thread_id: int | None, now: float,
                   recipient: str, envelope_from: str, data: bytes, lifetime: float = 5 * 86400) -> int:
    digest = messages_repo.put_blob(conn, data)
    cur = conn.execute(
        "INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at, next_attempt_at,"
        " expires_at, kind) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, 'notice')",
        (message_id, recipient, envelope_from, digest, now, now, now + lifetime))
    qid = int(cur.lastrowid or 0)
    audit.append(conn, "notice.queued", reason="notice", thread_id=thread_id, message_id=message_id,
                 detail={"queue": qid, "notice_sha256": digest}, ts=now)
    return qid


_SENDING = ("SELECT q.id, q.message_id, m.thread_id, q.claimed_by FROM queue q JOIN messages m ON m.id = q.message_id"
            " WHERE q.state = 'sending'")


def _return(conn: sqlite3.Connection, rows: list[tuple[int, int, int | None, str | None]], now: float,
            reason: str) -> int:
    for qid, mid, tid, owner in rows:
        conn.execute("UPDATE queue SET state = 'queued', next_attempt_at = ?, lease_until = NULL WHERE id = ?",
                     (now, qid))
        audit.append(conn, "delivery.recovered", reason=reason, thread_id=tid, message_id=mid,
                     detail={"queue": qid, "owner": owner}, ts=now)
    return len(rows)


def recover(conn: sqlite3.Connection, now: float, owner: str | None = None, *, prefix: bool = False) -> int:
    """Rows left 'sending' go back to the queue (the send may or may not have happened).

    With `owner`, only the rows that owner had claimed (its siblings are still sending theirs); with
    `prefix`, those of every owner starting so (a dead process's, its nonce unknown: lease.process_prefix).
    """
    if owner is None:
        rows = conn.execute(_SENDING).fetchall()
    elif prefix:
        rows = conn.execute(_SENDING + " AND substr(q.claimed_by, 1, ?) = ?", (len(owner), owner)).fetchall()
    else:
        rows = conn.execute(_SENDING + " AND q.claimed_by = ?", (owner,)).fetchall()
    return _return(conn, rows, now, "delivery.interrupted")


def reclaim(conn: sqlite3.Connection, now: float, node: str, alive: Callable[[int], bool]) -> int:
    """Take back the rows whose lease ran out, and those of a process of this node (relay.node) that is gone
    (its claims can never be finished); a live owner's rows, or another node's, keep their lease."""
    rows = conn.execute(_SENDING + " AND (q.lease_until IS NULL OR q.lease_until < ?)", (now,)).fetchall()
    expired = {r[0] for r in rows}
    gone = []
    for row in conn.execute(_SENDING).fetchall():
        parts = (row[3] or "").split(":")
        pid = parts[1] if len(parts) == 3 and parts[0] == node else ""
        if row[0] not in expired and pid.isdigit() and not alive(int(pid)):
            gone.append(row)
    return _return(conn, rows, now, "delivery.lease_expired") + _return(conn, gone, now, "delivery.owner_gone")


def expired_leases(conn: sqlite3.Connection, now: float) -> int:
    """How many rows are 'sending' under a lease that has run out (for /healthz)."""
    return int(conn.execute("SELECT COUNT(*) FROM queue WHERE state = 'sending'"
                            " AND (lease_until IS NULL OR lease_until < ?)", (now,)).fetchone()[0])


def set_held(conn: sqlite3.Connection, queue_id: int, held: bool, now: float, reason: str) -> QueueItem:
    item = get(conn, queue_id)
    if held and item.state != "queued":
        raise Conflict(f"queue entry {queue_id} is {item.state}, not queued")
    if not held and item.state != "held":
        raise Conflict(f"queue entry {queue_id} is {item.state}, not held")
    new = "held" if held else "queued"
    conn.execute("UPDATE queue SET state = ?, next_attempt_at = ? WHERE id = ?", (new, now, queue_id))
    if item.kind == "message":
        messages_repo.set_state(conn, item.message_id, new)
    audit.append(conn, "queue.held" if held else "queue.released", reason=reason, thread_id=item.thread_id,
                 message_id=item.message_id, detail={"queue": queue_id}, ts=now)
    return get(conn, queue_id)


def rows_of_message(conn: sqlite3.Connection, message_id: int) -> list[QueueItem]:
    return [_item(r) for r in conn.execute(
        f"SELECT {_COLS} {_FROM} WHERE q.message_id = ? AND q.kind = 'message' ORDER BY q.id", (message_id,))]


def release_message(conn: sqlite3.Connection, message_id: int, now: float) -> int:
    """An operator lets a held message go: its held rows become due now."""
    rows = [r for r in rows_of_message(conn, message_id) if r.state == "held"]
    if not rows:
        raise Conflict(f"message {message_id} is not held")
    for r in rows:
        conn.execute("UPDATE queue SET state = 'queued', next_attempt_at = ? WHERE id = ? AND state = 'held'",
                     (now, r.id))
    messages_repo.set_state(conn, message_id, "queued")
    audit.append(conn, "message.released", reason="operator.release", thread_id=rows[0].thread_id,
                 message_id=message_id, detail={"queue": [r.id for r in rows]}, ts=now)
    return len(rows)


def drop_message(conn: sqlite3.Connection, message_id: int, now: float, reason: str,
                 notice: tuple[str, str, bytes] | None) -> int:
    """An operator refuses a held (or still queued) message; the sender gets `notice`."""
    rows = [r for r in rows_of_message(conn, message_id) if r.state in ("held", "queued")]
    if not rows:
        raise Conflict(f"message {message_id} is neither held nor queued")
    for r in rows:
        conn.execute("UPDATE queue SET state = 'dropped' WHERE id = ?", (r.id,))
    messages_repo.set_state(conn, message_id, "dropped", reason)
    audit.append(conn, "message.dropped", reason=reason, thread_id=rows[0].thread_id, message_id=message_id,
                 detail={"queue": [r.id for r in rows]}, ts=now)
    if notice is not None:
        enqueue_notice(conn, message_id, rows[0].thread_id, now, *notice)
    return len(rows)
def retry(conn: sqlite3.Connection, queue_id: int | None, now: float) -> list[int]:
    """Make one queued row (or, with None, every queued row) due now; return the ids changed."""
    if queue_id is not None:
        item = get(conn, queue_id)
        if item.state != "queued":
            raise Conflict(f"queue entry {queue_id} is {item.state}, not queued")
        ids = [queue_id]
    else:
        ids = [r[0] for r in conn.execute("SELECT id FROM queue WHERE state = 'queued' ORDER BY id")]
    for qid in ids:
        conn.execute("UPDATE queue SET next_attempt_at = ? WHERE id = ? AND state = 'queued'", (now, qid))
    if ids:
        audit.append(conn, "queue.retried", reason="operator", detail={"queue": ids[:100], "count": len(ids)}, ts=now)
    return ids


def drop(conn: sqlite3.Connection, queue_id: int, now: float, notice: tuple[str, str, bytes] | None) -> int | None:
    """An operator removes a queued or held row for good; a message's sender gets `notice`.

    A row being delivered right now ('sending') is refused: its result is about to be
    recorded, and dropping it would hide a delivery that may have happened."""
    item = get(conn, queue_id)
    if item.state not in ("queued", "held"):
        raise Conflict(f"queue entry {queue_id} is {item.state}; only queued or held entries can be dropped")
    conn.execute("UPDATE queue SET state = 'dropped' WHERE id = ? AND state = ?", (queue_id, item.state))
    if item.kind == "message":
        messages_repo.set_state(conn, item.message_id, "dropped", "queue.dropped")
    audit.append(conn, "queue.dropped", reason="queue.dropped", thread_id=item.thread_id,
                 message_id=item.message_id, detail={"queue": queue_id, "kind": item.kind, "was": item.state}, ts=now)
    if notice is None or item.kind != "message":
        return None
    return enqueue_notice(conn, item.message_id, item.thread_id, now, *notice)


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: dict[str, int]  # rows by state, for the states still in the queue
    oldest_created_at: float | None  # the oldest row not yet finished
    oldest_due_at: float | None  # the earliest next attempt of a queued row


def stats(conn: sqlite3.Connection) -> QueueStats:
    depth = {"queued": 0, "sending": 0, "held": 0}
    for state, count in conn.execute("SELECT state, COUNT(*) FROM queue WHERE state IN ('queued', 'sending', 'held')"
                                     " GROUP BY state"):
        depth[state] = count
    oldest = conn.execute("SELECT MIN(created_at) FROM queue WHERE state IN ('queued', 'sending')").fetchone()[0]
    return QueueStats(depth, oldest, next_due_at(conn))
