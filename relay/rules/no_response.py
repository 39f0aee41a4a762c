"""no-response-needed@relay.domain: a seller marks a buyer message as needing no answer, by mail.

The seller replies to the buyer's message and sends that reply here instead of to the buyer; the
buyer message its In-Reply-To/References name (in one of the seller's threads) starts no response
clock. Reads: relay.domain. Replies: 550 5.7.1 (not a seller's registered address), 550 5.7.0 (no
buyer message quoted), 250 2.0.0 (marked). Audit: rcpt.refused (no_response.not_seller),
message.rejected (no_response.nothing_quoted, no_response.header_from_not_seller),
message.no_response_needed (rules.no_response_needed_mail).
"""

from __future__ import annotations

import re
from typing import Any

from aiosmtpd.smtp import Envelope

from relay.model import Reply, Role
from relay.pipeline.context import Context
from relay.pipeline.headers import facts, fields
from relay.smtp import replies

LOCAL = "no-response-needed"
_MSGID = re.compile(r"<[^<>\s]+>")


class NoResponseMailbox:
    """A relay-owned mailbox the SMTP handler routes to instead of an alias."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def claims(self, local: str) -> bool:
        return local.lower() == LOCAL

    async def rcpt(self, envelope: Envelope, local: str, peer: str) -> Reply:
        sender = (envelope.mail_from or "").lower()

        party = await self.ctx.store.parties.party_at(sender)
        if party is None or party.role is not Role.SELLER or party.status != "active":
            await self._event("rcpt.refused", "no_response.not_seller", {"peer": peer, "mail_from": sender})
            return replies.NOT_AUTHORIZED
        envelope.relay_seller = party  # type: ignore[attr-defined]
        return replies.RECIPIENT_OK

    async def data(self, envelope: Envelope, raw: bytes, peer: str) -> Reply:
        seller = envelope.relay_seller  # type: ignore[attr-defined]
        header = facts(raw)
        if len(header.from_addresses) != 1 or header.from_addresses[0] not in seller.emails:
            await self._event("message.rejected", "no_response.header_from_not_seller", {"peer": peer})
            return replies.NOT_AUTHORIZED
        quoted = [m for name, value in fields(raw) if name in ("in-reply-to", "references")
                  for m in _MSGID.findall(value)][-50:]
        now = self.ctx.clock()
        sender = (envelope.mail_from or "").lower()

        marked = await self.ctx.store.rules.no_response_by_mail(seller.id, quoted, sender, LOCAL, header.subject,
                                                                raw, now, peer=peer)
        return replies.NO_RESPONSE_MARKED if marked is not None else replies.NO_BUYER_MESSAGE_QUOTED

    async def _event(self, event: str, reason: str, detail: dict[str, Any]) -> None:
        await self.ctx.store.audit.append(event, reason=reason, detail=detail, ts=self.ctx.clock())
