"""Seller → buyer messages under the rules: a reply, a critical message, or unsolicited (opt-out and limits).

decide() reads; admit() decides again and records the message's facts inside the message's own commit,
so that the counts it reads (replies to a buyer message, unsolicited messages per order and per thread
per day) cannot be exceeded by messages committed concurrently, by this process or by another one on
the same database. Reasons: rules.reply|critical|critical_to_opted_out|unsolicited|opted_out|
important_bypass_lost|unjustified_to_opted_out|order_limit|daily_limit.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

from relay.store import rules as rules_store

DAY = 86400.0
_LIVE = "m.state NOT IN ('rejected', 'dropped')"


@dataclass(frozen=True, slots=True)
class Limits:
    reply_window: float
    max_replies_per_buyer_message: int
    max_unsolicited_per_order: int
    max_unsolicited_per_thread_per_day: int


@dataclass(frozen=True, slots=True)
class SellerMessage:
    """What the rules stage learned about a seller message, all that the decision needs besides the store."""

    thread_id: int
    buyer_id: int
    seller_id: int
    received_at: float
    quoted: tuple[str, ...]  # msg-ids of In-Reply-To and References
    order_ref: str | None
    automatic: str | None
    marked: bool = False  # an [Important] marker in the subject
    important: str | None = None  # "justified" | "unjustified"; None: no marker, or not classified (a reply)
    bypass: bool = True  # [Important] still passes an opt-out for this seller


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str  # reply | critical | unsolicited | refused
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    reply_to: int | None = None  # the buyer message a reply answers

    @property
    def refused(self) -> bool:
        return self.kind == "refused"


class Refused(Exception):
    """admit() found the message over a limit (or past an opt-out) inside its commit."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def answerable(conn: sqlite3.Connection, msg: SellerMessage, window: float) -> list[tuple[int, int]]:
    """(message id, replies so far) of the buyer messages the seller message answers, newest first:
    live messages written by the buyer in this thread (not automatic) less than `window` ago, named
    by their relay Message-ID (the only one the seller saw)."""
    if not msg.quoted:
        return []
    marks = ",".join("?" * len(msg.quoted))
    return [(r[0], r[1]) for r in conn.execute(
        f"SELECT mi.message_id, (SELECT COUNT(*) FROM message_rules a JOIN messages am ON am.id = a.message_id"
        f"  WHERE a.reply_to = mi.message_id AND a.kind = 'reply' AND am.state NOT IN ('rejected', 'dropped'))"
        f" FROM message_ids mi JOIN messages m ON m.id = mi.message_id"
        f" LEFT JOIN message_rules r ON r.message_id = mi.message_id"
        f" WHERE mi.relay_id IN ({marks}) AND mi.thread_id = ? AND mi.sender_id = ?"
        f" AND m.direction = 'buyer_to_seller' AND m.received_at > ? AND {_LIVE} AND r.automatic IS NULL"
        f" ORDER BY mi.message_id DESC", (*msg.quoted, msg.thread_id, msg.buyer_id, msg.received_at - window))]


