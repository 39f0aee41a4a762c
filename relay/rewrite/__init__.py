"""Pure, synchronous, byte-preserving message rewriter (DESIGN.md "Privacy rules for rewriting").

Job: ``rewrite(raw, plan)`` gives the message the recipient gets: our From/To/Cc/Message-ID,
translated In-Reply-To/References, an allowlist of the sender's other headers, and every
registered real address in headers, bodies and forwarded messages replaced by its alias;
parts that need no change keep their exact bytes, and no line is longer than a smarthost takes
(relay/rewrite/lines.py). ``find_leaks`` is the safety net run on
the result before delivery.
Config read: none (pure; the pipeline's rewrite stage builds the ``RewritePlan``).
Errors raised: ``Unparseable`` (nothing sensible can be made of the input, e.g. a binary
blob with no header), ``ValueError`` from ``RewritePlan`` for an unsafe name/address.
"""

from __future__ import annotations

from relay.message.mime import CRLF, Field, content_type, first, normalize_eol, parse_headers
from relay.rewrite.addresses import matcher_for
from relay.rewrite.body import Walker, apply_edits
from relay.rewrite.headers import build_headers
from relay.rewrite.leaks import find_leaks
from relay.rewrite.lines import fit_lines
from relay.rewrite.plan import RewritePlan, RewriteResult, Unparseable
from relay.scan import known_clean, remember_clean

__all__ = ["RewritePlan", "RewriteResult", "Unparseable", "find_leaks", "rewrite"]


def rewrite(raw: bytes, plan: RewritePlan) -> RewriteResult:
    """Rewrite one received message for one recipient according to ``plan``."""
    buf = normalize_eol(raw)
    fields, body_start = parse_headers(buf, 0, len(buf))
    if not fields:
        if b"\0" in buf[:65536] or not buf.strip():
            raise Unparseable("no header block and no text body")
        body_start = 0  # a bare body: it gets our headers and is scanned as text
    result = RewriteResult(message=b"")
    matcher = matcher_for(plan.address_map)
    edits, fields_changed = Walker(matcher, result).entity(buf, fields, body_start, len(buf), 0)
    if fields_changed and first(fields, "mime-version") is None:
        fields.append(Field.make("MIME-Version", b" 1.0"))
    _, params = content_type(fields)
    headers = build_headers(fields, plan, matcher, params.get("charset"), result)
    edits.append((0, body_start, b"".join(headers) + CRLF))
    # last: no line over 998 octets goes out (the signature, made after, covers this)
    message = fit_lines(apply_edits(buf, edits))
    if not message.endswith(CRLF):
        clean = known_clean(message)  # a clean message may end in an unterminated line, never in CR
        message += CRLF
        if clean:
            remember_clean(message)
    result.message = message
    return result
