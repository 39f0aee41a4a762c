"""sign: DKIM-sign the final message for relay.domain (after the last header change).

Reads: dkim.selector, dkim.private_key, dkim.ed25519_key (through the Signer built at start).
Replies: 451 4.3.0 if signing fails (never deliver unsigned mail by accident).
Audit reasons: sign.failed, sign.unsignable, sign.disabled.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from relay.dkim import DKIMMessageError
from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit
from relay.smtp import replies

OFFLOAD_BYTES = 256 * 1024


class Sign:
    name: ClassVar[str] = "sign"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        signer = self.ctx.signer
        if signer is None:
            return Verdict.ok("sign.disabled")
        try:
            if len(tx.message) > OFFLOAD_BYTES:
                tx.message = await asyncio.to_thread(signer.sign, tx.message)
            else:
                tx.message = signer.sign(tx.message)
        except DKIMMessageError as exc:  # the same message would fail the same way again: refuse it
            return Verdict(Action.REJECT, replies.UNPARSEABLE, "sign.unsignable", {"error": str(exc)[:200]})
        except Exception as exc:
            return Verdict(Action.TEMPFAIL, replies.INTERNAL_ERROR, "sign.failed", {"error": type(exc).__name__})
        return Verdict.ok()
