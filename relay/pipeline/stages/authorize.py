"""authorize: the envelope sender and the header From must be the thread's other party.

Replies: 550 5.7.1 (not a participant), 550 5.7.1 (party suspended). No bounce is ever sent.
Audit reasons: authorize.envelope_not_party, authorize.header_from_not_party,
authorize.header_from_count, authorize.sender_suspended.
"""

from __future__ import annotations

from typing import ClassVar

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
        froms = tx.facts.from_addresses
        if len(froms) != 1 or tx.facts.count.get("from", 0) != 1:
            return Verdict(Action.REJECT, replies.NOT_AUTHORIZED, "authorize.header_from_count",
                           {"from_count": len(froms)})
        if froms[0] not in registered:
            return Verdict(Action.REJECT, replies.NOT_AUTHORIZED, "authorize.header_from_not_party")
        if tx.sender.status != "active":
            return Verdict(Action.REJECT, replies.PARTY_SUSPENDED, "authorize.sender_suspended")
        return Verdict.ok()
