"""egress: the last line of defence — the outgoing message, read as the recipient's client shows it.

Reads: policy.workers and policy.max_cpu_seconds (it runs in the policy's worker processes).
Replies: 550 5.7.1 when a form of a real address is left where it cannot be stripped, 554 5.6.0
when a part cannot be read, or the check overruns its CPU budget; never 4xx (the same message
would fail the same way again).
Audit reasons: egress.leak (kind and place, never the address), egress.stripped (an attachment
replaced by a notice), egress.unreadable, egress.too_costly.
"""

from __future__ import annotations

from typing import Any, ClassVar

from relay.message.attachments import replace_notice
from relay.message.contacts import AddressFinder, finder_of
from relay.message.mime import normalize_eol
from relay.message.views import Place, places
from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.offload import run_check
from relay.pipeline.transit import Transit
from relay.smtp import replies

#: Without worker processes, above this size the check leaves the event loop for a thread.
OFFLOAD_BYTES = 64 * 1024
#: Rounds of "strip the attachments that leak, look again" before refusing outright.
_ROUNDS = 3


def examine(message: bytes, finder: AddressFinder, recipient: str) -> list[Place]:
    """The places of ``message`` that hold a form of a registered address (or cannot be read)."""
    bad: list[Place] = []
    for place in places(message, finder.might_contain):
        if place.unreadable or place.kind == "route":
            bad.append(place)
        elif place.kind == "header" and place.where == "header To of message":
            if finder.search(place.text.replace(recipient, "").replace(recipient.lower(), "")):
                bad.append(place)
        elif place.text and finder.search(place.text):
            bad.append(place)
    return bad


def strip_parts(message: bytes, spans: list[tuple[tuple[int, int], str | None]]) -> bytes:
    """``message`` with each entity span replaced by a notice part (spans in the CRLF buffer)."""
    buf = normalize_eol(message)
    out: list[bytes] = []
    pos = 0
    for (start, end), filename in sorted(set(spans)):
        if start < pos:
            continue
        ctype, body = replace_notice(filename, "contact details")  # (its body ends in CRLF)
        out.append(buf[pos:start])
        out.append(f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: 8bit\r\n"
                   "Content-Disposition: inline\r\n\r\n".encode() + body)
        pos = end
    out.append(buf[pos:])
    return b"".join(out)


def check(message: bytes, finder: AddressFinder, recipient: str) -> tuple[bytes, list[Place], list[Place]]:
    """(the message to deliver, the attachments stripped, what is still wrong: refuse if any)."""
    stripped: list[Place] = []
    for _ in range(_ROUNDS):
        bad = examine(message, finder, recipient)
        fixable = [p for p in bad if p.kind == "attachment" and p.span is not None]
        if not bad or len(fixable) != len(bad):
            return message, stripped, bad
        stripped.extend(fixable)
        message = strip_parts(message, [(p.span, p.filename) for p in fixable if p.span is not None])
    return message, stripped, examine(message, finder, recipient)


class Egress:
    name: ClassVar[str] = "egress"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, tx: Transit) -> Verdict:
        assert tx.sender is not None and tx.recipient is not None
        addresses = [*tx.sender.emails, *tx.recipient.emails]
        recipient = tx.recipient.emails[0]
        message = tx.message
        result = await run_check(self.ctx, self.name, len(message), OFFLOAD_BYTES,
                                 lambda pool: pool.egress(message, addresses, recipient, key=tx.relay_key),
                                 lambda: check(message, finder_of(addresses), recipient))
        if isinstance(result, Verdict):
            return result
        out, stripped, bad = result
        out = message if out is None else out  # (a worker does not send an unchanged message back)
        for place in {p.where: p for p in stripped}.values():
            tx.record("policy.attachment_stripped", "egress.stripped", where=place.where)
        if bad:
            detail: dict[str, Any] = {"kind": sorted({p.kind for p in bad}), "where": [p.where for p in bad][:5]}
            if all(p.unreadable for p in bad):
                return Verdict(Action.REJECT, replies.UNREADABLE_CONTENT, "egress.unreadable", detail)
            return Verdict(Action.REJECT, replies.UNMASKABLE_ADDRESS, "egress.leak", detail)
        tx.message = out
        if stripped:
            return Verdict.ok("egress.stripped", parts=len({p.span for p in stripped}))
        return Verdict.ok()
