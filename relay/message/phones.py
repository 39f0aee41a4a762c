"""Phone numbers and messenger IDs in a text, however they are written.

Job: ``phones_in(text, digits)`` and ``messengers_in(text)`` read a *folded* text (the model's
normalize/match_view: NFKC, case folded, zero-width and soft-hyphen characters gone, spaced
runs closed up) and answer ``Contact`` findings with offsets in that text; the one entry point
``relay.message.contacts.find_contacts`` maps them back to the caller's own text. Config read:
none (pure). Errors raised: none.

Phones: every glyph that reads as a digit is one — ASCII and fullwidth (NFKC), kanji and Chinese
financial numerals, Korean digit words (공일이…), circled and dingbat digits (the digits view of
normalize.py), O/l/I standing next to digits for 0/1, and English digit words ("five five five",
"oh"), mixed freely. Between digits up to three separators (space, new line, ``.-/()·ー_*|>``).
A chain counts when it fits a numbering plan (``+``/``00`` international, a national ``0…``, a
Chinese mobile, a grouped NANP number) or a phone word stands near it; an order, tracking, ISBN
or postal context, a date or a number too long for any plan keeps it out.

Messengers: a messenger's name with an ID after it, a "write me on …" phrase or a messenger's
link, in English, Japanese, Chinese and Korean (rule ids ``contact.messenger.<name>``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import ahocorasick_rs


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact detail: what kind, which rule saw it, where it is, and (e-mail) the address."""

    kind: str  # "email" | "phone" | "messenger"
    rule: str  # contact.email, contact.phone, contact.phone_words, contact.messenger.line …
    start: int
    end: int
    detail: str
    value: str = ""  # an e-mail address as it reads (reversed ones turned round); "" otherwise


# --- phones ---------------------------------------------------------------------------------

_SEP_CHARS: Final = r"\s.\-‐‑‒–—―−ー－・()/_*|>"
_SEP: Final = f"[{_SEP_CHARS}]"
_PHONE: Final = re.compile(r"(?<![0-9a-z])(\+\s{0,2}|%2b)?(?:[0-9]" + _SEP + r"{0,3}){7,16}[0-9](?![0-9a-z])")
#: a run of O, l and I (folded: "i") that is not part of a word and stands next to a digit (O and
#: l also up to two separators after a digit, not the pronoun I) reads as 0s and 1s; same length, so offsets
#: hold; literal first, so the engine skips to each o, l or i
_LETTER_DIGITS: Final = re.compile(f"(?:[oli](?<=[0-9][oli])|[ol](?<=[0-9]{_SEP}[ol])|[ol](?<=[0-9]{_SEP}{{2}}[ol])"
                                   f"|[oli](?<![a-z][oli])(?=[oli]*{_SEP}{{0,3}}[0-9]))[oli]*(?![a-z])")
_AS_DIGIT: Final = str.maketrans("oli", "011")
_ASCII_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN: Final = re.compile("[0-9]+")
#: a phone number's digits are at most this far apart (three separators between two digits)
_DIGIT_GAP: Final = 4
_NUMBER_WORDS: Final = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_WORD_DIGIT: Final = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                      "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_PHONE_WORDS: Final = re.compile(r"(?<![a-z])(?:(?:" + "|".join(_NUMBER_WORDS) + r")[\s,-]{1,3}){6,}"
                                 r"(?:" + "|".join(_NUMBER_WORDS) + r")(?![a-z])")
_NUMBER_FINDER: Final = ahocorasick_rs.AhoCorasick(list(_NUMBER_WORDS))
_PHONE_CONTEXT: Final = re.compile(
    r"tel|phone|call|mobile|cell|whatsapp|sms|text\s+me|電話|携帯|けいたい|でんわ|电话|手机|手機|微信|同号|전화|핸드폰|"
    r"휴대폰|카톡|line|ライン|연락처")
_ORDER_CONTEXT: Final = re.compile(
    r"order|tracking|track|invoice|parcel|package|shipment|ref|item|sku|isbn|zip|post\s?code|postal|serial|"
    r"model|jan|ean|upc|注文|追跡|伝票|お問い合わせ番号|问い合わせ|郵便番号|〒|型番|品番|订单|訂單|单号|單號|运单|運單|"
    r"快递|快遞|物流|邮编|郵編|型号|주문|송장|운송장|우편번호|#|no\.|번호:")
