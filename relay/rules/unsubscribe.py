"""unsubscribe+<token>@relay.domain: a buyer opts out of one seller by mail (the List-Unsubscribe mailto).

Reads: relay.domain, relay.notice_from, delivery.lifetime. The SMTP handler hands it the recipient
(RCPT) and the message (DATA); the normal pipeline does not run. Replies: 550 5.1.1 (bad token),
550 5.7.1 (sender is not the thread's buyer), 250 2.0.0 (opted out, confirmation queued).
Audit: rcpt.refused (unsubscribe.bad_token, unsubscribe.not_buyer), message.rejected
(unsubscribe.header_from_not_buyer), unsubscribe.received (rules.unsubscribe_mail|repeat), optout.on.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import Envelope

from relay.model import Party, Reply, Thread
from relay.pipeline.context import Context
from relay.pipeline.headers import facts, fields
from relay.rules import automatic, mail, tokens
from relay.smtp import replies
from relay.store import audit, parties, threads
from relay.store import queue as queue_repo
from relay.store import rules as rules_store
from relay.store.errors import NotFound


@dataclass(frozen=True, slots=True)
class Request:
    thread: Thread
    buyer: Party
    seller: Party
    local: str


def find(conn: sqlite3.Connection, secret: bytes, token: str) -> Request | None:
    """The thread, buyer and seller a valid token names; None for anything forged or stale."""
    thread_id = tokens.parse_token(token)
    if thread_id is None:
        return None
    try:
        thread = threads.get(conn, thread_id)
    except NotFound:
        return None
    if not tokens.token_valid(secret, token, thread.id, thread.buyer_id, thread.seller_id):
        return None
    return Request(thread, parties.get(conn, thread.buyer_id), parties.get(conn, thread.seller_id),
                   tokens.PREFIX + token)


def unsubscribe_by_token(conn: sqlite3.Connection, secret: bytes, token: str, *, via: str, now: float) -> bool | None:
    """Opt-out for an RFC 8058 one-click POST (to be called by the HTTPS listener): None if the token is
    not valid, else whether anything changed. Runs inside a write transaction."""
    req = find(conn, secret, token)
    if req is None:
        return None
    return rules_store.set_optout(conn, req.buyer.id, req.seller.id, True, via=via, now=now)


class UnsubscribeMailbox:
    """A relay-owned mailbox the SMTP handler routes to instead of an alias."""

    def __init__(self, ctx: Context, secret: bytes) -> None:
        self.ctx = ctx
        self.secret = secret

    def claims(self, local: str) -> bool:
        return tokens.token_of_local(local) is not None

    async def rcpt(self, envelope: Envelope, local: str, peer: str) -> Reply:
        token = tokens.token_of_local(local) or ""
        sender = (envelope.mail_from or "").lower()

        def lookup(conn: sqlite3.Connection) -> tuple[Request | None, int | None]:
            return find(conn, self.secret, token), parties.by_address(conn, sender) if sender else None

        req, sender_party = await self.ctx.db.read(lookup)
        if req is None:
            await self._event("rcpt.refused", "unsubscribe.bad_token", None, {"peer": peer, "mail_from": sender})
            return replies.NO_SUCH_ALIAS
        if sender_party != req.buyer.id:
            await self._event("rcpt.refused", "unsubscribe.not_buyer", req.thread.id, {"peer": peer, "mail_from": sender})
            return replies.NOT_AUTHORIZED
        envelope.relay_unsubscribe = req  # type: ignore[attr-defined]
        return replies.RECIPIENT_OK

    async def data(self, envelope: Envelope, raw: bytes, peer: str) -> Reply:
        req: Request = envelope.relay_unsubscribe  # type: ignore[attr-defined]
        header = facts(raw)
        if len(header.from_addresses) != 1 or header.from_addresses[0] not in req.buyer.emails:
            await self._event("message.rejected", "unsubscribe.header_from_not_buyer", req.thread.id,
                              {"peer": peer, "mail_from": envelope.mail_from or ""})
            return replies.NOT_AUTHORIZED
        now = self.ctx.clock()
        sender = (envelope.mail_from or "").lower()
        auto = automatic.automatic_reason(fields(raw), header.subject)
        settings = self.ctx.settings
        notice = None
        if auto is None:  # RFC 3834: never answer automatic mail
            notice = mail.unsubscribe_confirmation(
                domain=settings.relay.domain, notice_from=settings.relay.notice_from, to=sender,
                seller_name=req.seller.name, seller_alias=self.ctx.alias_address(req.thread.seller_alias), now=now)
            if self.ctx.signer is not None:
                notice = self.ctx.signer.sign(notice)

        def unit(conn: sqlite3.Connection) -> None:
            message_id = rules_store.record_relay_message(conn, req.thread.id, req.buyer.id, sender, req.local,
                                                          header.subject, raw, now)
            changed = rules_store.set_optout(conn, req.buyer.id, req.seller.id, True, via="mail", now=now)
            audit.append(conn, "unsubscribe.received",
                         reason="rules.unsubscribe_mail" if changed else "rules.unsubscribe_repeat",
                         thread_id=req.thread.id, party_id=req.buyer.id, message_id=message_id,
                         detail={"seller": req.seller.id, "confirmed": notice is not None, "automatic": auto}, ts=now)
            if notice is not None:
                queue_repo.enqueue_notice(conn, message_id, req.thread.id, now, sender, "", notice,
                                          lifetime=settings.delivery.lifetime)

        await self.ctx.db.write(unit)
        return replies.UNSUBSCRIBED

    async def _event(self, event: str, reason: str, thread_id: int | None, detail: dict[str, Any]) -> None:
        await self.ctx.db.write(lambda conn: audit.append(conn, event, reason=reason, thread_id=thread_id,
                                                          detail=detail, ts=self.ctx.clock()))

