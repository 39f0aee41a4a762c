"""Messaging rules in the store: opt-outs, vacations, per-message facts, limits and [Important] counts.

Every change writes an audit event in the same transaction (optout.on|off, vacation.on|off,
message.no_response_needed). Facts about a message are written in the message's own commit
(record_facts, called by the rules stage through Transit.on_accept; a seller message's through
relay/store/seller_rules.admit, which checks the limits in that same commit).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relay.model import Party, Thread
from relay.store import audit
from relay.store import messages as messages_repo
from relay.store import parties as parties_repo
from relay.store import queue as queue_repo
from relay.store import threads as threads_repo
from relay.store.errors import Conflict, NotFound

#: Messages that never reached (or never will reach) the recipient do not count for limits or answers.
_LIVE = "m.state NOT IN ('rejected', 'dropped')"


# -- opt-outs -------------------------------------------------------------------------------------
def set_optout(conn: sqlite3.Connection, buyer_id: int, seller_id: int | None, on: bool, *, via: str,
               now: float) -> bool:
    """Opt a buyer out of one seller (or all, seller_id None), or back in; True if anything changed.

    Opting back in without a seller clears every opt-out of the buyer.
    """
    if on:
        changed = conn.execute("INSERT OR IGNORE INTO optouts (buyer_id, seller_id, created_at, via)"
                               " VALUES (?, ?, ?, ?)", (buyer_id, seller_id, now, via)).rowcount > 0
    elif seller_id is None:
        changed = conn.execute("DELETE FROM optouts WHERE buyer_id = ?", (buyer_id,)).rowcount > 0
    else:
        changed = conn.execute("DELETE FROM optouts WHERE buyer_id = ? AND seller_id = ?",
                               (buyer_id, seller_id)).rowcount > 0
    audit.append(conn, "optout.on" if on else "optout.off", reason=f"rules.optout_{via}" if changed
                 else "rules.optout_unchanged", party_id=buyer_id,
                 detail={"seller": seller_id, "scope": "seller" if seller_id else "all", "via": via}, ts=now)
    return changed


def optout_scope(conn: sqlite3.Connection, buyer_id: int, seller_id: int) -> str | None:
    """"all" or "seller" when the buyer opted out of this seller's non-critical messages, else None."""
    row = conn.execute("SELECT MIN(IFNULL(seller_id, 0)) FROM optouts WHERE buyer_id = ? AND"
                       " (seller_id IS NULL OR seller_id = ?)", (buyer_id, seller_id)).fetchone()
    if row is None or row[0] is None:
        return None
    return "all" if row[0] == 0 else "seller"


def optouts_of(conn: sqlite3.Connection, buyer_id: int) -> list[int | None]:
    return [r[0] for r in conn.execute("SELECT seller_id FROM optouts WHERE buyer_id = ? ORDER BY"
                                       " IFNULL(seller_id, 0)", (buyer_id,))]


# -- vacations -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Vacation:
    id: int
    seller_id: int
    started_at: float
    until_at: float | None
    ended_at: float | None

    @property
    def end(self) -> float | None:
        ends = [t for t in (self.until_at, self.ended_at) if t is not None]
        return min(ends) if ends else None

    def covers(self, t: float) -> bool:
        end = self.end
        return self.started_at <= t and (end is None or t < end)


def vacations_of(conn: sqlite3.Connection, seller_id: int) -> list[Vacation]:
    return [Vacation(*r) for r in conn.execute(
        "SELECT id, seller_id, started_at, until_at, ended_at FROM vacations WHERE seller_id = ?"
        " ORDER BY started_at, id", (seller_id,))]


def vacation_at(conn: sqlite3.Connection, seller_id: int, t: float) -> Vacation | None:
    return next((v for v in reversed(vacations_of(conn, seller_id)) if v.covers(t)), None)


def set_vacation(conn: sqlite3.Connection, seller_id: int, on: bool, *, until: float | None,
                 now: float) -> Vacation | None:
    """Start a vacation (ending the current one first) or end the current one; return the active one."""
    current = vacation_at(conn, seller_id, now)
    if current is not None:
        conn.execute("UPDATE vacations SET ended_at = ? WHERE id = ?", (now, current.id))
    if not on:
        audit.append(conn, "vacation.off", reason="rules.vacation_cli" if current else "rules.vacation_unchanged",
                     party_id=seller_id, detail={"vacation": current.id if current else None}, ts=now)
        return None
    if until is not None and until <= now:
        raise Conflict("--until must be in the future")
    cur = conn.execute("INSERT INTO vacations (seller_id, started_at, until_at) VALUES (?, ?, ?)",
                       (seller_id, now, until))
    vid = int(cur.lastrowid or 0)
    audit.append(conn, "vacation.on", reason="rules.vacation_cli", party_id=seller_id,
                 detail={"vacation": vid, "until": until}, ts=now)
    return Vacation(vid, seller_id, now, until, None)


