"""Header text: RFC 2047 decode/encode, safe folding, address replacement, top-level policy.

Job: turn the sender's header block into the one the recipient gets (DESIGN.md "Privacy
rules for rewriting"). We use an *allowlist*: a header not listed in ``_KEEP`` is dropped.
Senders and their software add new identifying headers all the time (X-Apple-*, X-Yahoo-*,
vendor tracking ids, Autocrypt keys …); a denylist would leak each new one until someone
noticed, an allowlist only loses a harmless header until someone adds it.
Config read: none (pure). Errors raised: none.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Final

from relay.message.contacts import AddressFinder
from relay.message.headers import ENCODED_WORD, decode_word, decode_words, parse_address_list, raw_to_str
from relay.message.mime import CRLF, Field, unfold
from relay.rewrite.addresses import clean_name, quote_name, unique
from relay.rewrite.plan import RewritePlan, RewriteResult

# Headers copied from the sender (after address replacement and safe re-folding). Everything
# else is dropped. From/To/Cc/Date/Message-ID/In-Reply-To/References are rebuilt, not copied.
_KEEP: Final = frozenset(
    {
        "subject",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-language",
        "content-id",
        "content-description",
        "content-location",
        "content-class",
        "thread-index",
        "thread-topic",
        "importance",
        "priority",
        "x-priority",
        "x-msmail-priority",
        "sensitivity",
        "auto-submitted",
        "precedence",
        "accept-language",
        "keywords",
        "comments",
        "x-auto-response-suppress",
    }
)
_USER_AGENT: Final = frozenset({"user-agent", "x-mailer", "x-newsreader"})
# Only the first of these survives: two of them make a message ambiguous between clients.
_SINGLETON: Final = frozenset(
    {"subject", "mime-version", "content-type", "content-transfer-encoding", "content-disposition"}
)
_UNSTRUCTURED: Final = frozenset(
    {"subject", "comments", "keywords", "content-description", "thread-topic", "user-agent", "x-mailer"}
)

_MSGID_RE: Final = re.compile(r"<([^<>]*)>")
_CTRL_BYTES_RE: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_FOLD_RE: Final = re.compile(rb"\r\n[ \t]*(?=\r\n|$)")
_8BIT_TOKEN_RE: Final = re.compile(r'"[^"]*[^\x00-\x7f][^"]*"|[^\s;=,]*[^\x00-\x7f][^\s;=,]*')


# ---- RFC 2047 ------------------------------------------------------------------------------


def encode_words(text: str) -> list[str]:
    """``text`` as UTF-8 B encoded words of at most 75 characters each."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8", "surrogatepass"))
        if size + n > 45 and chunk:
            words.append(_word("".join(chunk)))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk or not words:
        words.append(_word("".join(chunk)))
    return words


def _word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8", "replace")).decode("ascii") + "?="


def fold(label: str, text: str) -> bytes:
    """``label: text`` folded at whitespace into lines of ≤ 78 octets where possible.

    ``text`` must be ASCII and free of control characters. Tokens longer than a line stay
    whole (never broken inside a token); the 998 limit is kept by the caller's choice of
    encoding (encoded words are short).
    """
    tokens = text.split()
    line = label + ":"
    lines: list[str] = []
    for tok in tokens:
        if len(line) + 1 + len(tok) > 78 and line.strip() and line != label + ":":
            lines.append(line)
            line = " " + tok
        else:
            line += " " + tok
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


def encode_unstructured(label: str, text: str) -> bytes:
    """An unstructured header: plain and folded when ASCII, else encoded words."""
    text = clean_name(text)
    if text.isascii() and "=?" not in text and all(len(t) < 900 for t in text.split()):
        return fold(label, text)
    return fold(label, " ".join(encode_words(text)))


def _encode_8bit_structured(text: str) -> str:
    """Non-ASCII tokens/quoted strings of a structured value as encoded words."""

    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok.startswith('"') and tok.endswith('"') and len(tok) > 1:
            return '"' + " ".join(encode_words(tok[1:-1])) + '"'
        return " ".join(encode_words(tok))

    return _8BIT_TOKEN_RE.sub(repl, text)


# ---- copying one header safely -------------------------------------------------------------


def sub_value(value: bytes, matcher: AddressFinder, fallback: str | None) -> tuple[str, bool]:
    """(value text, changed): registered addresses replaced in plain text and in encoded words.

    The text keeps its folds. When an address hides across several encoded words the whole
    value is decoded, replaced and returned unfolded (the caller re-encodes it).
    """
    text = raw_to_str(value, fallback)
    if matcher.empty or (not matcher.might_contain(text) and "=?" not in text):
        return text, False
    full = decode_words(text)
    if not matcher.search(full) and not matcher.search(text):
        return text, False
    new, _ = matcher.sub(text)

    def per_word(m: re.Match[str]) -> str:
        decoded = decode_word(m)
        replaced, n = matcher.sub(decoded)
        return " ".join(encode_words(replaced)) if n else m.group(0)

    new = ENCODED_WORD.sub(per_word, new)
    if matcher.search(decode_words(new)):
        new = matcher.sub(decode_words(new))[0]
    return new, True


