"""content: the messaging policy (links, marketing, review requests, contact details, attachments).

Reads: policy.* (not yet). Replies: 550 5.7.1 naming the category; redact/strip/hold/flag.
Audit reasons: content.*. Until it is built, every message continues.
"""

from __future__ import annotations

from typing import ClassVar

from relay.model import Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit


class Content:
    name: ClassVar[str] = "content"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        return Verdict.ok()