def has_vacation_reply(conn: sqlite3.Connection, vacation_id: int, thread_id: int) -> bool:
    return conn.execute("SELECT 1 FROM vacation_replies WHERE vacation_id = ? AND thread_id = ?",
                        (vacation_id, thread_id)).fetchone() is not None


def claim_vacation_reply(conn: sqlite3.Connection, vacation_id: int, thread_id: int, message_id: int) -> None:
    conn.execute("INSERT INTO vacation_replies (vacation_id, thread_id, message_id) VALUES (?, ?, ?)",
                 (vacation_id, thread_id, message_id))


# -- per-message facts -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MessageFacts:
    thread_id: int
    direction: str
    received_at: float
    kind: str  # buyer | reply | unsolicited | critical | vacation_reply
    automatic: str | None = None
    order_ref: str | None = None
    important: str | None = None
    reply_to: int | None = None  # the buyer message a seller reply answers


def record_facts(conn: sqlite3.Connection, message_id: int, f: MessageFacts) -> None:
    conn.execute("INSERT INTO message_rules (message_id, thread_id, direction, received_at, kind, automatic,"
                 " order_ref, important, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (message_id, f.thread_id, f.direction, f.received_at, f.kind, f.automatic, f.order_ref,
                  f.important, f.reply_to))


