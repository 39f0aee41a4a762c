"""Line lengths: nothing we send has a line over 998 octets (RFC 5322 section 2.1.1).

Job: ``fit_lines(message)`` is the last step of the rewrite (so the DKIM signature, made after,
covers these bytes). A smarthost refuses longer lines (Postfix's smtp_line_length_limit breaks
them at 998 and so corrupts the part; Exchange and aiosmtpd answer 500), and then a message we
answered 250 bounces. Where a line is too long: a header field is refolded at whitespace, and
one with no fold point left becomes RFC 2047 encoded words (a Content-Type/-Disposition
parameter: RFC 2231 continuations); a 7bit/8bit/binary part is re-encoded (quoted-printable
for text, base64 otherwise), a base64/quoted-printable one with overlong lines re-wrapped, a
forwarded message walked like the top level; preamble and epilogue lines (no reader shows them)
are cut. Only what is too long changes. Config read: none (pure). Errors raised: none.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

from relay.message.headers import decode_words, raw_to_str
from relay.message.mime import (
    CRLF,
    IDENTITY,
    MAX_DEPTH,
    NESTED_MESSAGE,
    Field,
    content_type,
    cte_of,
    decode_body,
    encode_base64,
    encode_qp,
    parse_headers,
    parse_params,
    split_multipart,
    unfold,
)
from relay.rewrite.body import Edit, apply_edits
from relay.rewrite.headers import _UNSTRUCTURED, encode_words, fold
from relay.smtp.shape import _longest_line_over

LIMIT: Final = 998
_PARAMETERIZED: Final = frozenset({"content-type", "content-disposition"})


def too_long(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether a line of data[start:end] is longer than LIMIT. The DATA check's block scan (one
    find per 500 bytes, ~2 ms per MB): a regex over every offset took 0.5 s per MB of base64."""
    if start or (end is not None and end != len(data)):
        data = data[start:end]  # only on the rare path, where the whole message had a long line
    return _longest_line_over(data, LIMIT)


def fit_lines(message: bytes) -> bytes:
    """``message`` (CRLF line ends) with no line over 998 octets; the same object when none is."""
    if not too_long(message):
        return message
    return apply_edits(message, _part(message, 0, len(message), 0))


def _part(buf: bytes, start: int, end: int, depth: int) -> list[Edit]:
    """A message, a body part or a forwarded message: its own header block, then its body."""
    fields, body_start = parse_headers(buf, start, end)
    edits, new_cte = _body(buf, fields, body_start, end, depth)
    if new_cte is not None or too_long(buf, start, body_start):
        edits += _header_edits(buf, start, fields, new_cte)
    return edits


def _header_edits(buf: bytes, start: int, fields: list[Field], new_cte: bytes | None) -> list[Edit]:
    """Edits of the fields too long to send, and of Content-Transfer-Encoding when it changes."""
    cte = Field.make("Content-Transfer-Encoding", b" " + new_cte).raw if new_cte is not None else None
    if not fields:
        if cte is None:
            return []
        # no header at all: the new field, and the blank line that ends it when none follows
        return [(start, start, cte if buf.startswith(CRLF, start) else cte + CRLF)]
    pos = buf.find(fields[0].raw, start)
    edits: list[Edit] = []
    for f in fields:
        end = pos + len(f.raw)
        if cte is not None and f.name == "content-transfer-encoding":
            edits.append((pos, end, cte))
            cte = b""  # a repeated one goes
        elif too_long(f.raw):
            edits.append((pos, end, _fit_field(f)))
        pos = end
    if cte:
        edits.append((pos, pos, cte))
    return edits


def _fit_field(f: Field) -> bytes:
    if not too_long(f.raw):
        return f.raw
    label = f.label.decode("ascii", "replace").strip()
    flat = raw_to_str(unfold(f.value), None).strip()
    if f.name in _PARAMETERIZED:
        return _fit_params(label, f.value)
    tokens = flat.split()
    if flat.isascii() and all(len(t) <= LIMIT - len(label) - 2 for t in tokens):
        return fold(label, flat)  # at whitespace (RFC 5322 section 2.2.3)
    # no fold point left: encoded words, short and foldable (RFC 2047 section 2); a structured
    # field this long is junk to every reader, but it arrives rather than bounce the message
    text = decode_words(flat) if f.name in _UNSTRUCTURED else flat
    return fold(label, " ".join(encode_words(text)))


def _fit_params(label: str, value: bytes) -> bytes:
    """A Content-Type/-Disposition with a long parameter: each one as RFC 2231 continuations."""
    head, params = parse_params(value)
    parts = [head]
    for key, text in params.items():
        if key == "boundary" or (text.isascii() and len(text) < 200 and '"' not in text and "\\" not in text):
            parts.append(f'{key}="{text}"')
            continue
        pieces = [""]
        for ch in text:  # whole characters per section: a reader may decode each on its own
            q = urllib.parse.quote(ch, safe="")
            if len(pieces[-1]) + len(q) > 60:
                pieces.append("")
            pieces[-1] += q
        for n, piece in enumerate(pieces):
            charset = "utf-8''" if n == 0 else ""
            parts.append(f"{key}*{n}*={charset}{piece}")
    return fold(label, "; ".join(parts))


def _body(buf: bytes, fields: list[Field], start: int, end: int, depth: int) -> tuple[list[Edit], bytes | None]:
    """Edits for the body [start, end) of an entity, and its new transfer encoding if it changes."""
    if not too_long(buf, start, end):
        return [], None
    if depth > MAX_DEPTH:
        return _cut(buf, start, end), None
    ctype, params = content_type(fields)
    cte = cte_of(fields)
    if ctype.startswith("multipart/") and params.get("boundary") and cte in IDENTITY:
        mp = split_multipart(buf, start, end, params["boundary"].encode("utf-8", "replace"))
        if mp is not None:
            edits = _cut(buf, *mp.preamble) + _cut(buf, *mp.epilogue)
            for ps, pe in mp.parts:
                edits += _part(buf, ps, pe, depth + 1)
            return edits, None
        return _cut(buf, start, end), None  # no boundary found: junk no reader shows as a part
    if ctype in NESTED_MESSAGE and cte in IDENTITY:
        return _part(buf, start, end, depth + 1), None
    data = buf[start:end]
    decoded = decode_body(data, cte) if cte in ("base64", "quoted-printable") else data
    if ctype.startswith("text/") and cte != "base64":
        new, new_cte = encode_qp(decoded), b"quoted-printable"
    else:
        new, new_cte = encode_base64(decoded), b"base64"
    if data.endswith(CRLF) and not new.endswith(CRLF):
        new += CRLF
    return [(start, end, new)], new_cte


def _cut(buf: bytes, start: int, end: int) -> list[Edit]:
    """Lines of a preamble or epilogue (never shown) cut at 998 octets."""
    if not too_long(buf, start, end):
        return []
    lines = buf[start:end].split(CRLF)
    return [(start, end, CRLF.join(line[:LIMIT] for line in lines))]