#: What may stand between an order/tracking word and its number: label words and particles.
_LABEL_GAP: Final = re.compile(r"number|num|nr|no|id|code|is|was|are|were|番号|番號|号码|號碼|号|號|번호|번|は|が|の|是|为|為|는|은|이|가")


def _labels(before: str) -> bool:
    """An order, tracking, reference … word labels the number that follows ``before``: the last
    such word is followed by nothing but label words, particles, digits and punctuation (in
    "Tracking: 123. Write to 090-…" the words between say the number is something else)."""
    ends = [m.end() for m in _ORDER_CONTEXT.finditer(before)]
    if not ends:
        return False
    gap = _LABEL_GAP.sub("", before[ends[-1]:])
    return not any(c.isalpha() for c in gap)


_DATE: Final = re.compile(r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])?.*")


def _phone_like(digits: str, groups: list[int], plus: bool) -> str | None:
    """Which numbering plan the digit string fits, or None."""
    n = len(digits)
    if plus:
        return "international" if 8 <= n <= 15 else None
    if digits.startswith("00") and 10 <= n <= 15:
        return "international"
    if digits[0] == "0" and n in (10, 11):
        return "national"  # Japan, Korea, China landlines, UK …
    if digits.startswith("0") and n == 9 and len(groups) >= 3:
        return "national"  # Korea 02-123-4567
    if n == 11 and digits[0] == "1" and digits[1] in "3456789":
        return "cn-mobile"
    if n == 10 and digits[0] in "23456789" and groups in ([3, 3, 4], [10]):
        return "nanp" if groups != [10] else "nanp-ungrouped"
    if n == 11 and digits[0] == "1" and groups in ([1, 3, 3, 4], [11]):
        return "nanp"
    return None


def _sparse_digits(digits: str) -> str | None:
    """For an ASCII text with few digits, the text with every digit as "0": a find per digit
    then beats a regex scan by a character class (~10x: the class is tested at every character).
    None for any other text (a dict translate of a non-ASCII text costs a Python step per
    character; a find per digit of a digit-heavy one, a Python step per digit)."""
    last = _LAST_SPARSE[0]
    if last[0] is digits:  # phones_in asks three times for one text: answered once
        return last[1]
    if not digits.isascii():
        return None
    # (bytes.translate: one C pass; str.translate with a table looks up every character, ~0.08 ms
    # per 55 KB)
    marked: str | None = digits.encode("ascii").translate(_ASCII_DIGITS_AS_ZERO).decode("ascii")
    if marked is not None and marked.count("0") * 64 >= len(marked):
        marked = None
    _LAST_SPARSE[0] = (digits, marked)  # one tuple, swapped whole: safe across threads
    return marked


_LAST_SPARSE: list[tuple[str | None, str | None]] = [(None, None)]


def _digit_clusters(digits: str) -> list[tuple[int, int]]:
    """Windows around every stretch of at least 8 ASCII digits whose neighbours are at most
    _DIGIT_GAP apart: a phone number lies inside one (with up to 3 characters of "+ " or "%2b"
    before it and the character after it, which the pattern's look-ahead needs). The phone
    pattern then runs only there, not over the whole text."""
    marked = _sparse_digits(digits)
    if marked is None:
        return [(max(0, m.start() - 3), min(len(digits), m.end() + 1)) for m in _CLUSTER.finditer(digits)]
    out: list[tuple[int, int]] = []
    start = last = -1
    count = 0
    i = marked.find("0")
    while i >= 0:
        if start >= 0 and i - last <= _DIGIT_GAP:
            last = i
            count += 1
        else:
            if count >= 8:
                out.append((max(0, start - 3), min(len(digits), last + 2)))
            start = last = i
            count = 1
        i = marked.find("0", i + 1)
    if count >= 8:
        out.append((max(0, start - 3), min(len(digits), last + 2)))
    return out


#: 8 or more digits, each at most _DIGIT_GAP after the one before (digit first: a fast scan)
_CLUSTER: Final = re.compile(f"[0-9](?:[^0-9]{{0,{_DIGIT_GAP - 1}}}[0-9]){{7,}}")


