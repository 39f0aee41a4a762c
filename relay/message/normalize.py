"""Text normalization before matching: one view of a text part that rules can search.

Reads no config. Produces `Normalized`: the folded text plus, for every character of it,
the span of the original text it came from (so a finding's offsets, which always refer
to the *normalized* text, can be mapped back for redaction), and a digits view of the
same length in which CJK, circled, dingbat, kanji and Hangul numerals read as ASCII digits.

Steps, per grapheme cluster (a base character plus following combining marks):
drop default-ignorable code points (zero-width, soft hyphen, bidi controls, variation
selectors, keycap marks), Unicode NFKC (folds full-width/half-width forms, circled and
math digits), case folding, and ideographic/full-width/one-dot-leader dots as ".".
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import ahocorasick_rs

# Default-ignorable or invisible characters that people slip into words to break matching.
IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # arabic letter mark
    (0x115F, 0x1160),  # hangul fillers
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),  # mongolian selectors, vowel separator
    (0x200B, 0x200F),  # zero-width space/joiners, LRM/RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates
    (0x20DD, 0x20E4),  # combining enclosing circle/square/keycap
    (0x3164, 0x3164),  # hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # BOM / ZWNBSP
    (0xFFA0, 0xFFA0),  # halfwidth hangul filler
    (0xFFF9, 0xFFFB),  # interlinear annotation
    (0x1BCA0, 0x1BCA3),
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement
)

_DOTS = {"\u3002": ".", "\uff61": ".", "\uff0e": ".", "\u2024": ".", "\ufe52": ".", "\u00b7": "\u00b7"}

# 1:1 character maps for the digits view (same length, so offsets are shared).
_DIGIT_CHARS: dict[str, str] = {}
for _i, _c in enumerate("〇一二三四五六七八九"):
    _DIGIT_CHARS[_c] = str(_i)
for _i, _c in enumerate("零壹贰叁肆伍陆柒捌玖"):
    _DIGIT_CHARS[_c] = str(_i)
for _i, _c in enumerate("零壹貳參肆伍陸柒捌玖"):
    _DIGIT_CHARS[_c] = str(_i)
_DIGIT_CHARS.update({"幺": "1", "两": "2", "兩": "2", "洞": "0"})
for _i, _c in enumerate("공일이삼사오육칠팔구"):
    _DIGIT_CHARS[_c] = str(_i)
_DIGIT_CHARS["영"] = "0"
for _base in (0x2776, 0x2780, 0x278A):  # dingbat negative circled / circled sans-serif digits 1..10
    for _i in range(9):
        _DIGIT_CHARS[chr(_base + _i)] = str(_i + 1)
    _DIGIT_CHARS[chr(_base + 9)] = "0"
_DIGIT_CHARS["⓿"] = "0"
_DIGITS_TABLE = str.maketrans(_DIGIT_CHARS)


def _ignorable(cp: int) -> bool:
    for lo, hi in IGNORABLE_RANGES:
        if lo <= cp <= hi:
            return True
    return False


@lru_cache(maxsize=8192)
def _fold(cluster: str) -> str:
    kept = "".join(ch for ch in cluster if not _ignorable(ord(ch)) and unicodedata.category(ch) != "Cf")
    if not kept:
        return ""
    out = unicodedata.normalize("NFKC", kept).casefold()
    if any(ch in _DOTS for ch in out):
        out = "".join(_DOTS.get(ch, ch) for ch in out)
    # Arabic-Indic and other decimal digits NFKC leaves alone.
    if any(ch.isdecimal() and not ch.isascii() for ch in out):
        out = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in out)
    return out


def _joins(ch: str) -> bool:
    """True if ch attaches to the previous character (combining mark, conjoining jamo V/T)."""
    cp = ord(ch)
    if cp in (0xFF9E, 0xFF9F):  # half-width (semi-)voiced sound marks: NFKC composes ﾋﾞ → ビ
        return True
    if 0x3131 <= cp <= 0x318E:  # compatibility jamo vowel/final: NFKC composes it with the previous jamo
        return 0x1160 <= ord(unicodedata.normalize("NFKC", ch)[0]) <= 0x11FF
    return bool(unicodedata.combining(ch)) or 0x1160 <= cp <= 0x11FF or 0xFE00 <= cp <= 0xFE0F or 0x20D0 <= cp <= 0x20FF



class Spans:
    """Where each character of a derived text came from in its source, kept as runs rather than
    one entry per character (a 100 KB text would need two lists of 100,000 ints per view).

    A copied run maps its k-th character to [s + k, s + k + 1); a block maps every character of
    its run to the same [s, e) (an entity, a folded cluster, an undone obfuscation)."""

    __slots__ = ("_at", "_end", "_src", "length")

    def __init__(self) -> None:
        self._at: list[int] = []    # where each run starts in the derived text
        self._src: list[int] = []   # source start
        self._end: list[int] = []   # source end for a block; -1 for a copied run
        self.length = 0

    @classmethod
    def identity(cls, length: int) -> Spans:
        spans = cls()
        spans.copy(length, 0)
        return spans

    def copy(self, n: int, src: int) -> None:
        """The next n characters are the source's [src, src + n), one for one."""
        if n <= 0:
            return
        if self._end and self._end[-1] == -1 and self._src[-1] + self.length - self._at[-1] == src:
            self.length += n  # continues the previous copied run
            return
        self._at.append(self.length)
        self._src.append(src)
        self._end.append(-1)
        self.length += n

    def block(self, n: int, src: int, src_end: int) -> None:
        """The next n characters all stand for the source's [src, src_end)."""
        if n <= 0:
            return
        if self._end and self._src[-1] == src and self._end[-1] == src_end:
            self.length += n
            return
        self._at.append(self.length)
        self._src.append(src)
        self._end.append(src_end)
        self.length += n

    def char(self, index: int) -> tuple[int, int]:
        """The source span of derived character `index` (0 <= index < length)."""
        k = bisect.bisect_right(self._at, index) - 1
        if self._end[k] == -1:
            s = self._src[k] + index - self._at[k]
            return (s, s + 1)
        return (self._src[k], self._end[k])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the derived text back to the source (clamped; (0, 0) if empty)."""
        if not self.length or end <= start:
            return (0, 0)
        start = max(0, min(start, self.length - 1))
        end = max(start + 1, min(end, self.length))
        return (self.char(start)[0], self.char(end - 1)[1])


def digits_of(text: str) -> str:
    """`text` with CJK, Hangul and dingbat numerals as ASCII digits, same length (ASCII: itself)."""
    return text if text.isascii() else text.translate(_DIGITS_TABLE)


@dataclass(slots=True)
class Normalized:
    """A folded text and, per character, the [start, end) span of the source it came from."""

    source: str
    text: str
    spans: Spans
    _digits: str | None = None

    @property
    def digits(self) -> str:
        """Same length as text; CJK/Hangul/dingbat numerals read as ASCII digits."""
        if self._digits is None:
            self._digits = digits_of(self.text)
        return self._digits

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalized text back to the source text."""
        return self.spans.span(start, end)

    def source_text_at(self, index: int) -> str:
        """The source text behind normalized character `index` ("" out of range)."""
        if 0 <= index < self.spans.length:
            s, e = self.spans.char(index)
            return self.source[s:e]
        return ""

    def source_upper_at(self, index: int) -> bool:
        """Was the source character behind normalized index `index` upper-case?"""
        return self.source_text_at(index)[:1].isupper()