def _marks(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


def order_of(conn: sqlite3.Connection, thread_id: int, subject: str, quoted: Sequence[str],
             now: float) -> tuple[str | None, str]:
    """(order ref, how) for a message: by subject tag, by reply chain, else the thread's latest order."""
    orders = [o for o in threads_repo.orders(conn, thread_id) if o.placed_at <= now]
    for order in sorted(orders, key=lambda o: -len(o.ref)):
        if re.search(rf"(?<![0-9A-Za-z]){re.escape(order.ref)}(?![0-9A-Za-z])", subject, re.I):
            return order.ref, "subject"
    if quoted:
        row = conn.execute(
            f"SELECT r.order_ref FROM message_ids mi JOIN message_rules r ON r.message_id = mi.message_id"
            f" WHERE mi.thread_id = ? AND (mi.relay_id IN ({_marks(quoted)}) OR mi.orig_id IN ({_marks(quoted)}))"
            f" AND r.order_ref IS NOT NULL ORDER BY mi.message_id DESC LIMIT 1",
            (thread_id, *quoted, *quoted)).fetchone()
        if row:
            return row[0], "reply_chain"
    if orders:
        return orders[-1].ref, "latest"
    return None, "none"


def unjustified_count(conn: sqlite3.Connection, seller_id: int, since: float | None = None) -> int:
    """[Important] messages of a seller that matched no critical category (audited important.unjustified)."""
    sql = "SELECT COUNT(*) FROM audit_events WHERE event = 'important.unjustified' AND party_id = ?"
    if since is None:
        return int(conn.execute(sql, (seller_id,)).fetchone()[0])
    return int(conn.execute(sql + " AND ts >= ?", (seller_id, since)).fetchone()[0])


def mark_no_response_needed(conn: sqlite3.Connection, message_id: int, *, via: str, now: float) -> bool:
    """Mark a buyer message as needing no answer (it starts no response clock); False if it already was."""
    msg = messages_repo.get(conn, message_id)
    if msg is None:
        raise NotFound(f"no such message: {message_id}")
    if msg.direction != "buyer_to_seller" or msg.state in ("rejected", "dropped"):
        raise Conflict(f"message {message_id} is not an accepted buyer message")
    cur = conn.execute("INSERT OR IGNORE INTO no_response_needed (message_id, marked_at, via) VALUES (?, ?, ?)",
                       (message_id, now, via))
    if cur.rowcount:
        audit.append(conn, "message.no_response_needed", reason=f"rules.no_response_needed_{via}",
                     thread_id=msg.thread_id, message_id=message_id, party_id=msg.recipient_id, ts=now)
    return bool(cur.rowcount)


def record_relay_message(conn: sqlite3.Connection, thread_id: int | None, sender_id: int, envelope_from: str,
                         local: str, subject: str, raw: bytes, now: float, direction: str = "buyer_to_relay") -> int:
    """A message to one of the relay's own mailboxes (unsubscribe, no-response-needed), kept like any other.

    Direction buyer_to_relay / seller_to_relay: it reaches no party, so limits and metrics never see it.
    """
    digest = messages_repo.put_blob(conn, raw)
    cur = conn.execute(
        "INSERT INTO messages (thread_id, direction, sender_id, recipient_id, state, reason, received_at,"
        " envelope_from, rcpt_alias, subject, original_sha256) VALUES (?, ?, ?, NULL, 'delivered',"
        " 'rules.relay_mailbox', ?, ?, ?, ?, ?)",
        (thread_id, direction, sender_id, now, envelope_from, local, subject[:998], digest))
    return int(cur.lastrowid or 0)


def quoted_buyer_message(conn: sqlite3.Connection, seller_id: int, quoted: Sequence[str]) -> tuple[int, int] | None:
    """(message id, thread id) of the newest live buyer message, in one of the seller's threads, that the
    seller's quoted ids name."""
    if not quoted:
        return None
    row = conn.execute(
        f"SELECT m.id, m.thread_id FROM message_ids mi JOIN messages m ON m.id = mi.message_id JOIN threads t ON t.id = m.thread_id"
        f" WHERE t.seller_id = ? AND m.direction = 'buyer_to_seller' AND mi.relay_id IN ({_marks(quoted)})"
        f" AND {_LIVE} ORDER BY m.id DESC LIMIT 1", (seller_id, *quoted)).fetchone()
    return (row[0], row[1]) if row else None


# -- the rules' compound reads and units (each one read, or one unit of the group commit) -------------
def buyer_message_rules(conn: sqlite3.Connection, thread_id: int, seller_id: int, subject: str,
                        quoted: Sequence[str], now: float) -> tuple[tuple[str | None, str], Vacation | None, bool]:
    """A buyer message: its (order, how), the seller's vacation at `now`, and whether that vacation
    already answered this thread."""
    vacation = vacation_at(conn, seller_id, now)
    replied = vacation is not None and has_vacation_reply(conn, vacation.id, thread_id)
    return order_of(conn, thread_id, subject, quoted, now), vacation, replied


def _unsubscribe_parties(conn: sqlite3.Connection, thread_id: int | None,
                         valid: Callable[[Thread], bool]) -> tuple[Thread, Party, Party] | None:
    """The thread, buyer and seller of an unsubscribe token naming `thread_id`, if `valid` (the token's
    check against the thread, relay/rules/tokens.py) accepts the thread; else None."""
    if thread_id is None:
        return None
    try:
        thread = threads_repo.get(conn, thread_id)
    except NotFound:
        return None
    if not valid(thread):
        return None
    return thread, parties_repo.get(conn, thread.buyer_id), parties_repo.get(conn, thread.seller_id)


def unsubscribe_request(conn: sqlite3.Connection, thread_id: int | None, valid: Callable[[Thread], bool],
                        sender: str) -> tuple[tuple[Thread, Party, Party] | None, int | None]:
    """RCPT to unsubscribe+<token>: (thread, buyer, seller) of a valid token (else None) and the party
    registered at `sender` (None for the null sender)."""
    return (_unsubscribe_parties(conn, thread_id, valid),
            parties_repo.by_address(conn, sender) if sender else None)


def unsubscribe_by_token(conn: sqlite3.Connection, thread_id: int | None, valid: Callable[[Thread], bool], *,
                         via: str, now: float) -> bool | None:
    """Opt-out for an RFC 8058 one-click POST: None if the token is not valid, else whether anything
    changed. One unit: the token's thread is read under the write lock."""
    found = _unsubscribe_parties(conn, thread_id, valid)
    if found is None:
        return None
    _, buyer, seller = found
    return set_optout(conn, buyer.id, seller.id, True, via=via, now=now)


def unsubscribe_by_mail(conn: sqlite3.Connection, thread_id: int, buyer_id: int, seller_id: int, sender: str,
                        local: str, subject: str, raw: bytes, now: float, *, automatic: str | None,
                        notice: bytes | None, lifetime: float) -> None:
    """A buyer's unsubscribe mail, in one unit: the mail kept, the opt-out, its audit event and (unless
    the mail was automatic) the confirmation `notice` queued to `sender`."""
    message_id = record_relay_message(conn, thread_id, buyer_id, sender, local, subject, raw, now)
    changed = set_optout(conn, buyer_id, seller_id, True, via="mail", now=now)
    audit.append(conn, "unsubscribe.received",
                 reason="rules.unsubscribe_mail" if changed else "rules.unsubscribe_repeat",
                 thread_id=thread_id, party_id=buyer_id, message_id=message_id,
                 detail={"seller": seller_id, "confirmed": notice is not None, "automatic": automatic}, ts=now)
    if notice is not None:
        queue_repo.enqueue_notice(conn, message_id, thread_id, now, sender, "", notice, lifetime=lifetime)


def no_response_by_mail(conn: sqlite3.Connection, seller_id: int, quoted: Sequence[str], sender: str, local: str,
                        subject: str, raw: bytes, now: float, *, peer: str) -> int | None:
    """A seller's no-response-needed mail, in one unit: the buyer message it quotes is marked and the
    mail kept; None (and a message.rejected event) when it quotes no buyer message of the seller's."""
    found = quoted_buyer_message(conn, seller_id, quoted)
    if found is None:
        audit.append(conn, "message.rejected", reason="no_response.nothing_quoted", party_id=seller_id,
                     detail={"peer": peer, "quoted": len(quoted)}, ts=now)
        return None
    target, thread_id = found
    record_relay_message(conn, thread_id, seller_id, sender, local, subject, raw, now, direction="seller_to_relay")
    mark_no_response_needed(conn, target, via="mail", now=now)
    return target
