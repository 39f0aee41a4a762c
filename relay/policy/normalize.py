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

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Default-ignorable or invisible characters that people slip into words to break matching.
_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
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
    for lo, hi in _IGNORABLE_RANGES:
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



def map_span(length: int, starts: list[int], ends: list[int], start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) span of a derived text of `length` back through per-character offsets."""
    if not length or end <= start:
        return (0, 0)
    start = max(0, min(start, length - 1))
    end = max(start + 1, min(end, length))
    return (starts[start], ends[end - 1])

@dataclass(slots=True)
class Normalized:
    """A folded text and, per character, the [start, end) span of the source it came from."""

    source: str
    text: str
    starts: list[int]
    ends: list[int]
    _digits: str | None = None

    @property
    def digits(self) -> str:
        """Same length as text; CJK/Hangul/dingbat numerals read as ASCII digits."""
        if self._digits is None:
            self._digits = self.text.translate(_DIGITS_TABLE)
        return self._digits

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalized text back to the source text."""
        return map_span(len(self.text), self.starts, self.ends, start, end)

    def source_upper_at(self, index: int) -> bool:
        """Was the source character behind normalized index `index` upper-case?"""
        if 0 <= index < len(self.starts):
            s = self.source[self.starts[index] : self.ends[index]]
            return s[:1].isupper()
        return False


def normalize(source: str) -> Normalized:
    """Fold `source` for matching; see the module docstring for the steps."""
    if source.isascii():
        # Fast path: ASCII needs only case folding and no offset remapping.
        idx = list(range(len(source)))
        return Normalized(source, source.lower(), idx, list(range(1, len(source) + 1)))
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    n = len(source)
    i = 0
    while i < n:
        j = i + 1
        while j < n and _joins(source[j]):
            j += 1
        cluster = source[i:j]
        folded = _fold(cluster) if not cluster.isascii() else cluster.lower()
        for ch in folded:
            out.append(ch)
            starts.append(i)
            ends.append(j)
        i = j
    return Normalized(source, "".join(out), starts, ends)


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
    nstarts: list[int]
    nends: list[int]
    tokens: list[tuple[int, int]]
    norm: Normalized
    _digits: str | None = None

    @property
    def digits(self) -> str:
        if self._digits is None:
            self._digits = self.text.translate(_DIGITS_TABLE)
        return self._digits

    def to_norm(self, start: int, end: int) -> tuple[int, int]:
        return map_span(len(self.text), self.nstarts, self.nends, start, end)

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
_DEOB_REPL = {name: repl for name, _, repl in _DEOBFUSCATIONS}
# Cheap triggers: an alternative joins the scan only if its trigger is in the text.
_TRIGGERS: dict[str, re.Pattern[str]] = {
    "hxxps": re.compile(r"h[x*]{2}p"), "hxxp": re.compile(r"h[x*]{2}p"),
    "spaced_https": re.compile(r"h[ \t]{1,3}t|t[ \t]{1,3}p[ \t]{0,3}s?[ \t]{0,3}:|:[ \t]{1,3}/|/[ \t]{1,3}/"),
    "spaced_http": re.compile(r"h[ \t]{1,3}t|t[ \t]{1,3}p[ \t]{0,3}:|:[ \t]{1,3}/|/[ \t]{1,3}/"),
    "ttps": re.compile(r"ttps://"), "ttp": re.compile(r"ttp://"),
    "bracket_colon": re.compile(r"[\[(]:"), "backslashes": re.compile(r":[/\\]*\\"),
    "bracket_dot": re.compile(r"[\[({<]\s{0,2}(?:\.|dot|点|點|dian)"),
    "bracket_at": re.compile(r"[\[({<]\s{0,2}(?:at|@|艾特|아트)"),
    "word_dot": re.compile(r"dot|d0t|点|點"), "cjk_dot": re.compile(r"点|點|쩜|닷"),
    "spaced_dot": re.compile(r"[ \t]\.[ \t]"),
    "word_at": re.compile(r"[ \t]at[ \t]|アット|あっと|골뱅이"), "ja_at": re.compile(r"アットマーク|あっとまーく"),
    "comma_www": re.compile(r"www,"), "comma_dot": re.compile(r"[a-z0-9],[a-z]"),
    "pct_colon": re.compile(r"%3a"), "pct_slash": re.compile(r"%2f"), "pct_dot": re.compile(r"%2e"),
    "spaced_run": re.compile(r"(?<!\S)\S[ \t]\S[ \t]\S[ \t]\S(?!\S)"),
}
_PATTERNS = {name: pat for name, pat, _ in _DEOBFUSCATIONS}


@lru_cache(maxsize=256)
def _deob_regex(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<{name}>{_PATTERNS[name]})" for name in names))


def match_view(n: Normalized) -> View:
    """Undo common obfuscations so that links, addresses and phrases match."""
    text = n.text
    active = tuple(name for name, _, _ in _DEOBFUSCATIONS if _TRIGGERS[name].search(text))
    if not active:
        idx = list(range(len(text)))
        return View(text, idx, [i + 1 for i in idx], [], n)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    tokens: list[tuple[int, int]] = []
    pos = 0
    for m in _deob_regex(active).finditer(text):
        name = m.lastgroup or ""
        repl = _DEOB_REPL[name]
        if m.start() > pos:
            out.append(text[pos : m.start()])
            starts.extend(range(pos, m.start()))
            ends.extend(range(pos + 1, m.start() + 1))
        if repl == "\x00":  # collapse the spaced run; keep each kept char's own position
            for k in range(m.start(), m.end()):
                if text[k] not in " \t":
                    out.append(text[k])
                    starts.append(k)
                    ends.append(k + 1)
        else:
            out.append(repl)
            starts.extend([m.start()] * len(repl))
            ends.extend([m.end()] * len(repl))
        if m.group(0) != repl:
            tokens.append((m.start(), m.end()))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
    return View("".join(out), starts, ends, tokens, n)
