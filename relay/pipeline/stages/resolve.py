"""resolve: alias → thread, sender and recipient parties, quoted Message-IDs; header facts.

One store read per message: everything later stages need about the thread is loaded here.

Reads: nothing beyond the store. Replies: 550 5.1.1 when the alias vanished since RCPT.
Audit reasons: resolve.alias_gone.
"""

from __future__ import annotations

import sqlite3
from typing import ClassVar

from relay.model import Action, Party, Thread, Verdict
from relay.pipeline.context import Context
from relay.pipeline.headers import facts
from relay.pipeline.transit import Transit
from relay.smtp import replies
from relay.store import messages, parties, threads


class Resolve:
    name: ClassVar[str] = "resolve"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        target = tx.target
        tx.facts = header_facts = facts(tx.raw)
        tx.subject = header_facts.subject
        tx.orig_message_id = header_facts.message_id

        def load(conn: sqlite3.Connection) -> tuple[Thread, Party, Party, dict[str, str]] | None:
            t = threads.resolve_alias(conn, target.alias)
            if t is None or t.revoked:
                return None
            thread = threads.get(conn, t.thread_id)
            recipient = parties.get(conn, t.party_id)
            other = thread.seller_id if t.party_id == thread.buyer_id else thread.buyer_id
            ids = (messages.translate_ids(conn, thread.id, recipient.id, header_facts.quoted_ids)
                   if header_facts.quoted_ids else {})
            return thread, parties.get(conn, other), recipient, ids

        found = await self.ctx.db.read(load)
        if found is None:
            return Verdict(Action.REJECT, replies.NO_SUCH_ALIAS, "resolve.alias_gone")
        tx.thread, tx.sender, tx.recipient, tx.id_map = found
        tx.message = tx.raw  # modifying stages work on tx.message; tx.raw stays as received
        return Verdict.ok()
