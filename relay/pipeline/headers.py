"""Read the few header facts the early stages need, from raw bytes, without trusting the input.

The stdlib raises odd exceptions on malformed headers (IndexError on a bad Message-ID,
LookupError on unknown charsets), so every access here is guarded and degrades to "absent".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import getaddresses

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$")


def header_block(raw: bytes) -> bytes:
    m = _HEADER_END.search(raw)
    return raw[: m.start()] if m else raw


def fields(raw: bytes) -> list[tuple[str, str]]:
    """(lower-cased name, unfolded value) for every header field, in order; 8-bit bytes as UTF-8."""
    out: list[tuple[str, str]] = []
    for line in header_block(raw).splitlines():
        if line[:1] in (b" ", b"\t") and out:
            name, value = out[-1]
            out[-1] = (name, value + " " + line.strip().decode("utf-8", "replace"))
            continue
        m = _FIELD.match(line)
        if m:
            out.append((m.group(1).decode("ascii").lower(), m.group(2).strip().decode("utf-8", "replace")))
    return out


def decode_words(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError, IndexError, TypeError):
        return value


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    from_addresses: tuple[str, ...]
    subject: str
    message_id: str | None
    count: dict[str, int]
    quoted_ids: tuple[str, ...] = ()  # msg-ids of In-Reply-To and References, in order


_MSGID = re.compile(r"<[^<>\s]+>")


def facts(raw: bytes) -> HeaderFacts:
    all_fields = fields(raw)
    count: dict[str, int] = {}
    for name, _ in all_fields:
        count[name] = count.get(name, 0) + 1
    froms: list[str] = []
    subject = ""
    message_id = None
    quoted: list[str] = []
    for name, value in all_fields:
        if name == "from":
            try:
                froms += [addr.strip().lower() for _, addr in getaddresses([decode_words(value)]) if addr.strip()]
            except (IndexError, ValueError, TypeError):
                continue
        elif name == "subject" and not subject:
            subject = decode_words(value)
        elif name == "message-id" and message_id is None:
            m = _MSGID.search(value)
            message_id = m.group(0) if m else None
        elif name in ("in-reply-to", "references"):
            quoted += _MSGID.findall(value)
    return HeaderFacts(tuple(froms), subject, message_id, count, tuple(dict.fromkeys(quoted)))
