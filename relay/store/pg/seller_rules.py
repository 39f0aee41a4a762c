"""Seller → buyer messages under the rules on PostgreSQL: relay/store/seller_rules.py's decide()
and admit(), async, over the same counts.

Limits are read and then acted on (admit: count, then record the facts that the next count sees),
so two nodes admitting messages of one thread at once must take turns. lock_thread takes the
thread's row lock, `SELECT … FROM threads WHERE id = $1 FOR NO KEY UPDATE`, inside the accept
transaction; it is held to COMMIT, and READ COMMITTED reads the counts after it is granted (every
statement takes a new snapshot), so they include whatever the previous holder committed.
Why the thread row rather than an advisory lock keyed by seller or order: every count admit reads
(replies to a buyer message, unsolicited messages per order, per thread and day) is of one thread,
so that row is exactly the scope, it always exists (a foreign key of the messages), it needs no
hashing of keys into a shared 64-bit space, and the lock is visible in pg_locks as a row.
NO KEY UPDATE, not UPDATE: it does not conflict with the KEY SHARE locks that inserting rows
referring to the thread takes, so buyer messages of the thread are not held up by it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from relay.store.pg import rules
from relay.store.pg.db import PgRepo
from relay.store.rules import MessageFacts
from relay.store.seller_rules import DAY, Decision, Limits, Refused, SellerMessage

_LIVE = "m.state NOT IN ('rejected', 'dropped')"


async def lock_thread(conn: asyncpg.Connection, thread_id: int) -> None:
    """Serialize the writers of one thread's rule counts until the transaction ends (any node)."""
    if not conn.is_in_transaction():
        raise RuntimeError("the rules' counts are only checked inside the write transaction")
    await conn.execute("SELECT id FROM threads WHERE id = $1 FOR NO KEY UPDATE", thread_id)


async def answerable(conn: asyncpg.Connection, msg: SellerMessage, window: float) -> list[tuple[int, int]]:
    if not msg.quoted:
        return []
    return [(r[0], r[1]) for r in await conn.fetch(
        "SELECT mi.message_id, (SELECT COUNT(*) FROM message_rules a JOIN messages am ON am.id = a.message_id"
        "  WHERE a.reply_to = mi.message_id AND a.kind = 'reply' AND am.state NOT IN ('rejected', 'dropped'))"
        " FROM message_ids mi JOIN messages m ON m.id = mi.message_id"
        " LEFT JOIN message_rules r ON r.message_id = mi.message_id"
        " WHERE mi.relay_id = ANY($1::text[]) AND mi.thread_id = $2 AND mi.sender_id = $3"
        f" AND m.direction = 'buyer_to_seller' AND m.received_at > $4 AND {_LIVE} AND r.automatic IS NULL"
        " ORDER BY mi.message_id DESC", list(msg.quoted), msg.thread_id, msg.buyer_id, msg.received_at - window)]


async def unsolicited_count(conn: asyncpg.Connection, thread_id: int, *, order_ref: str | None = None,
                            since: float | None = None) -> int:
    sql = ("SELECT COUNT(*) FROM message_rules r JOIN messages m ON m.id = r.message_id"
           f" WHERE r.thread_id = $1 AND r.kind = 'unsolicited' AND {_LIVE}")
    args: list[Any] = [thread_id]
    if order_ref is not None:
        args.append(order_ref)
        sql += f" AND r.order_ref = ${len(args)}"
    if since is not None:
        args.append(since)
        sql += f" AND r.received_at >= ${len(args)}"
    return int(await conn.fetchval(sql, *args))