#: Characters that fold to themselves one for one whatever stands around them (not ignorable, NFKC-
#: and case-fold-stable, no dot, joined to nothing before them; checked against _fold for each in
#: tests/unit/test_normalize_runs.py): with ASCII, a run of them is copied at C speed, not a Python
#: step per character (37,500 characters of Japanese: 35 ms -> ~2 ms).
PLAIN_RANGES: Final = (
    "\u0080-\u009f\u00e0-\u00ff\u024f-\u02af\u02b9-\u02d7\u02e5-\u02ff\u03b1-\u03c1\u0430-"
    "\u045f\u0557-\u0586\u05c8-\u05ff\u061d-\u064a\u0679-\u06d5\u06fa-\u070e\u0712-\u072f\u074b-"
    "\u07bf\u07ca-\u07ea\u07fe-\u0815\u082e-\u0858\u085c-\u088f\u08a0-\u08c9\u0900-\u093b\u093d-"
    "\u094c\u0970-\u09bb\u09bd-\u09cc\u09ff-\u0a32\u0a3d-\u0a4c\u0a70-\u0abb\u0abd-\u0acc\u0ace-"
    "\u0ae5\u0af0-\u0b3b\u0b3d-\u0b4c\u0b70-\u0bcc\u0bce-\u0be5\u0bf0-\u0c3b\u0c3d-\u0c4c\u0c70-"
    "\u0cbb\u0cbd-\u0ccc\u0cce-\u0ce5\u0cf0-\u0d3a\u0d3d-\u0d4c\u0d4e-\u0d65\u0d70-\u0dc9\u0dcb-"
    "\u0de5\u0df0-\u0e32\u0e5a-\u0eb2\u0ede-\u0f0b\u0fc7-\u1036\u104a-\u108c\u10ce-\u10fb\u10fd-"
    "\u115e\u1200-\u135c\u1360-\u139f\u13fe-\u1713\u1716-\u1733\u1735-\u17b3\u17b6-\u17d1\u17ea-"
    "\u180a\u181a-\u18a8\u18aa-\u1938\u1950-\u19cf\u19da-\u1a16\u1a19-\u1a5f\u1a61-\u1a74\u1a9a-"
    "\u1aaf\u1acf-\u1b33\u1b5a-\u1b6a\u1b74-\u1ba9\u1bba-\u1be5\u1bf4-\u1c36\u1c5a-\u1c7f\u1cc0-"
    "\u1ccf\u1cfa-\u1d2b\u1d79-\u1d9a\u3003-\u3029\u303b-\u3098\u30a0-\u30fe\u3100-\u3130\u31a0-"
    "\u31ff\u3400-\u9fff\uac00-\ud7a3"
)
_PLAIN_RUN = re.compile("[\x00-\x7f" + PLAIN_RANGES + "]+")


