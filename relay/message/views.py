"""Every place a reader (or their mail client) can see text in one message, for the egress check.

Job: ``places(raw)`` parses a message once (the span parser in relay.message.mime) and yields
``Place``s: every header field of every entity, top level, MIME part or forwarded message,
RFC 2047, RFC 2231 and percent-decoded; every text part decoded (format=flowed joined); HTML
as a browser reads it (displayed text, hidden text, URLs, attribute values: relay.message.html);
and every attachment's readable texts, metadata and barcodes (relay.message.attachments).
Config read: none (pure). Errors raised: none (a part that cannot be read is a Place whose
``unreadable`` flag tells the caller to fail closed).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from relay.message.attachments import readable_texts
from relay.message.headers import decode_words, raw_to_str
from relay.message.html import HtmlTooComplex, read_html, text_superset
from relay.message.mime import (
    MAX_DEPTH,
    NESTED_MESSAGE,
    TEXTLIKE,
    TEXTLIKE_APPLICATION,
    Field,
    boundary_of,
    content_type,
    cte_of,
    decode_body,
    decode_text,
    normalize_eol,
    parse_headers,
    parse_params,
    split_multipart,
)
from relay.message.parts import filename_of

#: Header fields that identify a forwarded message's sender or route; none may leave.
ROUTE_HEADERS: Final = frozenset({
    "received", "return-path", "reply-to", "sender", "x-originating-ip", "x-sender", "x-original-to",
    "delivered-to", "x-original-from", "x-google-original-from", "errors-to", "dkim-signature",
    "authentication-results", "x-forwarded-for", "x-forwarded-to", "resent-from", "resent-sender",
    "x-envelope-from", "envelope-to", "return-receipt-to", "disposition-notification-to",
})
_FLOWED_SOFT: Final = re.compile(r" \r?\n")


@dataclass(frozen=True, slots=True)
class Place:
    where: str  # "header Subject of message", "text of part 2 (text/html)" … (never content)
    kind: str  # "header", "text", "html", "attachment", "route"
    text: str
    #: the entity's byte span [start, end) in the parsed buffer, when it can be replaced by a
    #: notice (an attachment at any depth of non-encoded multiparts); None otherwise
    span: tuple[int, int] | None = None
    filename: str | None = None
    unreadable: bool = False


#: (a text) -> may a finding be in it? Lets the costly views (HTML as a browser reads it) be
#: skipped when a cheap superset of their text cannot hold one.
Might = Callable[[str], bool]


def places(raw: bytes, might: Might | None = None) -> Iterator[Place]:
    buf = normalize_eol(raw)
    fields, body = parse_headers(buf, 0, len(buf))
    yield from _entity(buf, fields, 0, body, len(buf), 0, "message", replaceable=False, forwarded=False,
                       might=might)


def _headers(fields: list[Field], where: str, forwarded: bool) -> Iterator[Place]:
    for f in fields:
        label = f.label.decode("ascii", "replace").strip()
        text = raw_to_str(f.value)
        views = {text, decode_words(text)}
        if f.name in ("content-type", "content-disposition"):
            _, params = parse_params(f.value)
            views.update(params.values())
            views.update(decode_words(v) for v in params.values())
        for v in list(views):
            if "%" in v:
                views.add(urllib.parse.unquote(v))
        yield Place(f"header {label} of {where}", "header", "\n".join(sorted(views)))
        if forwarded and f.name in ROUTE_HEADERS:
            yield Place(f"header {label} of {where}", "route", "")


def _entity(buf: bytes, fields: list[Field], start: int, body: int, end: int, depth: int, where: str,
            *, replaceable: bool, forwarded: bool, might: Might | None) -> Iterator[Place]:
    yield from _headers(fields, where, forwarded)
    if depth > MAX_DEPTH:
        yield Place(f"body of {where} (nested too deep)", "text", _as_text(buf[body:end]), unreadable=True)
        return
    ctype, params = content_type(fields)
    cte = cte_of(fields)
    boundary = boundary_of(fields) if ctype.startswith("multipart/") else None
    if boundary:
        inner, s, e, encoded = buf, body, end, False
        if cte in ("base64", "quoted-printable"):
            inner, encoded = normalize_eol(decode_body(buf[body:end], cte)), True
            s, e = 0, len(inner)
        mp = split_multipart(inner, s, e, boundary)
        if mp is None:
            yield Place(f"body of {where}", "text", _as_text(inner[s:e]))
            return
        yield Place(f"preamble of {where}", "text", _as_text(inner[mp.preamble[0] : mp.preamble[1]]))
        yield Place(f"epilogue of {where}", "text", _as_text(inner[mp.epilogue[0] : mp.epilogue[1]]))
        for n, (ps, pe) in enumerate(mp.parts, 1):
            pfields, pbody = parse_headers(inner, ps, pe)
            yield from _entity(inner, pfields, ps, pbody, pe, depth + 1, f"{where}.{n}",
                               replaceable=not encoded and not forwarded, forwarded=forwarded, might=might)
        return
    if ctype in NESTED_MESSAGE:
        inner, s, e = buf, body, end
        if cte in ("base64", "quoted-printable"):
            inner = normalize_eol(decode_body(buf[body:end], cte))
            s, e = 0, len(inner)
        ifields, ibody = parse_headers(inner, s, e)
        yield from _entity(inner, ifields, s, ibody, e, depth + 1, f"{where} (forwarded message)",
                           replaceable=False, forwarded=True, might=might)
        return
    data = decode_body(buf, cte, body, end)
    filename = filename_of(fields)
    span = (start, end) if replaceable and depth > 0 else None
    textual = ctype.startswith(("text/", "message/")) or ctype in TEXTLIKE or ctype in TEXTLIKE_APPLICATION
    if textual and ctype not in ("text/vcard", "text/x-vcard", "text/calendar", "text/directory"):
        text, _ = decode_text(data, params.get("charset"))
        if params.get("format", "").lower() == "flowed":
            text = text + "\n" + _FLOWED_SOFT.sub("", text)
        if ctype == "text/html":
            superset = text_superset(text)
            if might is not None and not might(superset):
                yield Place(f"body of {where} (text/html)", "html", superset)
                return
            try:
                view = read_html(text)
            except HtmlTooComplex:
                yield Place(f"body of {where} (text/html)", "html", text, unreadable=True)
                return
            joined = "\n".join((view.text, view.hidden_text, *view.urls, *view.attributes, text))
            yield Place(f"body of {where} (text/html)", "html", joined)
        else:
            yield Place(f"body of {where} ({ctype})", "text", text)
        if cte == "base64":  # text after the base64 data (a list footer) is shown by some clients
            yield Place(f"text after the data of {where}", "text", _as_text(_after_base64(buf[body:end])))
        return
    # (what a reader's software can see in the bytes: its text, metadata, barcodes, and for a kind
    # it cannot read the printable strings, marked unreadable so that it is stripped)
    for what, text in readable_texts(data, ctype, filename):
        unreadable = what.endswith((".truncated", ".unreadable", ".encrypted"))
        yield Place(f"attachment {where} ({what})", "attachment", text, span, filename, unreadable)


def _as_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape") if data else ""


def _after_base64(body: bytes) -> bytes:
    """The bytes after a base64 body's last line of base64 alphabet (list footers)."""
    lines = body.split(b"\r\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() and re.fullmatch(rb"[A-Za-z0-9+/=\s]*", lines[i]):
            return b"\r\n".join(lines[i + 1 :])
    return body
