"""The one contact finder: a registered real address in every form a reader would recognise.

Job: ``AddressFinder(address_map)`` finds each registered address (mapped real → alias) in a
text however it is written — any case, fullwidth, with zero-width or soft-hyphen characters,
spaced out, ``(at)``/``[dot]``/`` at ``/`` dot ``/``アットマーク``/``点``, entities or
percent-encoding for ``@`` and ``.``, Gmail dot and ``+tag`` variants, VERP ``local=domain``,
without its TLD (``name@gmail``), reversed, with Cyrillic/Greek look-alike letters — and gives
spans in the text's own coordinates, so the rewriter can put the alias where the address was
and the egress check can refuse what is left. The policy, the rewriter and the egress check
all use this one finder. Config read: none (pure). Errors raised: none.

``find_contacts(text)`` is the other half: every contact detail a text holds, registered or not
— e-mail addresses (plain, obfuscated, without their TLD, reversed), phone numbers and messenger
IDs (relay.message.phones) — as ``Contact`` findings with a kind, a rule id and the span of the
caller's text; ``contacts_in(view)`` answers the same in a match view's offsets (the policy's).

How: the text is folded (NFKC, case folding, ignorables dropped; relay.message.normalize keeps
each folded character's source span), look-alike letters are mapped to Latin, and the
separators people slip between characters (white space, brackets, quotes, ``-``, ``_``, ``*``)
are dropped into a *compact* view; one regex per finder then matches every form in it.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import ahocorasick_rs

from relay.message.normalize import IGNORABLE_RANGES, View, match_view, normalize
from relay.message.phones import Contact, literals_in, messengers_in, phones_in

#: Characters people put between the characters of an address to defeat matching; the compact
#: view drops them (and the address's own "-" / "_", so both sides compare alike).
_JUNK: Final = " \t\r\n\f\v\u00a0\u3000\"'`*()[]{}<>|_-~^"
_DROP: Final = {ord(c): None for c in _JUNK} | {
    cp: None for lo, hi in IGNORABLE_RANGES for cp in range(lo, hi + 1)
}
# Latin look-alikes (Unicode TR39 confusables that NFKC leaves alone), one for one so offsets hold.
_HOMOGLYPHS: Final = str.maketrans({
    # Cyrillic
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "т": "t", "м": "m",
    "к": "k", "в": "b", "н": "h",
    # Greek
    "ο": "o", "α": "a", "ν": "v", "τ": "t", "ι": "i", "ρ": "p", "κ": "k", "χ": "x", "ε": "e",
    "υ": "u", "ω": "w", "β": "b", "η": "n", "μ": "u",
    # Armenian and Latin variants
    "օ": "o", "ս": "u", "հ": "h", "յ": "j", "ɑ": "a", "ɡ": "g", "ı": "i", "ȷ": "j",
})
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff61": ".", "\uff0e": ".", "\u2024": ".", "\ufe52": ".", "\u30fb": "."})

# What stands for "@" and for "." in the compact view (lower case: the view is case-folded).
_AT_FORMS: Final = (
    r"@|%40|&#0*64;?|&#x0*40;?|&commat;|\\u0040|at|atmark|atsign|アットマーク|あっとまーく|アット|あっと|"
    r"골뱅이|앳|艾特|圈a|="
)
_DOT_FORMS: Final = r"\.|%2e|&#0*46;?|&#x0*2e;?|&period;|dot|d0t|punkt|点|點|쩜|닷|ドット|どっと|,"
#: Before a match (in the folded text) may not stand a letter or digit, nor one of "._%-" after
#: one: the match would be the tail of a longer address ("bigjohn@…", "big.john@…" are not
#: "john@…"). After it anything may follow: "john@gmail.com.txt" (a file name) or
#: "john@gmail.com.au" still tells a reader the address.
_LONGER_BEFORE: Final = re.compile(r"(?:[a-z0-9]|[a-z0-9][._%-])\Z")


@dataclass(frozen=True, slots=True)
class Found:
    start: int
    end: int
    real: str  # the registered address this is a form of (lower case)
    replacement: str  # what replaces it (the alias)


_JUNK_CLASS: Final = "[" + re.escape(_JUNK) + "".join(
    f"{chr(lo)}-{chr(hi)}" if lo != hi else chr(lo) for lo, hi in IGNORABLE_RANGES) + "]"
_JUNK_RUN: Final = re.compile(_JUNK_CLASS + "+")


def _compact(text: str) -> str:
    return text.translate(_DROP)


#: look-alikes as Latin and wide dots as "." in one table (a translate per table costs ~1 ms per
#: 40,000 CJK characters)
_FOLD: Final = {**_HOMOGLYPHS, **_DOTS}
_FOLD_CHAR: Final = re.compile("[" + "".join(re.escape(chr(c)) for c in _FOLD) + "]")


_ASCII_LOWER: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_ASCII_JUNK: Final = "".join(c for c in _JUNK if c.isascii()).encode("ascii")


def _folded_compact(text: str) -> str:
    if text.isascii():  # bytes.translate lowers and drops in one C pass (~20x a str dict translate)
        return text.encode("ascii").translate(_ASCII_LOWER, _ASCII_JUNK).decode("ascii")
    return _JUNK_RUN.sub("", fold_for_match(text))


def _local_pattern(local: str) -> str:
    """The compact local part: dots optional (Gmail ignores them; a reader takes "john doe" and
    "john.doe" for the same person), any "+tag" after it."""
    chars = [c for c in _compact(local.split("+", 1)[0]) if c != "."]
    body = r"(?:\.|dot|%2e|&#0*46;?|&#x0*2e;?|&period;)?".join(re.escape(c) for c in chars)
    return body + r"(?:\+[a-z0-9.=]{1,64})?"


def _domain_pattern(domain: str) -> str:
    """The first label is required; the rest may be missing ("name@gmail")."""
    labels = [re.escape(_compact(label)) for label in domain.split(".") if label]
    pattern = ""
    for label in reversed(labels[1:]):
        pattern = f"(?:(?:{_DOT_FORMS}){label}{pattern})?"
    return labels[0] + pattern


_LOOKALIKE: dict[str, set[str]] = {}


def _loose(anchor: str) -> str:
    """A pattern for ``anchor`` in a raw text: each letter in either case, full width or as a
    look-alike, with junk or invisible characters between the letters."""
    if not _LOOKALIKE:
        for code, latin in _HOMOGLYPHS.items():
            _LOOKALIKE.setdefault(str(latin), set()).add(chr(int(code)))
    parts = []
    for c in anchor:
        forms = {c, c.upper()} | _LOOKALIKE.get(c, set())
        forms |= {chr(ord(f) + 0xFEE0) for f in list(forms) if "!" <= f <= "~"}
        parts.append("[" + "".join(re.escape(f) for f in sorted(forms)) + "]")
    return (_JUNK_CLASS + "*").join(parts)


def fold_for_match(text: str) -> str:
    """The folded form the finder compares in (NFKC, case folded, look-alikes as Latin)."""
    if text.isascii():
        return text.lower()
    if not unicodedata.is_normalized("NFKC", text):  # the quick check is ~10x cheaper than normalizing
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    if _FOLD_CHAR.search(text):  # rare: a dict translate costs a lookup per character
        text = text.translate(_FOLD)
    return text


class AddressFinder:
    """Finds every form of a set of registered addresses; one compiled pattern per finder."""

    __slots__ = ("_anchor_regex", "_anchors", "_by_group", "_literals", "_map", "_pairs", "_reach", "_regex")

    def __init__(self, address_map: Mapping[str, str]) -> None:
        self._map: dict[str, str] = {}
        for real, alias in address_map.items():
            key = real.strip().lower()
            if key.count("@") == 1 and all(key.split("@")):
                self._map[key] = alias
        alternatives: list[str] = []
        self._by_group: dict[str, str] = {}
        anchors: set[str] = set()
        pairs: list[tuple[str, str]] = []  # (a piece of the local part, the domain's first label)
        # longest first, so that of two registered addresses the longer one wins
        for n, real in enumerate(sorted(self._map, key=len, reverse=True)):
            local, domain = real.split("@")
            first = _compact(domain.split(".")[0])
            anchors.add(first)
            anchors.add(first[::-1])
            piece = max(re.split(r"[.+]", _compact(local)), key=len) or first
            pairs.extend([(piece, first), (piece[::-1], first[::-1])])
            forward = f"{_local_pattern(local)}(?:{_AT_FORMS}){_domain_pattern(domain)}"
            reverse = re.escape(_compact(real)[::-1])
            alternatives.append(f"(?P<a{n}>{forward}|{reverse})")
            self._by_group[f"a{n}"] = real
        self._anchors = tuple(sorted(anchors))
        self._pairs = tuple(pairs)
        self._literals = ahocorasick_rs.AhoCorasick(sorted(({s for pair in pairs for s in pair} | anchors) - {""}))
        # how far from its domain's first label a form can reach in the compact view (a local
        # part written with "dot" words, a +tag, a long at-word)
        self._reach = max((6 * len(k) + 100 for k in self._map), default=0)
        self._anchor_regex = re.compile("|".join(_loose(a) for a in self._anchors) or "(?!)")
        self._regex = re.compile("|".join(alternatives)) if alternatives else None

    @property
    def empty(self) -> bool:
        return self._regex is None

    def might_contain(self, text: str) -> bool:
        """Cheap pre-check: False means no form of any registered address is in ``text``."""
        if self._regex is None:
            return False
        return self._present(_folded_compact(text))

    def _present(self, compact: str) -> bool:
        """Every form holds, in the compact view, its domain's first label and the longest dot-free
        piece of its local part (both reversed in a reversed form)."""
        # one Aho–Corasick pass for every label and piece (a substring search each cost ~10 µs per
        # 10 KB of text, and a finder has a dozen of them)
        try:
            present = {"", *self._literals.find_matches_as_strings(compact, overlapping=True)}
        except UnicodeEncodeError:  # bytes read with surrogateescape: one search each, then
            labels = {label for label in self._anchors if label in compact}
            return bool(labels) and any(label in labels and piece in compact for piece, label in self._pairs)
        return any(label in present and piece in present for piece, label in self._pairs)

    def find(self, text: str) -> list[Found]:
        """Every form of a registered address in ``text``: sorted, non-overlapping spans of ``text``."""
        if self._regex is None:
            return []
        compact = _folded_compact(text)
        if not self._present(compact):
            return []
        windows = self._windows(text, compact) or [(0, len(text))]  # a form the anchor scan cannot see
        out: list[Found] = []
        for lo, hi in windows:
            before = fold_for_match(text[max(0, lo - 2) : lo])
            for f in self._find_in(text[lo:hi], before[-2:]):
                if out and lo + f.start < out[-1].end:
                    continue
                out.append(Found(lo + f.start, lo + f.end, f.real, f.replacement))
        return out

    def _find_in(self, text: str, before: str) -> list[Found]:
        assert self._regex is not None
        norm = normalize(text)
        folded = norm.text.translate(_FOLD)
        # the compact view and, per kept run, where it starts in the folded text
        run_at: list[int] = []  # compact offset of each run
        run_src: list[int] = []  # folded offset of each run
        pieces: list[str] = []
        size = 0
        for run in _KEEP_RUN.finditer(folded):
            run_at.append(size)
            run_src.append(run.start())
            pieces.append(run.group())
            size += run.end() - run.start()
        compact = "".join(pieces)

        def to_folded(k: int) -> int:
            r = bisect.bisect_right(run_at, k) - 1
            return run_src[r] + k - run_at[r]

        out: list[Found] = []
        pos = 0
        while True:
            m = self._regex.search(compact, pos)
            if m is None:
                break
            fs, fe = to_folded(m.start()), to_folded(m.end() - 1) + 1
            if _LONGER_BEFORE.search(before + folded[max(0, fs - 2) : fs]):
                pos = m.start() + 1  # part of a longer address; look further on
                continue
            start, end = norm.source_span(fs, fe)
            real = self._by_group[m.lastgroup or ""]
            out.append(Found(start, end, real, self._map[real]))
            pos = m.end()
        return out

    def _windows(self, text: str, compact: str) -> list[tuple[int, int]]:
        """Stretches of ``text`` around each anchor (a domain's first label, forwards or reversed,
        in any case or width, with junk between its letters): the pattern has no literal prefix
        and folding costs a Python step per non-ASCII character, so only these are folded."""
        spans: list[tuple[int, int]] = []
        low = text.lower()
        if len(low) == len(text) and all(low.count(a) == compact.count(a) for a in self._anchors):
            # every occurrence is written plainly: find them by substring search (~20x quicker)
            for a in self._anchors:
                i = low.find(a)
                while i >= 0:
                    spans.append((max(0, i - self._reach), min(len(text), i + len(a) + self._reach)))
                    i = low.find(a, i + 1)
        else:
            spans = [(max(0, m.start() - self._reach), min(len(text), m.end() + self._reach))
                     for m in self._anchor_regex.finditer(text)]
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged

    def search(self, text: str) -> bool:
        return bool(self.find(text))

    def sub(self, text: str) -> tuple[str, int]:
        """``text`` with every form replaced by its alias, and how many were replaced."""
        found = self.find(text)
        if not found:
            return text, 0
        parts: list[str] = []
        pos = 0
        for f in found:
            parts.append(text[pos : f.start])
            parts.append(f.replacement)
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts), len(found)

    # bytes of unknown charset (ASCII-compatible): read as UTF-8, undecodable bytes kept as they are

    def might_contain_bytes(self, data: bytes | memoryview) -> bool:
        return self.might_contain(bytes(data).decode("utf-8", "surrogateescape"))

    def search_bytes(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> bool:
        chunk = bytes(data[start:end]) if (start or end is not None) else bytes(data)
        return self.search(chunk.decode("utf-8", "surrogateescape"))

    def sub_bytes(self, data: bytes) -> tuple[bytes, int]:
        text = data.decode("utf-8", "surrogateescape")
        new, n = self.sub(text)
        return (new.encode("utf-8", "surrogateescape"), n) if n else (data, 0)


_KEEP_RUN: Final = re.compile("[^" + _JUNK_CLASS[1:] + "+")  # a run of what the compact view keeps


@functools.lru_cache(maxsize=256)
def _cached(items: frozenset[tuple[str, str]]) -> AddressFinder:
    return AddressFinder(dict(items))


def finder_for(address_map: Mapping[str, str]) -> AddressFinder:
    """A (cached) finder: one thread's messages share their compiled pattern."""
    return _cached(frozenset(address_map.items()))