def normalize(source: str) -> Normalized:
    """Fold `source` for matching; see the module docstring for the steps."""
    if source.isascii():
        # Fast path: ASCII needs only case folding and no offset remapping.
        return Normalized(source, source.lower(), Spans.identity(len(source)))
    out: list[str] = []
    spans = Spans()
    n = len(source)
    i = 0
    while i < n:
        run = _PLAIN_RUN.match(source, i)
        if run:  # ASCII or plain stretch: folded one for one, except a last char a combining mark joins
            j = run.end()
            if j < n and _joins(source[j]):
                j -= 1
            if j > i:
                out.append(source[i:j].lower())
                spans.copy(j - i, i)
                i = j
                continue
        j = i + 1
        while j < n and _joins(source[j]):
            j += 1
        cluster = source[i:j]
        folded = _fold(cluster) if not cluster.isascii() else cluster.lower()
        if folded == cluster and j == i + 1:
            out.append(folded)
            spans.copy(1, i)
        else:
            out.append(folded)
            spans.block(len(folded), i, j)
        i = j
    return Normalized(source, "".join(out), spans)


def fold(text: str) -> str:
    """The folded text alone (for word lists, allowlists and comparisons)."""
    return normalize(text).text


# --- the match view: obfuscations undone ------------------------------------------------

@dataclass(slots=True)
class View:
    """Normalized text with obfuscations undone; each char keeps its [start, end) in the normalized text.

    `tokens` are the normalized-text spans where an obfuscation was undone (hxxp, [.], " dot "…).
    """

    text: str
    spans: Spans  # view character → normalized-text span
    tokens: list[tuple[int, int]]
    norm: Normalized
    _digits: str | None = None

    @property
    def digits(self) -> str:
        if self._digits is None:
            self._digits = digits_of(self.text)
        return self._digits

    def to_norm(self, start: int, end: int) -> tuple[int, int]:
        return self.spans.span(start, end)

    def obfuscated(self, start: int, end: int) -> bool:
        ns, ne = self.to_norm(start, end)
        return any(ts < ne and ns < te for ts, te in self.tokens)


_PROVIDERS = r"gmail|googlemail|yahoo|hotmail|outlook|live|icloud|me|aol|proton|protonmail|qq|163|126|sina|sohu|" \
             r"naver|daum|hanmail|nate|kakao|docomo|ezweb|softbank|au|yandex|mail|gmx|foxmail|aliyun|139"
_WORD_TLDS = r"com|net|org|info|biz|io|co|jp|cn|kr|tw|hk|me|ly|us|uk|de|shop|store|xyz|top|site|online|link|app|ru"

