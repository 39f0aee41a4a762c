"""Address headers parsed before display names are decoded (email.headerregistry semantics); unstructured text.

Reads: nothing (pure functions over one header value). Errors: none raised; malformed, oversized or
pathological input degrades to "absent" (no mailbox) with a defect named in `AddressList.defects`.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from email import _header_value_parser as hvp  # the parser behind email.headerregistry
from email import errors
from typing import Final

from relay.message.mime import lookup_codec

# The stdlib address parser is quadratic on some inputs (100 k double quotes take minutes); a real
# From, even with a long encoded display name, is a few hundred characters. 2 048 keeps the worst
# case to tens of milliseconds on the event loop.
MAX_ADDRESS_VALUE = 2048
MAX_UNSTRUCTURED_VALUE = 16384


@dataclass(frozen=True, slots=True)
class Mailbox:
    display_name: str  # RFC 2047 decoded, "" when absent
    addr_spec: str  # local@domain, lower-cased
    comments: tuple[str, ...] = ()  # decoded; some clients show a comment where the name goes

    @property
    def domain(self) -> str:
        return self.addr_spec.rpartition("@")[2]

    @property
    def shown_name(self) -> str:
        """Everything a mail client may show next to the address: display name and comments."""
        return " ".join(x for x in (self.display_name, *self.comments) if x)


@dataclass(frozen=True, slots=True)
class AddressList:
    mailboxes: tuple[Mailbox, ...] = ()  # every readable mailbox, group members included, in order
    groups: int = 0  # how many `name: …;` groups the value uses
    invalid: int = 0  # mailboxes that could not be read (no local part or domain, junk, parser failure)
    defects: tuple[str, ...] = ()  # the parser's defect class names, and ours ("TooLong", "ParserFailed")


def parse_address_list(raw_value: str) -> AddressList:
    """Parse the RAW (undecoded) value: an encoded word is an atom there and can never add an
    address, a quote, a comma or a group (RFC 2047 §5); each display name is decoded afterwards."""
    if len(raw_value) > MAX_ADDRESS_VALUE:
        return AddressList(invalid=1, defects=("TooLong",))
    try:
        tree, _rest = hvp.get_address_list(raw_value)
        return _read(tree)
    except Exception:  # the parser raises IndexError, RecursionError, HeaderParseError … on junk
        return AddressList(invalid=1, defects=("ParserFailed",))


def _read(tree: hvp.AddressList) -> AddressList:
    mailboxes: list[Mailbox] = []
    invalid = tolerated = 0
    for mb in tree.all_mailboxes:
        in_name = len(_invalid(*(t for t in _name_addr(mb) if t.token_type == "display-name")))
        if not mb.local_part or not mb.domain or len(_invalid(mb)) != in_name:
            invalid += 1
            continue
        # A broken display name is only text (the structure around it was parsed from the raw value):
        # QQ Mail and Foxmail put encoded words inside quotes, which the stdlib flags but decodes.
        tolerated += in_name
        comments = tuple(c for c in (decode_unstructured(str(x)).strip() for x in mb.comments) if c)
        mailboxes.append(Mailbox(_text(mb.display_name or "").strip(), _text(mb.addr_spec).strip().lower(), comments))
    if not invalid and len(_invalid(tree)) > tolerated:
        invalid = 1  # junk between or after the mailboxes: what a client shows is anyone's guess
    groups = sum(1 for a in tree.addresses if len(a) and a[0].token_type == "group")
    defects = tuple(type(d).__name__ for d in tree.all_defects)
    return AddressList(tuple(mailboxes), groups, invalid, defects)


def _name_addr(mb: hvp.TokenList) -> list[hvp.TokenList | hvp.Terminal]:
    first = mb[0] if len(mb) else None
    return list(first) if isinstance(first, hvp.TokenList) and first.token_type == "name-addr" else []


def _invalid(*tokens: hvp.TokenList | hvp.Terminal) -> list[errors.MessageDefect]:
    return [d for t in tokens for d in t.all_defects if isinstance(d, errors.InvalidHeaderDefect)]


def decode_unstructured(raw_value: str) -> str:
    """RFC 2047 decoding of an unstructured value (Subject, Thread-Topic, a comment); an unknown
    charset or broken encoded word is decoded as best it can be, never an exception."""
    if len(raw_value) > MAX_UNSTRUCTURED_VALUE:
        return raw_value
    try:
        return _text(str(hvp.get_unstructured(raw_value)))
    except Exception:  # same zoo as above; the raw text is what a reader would see
        return _text(raw_value)


def _text(value: str) -> str:
    """The parser hands undecodable bytes back as lone surrogates, which no store, log or encoder
    accepts: decode them as UTF-8 where they form it, U+FFFD where they do not."""
    if value.isascii():
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:  # a surrogate outside the escape range
        return value.encode("utf-8", "replace").decode("utf-8")


# NFKC folds the look-alikes a reader takes for the real thing: fullwidth ＠ and ．, small ﹫.
_ADDRESS_LIKE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def display_addresses(text: str) -> tuple[str, ...]:
    """Address-like strings a reader would see in `text`, lower-cased, after NFKC folding and with
    invisible format characters (zero-width space, bidi marks) removed."""
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return tuple(dict.fromkeys(m.group(0).strip(".").lower() for m in _ADDRESS_LIKE.finditer(folded)))


# ---- RFC 2047 in any header value (the tolerant reading the rewriter and the views share) ----

ENCODED_WORD: Final = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_EW_GAP_RE: Final = re.compile(
    r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)[ \t\r\n]+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)"
)


def raw_to_str(value: bytes, fallback: str | None = None) -> str:
    """Header bytes as text: ASCII, else UTF-8, else the body's charset, else Windows-1252."""
    if value.isascii():
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = lookup_codec(fallback) if fallback else None
    if codec:
        try:
            return value.decode(codec)
        except UnicodeDecodeError:
            pass
    return value.decode("cp1252", "replace")


def decode_word(m: re.Match[str]) -> str:
    charset, enc, payload = m.group(1), m.group(2).lower(), m.group(3)
    try:
        if enc == "b":
            data = base64.b64decode(payload + "=" * (-len(payload) % 4))
        else:
            data = binascii.a2b_qp(payload.replace("_", " ").encode("ascii", "replace"), header=False)
    except (binascii.Error, ValueError):
        return m.group(0)
    codec = lookup_codec(charset) or "utf-8"
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode(codec, "replace")


def decode_words(text: str) -> str:
    """RFC 2047 decoded, unfolded text (whitespace between adjacent encoded words dropped)."""
    text = text.replace("\r\n", "")
    if "=?" not in text:
        return text
    return ENCODED_WORD.sub(decode_word, _EW_GAP_RE.sub(r"\1", text))
