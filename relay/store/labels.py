"""Operators' decisions on held messages, kept as labels for retraining the policy model.

`relay message release|drop` records one row per message (policy_labels, migration 0015) in the
same transaction as the decision, with the audit event message.labelled (decision and categories,
never message text or addresses). `relay policy export-labels` reads them back with what it needs
to rebuild the text the policy judged (the original's content, the parties' addresses); a content
cleared by retention or erasure reads back as None and is skipped there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from relay.store import audit
from relay.store import queue as queue_repo


@dataclass(frozen=True, slots=True)
class Label:
    message_id: int
    thread_id: int | None
    direction: str | None
    decision: str  # released | dropped
    held_for: tuple[str, ...]
    categories: tuple[str, ...]
    corrected: bool
    reason: str | None
    decided_by: str
    decided_at: float
    # of the message, for the export
    sender_id: int | None = None
    recipient_id: int | None = None
    original_sha256: str | None = None


def hold_findings(conn: sqlite3.Connection, message_id: int) -> list[tuple[str, str, str]]:
    """(category, rule, action) of every policy finding recorded for the message at DATA time."""
    out = []
    for ev in audit.iter_all(conn, message_id=message_id, event="policy.finding"):
        d = ev.detail
        out.append((str(d.get("category", "")), str(d.get("rule", "")), str(d.get("action", ""))))
    return out


def held_by_policy(conn: sqlite3.Connection, message_id: int) -> bool:
    """Is the message waiting for an operator because the policy held it at DATA time (not because
    an operator held its queue entry: `relay queue hold` is no judgement of its content)?"""
    if conn.execute("SELECT 1 FROM queue WHERE message_id = ? AND kind = 'message' AND state = 'held'",
                    (message_id,)).fetchone() is None:
        return False
    return bool(audit.events_after(conn, message_id=message_id, event="message.held", limit=1))


def has_label(conn: sqlite3.Connection, message_id: int) -> bool:
    return conn.execute("SELECT 1 FROM policy_labels WHERE message_id = ?", (message_id,)).fetchone() is not None


def record(conn: sqlite3.Connection, message_id: int, decision: str, held_for: Sequence[str],
           categories: Sequence[str], *, corrected: bool, reason: str | None, by: str, now: float) -> Label:
    """Record (or replace: the latest decision wins) the label of a decided message, and audit it."""
    row = conn.execute("SELECT thread_id, direction FROM messages WHERE id = ?", (message_id,)).fetchone()
    thread_id, direction = (row[0], row[1]) if row else (None, None)
    conn.execute(
        "INSERT INTO policy_labels (message_id, thread_id, direction, decision, held_for, categories, corrected,"
        " reason, decided_by, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (message_id) DO UPDATE SET decision = excluded.decision, held_for = excluded.held_for,"
        " categories = excluded.categories, corrected = excluded.corrected, reason = excluded.reason,"
        " decided_by = excluded.decided_by, decided_at = excluded.decided_at",
        (message_id, thread_id, direction, decision, orjson.dumps(list(held_for)).decode(),
         orjson.dumps(list(categories)).decode(), int(corrected), reason, by, now))
    # the operator's free text stays out of the chain (it may quote the message or an address)
    audit.append(conn, "message.labelled", reason=f"operator.{decision}", thread_id=thread_id,
                 message_id=message_id, ts=now,
                 detail={"decision": decision, "categories": list(categories), "held_for": list(held_for),
                         "corrected": corrected, "reason_given": bool(reason), "by": by})
    return Label(message_id, thread_id, direction, decision, tuple(held_for), tuple(categories), corrected,
                 reason, by, now)


def release_with_label(conn: sqlite3.Connection, message_id: int, now: float, held_for: Sequence[str],
                       categories: Sequence[str], *, corrected: bool, reason: str | None,
                       by: str) -> tuple[int, Label | None]:
    """`relay message release`: the message's held rows back to the queue, due now, and, when the
    policy held it, the operator's label (released: `categories` were no violation), in one
    transaction. Returns (rows released, the label or None)."""
    held = held_by_policy(conn, message_id)
    n = queue_repo.release_message(conn, message_id, now)
    label = record(conn, message_id, "released", held_for, categories, corrected=corrected, reason=reason, by=by,
                   now=now) if held else None
    return n, label


def drop_with_label(conn: sqlite3.Connection, message_id: int, now: float, notice: tuple[str, str, bytes] | None,
                    held_for: Sequence[str], categories: Sequence[str], *, corrected: bool, reason: str | None,
                    by: str) -> tuple[int, Label | None]:
    """`relay message drop`: the message's pending rows dropped (reason operator.drop, the sender's
    `notice` queued) and, when the policy held it or an operator already decided on it (a released
    message dropped before it left: this decision replaces that label), the label (dropped:
    `categories` confirmed), in one transaction. Returns (rows dropped, the label or None)."""
    decided = held_by_policy(conn, message_id) or has_label(conn, message_id)
    n = queue_repo.drop_message(conn, message_id, now, "operator.drop", notice)
    label = record(conn, message_id, "dropped", held_for, categories, corrected=corrected, reason=reason, by=by,
                   now=now) if decided else None
    return n, label


_COLS = ("l.message_id, l.thread_id, l.direction, l.decision, l.held_for, l.categories, l.corrected, l.reason,"
         " l.decided_by, l.decided_at, m.sender_id, m.recipient_id, m.original_sha256")


def _label(row: tuple[Any, ...]) -> Label:
    (mid, tid, direction, decision, held_for, categories, corrected, reason, by, at, sender, recipient,
     original) = row
    return Label(mid, tid, direction, decision, tuple(orjson.loads(held_for)), tuple(orjson.loads(categories)),
                 bool(corrected), reason, by, at, sender, recipient, original)


def get(conn: sqlite3.Connection, message_id: int) -> Label | None:
    row = conn.execute(f"SELECT {_COLS} FROM policy_labels l JOIN messages m ON m.id = l.message_id"
                       " WHERE l.message_id = ?", (message_id,)).fetchone()
    return _label(row) if row else None


def listing(conn: sqlite3.Connection, since: float | None = None) -> list[Label]:
    """Every label (decided at or after `since`), in the order they were decided."""
    rows = conn.execute(f"SELECT {_COLS} FROM policy_labels l JOIN messages m ON m.id = l.message_id"
                        " WHERE l.decided_at >= ? ORDER BY l.decided_at, l.message_id",
                        (since if since is not None else float("-inf"),))
    return [_label(r) for r in rows]
