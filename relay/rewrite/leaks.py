"""Safety net: where do real addresses still appear in a (rewritten) message?

Job: walk every header (raw, RFC 2047-decoded and RFC 2231/percent-decoded) and every leaf
(transfer-decoded; text also charset-decoded and HTML-unescaped; attachments as bytes), plus
the raw message as a whole, and describe each place a given address is found.
Config read: none (pure). Errors raised: none.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Final

from relay.message.contacts import AddressFinder
from relay.rewrite.addresses import matcher_for
from relay.rewrite.body import IDENTITY, NESTED_MESSAGE, TEXTLIKE, TEXTLIKE_APPLICATION, content_type
from relay.rewrite.headers import decode_words, raw_to_str
from relay.rewrite.mime import (
    MAX_DEPTH,
    Field,
    cte_of,
    decode_body,
    decode_text,
    normalize_eol,
    parse_headers,
    split_multipart,
)

_PERCENT_RE: Final = re.compile(r"%([0-9A-Fa-f]{2})")


def find_leaks(message: bytes, addresses: Iterable[str]) -> list[str]:
    """Descriptions of every place one of ``addresses`` still appears (empty: none)."""
    matcher = matcher_for({a.lower(): a for a in addresses if a and "@" in a})
    if matcher.empty:
        return []
    buf = normalize_eol(message)
    found: list[str] = []
    fields, body = parse_headers(buf, 0, len(buf))
    if buf.startswith(b"From "):
        line = buf[: buf.find(b"\r\n")]
        if matcher.search_bytes(line):
            found.append("mbox From_ line")
    _Scan(matcher, found).entity(buf, fields, body, len(buf), 0, "message")
    if not found and matcher.search_bytes(buf):
        found.append("raw message bytes (outside any decoded part)")
    return found


class _Scan:
    def __init__(self, matcher: AddressFinder, found: list[str]) -> None:
        self.m = matcher
        self.found = found

    def headers(self, fields: list[Field], where: str) -> None:
        for f in fields:
            text = raw_to_str(f.value)
            views = [text, decode_words(text)]
            if "%" in text:
                views.append(_PERCENT_RE.sub(lambda mo: chr(int(mo.group(1), 16)), text))
            if any(self.m.search(v) for v in views):
                self.found.append(f"header {f.label.decode('ascii', 'replace')} of {where}")

    def entity(self, buf: bytes, fields: list[Field], start: int, end: int, depth: int, where: str) -> None:
        self.headers(fields, where)
        if depth > MAX_DEPTH:
            self.bytes_(buf[start:end], f"deep body of {where}")
            return
        ctype, params = content_type(fields)
        cte = cte_of(fields)
        if ctype.startswith("multipart/") and params.get("boundary"):
            inner = buf
            s, e = start, end
            if cte in ("base64", "quoted-printable"):
                inner = normalize_eol(decode_body(buf[start:end], cte))
                s, e = 0, len(inner)
            mp = split_multipart(inner, s, e, params["boundary"].strip().encode("utf-8", "replace"))
            if mp is None:
                self.bytes_(inner[s:e], f"body of {where}")
                return
            self.bytes_(inner[mp.preamble[0] : mp.preamble[1]], f"preamble of {where}")
            self.bytes_(inner[mp.epilogue[0] : mp.epilogue[1]], f"epilogue of {where}")
            for n, (ps, pe) in enumerate(mp.parts, 1):
                pfields, pbody = parse_headers(inner, ps, pe)
                self.entity(inner, pfields, pbody, pe, depth + 1, f"{where}.{n}")
            return
        if ctype in NESTED_MESSAGE:
            inner = buf
            s, e = start, end
            if cte not in IDENTITY and cte in ("base64", "quoted-printable"):
                inner = normalize_eol(decode_body(buf[start:end], cte))
                s, e = 0, len(inner)
            ifields, ibody = parse_headers(inner, s, e)
            self.entity(inner, ifields, ibody, e, depth + 1, f"{where} (forwarded message)")
            return
        data = decode_body(buf, cte, start, end)
        if ctype.startswith(("text/", "message/")) or ctype in TEXTLIKE or ctype in TEXTLIKE_APPLICATION:
            text, _ = decode_text(data, params.get("charset"))
            hit = self.m.search(text)
            if not hit and "&" in text:
                hit = self.m.search(html.unescape(text))
            if hit or self.m.search_bytes(data):
                self.found.append(f"body of {where} ({ctype})")
            return
        self.bytes_(data, f"attachment {where} ({ctype})")
        if cte == "base64":
            self.bytes_(buf, f"text after the base64 data of {where}", start, end)

    def bytes_(self, data: bytes, where: str, start: int = 0, end: int | None = None) -> None:
        end = len(data) if end is None else end
        if end > start and self.m.search_bytes(data, start, end):
            self.found.append(where)