def copy_field(
    label: str, name: str, value: bytes, matcher: AddressFinder, fallback: str | None
) -> tuple[bytes, bool]:
    """One kept top-level field as safe ASCII bytes; (bytes, addresses were replaced)."""
    text, changed = sub_value(value, matcher, fallback)
    clean = _CTRL_BYTES_RE.sub(b"", value)
    clean = _BLANK_FOLD_RE.sub(b"", clean)
    if not changed and clean.isascii() and all(len(line) <= 990 - len(label) for line in clean.split(CRLF)):
        if not clean.startswith((b" ", b"\t")):
            clean = b" " + clean
        return label.encode("ascii") + b":" + clean + CRLF, False
    if changed:
        flat = text.replace("\r\n", "")
    else:
        flat = raw_to_str(unfold(clean), fallback)
    flat = clean_name(flat)
    if name in _UNSTRUCTURED:
        if "=?" in flat and flat.isascii():
            # already encoded words (ours or the sender's): keep them, refold
            return fold(label, flat), changed
        return encode_unstructured(label, decode_words(flat) if not flat.isascii() else flat), changed
    if not flat.isascii():
        flat = _encode_8bit_structured(flat)
    return fold(label, flat), changed


# ---- the top-level header block ------------------------------------------------------------


def msg_ids(value: bytes) -> list[str]:
    text = unfold(value).decode("latin-1")
    ids = ["<" + "".join(m.group(1).split()) + ">" for m in _MSGID_RE.finditer(text)]
    return [i for i in ids if len(i) > 2 and all(31 < ord(c) < 127 for c in i)]


def _id_list(ids: list[str], translate: Callable[[str], str | None]) -> list[str]:
    out: list[str] = []
    for i in ids:
        t = translate(i)
        if t:
            t = "".join(t.split())
            if t.startswith("<") and t.endswith(">") and t.isascii() and "\0" not in t and t not in out:
                out.append(t)
    return out


def build_headers(
    fields: list[Field],
    plan: RewritePlan,
    matcher: AddressFinder,
    fallback_charset: str | None,
    result: RewriteResult,
) -> list[bytes]:
    """The recipient's header block (each entry one whole field ending in CRLF).

    Order: extra headers, From, To, Cc, Date, Message-ID, In-Reply-To, References, then the
    kept headers in the sender's order.
    """
    out: list[bytes] = [fold(name, clean_name(value)) for name, value in plan.extra_headers]
    from_name, _ = matcher.sub(clean_name(plan.from_name))
    out.append(_mailbox_field("From", from_name, plan.from_addr.strip()))
    out.append(_mailbox_field("To", plan.to_name, plan.to_addr.strip()))

    keep = {a.lower() for a in plan.keep_aliases}
    domain = "@" + plan.alias_domain.lower()
    cc: list[str] = []
    date: Field | None = None
    kept: list[bytes] = []
    seen: set[str] = set()
    for f in fields:
        name = f.name
        if name in ("cc", "to"):
            # parsed before any encoded word is decoded: a decoded display name cannot add one
            for addr in (m.addr_spec for m in parse_address_list(raw_to_str(f.value)).mailboxes):
                low = addr.lower()
                if low.endswith(domain) and low in keep and low != plan.to_addr.lower():
                    cc.append(addr)
        elif name == "date":
            if date is None:
                date = f
        elif name == "message-id":
            if result.orig_message_id is None:
                ids = msg_ids(f.value)
                if ids:
                    result.orig_message_id = ids[0]
                else:
                    bare = "".join(unfold(f.value).decode("latin-1").split())
                    if "@" in bare and bare.isascii() and bare.isprintable():
                        result.orig_message_id = "<" + bare.strip("<>") + ">"
        elif name == "in-reply-to":
            result.in_reply_to.extend(msg_ids(f.value))
        elif name == "references":
            result.references.extend(msg_ids(f.value))
        elif name in _KEEP or (name in _USER_AGENT and not plan.strip_user_agent):
            if name in _SINGLETON:
                if name in seen:
                    continue
                seen.add(name)
            if name == "subject":
                subject = decode_words(raw_to_str(f.value, fallback_charset)).strip()
                result.subject = clean_name(subject)
            label = f.label.decode("ascii").strip()
            data, changed = copy_field(label, name, f.value, matcher, fallback_charset)
            result.headers_rewritten += changed
            kept.append(data)
    if cc:
        out.append(fold("Cc", ", ".join(unique(cc))))
    if date is not None and unfold(date.value).strip():
        out.append(copy_field("Date", "date", date.value, matcher, fallback_charset)[0])
    else:
        out.append(fold("Date", plan.date_value()))
    out.append(fold("Message-ID", plan.message_id.strip()))
    irt = _id_list(result.in_reply_to, plan.translate_id)
    if irt:
        out.append(fold("In-Reply-To", " ".join(irt)))
    refs = _id_list(result.references, plan.translate_id)
    if refs:
        out.append(fold("References", " ".join(refs)))
    out.extend(kept)
    return out


def _mailbox_field(label: str, name: str, addr: str) -> bytes:
    name = clean_name(name)
    if not name:
        return fold(label, addr)
    if name.isascii() and "=?" not in name:
        return fold(label, f"{quote_name(name)} <{addr}>")
    return fold(label, " ".join([*encode_words(name), f"<{addr}>"]))