def letter_digits(digits: str) -> str:
    """The digits view with O, l and I that stand next to digits read as 0 and 1 (same length)."""
    if "o" not in digits and "l" not in digits and "i" not in digits:
        return digits
    for _ in range(3):  # a run next to a run only just read as digits ("OlO O000"): again, a few times
        runs = [m.span() for lo, hi in _near_digits(digits) for m in _LETTER_DIGITS.finditer(digits, lo, hi)]
        if not runs:
            break
        pieces: list[str] = []
        pos = 0
        for start, end in runs:
            pieces.append(digits[pos:start])
            pieces.append(digits[start:end].translate(_AS_DIGIT))
            pos = end
        pieces.append(digits[pos:])
        digits = "".join(pieces)
    return digits


#: a stretch from a digit through digits, separators and o/l/i: where letters can read as digits
_DIGIT_STRETCH: Final = re.compile(f"[0-9][0-9oli{_SEP_CHARS}]*")


def _near_digits(digits: str) -> list[tuple[int, int]]:
    """Windows that hold every o, l or i that can read as a digit (the letter pattern then runs
    only there; it would otherwise start at every o, l and i of a text): after a digit, the
    stretch of digits, separators and o/l/i it starts; before it, a margin of 32 characters
    (a run of letters that ends within three separators of a digit)."""
    out: list[tuple[int, int]] = []
    for m in _stretches(digits):
        lo, hi = max(0, m.start() - 32), min(len(digits), m.end() + 2)
        if not _HAS_LETTER.search(digits, lo, hi):
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


_HAS_LETTER: Final = re.compile("[oli]")


def _stretches(digits: str) -> Iterator[re.Match[str]]:
    marked = _sparse_digits(digits)
    if marked is None:
        yield from _DIGIT_STRETCH.finditer(digits)
        return
    i = marked.find("0")
    while i >= 0:
        m = _DIGIT_STRETCH.match(digits, i)
        assert m is not None
        yield m
        i = marked.find("0", m.end())


def _classify(text: str, chunk: str, plus: bool, start: int, end: int, spelled: bool = False) -> str | None:
    """The plan a matched chain fits, or None if it is not a phone number (``text``: the folded
    text around it, for the context words; ``spelled``: some digits were words, whose spaces
    say nothing of the grouping)."""
    runs = _DIGIT_RUN.findall(chunk)
    groups = [len(g) for g in runs]
    number = "".join(runs)
    if spelled and len(number) != 9:
        groups = [len(number)]
    if len(number) < 8 or len(number) > 15:
        return None
    before = text[max(0, start - 30) : start]
    after = text[end : end + 12]
    phone_ctx = bool(_PHONE_CONTEXT.search(before) or _PHONE_CONTEXT.search(after))
    plan = _phone_like(number, groups, plus)
    if plan is None:
        if not (phone_ctx and 9 <= len(number) <= 13):
            return None
        plan = "context"
    if not phone_ctx and (_labels(before[-25:]) or (plan in ("nanp-ungrouped", "cn-mobile")
                          and _labels(before))):
        return None  # an order, tracking, reference, ISBN or postal number
    if groups[0] in (4, 8) and len(groups) > 1 and not phone_ctx and _DATE.fullmatch(number):
        return None  # a date and time: 2024.03.15 10:30
    return plan


def phones_in(text: str, digits: str, words: list[tuple[int, int, int]] | None = None) -> list[Contact]:
    """Phone numbers in a folded ``text`` whose digits view (same length) is ``digits``
    (``words``: the number words of literals_in, if the caller has them)."""
    digits = letter_digits(digits)
    hits: list[Contact] = []
    for start, end in _digit_clusters(digits):
        hits.extend(Contact("phone", "contact.phone", m.start(), m.end(), f"phone number ({plan})")
                    for m, plan in _chains(text, digits, start, end))
    if words is None:
        words = _NUMBER_FINDER.find_matches_as_indexes(text)
    if words:
        hits.extend(_spelled(text, digits, words))
        hits.extend(Contact("phone", "contact.phone_words", m.start(), m.end(), "phone number in words")
                    for start, end in _word_clusters(text, words) for m in _PHONE_WORDS.finditer(text, start, end))
    return _disjoint(hits)


