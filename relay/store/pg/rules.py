"""Messaging rules on PostgreSQL: opt-outs, vacations, per-message facts, [Important] counts and the
rules' mailboxes; relay/store/rules.py's functions, async, with the same audit events.

Where SQLite's single writer made a read-then-write safe, a row lock does it here: set_vacation
locks the seller's party row (two nodes never both end the same vacation and start two),
claim of a vacation reply is ordered by the vacation row's lock (relay/store/pg/accept.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import asyncpg

from relay.model import Party, Thread
from relay.store.errors import Conflict, NotFound
from relay.store.pg import audit, messages, parties, queue, threads
from relay.store.pg.db import PgRepo
from relay.store.rules import MessageFacts, Vacation

_LIVE = "m.state NOT IN ('rejected', 'dropped')"


async def set_optout(conn: asyncpg.Connection, buyer_id: int, seller_id: int | None, on: bool, *, via: str,
                     now: float) -> bool:
    if on:
        status = await conn.execute("INSERT INTO optouts (buyer_id, seller_id, created_at, via) VALUES ($1, $2, $3, $4)"
                                    " ON CONFLICT DO NOTHING",
                                    buyer_id, seller_id, now, via)
        changed = status == "INSERT 0 1"
    elif seller_id is None:
        changed = await conn.execute("DELETE FROM optouts WHERE buyer_id = $1", buyer_id) != "DELETE 0"
    else:
        changed = await conn.execute("DELETE FROM optouts WHERE buyer_id = $1 AND seller_id = $2",
                                     buyer_id, seller_id) != "DELETE 0"
    await audit.append(conn, "optout.on" if on else "optout.off", reason=f"rules.optout_{via}" if changed
                       else "rules.optout_unchanged", party_id=buyer_id,
                       detail={"seller": seller_id, "scope": "seller" if seller_id else "all", "via": via}, ts=now)
    return changed


async def optout_scope(conn: asyncpg.Connection, buyer_id: int, seller_id: int) -> str | None:
    value = await conn.fetchval("SELECT MIN(COALESCE(seller_id, 0)) FROM optouts WHERE buyer_id = $1 AND"
                                " (seller_id IS NULL OR seller_id = $2)", buyer_id, seller_id)
    if value is None:
        return None
    return "all" if value == 0 else "seller"


async def optouts_of(conn: asyncpg.Connection, buyer_id: int) -> list[int | None]:
    return [r[0] for r in await conn.fetch("SELECT seller_id FROM optouts WHERE buyer_id = $1"
                                           " ORDER BY COALESCE(seller_id, 0)", buyer_id)]


async def vacations_of(conn: asyncpg.Connection, seller_id: int) -> list[Vacation]:
    return [Vacation(*r) for r in await conn.fetch(
        "SELECT id, seller_id, started_at, until_at, ended_at FROM vacations WHERE seller_id = $1"
        " ORDER BY started_at, id", seller_id)]


async def vacation_at(conn: asyncpg.Connection, seller_id: int, t: float) -> Vacation | None:
    return next((v for v in reversed(await vacations_of(conn, seller_id)) if v.covers(t)), None)


async def set_vacation(conn: asyncpg.Connection, seller_id: int, on: bool, *, until: float | None,
                       now: float) -> Vacation | None:
    await conn.execute("SELECT id FROM parties WHERE id = $1 FOR NO KEY UPDATE", seller_id)  # one changer at a time
    current = await vacation_at(conn, seller_id, now)
    if current is not None:
        await conn.execute("UPDATE vacations SET ended_at = $1 WHERE id = $2", now, current.id)
    if not on:
        await audit.append(conn, "vacation.off", reason="rules.vacation_cli" if current else "rules.vacation_unchanged",
                           party_id=seller_id, detail={"vacation": current.id if current else None}, ts=now)
        return None
    if until is not None and until <= now:
        raise Conflict("--until must be in the future")
    vid = int(await conn.fetchval("INSERT INTO vacations (seller_id, started_at, until_at) VALUES ($1, $2, $3)"
                                  " RETURNING id", seller_id, now, until))
    await audit.append(conn, "vacation.on", reason="rules.vacation_cli", party_id=seller_id,
                       detail={"vacation": vid, "until": until}, ts=now)
    return Vacation(vid, seller_id, now, until, None)


async def has_vacation_reply(conn: asyncpg.Connection, vacation_id: int, thread_id: int) -> bool:
    return await conn.fetchval("SELECT 1 FROM vacation_replies WHERE vacation_id = $1 AND thread_id = $2",
                               vacation_id, thread_id) is not None


async def claim_vacation_reply(conn: asyncpg.Connection, vacation_id: int, thread_id: int, message_id: int) -> None:
    await conn.execute("INSERT INTO vacation_replies (vacation_id, thread_id, message_id) VALUES ($1, $2, $3)",
                       vacation_id, thread_id, message_id)


async def record_facts(conn: asyncpg.Connection, message_id: int, f: MessageFacts) -> None:
    await conn.execute("INSERT INTO message_rules (message_id, thread_id, direction, received_at, kind, automatic,"
                       " order_ref, important, reply_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                       message_id, f.thread_id, f.direction, f.received_at, f.kind, f.automatic, f.order_ref,
                       f.important, f.reply_to)


async def order_of(conn: asyncpg.Connection, thread_id: int, subject: str, quoted: Sequence[str],
                   now: float) -> tuple[str | None, str]:
    orders = [o for o in await threads.orders(conn, thread_id) if o.placed_at <= now]
    for order in sorted(orders, key=lambda o: -len(o.ref)):
        if re.search(rf"(?<![0-9A-Za-z]){re.escape(order.ref)}(?![0-9A-Za-z])", subject, re.I):
            return order.ref, "subject"
    if quoted:
        ref = await conn.fetchval(
            "SELECT r.order_ref FROM message_ids mi JOIN message_rules r ON r.message_id = mi.message_id"
            " WHERE mi.thread_id = $1 AND (mi.relay_id = ANY($2::text[]) OR mi.orig_id = ANY($2::text[]))"
            " AND r.order_ref IS NOT NULL ORDER BY mi.message_id DESC LIMIT 1", thread_id, list(quoted))
        if ref is not None:
            return ref, "reply_chain"
    if orders:
        return orders[-1].ref, "latest"
    return None, "none"


async def unjustified_count(conn: asyncpg.Connection, seller_id: int, since: float | None = None) -> int:
    sql = "SELECT COUNT(*) FROM audit_events WHERE event = 'important.unjustified' AND party_id = $1"
    if since is None:
        return int(await conn.fetchval(sql, seller_id))
    return int(await conn.fetchval(sql + " AND ts >= $2", seller_id, since))


async def mark_no_response_needed(conn: asyncpg.Connection, message_id: int, *, via: str, now: float) -> bool:
    msg = await messages.get(conn, message_id)
    if msg is None:
        raise NotFound(f"no such message: {message_id}")
    if msg.direction != "buyer_to_seller" or msg.state in ("rejected", "dropped"):
        raise Conflict(f"message {message_id} is not an accepted buyer message")
    added = await conn.fetchval("INSERT INTO no_response_needed (message_id, marked_at, via) VALUES ($1, $2, $3)"
                                " ON CONFLICT (message_id) DO NOTHING RETURNING message_id", message_id, now, via)
    if added is not None:
        await audit.append(conn, "message.no_response_needed", reason=f"rules.no_response_needed_{via}",
                           thread_id=msg.thread_id, message_id=message_id, party_id=msg.recipient_id, ts=now)
    return added is not None


async def record_relay_message(conn: asyncpg.Connection, thread_id: int | None, sender_id: int, envelope_from: str,
                               local: str, subject: str, raw: bytes, now: float,
                               direction: str = "buyer_to_relay") -> int:
    digest = await messages.put_blob(conn, raw)
    return int(await conn.fetchval(
        "INSERT INTO messages (thread_id, direction, sender_id, recipient_id, state, reason, received_at,"
        " envelope_from, rcpt_alias, subject, original_sha256) VALUES ($1, $2, $3, NULL, 'delivered',"
        " 'rules.relay_mailbox', $4, $5, $6, $7, $8) RETURNING id",
        thread_id, direction, sender_id, now, envelope_from, local, subject[:998], digest))


async def quoted_buyer_message(conn: asyncpg.Connection, seller_id: int,
                               quoted: Sequence[str]) -> tuple[int, int] | None:
    if not quoted:
        return None
    row = await conn.fetchrow(
        "SELECT m.id, m.thread_id FROM message_ids mi JOIN messages m ON m.id = mi.message_id"
        " JOIN threads t ON t.id = m.thread_id WHERE t.seller_id = $1 AND m.direction = 'buyer_to_seller'"
        f" AND mi.relay_id = ANY($2::text[]) AND {_LIVE} ORDER BY m.id DESC LIMIT 1", seller_id, list(quoted))
    return (row[0], row[1]) if row else None


async def buyer_message_rules(conn: asyncpg.Connection, thread_id: int, seller_id: int, subject: str,
                              quoted: Sequence[str], now: float
                              ) -> tuple[tuple[str | None, str], Vacation | None, bool]:
    vacation = await vacation_at(conn, seller_id, now)
    replied = vacation is not None and await has_vacation_reply(conn, vacation.id, thread_id)
    return await order_of(conn, thread_id, subject, quoted, now), vacation, replied


async def _unsubscribe_parties(conn: asyncpg.Connection, thread_id: int | None,
                               valid: Callable[[Thread], bool]) -> tuple[Thread, Party, Party] | None:
    if thread_id is None:
        return None
    try:
        thread = await threads.get(conn, thread_id)
    except NotFound:
        return None
    if not valid(thread):
        return None
    return thread, await parties.get(conn, thread.buyer_id), await parties.get(conn, thread.seller_id)


async def unsubscribe_request(conn: asyncpg.Connection, thread_id: int | None, valid: Callable[[Thread], bool],
                              sender: str) -> tuple[tuple[Thread, Party, Party] | None, int | None]:
    return (await _unsubscribe_parties(conn, thread_id, valid),
            await parties.by_address(conn, sender) if sender else None)


async def unsubscribe_by_token(conn: asyncpg.Connection, thread_id: int | None, valid: Callable[[Thread], bool], *,
                               via: str, now: float) -> bool | None:
    found = await _unsubscribe_parties(conn, thread_id, valid)
    if found is None:
        return None
    _, buyer, seller = found
    return await set_optout(conn, buyer.id, seller.id, True, via=via, now=now)


async def unsubscribe_by_mail(conn: asyncpg.Connection, thread_id: int, buyer_id: int, seller_id: int, sender: str,
                              local: str, subject: str, raw: bytes, now: float, *, automatic: str | None,
                              notice: bytes | None, lifetime: float) -> None:
    message_id = await record_relay_message(conn, thread_id, buyer_id, sender, local, subject, raw, now)
    changed = await set_optout(conn, buyer_id, seller_id, True, via="mail", now=now)
    await audit.append(conn, "unsubscribe.received",
                       reason="rules.unsubscribe_mail" if changed else "rules.unsubscribe_repeat",
                       thread_id=thread_id, party_id=buyer_id, message_id=message_id,
                       detail={"seller": seller_id, "confirmed": notice is not None, "automatic": automatic}, ts=now)
    if notice is not None:
        await queue.enqueue_notice(conn, message_id, thread_id, now, sender, "", notice, lifetime=lifetime)


async def no_response_by_mail(conn: asyncpg.Connection, seller_id: int, quoted: Sequence[str], sender: str,
                              local: str, subject: str, raw: bytes, now: float, *, peer: str) -> int | None:
    found = await quoted_buyer_message(conn, seller_id, quoted)
    if found is None:
        await audit.append(conn, "message.rejected", reason="no_response.nothing_quoted", party_id=seller_id,
                           detail={"peer": peer, "quoted": len(quoted)}, ts=now)
        return None
    target, thread_id = found
    await record_relay_message(conn, thread_id, seller_id, sender, local, subject, raw, now,
                               direction="seller_to_relay")
    await mark_no_response_needed(conn, target, via="mail", now=now)
    return target


class PgRules(PgRepo):
    async def buyer_message_rules(self, thread_id: int, seller_id: int, subject: str, quoted: Sequence[str],
                                  now: float) -> tuple[tuple[str | None, str], Vacation | None, bool]:
        async with self.db.connection() as conn:
            return await buyer_message_rules(conn, thread_id, seller_id, subject, quoted, now)

    async def unsubscribe_request(self, thread_id: int | None, valid: Callable[[Thread], bool], sender: str
                                  ) -> tuple[tuple[Thread, Party, Party] | None, int | None]:
        async with self.db.connection() as conn:
            return await unsubscribe_request(conn, thread_id, valid, sender)

    async def unsubscribe_by_token(self, thread_id: int | None, valid: Callable[[Thread], bool], *, via: str,
                                   now: float) -> bool | None:
        async with self.db.transaction() as conn:
            return await unsubscribe_by_token(conn, thread_id, valid, via=via, now=now)

    async def unsubscribe_by_mail(self, thread_id: int, buyer_id: int, seller_id: int, sender: str, local: str,
                                  subject: str, raw: bytes, now: float, *, automatic: str | None,
                                  notice: bytes | None, lifetime: float) -> None:
        async with self.db.transaction() as conn:
            await unsubscribe_by_mail(conn, thread_id, buyer_id, seller_id, sender, local, subject, raw, now,
                                      automatic=automatic, notice=notice, lifetime=lifetime)

    async def no_response_by_mail(self, seller_id: int, quoted: Sequence[str], sender: str, local: str,
                                  subject: str, raw: bytes, now: float, *, peer: str) -> int | None:
        async with self.db.transaction() as conn:
            return await no_response_by_mail(conn, seller_id, quoted, sender, local, subject, raw, now, peer=peer)

    async def set_optout(self, buyer_id: int, seller_id: int | None, on: bool, *, via: str, now: float) -> bool:
        async with self.db.transaction() as conn:
            return await set_optout(conn, buyer_id, seller_id, on, via=via, now=now)

    async def optout_scope(self, buyer_id: int, seller_id: int) -> str | None:
        async with self.db.connection() as conn:
            return await optout_scope(conn, buyer_id, seller_id)

    async def optouts_of(self, buyer_id: int) -> list[int | None]:
        async with self.db.connection() as conn:
            return await optouts_of(conn, buyer_id)

    async def vacations_of(self, seller_id: int) -> list[Vacation]:
        async with self.db.connection() as conn:
            return await vacations_of(conn, seller_id)

    async def vacation_at(self, seller_id: int, t: float) -> Vacation | None:
        async with self.db.connection() as conn:
            return await vacation_at(conn, seller_id, t)

    async def set_vacation(self, seller_id: int, on: bool, *, until: float | None, now: float) -> Vacation | None:
        async with self.db.transaction() as conn:
            return await set_vacation(conn, seller_id, on, until=until, now=now)

    async def has_vacation_reply(self, vacation_id: int, thread_id: int) -> bool:
        async with self.db.connection() as conn:
            return await has_vacation_reply(conn, vacation_id, thread_id)

    async def claim_vacation_reply(self, vacation_id: int, thread_id: int, message_id: int) -> None:
        async with self.db.transaction() as conn:
            await claim_vacation_reply(conn, vacation_id, thread_id, message_id)

    async def record_facts(self, message_id: int, f: MessageFacts) -> None:
        async with self.db.transaction() as conn:
            await record_facts(conn, message_id, f)

    async def order_of(self, thread_id: int, subject: str, quoted: Sequence[str], now: float
                       ) -> tuple[str | None, str]:
        async with self.db.connection() as conn:
            return await order_of(conn, thread_id, subject, quoted, now)

    async def unjustified_count(self, seller_id: int, since: float | None = None) -> int:
        async with self.db.connection() as conn:
            return await unjustified_count(conn, seller_id, since)

    async def mark_no_response_needed(self, message_id: int, *, via: str, now: float) -> bool:
        async with self.db.transaction() as conn:
            return await mark_no_response_needed(conn, message_id, via=via, now=now)

    async def record_relay_message(self, thread_id: int | None, sender_id: int, envelope_from: str, local: str,
                                   subject: str, raw: bytes, now: float, direction: str = "buyer_to_relay") -> int:
        async with self.db.transaction() as conn:
            return await record_relay_message(conn, thread_id, sender_id, envelope_from, local, subject, raw, now,
                                              direction)

    async def quoted_buyer_message(self, seller_id: int, quoted: Sequence[str]) -> tuple[int, int] | None:
        async with self.db.connection() as conn:
            return await quoted_buyer_message(conn, seller_id, quoted)
