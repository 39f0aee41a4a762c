"""Operators' decisions as training data: the categories a hold was for, and a decided message as
one line of the training corpus (data/policy/corpus.jsonl's format).

Pure: no store, no I/O (relay/cli/cmd_policy.py reads the labels and contents, relay/store/labels.py
keeps them). A corpus line's text is the message's visible text as the policy judged it — the
subject, then each text part read through the message model (HTML as relay.message.html reads it;
of a multipart/alternative only one version; attachments and raw headers never) — with every
address of the two parties, and every other e-mail address, phone number and messenger ID, replaced
by a placeholder. Never retrains: `python3 -m relay.policy.train` does that, when an operator runs it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any, Final

from relay.message.contacts import find_contacts, finder_of
from relay.message.html import HtmlTooComplex, read_html
from relay.message.parts import Part, decode_body, decode_text, header_values, parse

#: the corpus's categories, in its order
CATEGORIES: Final = ("marketing", "review", "contact")
#: what replaces a contact detail in an exported text, by kind (relay.message.phones.Contact.kind)
PLACEHOLDERS: Final = {"email": "[email]", "phone": "[phone]", "messenger": "[messenger]"}


def category_of(category: str, rule: str) -> str | None:
    """The corpus category of a finding: the first dotted word of its rule id that is one
    (`model.marketing`, `phrases.marketing.coupon`, `marketing.coupon.en`, `contact.phone`), else its
    category when that is one; None for the others (links, tracking, attachments)."""
    for word in rule.split("."):
        if word in CATEGORIES:
            return word
    return category if category in CATEGORIES else None


def ordered(categories: Iterable[str]) -> list[str]:
    found = set(categories)
    return [c for c in CATEGORIES if c in found]


def hold_categories(findings: Iterable[tuple[str, str, str]]) -> list[str]:
    """The corpus categories of the findings (category, rule, action) that held a message."""
    return ordered(c for category, rule, action in findings if action == "hold"
                   for c in [category_of(category, rule)] if c is not None)


def parse_categories(text: str) -> list[str]:
    """`marketing,contact` → the categories in corpus order; ValueError naming a bad one.
    `none` (or an empty list) means: no category was a violation."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["none"]:
        return []
    bad = [w for w in words if w not in CATEGORIES]
    if bad or not words:
        raise ValueError(f"expected CATEGORY[,CATEGORY] of {', '.join(CATEGORIES)} (or none), got {text!r}")
    return ordered(words)


def _crlf(raw: bytes) -> bytes:
    # the model's parser reads wire form; a store holds what the SMTP server took (CRLF already)
    return raw if b"\n" not in raw.replace(b"\r\n", b"") else re.sub(rb"\r?\n|\r(?!\n)", b"\r\n", raw)


def _is_text(part: Part) -> bool:
    ctype = part.content_type
    return not part.is_attachment and (ctype.startswith(("text/", "multipart/")) or ctype in (
        "message/rfc822", "message/delivery-status"))


def _texts(raw: bytes, part: Part) -> Iterable[str]:
    if part.children:
        children = part.children
        if part.content_type == "multipart/alternative":
            # one version of the same text, as a client shows one: the plain one when there is one
            readable = [c for c in children if _is_text(c) or c.children]
            plain = [c for c in readable if c.content_type == "text/plain"]
            children = (plain or readable)[:1]
        for child in children:
            yield from _texts(raw, child)
        return
    if not _is_text(part):
        return
    text, _codec = decode_text(decode_body(raw, part), part.charset)
    if part.content_type == "text/html":
        try:
            text = read_html(text).text
        except HtmlTooComplex:
            return
    yield text


def visible_text(raw: bytes) -> str:
    """The subject and the text parts of a message as a reader sees them, one after the other."""
    raw = _crlf(raw)
    root = parse(raw)
    pieces = [v for _s, _e, v in header_values(raw, root, "subject")[:1]]
    pieces += list(_texts(raw, root))
    return "\n".join(p.strip() for p in pieces if p.strip())


def masked(text: str, party_addresses: Collection[str]) -> str:
    """`text` with every form of the parties' addresses (the rewriter's finder) and every other
    contact detail (find_contacts: e-mail addresses, phone numbers, messenger IDs) replaced."""
    own = finder_of(party_addresses)
    text = _replace(text, [(f.start, f.end, PLACEHOLDERS["email"]) for f in own.find(text)])
    return _replace(text, [(c.start, c.end, PLACEHOLDERS.get(c.kind, "[contact]")) for c in find_contacts(text)])


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, new in sorted(spans):
        if end <= pos:
            continue
        if start < pos:  # overlaps the one before: its placeholder covers it
            pos = end
            continue
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def detect_lang(text: str) -> str:
    """The corpus's lang, by script: kana → ja, hangul → ko, han without kana → zh, else en."""
    kana = hangul = han = 0
    for ch in text:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9D:
            kana += 1
        elif 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            hangul += 1
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            han += 1
    if hangul > kana:
        return "ko"
    if kana:
        return "ja"
    if han:
        return "zh"
    return "en"


def corpus_line(message_id: int, decision: str, categories: Collection[str], direction: str | None,
                raw: bytes, party_addresses: Collection[str]) -> dict[str, Any]:
    """One training example: dropped → its confirmed categories; released → none."""
    text = masked(visible_text(raw), party_addresses)
    return {"id": f"op-{message_id}", "lang": detect_lang(text), "text": text,
            "labels": ordered(categories) if decision == "dropped" else [],
            "kind": f"operator.{decision}",
            "direction": "buyer" if (direction or "").startswith("buyer") else "seller"}
