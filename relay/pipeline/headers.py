"""Read the few header facts the early stages need, from raw bytes, without trusting the input.

The header block is read by the message model's one header parser (relay.message.mime: a line
that is neither a field nor a continuation ends it, as mail clients read it). From is parsed by
relay.message.headers from its RAW value, display names decoded afterwards: decoding first let an
encoded word smuggle a quote, a bracket or a comma into the address list. Malformed values degrade
to "absent", never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.message.headers import decode_unstructured, parse_address_list
from relay.message.mime import normalize_eol, parse_headers, unfold

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def fields(raw: bytes) -> list[tuple[str, str]]:
    """(lower-cased name, unfolded value) for every header field, in order; 8-bit bytes as UTF-8."""
    m = _HEADER_END.search(raw)  # (only the head is put in wire form: no copy of a large body)
    head = normalize_eol(raw[: m.end()] if m else raw)
    parsed, _ = parse_headers(head, 0, len(head))
    return [(f.name, unfold(f.value).strip().decode("utf-8", "replace")) for f in parsed]


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    from_addresses: tuple[str, ...]
    subject: str
    message_id: str | None
    count: dict[str, int]
    quoted_ids: tuple[str, ...] = ()  # msg-ids of In-Reply-To and References, in order
    # One per from_addresses entry: the decoded display name and comments a reader sees beside it.
    from_display_names: tuple[str, ...] = ()
    from_groups: int = 0  # `name: …;` group syntax in From (RFC 5322 §3.4), never from a real client
    from_invalid: int = 0  # From fields that could not be read; such a field gives no address at all


_MSGID = re.compile(r"<[^<>\s]+>")


def facts(raw: bytes) -> HeaderFacts:
    all_fields = fields(raw)
    count: dict[str, int] = {}
    for name, _ in all_fields:
        count[name] = count.get(name, 0) + 1
    froms: list[str] = []
    names: list[str] = []
    groups = invalid = 0
    subject = ""
    message_id = None
    quoted: list[str] = []
    for name, value in all_fields:
        if name == "from":
            parsed = parse_address_list(value)
            groups += parsed.groups
            if parsed.invalid:  # half a From is no From: the readable rest must not pass for all of it
                invalid += 1
                continue
            froms += [mb.addr_spec for mb in parsed.mailboxes]
            names += [mb.shown_name for mb in parsed.mailboxes]
        elif name == "subject" and not subject:
            subject = decode_unstructured(value)
        elif name == "message-id" and message_id is None:
            m = _MSGID.search(value)
            message_id = m.group(0) if m else None
        elif name in ("in-reply-to", "references"):
            quoted += _MSGID.findall(value)
    return HeaderFacts(tuple(froms), subject, message_id, count, tuple(dict.fromkeys(quoted)),
                       tuple(names), groups, invalid)