def _chains(text: str, digits: str, start: int, end: int) -> Iterator[tuple[re.Match[str], str]]:
    """Each digit chain in [start, end) that fits a plan. A chain that does not, but runs over a
    line break, may be two numbers on consecutive lines ("080-9876-5432\\n010-3333-7777"): its
    first line is tried alone and the search goes on from the break."""
    pos = start
    while (m := _PHONE.search(digits, pos, end)) is not None:
        plan = _classify(text, m.group(0), bool(m.group(1)), m.start(), m.end())
        if plan is not None:
            yield m, plan
            pos = m.end()
            continue
        brk = _LINE_BREAK.search(digits, m.start(), m.end())
        if brk is None:
            pos = m.end()
            continue
        first = _PHONE.match(digits, m.start(), brk.start())
        if first is not None and (plan := _classify(text, first.group(0), bool(first.group(1)), first.start(),
                                                    first.end())) is not None:
            yield first, plan
        pos = brk.end()


_LINE_BREAK: Final = re.compile(r"[\r\n]+")


def _disjoint(hits: list[Contact]) -> list[Contact]:
    """Sorted by start; of overlapping findings the earlier (then the longer) one stays."""
    out: list[Contact] = []
    for h in sorted(hits, key=lambda h: (h.start, -h.end)):
        if out and h.start < out[-1].end:
            if h.end > out[-1].end:
                last = out[-1]
                out[-1] = Contact(last.kind, last.rule, last.start, h.end, last.detail, last.value)
            continue
        out.append(h)
    return out


def _word_clusters(text: str, words: list[tuple[int, int, int]] | None = None) -> list[tuple[int, int]]:
    """Windows around every chain of at least 7 number words (``words``: their occurrences, as
    _NUMBER_FINDER reports them) with 1 to 3 characters between neighbours (one more character
    at the end, for the pattern's look-ahead).
    A match of _PHONE_WORDS lies inside one: its words are occurrences the finder reports (a word
    is all letters and the characters between are not, so no earlier occurrence can overlap one),
    and consecutive ones. The pattern, which has no literal to skip to, then runs only there."""
    out: list[tuple[int, int]] = []
    first = last_end = -10
    count = 0
    for _idx, start, end in _NUMBER_FINDER.find_matches_as_indexes(text) if words is None else words:
        if 1 <= start - last_end <= 3:
            count += 1
        else:
            if count >= 7:
                out.append((first, min(len(text), last_end + 1)))
            first, count = start, 1
        last_end = end
    if count >= 7:
        out.append((first, min(len(text), last_end + 1)))
    return out


def _digit_runs(digits: str) -> list[tuple[int, int]]:
    """Where the runs of digits are (sorted)."""
    marked = _sparse_digits(digits)
    if marked is None:
        return [m.span() for m in _DIGIT_RUN.finditer(digits)]
    out: list[tuple[int, int]] = []
    i = marked.find("0")
    while i >= 0:
        run = _DIGIT_RUN.match(digits, i)
        assert run is not None
        j = run.end()
        out.append((i, j))
        i = marked.find("0", j)
    return out


