"""Small repositories on PostgreSQL: dispute review's reads, operators' policy labels, SMTP AUTH
credentials and response-time metrics; relay/store/{review,labels,credentials,metrics}.py, async."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from relay.store.audit import AuditEvent
from relay.store.labels import Label
from relay.store.metrics import ThreadMessage
from relay.store.pg import audit, messages, parties, queue
from relay.store.pg.db import PgRepo
from relay.store.review import THREAD_EVENTS, AliasRow, BlobRow, QueueRow

# -- review -----------------------------------------------------------------------------------------


async def blob(conn: asyncpg.Connection, digest: str | None) -> BlobRow | None:
    if digest is None:
        return None
    row = await conn.fetchrow("SELECT sha256, size, data IS NULL, cleared_at, cleared_reason FROM blobs"
                              " WHERE sha256 = $1", digest)
    if row is None:
        return None
    return BlobRow(row[0], row[1], None if row[2] else await messages.get_blob(conn, digest), row[3], row[4])


async def raw_events(conn: asyncpg.Connection, seqs: list[int]) -> list[dict[str, object]]:
    return [{"seq": r[0], "ts": r[1], "event": r[2], "reason": r[3], "thread": r[4], "party": r[5], "message": r[6],
             "detail": r[7], "prev_hash": r[8], "hash": r[9], "pii_commit": r[10], "pii_salt": r[11], "pii": r[12]}
            for r in await conn.fetch(
                "SELECT e.seq, e.ts, e.event, e.reason, e.thread_id, e.party_id, e.message_id, e.detail, e.prev_hash,"
                " e.hash, e.pii_commit, p.salt, p.data FROM audit_events e LEFT JOIN audit_pii p ON p.seq = e.seq"
                " WHERE e.seq = ANY($1::bigint[]) ORDER BY e.seq", list(seqs))]


class PgReview(PgRepo):
    async def aliases(self, thread_id: int) -> list[AliasRow]:
        async with self.db.connection() as conn:
            return [AliasRow(*r) for r in await conn.fetch(
                "SELECT local, party_id, created_at, revoked_at FROM aliases WHERE thread_id = $1"
                " ORDER BY created_at, local", thread_id)]

    async def blob(self, digest: str | None) -> BlobRow | None:
        async with self.db.snapshot() as conn:
            return await blob(conn, digest)

    async def queue_rows(self, message_id: int) -> list[QueueRow]:
        async with self.db.connection() as conn:
            return [QueueRow(*r) for r in await conn.fetch(
                "SELECT id, message_id, kind, recipient, envelope_from, blob_sha256, state, attempts, created_at,"
                " last_attempt_at, last_error FROM queue WHERE message_id = $1 ORDER BY id", message_id)]

    async def thread_events(self, thread_id: int, party_ids: tuple[int, ...]) -> list[AuditEvent]:
        """The events of the thread and the participants' own events that name no thread (review.py)."""
        sql = THREAD_EVENTS.replace("thread_id = ?", "thread_id = $1").replace(
            "party_id IN ({marks})", "party_id = ANY($2::bigint[])")
        async with self.db.snapshot() as conn:
            seqs = [r[0] for r in await conn.fetch(sql, thread_id, list(party_ids))]
            return await audit.events_in(conn, seqs)

    async def raw_events(self, seqs: list[int]) -> list[dict[str, object]]:
        async with self.db.connection() as conn:
            return await raw_events(conn, seqs)


# -- labels -----------------------------------------------------------------------------------------
_LABEL_COLS = ("l.message_id, l.thread_id, l.direction, l.decision, l.held_for, l.categories, l.corrected, l.reason,"
               " l.decided_by, l.decided_at, m.sender_id, m.recipient_id, m.original_sha256")


def _label(row: Any) -> Label:
    (mid, tid, direction, decision, held_for, categories, corrected, reason, by, at, sender, recipient,
     original) = row
    return Label(mid, tid, direction, decision, tuple(orjson.loads(held_for)), tuple(orjson.loads(categories)),
                 bool(corrected), reason, by, at, sender, recipient, original)