def finder_of(addresses: Iterable[str]) -> AddressFinder:
    """A finder that reports each address as itself (for checks that only ask "is it there?")."""
    return finder_for({a.lower(): a.lower() for a in addresses if a and "@" in a})


def is_own(addr: str, own: frozenset[str]) -> bool:
    """Is ``addr`` a form of one of ``own`` (the parties' addresses and aliases)? The policy asks
    this finder, so what it exempts is exactly what the rewriter maps to an alias."""
    return addr in own or (bool(own) and finder_of(own).search(addr))


# --- every contact detail, registered or not ------------------------------------------------

#: mail providers recognised in "name@gmail" (no TLD) and in reversed addresses, unless the
#: caller names its own (the policy's [contact] mail_providers)
MAIL_PROVIDERS: Final = ("gmail", "googlemail", "yahoo", "hotmail", "outlook", "live", "icloud", "aol", "proton",
                         "protonmail", "qq", "163", "126", "sina", "sohu", "naver", "daum", "hanmail", "nate",
                         "kakao", "docomo", "ezweb", "softbank", "yandex", "gmx", "foxmail", "aliyun", "139")
_EMAIL: Final = re.compile(r"(?<![a-z0-9._%+-])([a-z0-9._%+-]{1,64})@((?:[a-z0-9-]{1,63}\.){1,8}"
                           r"([a-z]{2,63}|xn--[a-z0-9-]{1,59}))(?![a-z0-9-])")