# Each alternative is (name, pattern, replacement). Replacement "" deletes; a callable would be overkill.
_DEOBFUSCATIONS: list[tuple[str, str, str]] = [
    ("hxxps", r"(?<![a-z])h[xX*]{2}ps(?=\s*[\[(]?:)", "https"),
    ("hxxp", r"(?<![a-z])h[xX*]{2}p(?=\s*[\[(]?:)", "http"),
    ("spaced_https", r"(?<![a-z])h[ \t]{0,3}t[ \t]{0,3}t[ \t]{0,3}p[ \t]{0,3}s[ \t]{0,3}:[ \t]{0,3}/[ \t]{0,3}/[ \t]{0,3}",
     "https://"),
    ("spaced_http", r"(?<![a-z])h[ \t]{0,3}t[ \t]{0,3}t[ \t]{0,3}p[ \t]{0,3}:[ \t]{0,3}/[ \t]{0,3}/[ \t]{0,3}", "http://"),
    ("ttps", r"(?<![a-z])ttps(?=://)", "https"),
    ("ttp", r"(?<![a-z])ttp(?=://)", "http"),
    ("bracket_colon", r"[\[(]:[\])]", ":"),
    ("backslashes", r"(?<=:)[/\\]*\\[/\\]*", "//"),
    ("bracket_dot", r"[ \t]{0,2}[\[({<]\s{0,2}(?:\.|dot|点|點|dian)\s{0,2}[\])}>][ \t]{0,2}", "."),
    ("bracket_at", r"\s{0,2}[\[({<]\s{0,2}(?:at|@|艾特|아트)\s{0,2}[\])}>]\s{0,2}", "@"),
    ("word_dot", r"[ \t]{1,3}(?:dot|d0t|点|點)[ \t]{1,3}(?=(?:" + _WORD_TLDS + r")\b)", "."),
    ("cjk_dot", r"\s{0,2}(?:点|點|쩜|닷)\s{0,2}(?=(?:" + _WORD_TLDS + r")\b)", "."),
    ("spaced_dot", r"[ \t]\.[ \t](?=(?:" + _WORD_TLDS + r")\b)", "."),
    ("word_at", r"[ \t]{1,3}(?:at|アット|あっと|アットマーク|골뱅이)[ \t]{1,3}(?=(?:" + _PROVIDERS + r")\b)", "@"),
    ("ja_at", r"(?:アットマーク|あっとまーく)", "@"),
    ("comma_www", r"(?<![a-z])www,", "www."),
    ("comma_dot", r"(?<=[a-z0-9]),(?=(?:" + _WORD_TLDS + r")\b)", "."),
    ("pct_colon", r"%3a(?=%2f)", ":"),
    ("pct_slash", r"%2f", "/"),
    ("pct_dot", r"%2e", "."),
    # A run of single characters separated by single spaces: "n a m e @ g m a i l . c o m", "好 评 返 现".
    ("spaced_run", r"(?<!\S)(?:\S[ \t]){3,}\S(?!\S)", "\x00"),
]
_PATTERNS = {name: pat for name, pat, _ in _DEOBFUSCATIONS}
_DEOB_REPL = {name: repl for name, _, repl in _DEOBFUSCATIONS}
# Cheap triggers: an alternative joins the scan only if its trigger says it may match the text.
# A trigger is a set of substrings one of which every match contains and/or a regex every match
# also matches. Regexes here start with a literal wherever they
# can, with the look-behind moved after it: the regex engine then skips to that literal with a fast
# scan instead of entering the matcher at every position (≈ 1 ms per 100 KB per pattern otherwise).
_SPACED_HTTP = r"h(?<![a-z]h)[ \t]{0,3}t[ \t]{0,3}t[ \t]{0,3}p[ \t]{0,3}s?[ \t]{0,3}:[ \t]{0,3}/[ \t]{0,3}/"
#: (text, the trigger substrings present in it) → may the alternative match?
Trigger = Callable[[str, frozenset[str]], bool]
_ALL_NEEDLES: set[str] = {"\t"}


def _needles(*needles: str, then: str | None = None) -> Trigger:
    """True if one of the substrings is in the text (and, if given, the regex `then` matches).
    Which substrings are present is found for all triggers at once, in one Aho–Corasick pass."""
    _ALL_NEEDLES.update(needles)
    wanted = frozenset(needles)
    regex = re.compile(then) if then else None
    return lambda text, present: not wanted.isdisjoint(present) and (regex is None or regex.search(text) is not None)


def _regex(pattern: str) -> Trigger:
    regex = re.compile(pattern)
    return lambda text, _present: regex.search(text) is not None


def _either(*triggers: Trigger) -> Trigger:
    return lambda text, present: any(t(text, present) for t in triggers)


def _spaced_run(text: str, present: frozenset[str]) -> bool:
    # Two single characters between spaces (" b c ") are in every run of four or more; that
    # literal-first search is 8x cheaper than the run's own pattern. Tabs need the real thing.
    if "\t" in present:
        return _SPACED_RUN.search(text) is not None
    return _SINGLE_PAIR.search(text) is not None


_SPACED_RUN = re.compile(_PATTERNS["spaced_run"])
_SINGLE_PAIR = re.compile(r" \S \S ")
_BRACKETS = ("(", "[", "{", "<")
_HXXP = _needles("hxxp", "h**p", "hx*p", "h*xp")
# every spaced "http://" holds ":" and "/" with at most three SP/HTAB between them
_SPACED_HTTP_TRIGGER = _needles(*(":" + "".join(gap) + "/" for k in range(4) for gap in itertools.product(" \t", repeat=k)),
                                then=_SPACED_HTTP)
