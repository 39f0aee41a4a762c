"""Find and replace registered real addresses in text; build the address headers we write.

Job: an ``AddressMatcher`` finds whole addresses (any case, ``@`` also as the HTML entities
``&#64;`` / ``&#x40;`` / ``&commat;``) in ``str`` or ``bytes`` and swaps in the alias; small
helpers sanitise names/addresses and format mailboxes so no CR, LF or NUL ever reaches a
header we write. Config read: none (pure). Errors raised: ``ValueError`` for an address that
cannot be written safely (a bug in the caller's plan, not in the message).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

# What may stand right before a local part. A character from this class in front of a match
# means the match is the tail of a longer address (``xbob@example.com`` is not ``bob@...``).
# Deliberately narrower than RFC 5322 atext: ``= / ? & ' # { } | ^ ~ ` !`` are not in it, so
# ``mailto:?cc=bob@example.com`` and ``'bob@example.com'`` are still caught. Leaking a real
# address is worse than rewriting a rare third-party address such as ``o'bob@example.com``.
_LOCAL_BEFORE: Final = r"A-Za-z0-9._%+\-\u0080-\U0010ffff"
# What may follow a domain: more domain characters, or a dot that continues the domain.
_DOMAIN_AFTER: Final = r"(?![A-Za-z0-9\-\u0080-\U0010ffff]|\.[A-Za-z0-9\u0080-\U0010ffff])"
_AT_FORMS: Final = r"(?:@|&\#0*64;?|&\#[xX]0*40;?|&commat;)"

_AT_ENTITY_RE: Final = re.compile(r"&#0*64;?|&#x0*40;?|&commat;")

_BYTES_LOCAL_BEFORE: Final = rb"A-Za-z0-9._%+\-\x80-\xff"
_BYTES_DOMAIN_AFTER: Final = rb"(?![A-Za-z0-9\-\x80-\xff]|\.[A-Za-z0-9\x80-\xff])"
_BYTES_AT_FORMS: Final = rb"(?:@|&\#0*64;?|&\#[xX]0*40;?|&commat;)"

# Characters never allowed in a name or address we put into a header.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]+")
_ADDR_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f<>()\[\],;:\\\"]")

# A loose addr-spec finder for address headers (Cc, To) of possibly malformed input.
ADDR_SPEC_RE: Final = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")


class AddressMatcher:
    """Finds registered addresses as whole addresses and maps each to its replacement.

    Built once per message (or once per plan); compiled patterns are reused for every part.
    """

    __slots__ = ("_bytes_re", "_domains", "_map", "_str_re")

    def __init__(self, address_map: Mapping[str, str]) -> None:
        self._map: dict[str, str] = {}
        for real, alias in address_map.items():
            key = real.strip().lower()
            if "@" in key:
                self._map[key] = alias
        self._domains: tuple[str, ...] = tuple(sorted({k.rsplit("@", 1)[1] for k in self._map}))
        if not self._map:
            self._str_re: re.Pattern[str] | None = None
            self._bytes_re: re.Pattern[bytes] | None = None
            return
        # Longest first so that of two registered addresses the longer one wins.
        keys = sorted(self._map, key=len, reverse=True)
        alts = "|".join(
            re.escape(k.rsplit("@", 1)[0]) + _AT_FORMS + re.escape(k.rsplit("@", 1)[1]) for k in keys
        )
        self._str_re = re.compile(f"(?<![{_LOCAL_BEFORE}])(?:{alts}){_DOMAIN_AFTER}", re.IGNORECASE)
        balts = b"|".join(
            re.escape(k.rsplit("@", 1)[0].encode("utf-8"))
            + _BYTES_AT_FORMS
            + re.escape(k.rsplit("@", 1)[1].encode("utf-8"))
            for k in keys
        )
        self._bytes_re = re.compile(
            b"(?<![" + _BYTES_LOCAL_BEFORE + b"])(?:" + balts + b")" + _BYTES_DOMAIN_AFTER, re.IGNORECASE
        )

    @property
    def empty(self) -> bool:
        return self._str_re is None

    def might_contain(self, text: str) -> bool:
        """Cheap pre-check: does any registered domain occur (any case)? False means no match."""
        if self._str_re is None:
            return False
        low = text.lower()
        return any(d in low for d in self._domains)

    def might_contain_bytes(self, data: bytes | memoryview) -> bool:
        if self._bytes_re is None:
            return False
        low = bytes(data).lower()
        return any(d.encode("utf-8") in low for d in self._domains)

    def _key(self, matched: str) -> str:
        low = matched.lower()
        return low if "@" in low else _AT_ENTITY_RE.sub("@", low, count=1)

    def replacement(self, matched: str) -> str:
        return self._map.get(self._key(matched), matched)

    def sub(self, text: str) -> tuple[str, int]:
        """Replace every registered address in ``text``; return (new text, count)."""
        if self._str_re is None or not self.might_contain(text):
            return text, 0
        return self._str_re.subn(lambda m: self.replacement(m.group(0)), text)

    def search(self, text: str) -> bool:
        return self._str_re is not None and self.might_contain(text) and self._str_re.search(text) is not None

    def sub_bytes(self, data: bytes) -> tuple[bytes, int]:
        """Replace registered addresses in ASCII-compatible bytes of unknown charset."""
        if self._bytes_re is None or not self.might_contain_bytes(data):
            return data, 0

        def repl(m: re.Match[bytes]) -> bytes:
            text = m.group(0).decode("utf-8", "surrogateescape")
            return self.replacement(text).encode("utf-8", "surrogateescape")

        return self._bytes_re.subn(repl, data)

    def search_bytes(self, data: bytes | memoryview) -> bool:
        return (
            self._bytes_re is not None
            and self.might_contain_bytes(data)
            and self._bytes_re.search(bytes(data)) is not None
        )


def clean_name(name: str) -> str:
    """A display name with every control character (CR, LF, NUL …) turned into one space."""
    return " ".join(_CONTROL_RE.sub(" ", name).split())


def check_address(addr: str) -> str:
    """Return ``addr`` stripped, or raise ValueError if it cannot go into a header safely."""
    addr = addr.strip()
    if addr.count("@") != 1 or _ADDR_FORBIDDEN.search(addr):
        raise ValueError(f"unsafe address for a header: {addr!r}")
    local, domain = addr.split("@")
    if not local or not domain:
        raise ValueError(f"unsafe address for a header: {addr!r}")
    return addr


_ATOM_OK: Final = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")


def quote_name(name: str) -> str:
    """An ASCII display name as a phrase: bare if all atoms, else a quoted-string."""
    if _ATOM_OK.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def addr_specs(text: str) -> list[str]:
    """Every addr-spec-looking token in a (decoded) address header value, in order."""
    return [m.group(0).strip(".") for m in ADDR_SPEC_RE.finditer(text)]


def unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