async def decide(conn: asyncpg.Connection, msg: SellerMessage, limits: Limits) -> Decision:
    """relay/store/seller_rules.decide, the same order of checks."""
    answered = await answerable(conn, msg, limits.reply_window)
    for buyer_message, replies in answered:
        if replies < limits.max_replies_per_buyer_message:
            return Decision("reply", "rules.reply", {"replied_message": buyer_message, "replies": replies + 1},
                            reply_to=buyer_message)
    detail: dict[str, Any] = {}
    if answered:
        detail.update(replies_used=[m for m, _ in answered], reply_limit=limits.max_replies_per_buyer_message)
    scope = await rules.optout_scope(conn, msg.buyer_id, msg.seller_id)
    if scope:
        detail["opted_out"] = scope
    if msg.important == "justified" and msg.bypass:
        return Decision("critical", "rules.critical_to_opted_out" if scope else "rules.critical", detail)
    if scope:
        if not msg.marked:
            return Decision("refused", "rules.opted_out", detail)
        if not msg.bypass:
            return Decision("refused", "rules.important_bypass_lost", detail)
        return Decision("refused", "rules.unjustified_to_opted_out" if msg.important else "rules.opted_out", detail)
    if msg.order_ref is not None:
        per_order = await unsolicited_count(conn, msg.thread_id, order_ref=msg.order_ref)
        if per_order >= limits.max_unsolicited_per_order:
            return Decision("refused", "rules.order_limit",
                            {**detail, "count": per_order, "limit": limits.max_unsolicited_per_order})
    per_day = await unsolicited_count(conn, msg.thread_id, since=msg.received_at - DAY)
    if per_day >= limits.max_unsolicited_per_thread_per_day:
        return Decision("refused", "rules.daily_limit",
                        {**detail, "count": per_day, "limit": limits.max_unsolicited_per_thread_per_day})
    return Decision("unsolicited", "rules.unsolicited", detail)


async def admit(conn: asyncpg.Connection, msg: SellerMessage, limits: Limits, message_id: int) -> Decision:
    """Decide again under the thread's row lock and record the facts of `message_id`; raise Refused
    (rolling the whole transaction back) when it may not pass after all."""
    await lock_thread(conn, msg.thread_id)
    decision = await decide(conn, msg, limits)
    if decision.refused:
        raise Refused(decision)
    await rules.record_facts(conn, message_id, MessageFacts(
        msg.thread_id, "seller_to_buyer", msg.received_at, decision.kind, msg.automatic, msg.order_ref,
        msg.important, decision.reply_to))
    return decision


async def first_decision(conn: asyncpg.Connection, msg: SellerMessage, subject: str, limits: Limits, *,
                         abuse_since: float, abuse_limit: int) -> tuple[SellerMessage, str, int, Decision]:
    order, how = await rules.order_of(conn, msg.thread_id, subject, msg.quoted, msg.received_at)
    prior = await rules.unjustified_count(conn, msg.seller_id, abuse_since) if msg.marked else 0
    known = replace(msg, order_ref=order, bypass=not (msg.marked and prior > abuse_limit))
    return known, how, prior, await decide(conn, known, limits)


class PgSellerRules(PgRepo):
    async def first_decision(self, msg: SellerMessage, subject: str, limits: Limits, *, abuse_since: float,
                             abuse_limit: int) -> tuple[SellerMessage, str, int, Decision]:
        async with self.db.connection() as conn:
            return await first_decision(conn, msg, subject, limits, abuse_since=abuse_since,
                                        abuse_limit=abuse_limit)

    async def answerable(self, msg: SellerMessage, window: float) -> list[tuple[int, int]]:
        async with self.db.connection() as conn:
            return await answerable(conn, msg, window)

    async def decide(self, msg: SellerMessage, limits: Limits) -> Decision:
        async with self.db.connection() as conn:
            return await decide(conn, msg, limits)

    async def admit(self, msg: SellerMessage, limits: Limits, message_id: int) -> Decision:
        async with self.db.transaction() as conn:
            return await admit(conn, msg, limits, message_id)

    async def unsolicited_count(self, thread_id: int, *, order_ref: str | None = None,
                                since: float | None = None) -> int:
        async with self.db.connection() as conn:
            return await unsolicited_count(conn, thread_id, order_ref=order_ref, since=since)