async def record_label(conn: asyncpg.Connection, message_id: int, decision: str, held_for: Sequence[str],
                       categories: Sequence[str], *, corrected: bool, reason: str | None, by: str,
                       now: float, later: audit.Deferred | None = None) -> Label:
    """relay/store/labels.py's record; its event appended at once, or held in `later` for the end of
    the transaction."""
    row = await conn.fetchrow("SELECT thread_id, direction FROM messages WHERE id = $1", message_id)
    thread_id, direction = (row[0], row[1]) if row else (None, None)
    await conn.execute(
        "INSERT INTO policy_labels (message_id, thread_id, direction, decision, held_for, categories, corrected,"
        " reason, decided_by, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (message_id) DO UPDATE SET decision = excluded.decision, held_for = excluded.held_for,"
        " categories = excluded.categories, corrected = excluded.corrected, reason = excluded.reason,"
        " decided_by = excluded.decided_by, decided_at = excluded.decided_at",
        message_id, thread_id, direction, decision, orjson.dumps(list(held_for)).decode(),
        orjson.dumps(list(categories)).decode(), int(corrected), reason, by, now)
    events = later if later is not None else audit.Deferred()
    # the operator's free text stays out of the chain (it may quote the message or an address)
    events.append("message.labelled", reason=f"operator.{decision}", thread_id=thread_id,
                  message_id=message_id, ts=now,
                  detail={"decision": decision, "categories": list(categories), "held_for": list(held_for),
                          "corrected": corrected, "reason_given": bool(reason), "by": by})
    if later is None:
        await events.flush(conn)
    return Label(message_id, thread_id, direction, decision, tuple(held_for), tuple(categories), corrected,
                 reason, by, now)


async def held_by_policy(conn: asyncpg.Connection, message_id: int) -> bool:
    if await conn.fetchval("SELECT 1 FROM queue WHERE message_id = $1 AND kind = 'message'"
                           " AND state = 'held'", message_id) is None:
        return False
    return bool(await audit.events_after(conn, message_id=message_id, event="message.held", limit=1))


async def has_label(conn: asyncpg.Connection, message_id: int) -> bool:
    return await conn.fetchval("SELECT 1 FROM policy_labels WHERE message_id = $1", message_id) is not None


async def _lock_message_rows(conn: asyncpg.Connection, message_id: int) -> None:
    """The message's queue rows, locked before the decision reads whether the policy held it: a
    second operator's decision on it waits, then reads the state the first one committed."""
    await conn.execute("SELECT id FROM queue WHERE message_id = $1 AND kind = 'message' ORDER BY id FOR UPDATE",
                       message_id)


async def release_with_label(conn: asyncpg.Connection, message_id: int, now: float, held_for: Sequence[str],
                             categories: Sequence[str], *, corrected: bool, reason: str | None,
                             by: str) -> tuple[int, Label | None]:
    """relay/store/labels.py's release_with_label: queue rows locked first, the release and the label
    written, their audit events (message.released, message.labelled) appended last."""
    await _lock_message_rows(conn, message_id)
    held = await held_by_policy(conn, message_id)
    later = audit.Deferred()
    n = await queue.release_message(conn, message_id, now, later)
    label = await record_label(conn, message_id, "released", held_for, categories, corrected=corrected,
                               reason=reason, by=by, now=now, later=later) if held else None
    await later.flush(conn)
    return n, label


async def drop_with_label(conn: asyncpg.Connection, message_id: int, now: float,
                          notice: tuple[str, str, bytes] | None, held_for: Sequence[str], categories: Sequence[str],
                          *, corrected: bool, reason: str | None, by: str) -> tuple[int, Label | None]:
    """relay/store/labels.py's drop_with_label: queue rows locked first, the drop (and the sender's
    notice) and the label written, their audit events appended last."""
    await _lock_message_rows(conn, message_id)
    decided = await held_by_policy(conn, message_id) or await has_label(conn, message_id)
    later = audit.Deferred()
    n = await queue.drop_message(conn, message_id, now, "operator.drop", notice, later)
    label = await record_label(conn, message_id, "dropped", held_for, categories, corrected=corrected,
                               reason=reason, by=by, now=now, later=later) if decided else None
    await later.flush(conn)
    return n, label


