"""resolve: alias → thread, sender and recipient parties, quoted Message-IDs; header facts.

One store read per message: everything later stages need about the thread is loaded here.

Reads: nothing beyond the store. Replies: 550 5.1.1 when the alias vanished since RCPT.
Audit reasons: resolve.alias_gone.
"""

from __future__ import annotations

from typing import ClassVar

from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.headers import facts
from relay.pipeline.transit import Transit
from relay.smtp import replies


class Resolve:
    name: ClassVar[str] = "resolve"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        target = tx.target
        tx.facts = header_facts = facts(tx.raw)
        tx.subject = header_facts.subject
        tx.orig_message_id = header_facts.message_id

        found = await self.ctx.store.threads.resolve_message(target.alias, header_facts.quoted_ids)
        if found is None:
            return Verdict(Action.REJECT, replies.NO_SUCH_ALIAS, "resolve.alias_gone")
        tx.thread, tx.sender, tx.recipient, tx.id_map = found
        tx.message = tx.raw  # modifying stages work on tx.message; tx.raw stays as received
        return Verdict.ok()
