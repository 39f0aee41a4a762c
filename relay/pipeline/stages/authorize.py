"""authorize: the envelope sender and the header From must be the thread's other party, shown as such.

Replies: 550 5.7.1 (not a participant; From group syntax; another address in the From display name;
party suspended). No bounce is ever sent. Audit reasons: authorize.envelope_not_party,
authorize.from_group, authorize.header_from_count, authorize.from_display_address,
authorize.header_from_not_party, authorize.sender_suspended.
"""

from __future__ import annotations

from typing import ClassVar

from relay.message.headers import display_addresses
from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit
from relay.smtp import replies


class Authorize:
    name: ClassVar[str] = "authorize"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        assert tx.sender is not None and tx.facts is not None
        registered = set(tx.sender.emails)
        if tx.envelope_from.lower() not in registered:
            return Verdict(Action.REJECT, replies.NOT_AUTHORIZED, "authorize.envelope_not_party")
        if tx.facts.from_groups:  # `Team: a@x;` is for To/Cc; in From it only hides who wrote
            return Verdict(Action.REJECT, replies.FROM_GROUP, "authorize.from_group",
                           {"groups": tx.facts.from_groups})
        froms = tx.facts.from_addresses
        if len(froms) != 1 or tx.facts.count.get("from", 0) != 1:
            return Verdict(Action.REJECT, replies.NOT_AUTHORIZED, "authorize.header_from_count",
                           {"from_count": len(froms)})
        # Clients show the display name first and often alone: `"shop@x" <attacker@y>` reads as shop@x.
        # The same address there is what Outlook writes (`"john@x.com" <john@x.com>`) and is fine.
        names = tx.facts.from_display_names
        if names and any(shown != froms[0] for shown in display_addresses(names[0])):
            return Verdict(Action.REJECT, replies.FROM_DISPLAY_ADDRESS, "authorize.from_display_address")
        if froms[0] not in registered:
            return Verdict(Action.REJECT, replies.NOT_AUTHORIZED, "authorize.header_from_not_party")
        if tx.sender.status != "active":
            return Verdict(Action.REJECT, replies.PARTY_SUSPENDED, "authorize.sender_suspended")
        return Verdict.ok()