class PgLabels(PgRepo):
    async def hold_findings(self, message_id: int) -> list[tuple[str, str, str]]:
        async with self.db.connection() as conn:
            events = await audit.iter_all(conn, message_id=message_id, event="policy.finding")
        return [(str(e.detail.get("category", "")), str(e.detail.get("rule", "")), str(e.detail.get("action", "")))
                for e in events]

    async def held_by_policy(self, message_id: int) -> bool:
        async with self.db.snapshot() as conn:
            return await held_by_policy(conn, message_id)

    async def has_label(self, message_id: int) -> bool:
        async with self.db.connection() as conn:
            return await has_label(conn, message_id)

    async def record(self, message_id: int, decision: str, held_for: Sequence[str], categories: Sequence[str], *,
                     corrected: bool, reason: str | None, by: str, now: float) -> Label:
        async with self.db.transaction() as conn:
            return await record_label(conn, message_id, decision, held_for, categories, corrected=corrected,
                                      reason=reason, by=by, now=now)

    async def release_with_label(self, message_id: int, now: float, held_for: Sequence[str],
                                 categories: Sequence[str], *, corrected: bool, reason: str | None,
                                 by: str) -> tuple[int, Label | None]:
        async with self.db.transaction() as conn:
            return await release_with_label(conn, message_id, now, held_for, categories, corrected=corrected,
                                            reason=reason, by=by)

    async def drop_with_label(self, message_id: int, now: float, notice: tuple[str, str, bytes] | None,
                              held_for: Sequence[str], categories: Sequence[str], *, corrected: bool,
                              reason: str | None, by: str) -> tuple[int, Label | None]:
        async with self.db.transaction() as conn:
            return await drop_with_label(conn, message_id, now, notice, held_for, categories, corrected=corrected,
                                         reason=reason, by=by)

    async def get(self, message_id: int) -> Label | None:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(f"SELECT {_LABEL_COLS} FROM policy_labels l JOIN messages m"
                                      " ON m.id = l.message_id WHERE l.message_id = $1", message_id)
        return _label(row) if row else None

    async def listing(self, since: float | None = None) -> list[Label]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(f"SELECT {_LABEL_COLS} FROM policy_labels l JOIN messages m ON m.id = l.message_id"
                                    " WHERE l.decided_at >= $1 ORDER BY l.decided_at, l.message_id",
                                    since if since is not None else float("-inf"))
        return [_label(r) for r in rows]


# -- credentials ------------------------------------------------------------------------------------
async def set_password(conn: asyncpg.Connection, party_id: int, password_hash: str, now: float | None = None) -> None:
    await conn.execute(
        "INSERT INTO party_credentials (party_id, password, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (party_id) DO UPDATE SET password = excluded.password, updated_at = excluded.updated_at",
        party_id, password_hash, time.time() if now is None else now)


async def change_password(conn: asyncpg.Connection, party_id: int, password_hash: str, *, reason: str = "cli",
                          now: float | None = None) -> None:
    """relay/store/credentials.py's change_password: NotFound for an unknown party; the hash written,
    then its event party.password_set appended (last)."""
    await parties.get(conn, party_id)
    now = time.time() if now is None else now
    await set_password(conn, party_id, password_hash, now)
    await audit.append(conn, "party.password_set", reason=reason, party_id=party_id, ts=now)


class PgCredentials(PgRepo):
    async def password_of_address(self, address: str) -> tuple[int | None, str | None]:
        async with self.db.connection() as conn:
            party_id = await parties.by_address(conn, address) if address else None
            if party_id is None:
                return None, None
            return party_id, await conn.fetchval("SELECT password FROM party_credentials WHERE party_id = $1",
                                                 party_id)

    async def set_password(self, party_id: int, password_hash: str, now: float | None = None) -> None:
        async with self.db.transaction() as conn:
            await set_password(conn, party_id, password_hash, now)

    async def change_password(self, party_id: int, password_hash: str, *, reason: str = "cli",
                              now: float | None = None) -> None:
        async with self.db.transaction() as conn:
            await change_password(conn, party_id, password_hash, reason=reason, now=now)

    async def password_hash(self, party_id: int) -> str | None:
        async with self.db.connection() as conn:
            value = await conn.fetchval("SELECT password FROM party_credentials WHERE party_id = $1", party_id)
        return str(value) if value is not None else None


# -- metrics ----------------------------------------------------------------------------------------
class PgMetrics(PgRepo):
    async def thread_messages(self, seller_id: int) -> list[ThreadMessage]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT m.id, m.thread_id, m.direction, m.received_at, r.automatic, r.order_ref,"
                " n.message_id IS NOT NULL FROM messages m JOIN threads t ON t.id = m.thread_id"
                " LEFT JOIN message_rules r ON r.message_id = m.id"
                " LEFT JOIN no_response_needed n ON n.message_id = m.id"
                " WHERE t.seller_id = $1 AND m.direction IN ('buyer_to_seller', 'seller_to_buyer')"
                " AND m.state NOT IN ('rejected', 'dropped') ORDER BY m.received_at, m.id", seller_id)
        return [ThreadMessage(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def order_times(self, seller_id: int) -> dict[tuple[int, str], float]:
        async with self.db.connection() as conn:
            rows = await conn.fetch("SELECT o.thread_id, o.ref, o.placed_at FROM orders o JOIN threads t"
                                    " ON t.id = o.thread_id WHERE t.seller_id = $1", seller_id)
        return {(r[0], r[1]): r[2] for r in rows}