def _spelled(text: str, digits: str, words: list[tuple[int, int, int]]) -> list[Contact]:
    """Phone numbers with some digits written as English words ("zero nine zero 1234 five six
    seven eight"): around each chain of number words (whole words, at most 16 characters apart)
    that holds with the digits near it at least 8 digits, every word becomes its digit (a shorter
    text with a map back) and the digit pattern runs again; the same plans decide."""
    size = len(text)
    runs = _digit_runs(digits)
    # first, cheaply: stretches of occurrences (whole words or not) at most 16 apart that have 8
    # of them or a digit near; prose ("someone", "at three") has neither
    keep: list[tuple[int, int]] = []
    first = last = -100
    count = r = 0
    for _idx, start, end in [*words, (0, size + 100, size + 100)]:
        if start - last > 16:
            if count:
                lo = first - 24
                while r < len(runs) and runs[r][1] <= lo:
                    r += 1
                if count >= 8 or (r < len(runs) and runs[r][0] < last + 24):
                    keep.append((first, last))
            first, count = start, 0
        count += 1
        last = end
    chains: list[list[tuple[int, int]]] = []
    at = 0
    for lo, hi in keep:
        while words[at][1] < lo:
            at += 1
        while at < len(words) and words[at][2] <= hi:
            _idx, start, end = words[at]
            at += 1
            if (start and "a" <= text[start - 1] <= "z") or (end < size and "a" <= text[end] <= "z"):
                continue  # part of a longer word: "someone", "john"
            if chains and start - chains[-1][-1][1] <= 16:
                chains[-1].append((start, end))
            else:
                chains.append([(start, end)])
    out: list[Contact] = []
    for chain in chains:
        lo, hi = max(0, chain[0][0] - 24), min(size, chain[-1][1] + 24)
        if len(chain) < 8:
            k = bisect.bisect_right(runs, (lo, -1)) - 1  # the last run that starts before lo may reach in
            near = 0
            for b, e in runs[max(0, k) :]:
                if b >= hi:
                    break
                near += max(0, min(e, hi) - max(b, lo))
            if len(chain) + near < 8:
                continue  # a word or two in prose: "one of them", "at three"
        pieces: list[str] = []
        where: list[int] = []  # for each character of the spelled-out window, its offset in text
        ends: dict[int, int] = {}  # a word's offset → its end
        pos = lo
        for start, end in chain:
            pieces.append(digits[pos:start])
            where.extend(range(pos, start))
            pieces.append(_WORD_DIGIT[text[start:end]])
            where.append(start)
            ends[start] = end
            pos = end
        pieces.append(digits[pos:hi])
        where.extend(range(pos, hi))
        spelled = "".join(pieces)
        for m in _PHONE.finditer(spelled):
            first, last = where[m.start()], where[m.end() - 1]
            if not any(first <= w <= last for w in ends):
                continue  # no word in it: the digit pass has judged it
            end = ends.get(last, last + 1)
            plan = _classify(text, m.group(0), bool(m.group(1)), first, end, spelled=True)
            if plan is not None:
                out.append(Contact("phone", "contact.phone_words", first, end, f"phone number in words ({plan})"))
    return out


# --- messengers -----------------------------------------------------------------------------

#: the rest of a messenger link (its ID or number)
_PATH: Final = r"[a-z0-9_+%./#~=?&-]{0,80}"
_APPS: Final = (r"whatsapp|whats\s?app|telegram|wechat|weixin|line|kakao(?:\s?talk)?|instagram|signal|viber|skype|"
                r"facebook|messenger|snapchat|discord")