def decide(conn: sqlite3.Connection, msg: SellerMessage, limits: Limits) -> Decision:
    """The rules' verdict on a seller message, from what the store holds now."""
    answered = answerable(conn, msg, limits.reply_window)
    for buyer_message, replies in answered:
        if replies < limits.max_replies_per_buyer_message:
            return Decision("reply", "rules.reply", {"replied_message": buyer_message, "replies": replies + 1},
                            reply_to=buyer_message)
    detail: dict[str, Any] = {}
    if answered:  # every buyer message it answers had its replies: from here on it is unsolicited
        detail.update(replies_used=[m for m, _ in answered], reply_limit=limits.max_replies_per_buyer_message)
    scope = rules_store.optout_scope(conn, msg.buyer_id, msg.seller_id)
    if scope:
        detail["opted_out"] = scope
    if msg.important == "justified" and msg.bypass:
        return Decision("critical", "rules.critical_to_opted_out" if scope else "rules.critical", detail)
    if scope:
        if not msg.marked:
            return Decision("refused", "rules.opted_out", detail)
        if not msg.bypass:
            return Decision("refused", "rules.important_bypass_lost", detail)
        # an unjustified marker, or a marked reply that lost its reply slot (never classified)
        return Decision("refused", "rules.unjustified_to_opted_out" if msg.important else "rules.opted_out", detail)
    if msg.order_ref is not None:
        per_order = unsolicited_count(conn, msg.thread_id, order_ref=msg.order_ref)
        if per_order >= limits.max_unsolicited_per_order:
            return Decision("refused", "rules.order_limit",
                            {**detail, "count": per_order, "limit": limits.max_unsolicited_per_order})
    per_day = unsolicited_count(conn, msg.thread_id, since=msg.received_at - DAY)
    if per_day >= limits.max_unsolicited_per_thread_per_day:
        return Decision("refused", "rules.daily_limit",
                        {**detail, "count": per_day, "limit": limits.max_unsolicited_per_thread_per_day})
    return Decision("unsolicited", "rules.unsolicited", detail)


def admit(conn: sqlite3.Connection, msg: SellerMessage, limits: Limits, message_id: int) -> Decision:
    """Decide again and record the facts of `message_id`, inside the transaction that records the
    message (Transit.on_accept); raise Refused when it may not pass after all, which rolls the
    message back with everything else of its unit.

    Check and insert are atomic because the caller holds the store's write lock for the thread:
    on SQLite the writer's BEGIN IMMEDIATE, the one write lock of the file for every process;
    a PostgreSQL backend takes lock_thread's row lock first (SELECT … FOR UPDATE)."""
    lock_thread(conn, msg.thread_id)
    decision = decide(conn, msg, limits)
    if decision.refused:
        raise Refused(decision)
    rules_store.record_facts(conn, message_id, rules_store.MessageFacts(
        msg.thread_id, "seller_to_buyer", msg.received_at, decision.kind, msg.automatic, msg.order_ref,
        msg.important, decision.reply_to))
    return decision


def lock_thread(conn: sqlite3.Connection, thread_id: int) -> None:
    """Serialize the writers of one thread's rule counts until the transaction ends.

    SQLite: nothing to take, the writer's BEGIN IMMEDIATE already holds the file's only write lock
    (this checks that the caller is inside it). PostgreSQL: SELECT id FROM threads WHERE id = %s FOR UPDATE."""
    if not conn.in_transaction:
        raise RuntimeError("the rules' counts are only checked inside the write transaction")


def unsolicited_count(conn: sqlite3.Connection, thread_id: int, *, order_ref: str | None = None,
                      since: float | None = None) -> int:
    sql = (f"SELECT COUNT(*) FROM message_rules r JOIN messages m ON m.id = r.message_id"
           f" WHERE r.thread_id = ? AND r.kind = 'unsolicited' AND {_LIVE}")
    args: list[object] = [thread_id]
    if order_ref is not None:
        sql += " AND r.order_ref = ?"
        args.append(order_ref)
    if since is not None:
        sql += " AND r.received_at >= ?"
        args.append(since)
    return int(conn.execute(sql, args).fetchone()[0])


def first_decision(conn: sqlite3.Connection, msg: SellerMessage, subject: str, limits: Limits, *,
                   abuse_since: float, abuse_limit: int) -> tuple[SellerMessage, str, int, Decision]:
    """The rules stage's early look at a seller message (one read): its order (and how it was found),
    the seller's unjustified [Important] count since `abuse_since` (marked messages only), the
    message with those known (a marker past `abuse_limit` loses the opt-out bypass) and decide()."""
    order, how = rules_store.order_of(conn, msg.thread_id, subject, msg.quoted, msg.received_at)
    prior = rules_store.unjustified_count(conn, msg.seller_id, abuse_since) if msg.marked else 0
    known = replace(msg, order_ref=order, bypass=not (msg.marked and prior > abuse_limit))
    return known, how, prior, decide(conn, known, limits)
