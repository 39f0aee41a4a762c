"""Reads for dispute review: a thread's aliases, blobs with their clearing, queue rows, audit events.

Everything here is read-only; transcripts are assembled in relay/review/.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from relay.store import audit, messages


@dataclass(frozen=True, slots=True)
class AliasRow:
    local: str
    party_id: int
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class BlobRow:
    sha256: str
    size: int
    data: bytes | None
    cleared_at: float | None
    cleared_reason: str | None


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: int
    message_id: int
    kind: str
    recipient: str
    envelope_from: str
    blob_sha256: str
    state: str
    attempts: int
    created_at: float
    last_attempt_at: float | None
    last_error: str | None


def aliases(conn: sqlite3.Connection, thread_id: int) -> list[AliasRow]:
    return [AliasRow(*r) for r in conn.execute(
        "SELECT local, party_id, created_at, revoked_at FROM aliases WHERE thread_id = ? ORDER BY created_at, local",
        (thread_id,))]


def blob(conn: sqlite3.Connection, digest: str | None) -> BlobRow | None:
    if digest is None:
        return None
    row = conn.execute("SELECT sha256, size, data IS NULL, cleared_at, cleared_reason FROM blobs WHERE sha256 = ?",
                       (digest,)).fetchone()
    if row is None:
        return None
    return BlobRow(row[0], row[1], None if row[2] else messages.get_blob(conn, digest), row[3], row[4])


def queue_rows(conn: sqlite3.Connection, message_id: int) -> list[QueueRow]:
    return [QueueRow(*r) for r in conn.execute(
        "SELECT id, message_id, kind, recipient, envelope_from, blob_sha256, state, attempts, created_at,"
        " last_attempt_at, last_error FROM queue WHERE message_id = ? ORDER BY id", (message_id,))]


THREAD_EVENTS = ("SELECT seq FROM audit_events WHERE thread_id = ?"
                 " UNION SELECT seq FROM audit_events WHERE thread_id IS NULL AND party_id IN ({marks}) ORDER BY 1")


def thread_events(conn: sqlite3.Connection, thread_id: int, party_ids: tuple[int, ...]) -> list[audit.AuditEvent]:
    """Events of the thread (its messages' events among them), and the participants' own events that
    name no thread.

    Every event that names a message names that message's thread too (`messages.thread_id` never
    changes), so both come from the `audit_thread` index; a join on `message_id`, which has no index,
    would read the whole trail for each review.
    """
    marks = ",".join("?" * len(party_ids)) or "NULL"
    seqs = [r[0] for r in conn.execute(THREAD_EVENTS.format(marks=marks), (thread_id, *party_ids))]
    out: list[audit.AuditEvent] = []
    for i in range(0, len(seqs), 500):
        chunk = seqs[i:i + 500]
        out += audit.events_in(conn, chunk)
    return out


def raw_events(conn: sqlite3.Connection, seqs: list[int]) -> list[dict[str, object]]:
    """The stored, hashed form of events (for bundles): what `relay audit verify` recomputes."""
    out: list[dict[str, object]] = []
    for i in range(0, len(seqs), 500):
        chunk = seqs[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT e.seq, e.ts, e.event, e.reason, e.thread_id, e.party_id, e.message_id, e.detail, e.prev_hash,"
            f" e.hash, e.pii_commit, p.salt, p.data FROM audit_events e LEFT JOIN audit_pii p ON p.seq = e.seq"
            f" WHERE e.seq IN ({marks}) ORDER BY e.seq", chunk):
            out.append({"seq": row[0], "ts": row[1], "event": row[2], "reason": row[3], "thread": row[4],
                        "party": row[5], "message": row[6], "detail": row[7], "prev_hash": row[8],
                        "hash": row[9], "pii_commit": row[10], "pii_salt": row[11], "pii": row[12]})
    return out