#: (rule id, language, patterns); every match of a pattern holds one of _KEYWORDS (the scan runs
#: only near them)
MESSENGER_RULES: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("contact.messenger.line", "ja", (
        r"(?<![a-z])line\s{0,2}(?:id(?![a-z])|アイディー?|아이디|账号|帳號|号|號)\s{0,2}[:：=は]?\s{0,2}@?[a-z0-9._-]{3,30}",
        r"(?<![a-z])line\s{0,2}[:：=]\s{0,2}@[a-z0-9._-]{3,30}",
        r"(?:ライン|らいん|라인)\s{0,2}(?:id|アイディー?|아이디)?\s{0,2}[:：=は]?\s{0,2}@?[a-z][a-z0-9._-]{2,30}",
        r"(?:ライン|らいん|(?<![a-z])line)\s{0,2}(?:で|に|の)\s{0,2}(?:連絡|友達|ともだち|追加|やり取り|やりとり|お問い合わせ)",
        r"(?:加我?|加个|加個)\s{0,2}line",
        r"(?:라인|(?<![a-z])line)\s{0,2}(?:으로|로)\s{0,2}(?:연락|문의|추가)",
        r"(?:line\.me|lin\.ee)/" + _PATH,
    )),
    ("contact.messenger.wechat", "zh", (
        r"(?:微信|威信|薇信|徽信|卫星|衛星|v信|(?<![a-z])(?:wechat|weixin|vx|wx)|위챗)\s{0,2}(?:号|號|id|아이디)?\s{0,2}[:：=]\s{0,2}"
        r"[a-z0-9_-]{5,30}",
        r"(?:微信|威信|薇信|徽信|v信|(?<![a-z])(?:wechat|weixin)|위챗)\s{0,2}(?:号|號|id|아이디)?\s{0,2}(?!pay)"
        r"[a-z][a-z0-9_-]{4,30}",
        r"加\s{0,2}(?:v|vx|wx|v信|微信|威信|薇信|卫星|q|qq|扣扣)(?![a-z])",
        r"\+\s{0,2}(?:vx|wx|v信|微信|威信|薇信|卫星|qq|扣扣)(?![a-z])",
        r"微信号|微信號|微信同号|微信同號|同微信|加我微信|加个微信|加個微信|微信联系|微信聯繫|微信聊|私聊|加好友",
        r"(?:weixin\.qq\.com|u\.wechat\.com)" + _PATH,
    )),
    ("contact.messenger.qq", "zh", (r"(?:(?<![a-z])qq|扣扣|企鹅|企鵝)\s{0,2}(?:号|號|群)?\s{0,2}[:：=]?\s{0,2}\d{5,12}",)),
    ("contact.messenger.kakao", "ko", (
        r"(?:카톡|카카오톡|카카오|(?<![a-z])kakao\s?talk|(?<![a-z])kakao|カカオ(?:トーク)?)\s{0,2}(?:아이디|id|친구|アイディー?)\s{0,2}[:：=]?"
        r"\s{0,2}@?[a-z0-9._-]{3,30}",
        r"(?:카톡|카카오톡|(?<![a-z])kakaotalk)\s{0,2}[:：=]\s{0,2}@?[a-z0-9._-]{3,30}",
        r"(?:카톡|카카오톡|오픈\s?채팅)\s{0,2}(?:으로|로)?\s{0,2}(?:연락|문의|친추|친구\s?추가|추가)",
        r"(?:open|pf|qr)\.kakao\.com" + _PATH,
    )),
    ("contact.messenger.telegram", "en", (
        r"(?:(?<![a-z])(?:telegram|tg)|텔레그램|テレグラム|电报|電報)\s{0,2}(?:id|아이디|アイディー?|号|號)?\s{0,2}[:：=]\s{0,2}@?"
        r"[a-z0-9_]{4,32}",
        r"(?:(?<![a-z])(?:telegram|tg|instagram|insta|ig|twitter|tiktok|snapchat)|インスタ|인스타)\s{0,3}[:：]?\s{0,3}@[a-z0-9_.]{3,30}",
        r"@[a-z0-9_]{4,32}\s{1,3}(?:on|via|at|in)\s{1,3}(?:telegram|signal|instagram|twitter|tiktok|snapchat|"
        r"discord)",
        r"@[a-z0-9_]{4,32}\s{0,2}(?:\(|（)?\s{0,2}(?:telegram|텔레그램|テレグラム|电报|電報)",
        r"(?<![a-z])(?:t|telegram)\.me/" + _PATH + r"|telegram\.dog/" + _PATH,
    )),
    ("contact.messenger.whatsapp", "en", (
        r"(?:(?<![a-z])whats\s?app|왓츠앱|ワッツアップ|瓦次普)\s{0,2}(?:number|no\.?|번호|番号|号码|號碼)?\s{0,2}[:：=]?"
        r"\s{0,2}\+?\d[\d \-]{6,18}\d",
        r"(?:wa\.me/|api\.whatsapp\.com|chat\.whatsapp\.com)" + _PATH,
        r"(?<![a-z])(?:contact|message|text|reach|add|find|ping|dm|call|chat\s{1,3}with)\s{1,3}(?:me|us)\s{1,3}"
        r"(?:on|via|at|through|in|over)\s{1,3}(?:" + _APPS + r")",
        r"(?<![a-z])(?:whatsapp|telegram|viber|signal|skype)\s{1,3}(?:me|us)(?![a-z])",
        r"(?:加我|加个|加個|用)\s{0,2}(?:whatsapp|telegram|skype|signal|viber|电报|電報)",
        r"(?:(?<![a-z])(?:whatsapp|telegram)|テレグラム|ワッツアップ|スカイプ|シグナル)\s{0,2}(?:で|に)\s{0,2}"
        r"(?:連絡|ご連絡|友達|追加|やり取り|やりとり|お問い合わせ)",
        r"(?:왓츠앱|텔레그램|스카이프|시그널)\s{0,2}(?:으로|로)\s{0,2}(?:연락|문의|추가)",
    )),
    ("contact.messenger.skype", "en", (
        r"(?:(?<![a-z])skype|スカイプ|스카이프)\s{0,2}(?:id|name|名|아이디|アイディー?)?\s{0,2}[:：]\s{0,2}(?:live:)?[a-z0-9._-]{3,64}",
        r"(?:(?<![a-z])(?:signal|viber|discord)|シグナル|시그널)\s{0,2}(?:id|name|number|username|아이디)?\s{0,2}[:：]\s{0,2}"
        r"@?[a-z0-9._+-]{3,64}",
        r"skype:[a-z0-9._-]{3,64}\?|(?:signal\.me|viber\.click|discord\.gg)/" + _PATH,
    )),
)
#: literals one of which every match of every pattern above holds
_KEYWORDS: Final = (
    "line", "ライン", "らいん", "라인", "微信", "威信", "薇信", "徽信", "卫星", "衛星", "v信", "wechat", "weixin", "vx",
    "wx", "위챗", "加", "+", "私聊", "qq", "扣扣", "企鹅", "企鵝", "카톡", "카카오", "kakao", "カカオ", "오픈",
    "telegram", "텔레그램", "テレグラム", "电报", "電報", "tg", "@", "whats", "왓츠앱", "ワッツアップ", "瓦次普", "wa.me/",
    "skype", "スカイプ", "스카이프", "signal", "viber", "discord", "シグナル", "시그널", "lin.ee/", "t.me/", "facebook",
    "messenger", "instagram", "snapchat",
)
_KEYWORD_FINDER: Final = ahocorasick_rs.AhoCorasick(list(_KEYWORDS))
#: how far a match can reach before its keyword, and after it
_REACH_BEFORE: Final = 48
_REACH_AFTER: Final = 160
_MESSENGER: Final = re.compile("|".join(f"(?P<m{i}>{'|'.join(patterns)})"
                                        for i, (_id, _lang, patterns) in enumerate(MESSENGER_RULES)))


