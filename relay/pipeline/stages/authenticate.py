"""authenticate: SPF, DKIM and DMARC alignment of the sender (issue "Trust and transport security").

Reads: dns.*, trust.* (not yet). Replies: 550 5.7.1 spoofed, 451 4.7.0 on DNS failure.
Audit reasons: authenticate.*. Until it is built, every message continues.
"""

from __future__ import annotations

from typing import ClassVar

from relay.model import Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit


class Authenticate:
    name: ClassVar[str] = "authenticate"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        return Verdict.ok()
