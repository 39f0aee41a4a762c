"""unsubscribe+<token>@relay.domain: a buyer opts out of one seller by mail (the List-Unsubscribe mailto).

Reads: relay.domain, relay.notice_from, delivery.lifetime. The SMTP handler hands it the recipient
(RCPT) and the message (DATA); the normal pipeline does not run. Replies: 550 5.1.1 (bad token),
550 5.7.1 (sender is not the thread's buyer), 250 2.0.0 (opted out, confirmation queued).
Audit: rcpt.refused (unsubscribe.bad_token, unsubscribe.not_buyer), message.rejected
(unsubscribe.header_from_not_buyer), unsubscribe.received (rules.unsubscribe_mail|repeat), optout.on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import Envelope

from relay.model import Party, Reply, Thread
from relay.pipeline.context import Context
from relay.pipeline.headers import facts, fields
from relay.rules import automatic, mail, tokens
from relay.smtp import replies
from relay.store.interface import Store


@dataclass(frozen=True, slots=True)
class Request:
    thread: Thread
    buyer: Party
    seller: Party
    local: str


def token_check(secret: bytes, token: str) -> tuple[int | None, Callable[[Thread], bool]]:
    """The thread a token names (None: not a token) and the check of the token against that thread's
    parties (for the store, which reads the thread)."""
    return tokens.parse_token(token), lambda thread: tokens.token_valid(secret, token, thread.id, thread.buyer_id,
                                                                        thread.seller_id)


async def unsubscribe_by_token(store: Store, secret: bytes, token: str, *, via: str, now: float) -> bool | None:
    """Opt-out for an RFC 8058 one-click POST (the HTTP listener): None if the token is not valid, else
    whether anything changed. One write unit."""
    thread_id, valid = token_check(secret, token)
    return await store.rules.unsubscribe_by_token(thread_id, valid, via=via, now=now)


class UnsubscribeMailbox:
    """A relay-owned mailbox the SMTP handler routes to instead of an alias."""

    def __init__(self, ctx: Context, secret: bytes) -> None:
        self.ctx = ctx
        self._secret = secret

    @property
    def secret(self) -> bytes:
        """The app's current secret (ctx.extras, replaced by a reload), else the one given."""
        secret: bytes = self.ctx.extras.get("unsubscribe_secret") or self._secret
        return secret

    def claims(self, local: str) -> bool:
        return tokens.token_of_local(local) is not None

    async def rcpt(self, envelope: Envelope, local: str, peer: str) -> Reply:
        token = tokens.token_of_local(local) or ""
        sender = (envelope.mail_from or "").lower()

        thread_id, valid = token_check(self.secret, token)
        found, sender_party = await self.ctx.store.rules.unsubscribe_request(thread_id, valid, sender)
        req = Request(*found, tokens.PREFIX + token) if found is not None else None
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

        await self.ctx.store.rules.unsubscribe_by_mail(
            req.thread.id, req.buyer.id, req.seller.id, sender, req.local, header.subject, raw, now,
            automatic=auto, notice=notice, lifetime=settings.delivery.lifetime)
        return replies.UNSUBSCRIBED

    async def _event(self, event: str, reason: str, thread_id: int | None, detail: dict[str, Any]) -> None:
        await self.ctx.store.audit.append(event, reason=reason, thread_id=thread_id, detail=detail,
                                          ts=self.ctx.clock())