_TOKEN_AT: Final = re.compile(r"(?<![a-z0-9._-])[a-z0-9._-]{3,80}@[a-z0-9._%+-]{1,64}(?![a-z0-9._%+-])")


@functools.lru_cache(maxsize=16)
def _bare(providers: tuple[str, ...]) -> re.Pattern[str] | None:
    if not providers:
        return None
    return re.compile(r"(?<![a-z0-9._%+-])[a-z0-9._%+-]{2,64}@(?:" + "|".join(re.escape(p) for p in providers)
                      + r")(?![a-z0-9-]|\.[a-z])")


def emails_in(view: View, providers: Collection[str] = MAIL_PROVIDERS,
              tlds: Collection[str] | None = None) -> list[Contact]:
    """E-mail addresses in a match view (view offsets): plain (``contact.email``), with an
    obfuscation undone (``contact.email_obfuscated``), a provider without its TLD, reversed
    (``contact.email_reversed``). ``tlds``: the top-level domains that count (None: any)."""
    text = view.text
    if "@" not in text:
        return []
    out: list[Contact] = []
    spans: list[tuple[int, int]] = []
    for m in _EMAIL.finditer(text):
        local, domain, tld = m.group(1), m.group(2), m.group(3)
        if (tlds is not None and tld not in tlds) or local.startswith(".") or local.endswith("."):
            continue
        spans.append((m.start(), m.end()))
        rule = "contact.email_obfuscated" if view.obfuscated(m.start(), m.end()) else "contact.email"
        out.append(Contact("email", rule, m.start(), m.end(), "e-mail address", f"{local}@{domain}"))
    bare = _bare(tuple(providers))
    if bare is not None:
        for m in bare.finditer(text):
            out.append(Contact("email", "contact.email_obfuscated", m.start(), m.end(), "address without domain",
                               m.group(0)))
            spans.append((m.start(), m.end()))
    provider_set = set(providers)
    for m in _TOKEN_AT.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in spans):
            continue
        rev = m.group(0)[::-1]
        rm = _EMAIL.fullmatch(rev)
        if rm and (tlds is None or rm.group(3) in tlds) and rm.group(2).split(".")[0] in provider_set:
            out.append(Contact("email", "contact.email_reversed", m.start(), m.end(), "reversed e-mail address", rev))
    return out


def contacts_in(view: View, providers: Collection[str] = MAIL_PROVIDERS,
                tlds: Collection[str] | None = None,
                literals: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None = None,
                ) -> list[Contact]:
    """Every e-mail address, phone number and messenger ID in a match view, in view offsets
    (``literals``: phones.literals_in of the view's text, if the caller has found them)."""
    words, keywords = literals_in(view.text) if literals is None else literals
    return (emails_in(view, providers, tlds) + phones_in(view.text, view.digits, words)
            + messengers_in(view.text, keywords=keywords))


def find_contacts(text: str, providers: Collection[str] = MAIL_PROVIDERS,
                  tlds: Collection[str] | None = None) -> list[Contact]:
    """Every e-mail address, phone number and messenger ID in ``text``, however it is written,
    with spans of ``text`` itself (sorted by start)."""
    norm = normalize(text)
    view = match_view(norm)
    out = []
    for c in contacts_in(view, providers, tlds):
        start, end = norm.source_span(*view.to_norm(c.start, c.end))
        out.append(dataclasses.replace(c, start=start, end=end))
    return sorted(out, key=lambda c: (c.start, c.end))
