"""rules: opt-out, [Important], over-messaging, auto-replies and loops, response clocks.

Reads: rules.* (not yet). Replies: 550 5.7.1 with the rule in plain words.
Audit reasons: rules.*. Until it is built, every message continues.
"""

from __future__ import annotations

from typing import ClassVar

from relay.model import Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit


class Rules:
    name: ClassVar[str] = "rules"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        return Verdict.ok()