# Two names sharing one trigger object share one answer per text (match_view asks each once).
_TRIGGERS: dict[str, Trigger] = {
    "hxxps": _HXXP, "hxxp": _HXXP,
    "spaced_https": _SPACED_HTTP_TRIGGER, "spaced_http": _SPACED_HTTP_TRIGGER,
    "ttps": _needles("ttps://"), "ttp": _needles("ttp://"),
    "bracket_colon": _needles("(:", "[:"), "backslashes": _regex(r":[/\\]*\\"),
    "bracket_dot": _needles(*_BRACKETS, then=r"[\[({<]\s{0,2}(?:\.|dot|点|點|dian)"),
    "bracket_at": _needles(*_BRACKETS, then=r"[\[({<]\s{0,2}(?:at|@|艾特|아트)"),
    "word_dot": _needles("dot", "d0t", "点", "點", then=_PATTERNS["word_dot"]),
    "cjk_dot": _needles("点", "點", "쩜", "닷", then=_PATTERNS["cjk_dot"]),
    "spaced_dot": _needles(" .", "\t.", then=_PATTERNS["spaced_dot"]),
    # the literal-first "at" branch alone; the CJK words through the needles (in one alternation
    # they left the engine no first character to skip to: 0.32 vs 0.03 ms per 55 KB)
    "word_at": _either(_needles("アット", "あっと", "골뱅이"),
                       _regex(r"at(?<=[ \t]at)[ \t]{1,3}(?:" + _PROVIDERS + r")\b")),
    "ja_at": _needles("アットマーク", "あっとまーく"),
    "comma_www": _needles("www,"),
    "comma_dot": _regex(r",(?<=[a-z0-9],)(?=(?:" + _WORD_TLDS + r")\b)"),
    "pct_colon": _needles("%3a%2f"), "pct_slash": _needles("%2f"), "pct_dot": _needles("%2e"),
    "spaced_run": _spaced_run,
}
_NEEDLE_FINDER = ahocorasick_rs.AhoCorasick(sorted(_ALL_NEEDLES))


def needles_in(text: str) -> frozenset[str]:
    """Which of the triggers' substrings `text` holds: one Aho–Corasick pass for all of them."""
    return frozenset(_NEEDLE_FINDER.find_matches_as_strings(text, overlapping=True))


def _ask(trigger: Trigger, text: str, present: frozenset[str], answers: dict[int, bool]) -> bool:
    answer = answers.get(id(trigger))
    if answer is None:
        answer = answers[id(trigger)] = trigger(text, present)
    return answer


@lru_cache(maxsize=256)
def _deob_regex(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<{name}>{_PATTERNS[name]})" for name in names))


def obfuscation_patterns() -> tuple[tuple[str, str], ...]:
    """(name, pattern) of every obfuscation match_view undoes, in its order (for a caller that
    finds which may occur in its own pass and tells match_view through `maybe`)."""
    return tuple((name, pat) for name, pat, _ in _DEOBFUSCATIONS)


def match_view(n: Normalized, maybe: Collection[str] | None = None) -> View:
    """Undo common obfuscations so that links, addresses and phrases match. `maybe`: the names of
    the obfuscations that may occur in n.text (a superset of those that do); None: the triggers say."""
    text = n.text
    if maybe is None:
        present = needles_in(text)
        answers: dict[int, bool] = {}
        active = tuple(name for name, _, _ in _DEOBFUSCATIONS if _ask(_TRIGGERS[name], text, present, answers))
    else:
        active = tuple(name for name, _, _ in _DEOBFUSCATIONS if name in maybe)
    if not active:
        return View(text, Spans.identity(len(text)), [], n)
    out: list[str] = []
    spans = Spans()
    tokens: list[tuple[int, int]] = []
    pos = 0
    for m in _deob_regex(active).finditer(text):
        name = m.lastgroup or ""
        repl = _DEOB_REPL[name]
        if m.start() > pos:
            out.append(text[pos : m.start()])
            spans.copy(m.start() - pos, pos)
        if repl == "\x00":  # collapse the spaced run; keep each kept char's own position
            for k in range(m.start(), m.end()):
                if text[k] not in " \t":
                    out.append(text[k])
                    spans.copy(1, k)
        else:
            out.append(repl)
            spans.block(len(repl), m.start(), m.end())
        if m.group(0) != repl:
            tokens.append((m.start(), m.end()))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
        spans.copy(len(text) - pos, pos)
    return View("".join(out), spans, tokens, n)