#: the literals of literals_in: the number words, then the messenger keywords
LITERALS: Final = (*_NUMBER_WORDS, *_KEYWORDS)
_LITERAL_FINDER: Final = ahocorasick_rs.AhoCorasick(list(LITERALS))


def literals_in(text: str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """The number words and the messenger keywords of ``text``, in one pass (for phones_in and
    messengers_in: a pass of each automaton costs ~0.25 ms per 100 KB)."""
    return split_literals(_LITERAL_FINDER.find_matches_as_indexes(text))


def split_literals(found: list[tuple[int, int, int]]) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Occurrences of LITERALS (index, start, end; leftmost non-overlapping, as Aho–Corasick's
    standard search reports them) → (number words, messenger keywords)."""
    n = len(_NUMBER_WORDS)
    return [f for f in found if f[0] < n], [f for f in found if f[0] >= n]


def _keyword_windows(text: str, keywords: list[tuple[int, int, int]] | None = None) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for _idx, start, end in _KEYWORD_FINDER.find_matches_as_indexes(text) if keywords is None else keywords:
        lo, hi = max(0, start - _REACH_BEFORE), min(len(text), end + _REACH_AFTER)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def messengers_in(text: str, *, windowed: bool = True, keywords: list[tuple[int, int, int]] | None = None,
                  ) -> list[Contact]:
    """Messenger IDs, "write me on …" phrases and messenger links in a folded ``text``
    (``keywords``: those of literals_in, if the caller has them)."""
    windows = _keyword_windows(text, keywords) if windowed else [(0, len(text))]
    out: list[Contact] = []
    for lo, hi in windows:
        for m in _MESSENGER.finditer(text, lo, hi):
            if m.end() <= m.start() or m.lastgroup is None:
                continue
            rule, lang, _patterns = MESSENGER_RULES[int(m.lastgroup[1:])]
            if out and m.start() < out[-1].end:
                continue
            out.append(Contact("messenger", rule, m.start(), m.end(), f"messenger ID ({lang})"))
    return out
