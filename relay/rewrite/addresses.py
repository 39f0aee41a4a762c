"""Find and replace registered real addresses in text; build the address headers we write.

Job: an ``AddressMatcher`` finds whole addresses (any case, ``@`` also as the HTML entities
``&#64;`` / ``&#x40;`` / ``&commat;``) in ``str`` or ``bytes`` and swaps in the alias; small
helpers sanitise names/addresses and format mailboxes so no CR, LF or NUL ever reaches a
header we write. Config read: none (pure). Errors raised: ``ValueError`` for an address that
cannot be written safely (a bug in the caller's plan, not in the message).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

# What may stand right before a local part. A character from this class in front of a match
# means the match is the tail of a longer address (``xbob@example.com`` is not ``bob@...``).
# Deliberately narrower than RFC 5322 atext: ``= / ? & ' # { } | ^ ~ ` !`` are not in it, so
# ``mailto:?cc=bob@example.com`` and ``'bob@example.com'`` are still caught. Leaking a real
# address is worse than rewriting a rare third-party address such as ``o'bob@example.com``.
# (Non-ASCII counts as a local-part character too; written as two cheap negative classes
# because wide Unicode ranges make the pattern take milliseconds to compile.)
_LOCAL_BEFORE: Final = r"(?<![A-Za-z0-9._%+\-])(?<![^\x00-\x7f])"
# What may follow a domain: more domain characters, or a dot that continues the domain.
_DOMAIN_AFTER: Final = r"(?![A-Za-z0-9\-]|[^\x00-\x7f]|\.[A-Za-z0-9]|\.[^\x00-\x7f])"
_AT_FORMS: Final = r"(?:@|&\#0*64;?|&\#[xX]0*40;?|&commat;)"

_AT_ENTITY_RE: Final = re.compile(r"&#0*64;?|&#x0*40;?|&commat;")

_BYTES_LOCAL_BEFORE: Final = rb"(?<![A-Za-z0-9._%+\-\x80-\xff])"
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

    __slots__ = ("_anchors", "_bdomains", "_bytes_re", "_domains", "_map", "_reach", "_str_re")

    def __init__(self, address_map: Mapping[str, str]) -> None:
        self._map: dict[str, str] = {}
        for real, alias in address_map.items():
            key = real.strip().lower()
            if "@" in key:
                self._map[key] = alias
        self._domains: tuple[str, ...] = tuple(sorted({k.rsplit("@", 1)[1] for k in self._map}))
        self._bdomains: tuple[bytes, ...] = tuple(d.encode("utf-8") for d in self._domains)
        # Where each domain has a byte that no case change touches ("." mostly): -1 if none.
        self._anchors: tuple[int, ...] = tuple(
            next((i for i, c in enumerate(d) if not (65 <= c <= 90 or 97 <= c <= 122)), -1) for d in self._bdomains
        )
        # longest local part + the longest "@" entity form
        self._reach = max((len(k.rsplit("@", 1)[0]) for k in self._map), default=0) + 16
        if not self._map:
            self._str_re: re.Pattern[str] | None = None
            self._bytes_re: re.Pattern[bytes] | None = None
            return
        # Longest first so that of two registered addresses the longer one wins.
        keys = sorted(self._map, key=len, reverse=True)
        alts = "|".join(
            re.escape(k.rsplit("@", 1)[0]) + _AT_FORMS + re.escape(k.rsplit("@", 1)[1]) for k in keys
        )
        # Case-insensitive only inside the alternation: IGNORECASE on the wide Unicode
        # classes of the look-arounds makes compiling take tens of milliseconds.
        self._str_re = re.compile(f"{_LOCAL_BEFORE}(?i:{alts}){_DOMAIN_AFTER}")
        balts = b"|".join(
            re.escape(k.rsplit("@", 1)[0].encode("utf-8"))
            + _BYTES_AT_FORMS
            + re.escape(k.rsplit("@", 1)[1].encode("utf-8"))
            for k in keys
        )
        self._bytes_re = re.compile(_BYTES_LOCAL_BEFORE + b"(?i:" + balts + b")" + _BYTES_DOMAIN_AFTER)

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
        return any(d in low for d in self._bdomains)

    def _windows(self, low: str | bytes, domains: tuple[Any, ...]) -> list[tuple[int, int]]:
        """Regions around each occurrence of a registered domain, merged.

        The patterns start with look-behinds that sre would try at every position of a large
        body; running them only near a domain (found with a fast substring search) is ~50x
        quicker. A window reaches 2 characters past the domain so the look-ahead sees them.
        """
        spans: list[tuple[int, int]] = []
        for d in domains:
            i = low.find(d)
            while i >= 0:
                spans.append((max(0, i - self._reach), min(len(low), i + len(d) + 2)))
                i = low.find(d, i + 1)
        return _merge(spans)

    def _bwindows(self, data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """_windows(data.lower(), …) without lower-casing all of data when it can be avoided; only
        domains wholly inside data[start:end] count.

        Each domain occurrence has the domain's anchor byte (one no case change touches) at a
        known offset; bytes.find hops between anchors and only the bytes around one are
        lower-cased. A 10 MB message has a few hundred "." (none in base64), but prose has one
        every sentence and a binary file one every 256 bytes: a hop costs about what lower-casing
        and searching 400 bytes does, so once the anchors come denser than one per 2 KB
        (_DENSE) the range is lower-cased instead (100 KB of text: 0.19 -> 0.09 ms).
        """
        end = len(data) if end is None else end
        spans: list[tuple[int, int]] = []
        for d, k in zip(self._bdomains, self._anchors, strict=True):
            if k < 0:
                return self._lowered_windows(data, start, end)
            anchor, size = d[k : k + 1], len(d)
            i = data.find(anchor, start + k, end)
            hops = 0
            while i >= 0 and i - k + size <= end:
                hops += 1
                if hops > _FREE_HOPS and i - start < hops * _DENSE:
                    return self._lowered_windows(data, start, end)
                at = i - k
                if data[at : at + size].lower() == d:
                    spans.append((max(0, at - self._reach), min(len(data), at + size + 2)))
                i = data.find(anchor, i + 1, end)
        return _merge(spans)

    def _lowered_windows(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]:
        if start == 0 and end == len(data):
            return self._windows(data.lower(), self._bdomains)
        return [(a + start, b + start) for a, b in self._windows(data[start:end].lower(), self._bdomains)]

    def _matches(self, text: str) -> list[re.Match[str]]:
        if self._str_re is None:
            return []
        low = text.lower()
        if len(low) != len(text):  # a few characters lower-case to two; no index mapping
            return list(self._str_re.finditer(text))
        out: list[re.Match[str]] = []
        for a, b in self._windows(low, self._domains):
            out.extend(self._str_re.finditer(text, a, b))
        return out

    def _key(self, matched: str) -> str:
        low = matched.lower()
        return low if "@" in low else _AT_ENTITY_RE.sub("@", low, count=1)

    def replacement(self, matched: str) -> str:
        return self._map.get(self._key(matched), matched)

    def sub(self, text: str) -> tuple[str, int]:
        """Replace every registered address in ``text``; return (new text, count)."""
        matches = self._matches(text)
        if not matches:
            return text, 0
        out: list[str] = []
        pos = 0
        for m in matches:
            out.append(text[pos : m.start()])
            out.append(self.replacement(m.group(0)))
            pos = m.end()
        out.append(text[pos:])
        return "".join(out), len(matches)

    def search(self, text: str) -> bool:
        return bool(self._matches(text))

    def _bmatches(self, data: bytes) -> list[re.Match[bytes]]:
        if self._bytes_re is None:
            return []
        out: list[re.Match[bytes]] = []
        for a, b in self._bwindows(data):
            out.extend(self._bytes_re.finditer(data, a, b))
        return out

    def sub_bytes(self, data: bytes) -> tuple[bytes, int]:
        """Replace registered addresses in ASCII-compatible bytes of unknown charset."""
        matches = self._bmatches(data)
        if not matches:
            return data, 0
        out: list[bytes] = []
        pos = 0
        for m in matches:
            out.append(data[pos : m.start()])
            text = m.group(0).decode("utf-8", "surrogateescape")
            out.append(self.replacement(text).encode("utf-8", "surrogateescape"))
            pos = m.end()
        out.append(data[pos:])
        return b"".join(out), len(matches)

    def search_bytes(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> bool:
        """search_bytes(data[start:end]) without copying the range when no registered domain is
        in it (the usual answer; a copy of a 10 MB part costs more than looking)."""
        end = len(data) if end is None else end
        if (start or end != len(data)) and isinstance(data, bytes):
            if not self._bwindows(data, start, end):  # no registered domain in the range
                return False
            data = data[start:end]
        return bool(self._bmatches(bytes(data)))


#: _bwindows hops between anchors while they come no denser than one per _DENSE bytes (after
#: the first _FREE_HOPS), else it lower-cases the range.
_DENSE = 2048
_FREE_HOPS = 16


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


@functools.lru_cache(maxsize=256)
def _cached(items: frozenset[tuple[str, str]]) -> AddressMatcher:
    return AddressMatcher(dict(items))


def matcher_for(address_map: Mapping[str, str]) -> AddressMatcher:
    """A (cached) matcher: one thread's messages share their compiled patterns."""
    return _cached(frozenset(address_map.items()))


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
