"""Every message of the shared corpus through ``rewrite``: no crash, no leak, sane output."""

from __future__ import annotations

import email
import email.header
import email.policy
import re

import pytest

from relay.rewrite import RewritePlan, find_leaks, rewrite
from tests.dkimtools import CORPUS, corpus_manifest

# Not RFC 5322 messages at all (MANIFEST.md / manifest.jsonl).
_NOT_MESSAGES = {"SpamScope/mail-parser/tests/mails/mail_outlook_1"}

# Real addresses that survive only inside attachments we must not alter (their bytes are the
# evidence and a signature/certificate cannot be edited): find_leaks reports them and the
# pipeline holds such a message. Keyed by corpus file, value = allowed leak descriptions.
# The rewriter never edits an attachment; one that names the sender is the egress stage's to strip
# (bill.txt, application/octet-stream, holds the sender's address in its text).
_KNOWN_ATTACHMENT_LEAKS: dict[str, set[str]] = {
    "MailCore/mailcore2/unittest/data/summary/input/3424-encoding.eml": {"attachment message.3 (text)"},
}

_ADDR = re.compile(rb"[A-Za-z0-9._%+\-=']+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def _corpus_files() -> list[str]:
    names: list[str] = []
    for row in corpus_manifest():
        if row["file"] in _NOT_MESSAGES or "not-a-message" in row.get("tags", []):
            continue
        names.append(row["file"])
    return sorted(names)


def _decode_header(text: str) -> list[tuple[bytes | str, str | None]]:
    try:
        return email.header.decode_header(text)
    except Exception:
        return [(text, None)]


def _as_text(part: bytes | str, charset: str | None) -> str:
    if isinstance(part, str):
        return part
    try:
        return part.decode(charset or "latin-1", "replace")
    except LookupError:
        return part.decode("latin-1")


def _header_addresses(raw: bytes) -> set[str]:
    """Addresses in the original From/To/Cc/Sender/Reply-To (loose: every addr-spec)."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    head = text.split(b"\n\n", 1)[0]
    out: set[str] = set()
    current = b""
    for line in [*head.split(b"\n"), b"X:"]:
        if line[:1] in (b" ", b"\t"):
            current += line
            continue
        name = current.split(b":", 1)[0].strip().lower()
        if name in (b"from", b"to", b"cc", b"sender", b"reply-to"):
            value = current.split(b":", 1)[1] if b":" in current else b""
            decoded = "".join(_as_text(p, cs) for p, cs in _decode_header(value.decode("latin-1")))
            for m in _ADDR.finditer(decoded.encode("utf-8", "replace")):
                out.add(m.group(0).decode("utf-8", "replace").lower().strip(".'="))
        current = line
    return {a for a in out if "@" in a}


@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_message(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    addresses = _header_addresses(raw)
    address_map = {a: f"alias{i}@relay.example" for i, a in enumerate(sorted(addresses))}
    plan = RewritePlan(
        from_addr="sellerx7@relay.example",
        from_name="山田商店 (Yamada)",
        to_addr="buyer@example.net",
        to_name="Buyer",
        message_id="<m1@relay.example>",
        address_map=address_map,
        alias_domain="relay.example",
        translate_id=lambda _i: None,
        date_if_missing="Mon, 3 Mar 2025 10:00:00 +0000",
    )
    out = rewrite(raw, plan).message

    assert out.endswith(b"\r\n")
    assert out.count(b"\n") == out.count(b"\r\n") == out.count(b"\r")
    head = out.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    assert sum(1 for line in lines if line.lower().startswith(b"from:")) == 1
    assert sum(1 for line in lines if line.lower().startswith(b"date:")) == 1
    assert head.isascii()
    assert all(len(line) <= 998 for line in lines)

    leaks = set(find_leaks(out, addresses))
    assert leaks <= _KNOWN_ATTACHMENT_LEAKS.get(name, set()), leaks

    msg = email.message_from_bytes(out, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "sellerx7@relay.example"
    assert msg["From"].addresses[0].display_name == "山田商店 (Yamada)"
    assert [a.addr_spec for a in msg["To"].addresses] == ["buyer@example.net"]
    assert msg["Message-ID"] == "<m1@relay.example>"
