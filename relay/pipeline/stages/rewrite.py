"""rewrite: apply the privacy rules (DESIGN.md) — alias From, real To, no trace of real addresses.

Reads: relay.domain. Replies: 554 5.6.0 when the message cannot be made safe (what is left
is judged by the egress stage that follows, which refuses rather than delivers a leak).
Audit reasons: rewrite.unparseable, rewrite.parts (how many parts were re-encoded).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import ClassVar

from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit
from relay.rewrite import RewritePlan, Unparseable, rewrite
from relay.smtp import replies

_MSGID = re.compile(r"<[^<>\s]+>")
#: Above this size the CPU-heavy work leaves the event loop.
OFFLOAD_BYTES = 256 * 1024


def new_message_id(domain: str) -> str:
    return f"<{secrets.token_hex(12)}@{domain}>"


class Rewrite:
    name: ClassVar[str] = "rewrite"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        assert tx.thread is not None and tx.sender is not None and tx.recipient is not None
        thread, sender, recipient = tx.thread, tx.sender, tx.recipient
        sender_alias = thread.seller_alias if sender.id == thread.seller_id else thread.buyer_alias
        recipient_alias = thread.buyer_alias if sender.id == thread.seller_id else thread.seller_alias
        if not sender_alias or not recipient_alias:
            return Verdict(Action.REJECT, replies.NO_SUCH_ALIAS, "rewrite.alias_revoked")
        alias_of = {sender.id: self.ctx.alias_address(sender_alias),
                    recipient.id: self.ctx.alias_address(recipient_alias)}
        address_map = {addr: alias_of[party.id] for party in (sender, recipient) for addr in party.emails}
        tx.relay_message_id = new_message_id(self.ctx.settings.relay.domain)
        plan = RewritePlan(
            from_addr=alias_of[sender.id],
            from_name=sender.name,
            to_addr=recipient.emails[0],
            to_name=recipient.name,
            message_id=tx.relay_message_id,
            address_map=address_map,
            alias_domain=self.ctx.settings.relay.domain,
            keep_aliases=frozenset(),
            translate_id=tx.id_map.get,
            extra_headers=tuple(tx.extra_headers),
            date_if_missing=format_datetime(datetime.fromtimestamp(tx.received_at, UTC)),
        )

        def work() -> tuple[bytes, int]:
            result = rewrite(tx.message, plan)
            return result.message, result.parts_rewritten

        try:
            if len(tx.message) > OFFLOAD_BYTES:
                out, parts = await asyncio.to_thread(work)
            else:
                out, parts = work()
        except Unparseable as exc:
            return Verdict(Action.REJECT, replies.UNPARSEABLE, "rewrite.unparseable", {"error": str(exc)[:200]})
        tx.message = out
        if parts:
            tx.record("stage.rewrite", "rewrite.parts", parts=parts)
        return Verdict.ok()
