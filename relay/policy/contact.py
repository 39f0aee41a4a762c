"""Contact details that move a conversation off the platform: e-mail addresses and phone numbers.

Reads [contact] (mail_providers, rules) and [allowlist] of policy.toml; messenger IDs are
phrase rules (phrases.py). Addresses in `own_addresses` (our aliases, the parties' own
registered addresses that the rewriter maps to aliases) are not contact details.
Phones are matched on the digits view, so ０９０ー１２３４ー５６７８, 〇九〇・一二三四・五六七八,
공일공 일이삼사 오육칠팔 and ❶❷… read as digits. Rule ids: contact.email,
contact.email_obfuscated, contact.email_reversed, contact.phone, contact.phone_words.
"""

from __future__ import annotations

import re

import ahocorasick_rs

from relay.message.contacts import is_own
from relay.message.normalize import View
from relay.policy.links import Hit, tlds
from relay.policy.settings import Policy

_EMAIL = re.compile(r"(?<![a-z0-9._%+-])([a-z0-9._%+-]{1,64})@((?:[a-z0-9-]{1,63}\.){1,8}([a-z]{2,63}|xn--[a-z0-9-]{1,59}))"
                    r"(?![a-z0-9-])")
_TOKEN_AT = re.compile(r"(?<![a-z0-9._-])[a-z0-9._-]{3,80}@[a-z0-9._%+-]{1,64}(?![a-z0-9._%+-])")
_SEP = r"[\s.\-‐‑‒–—―−ー－・()/]"
_PHONE = re.compile(r"(?<![0-9a-z])(\+\s{0,2})?(?:[0-9]" + _SEP + r"{0,3}){7,16}[0-9](?![0-9a-z])")
_O_AS_ZERO = re.compile(r"o(?:(?<=[0-9\-]o)|(?=[0-9]))")  # literal first: a fast scan to each "o"
_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")
#: a phone number's digits are at most this far apart (three separators between two digits)
_DIGIT_GAP = 4
_NUMBER_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_PHONE_WORDS = re.compile(r"(?<![a-z])(?:(?:" + "|".join(_NUMBER_WORDS) + r")[\s,-]{1,3}){6,}"
                          r"(?:" + "|".join(_NUMBER_WORDS) + r")(?![a-z])")
_NUMBER_FINDER = ahocorasick_rs.AhoCorasick(_NUMBER_WORDS)
_PHONE_CONTEXT = re.compile(r"tel|phone|call|mobile|cell|whatsapp|sms|text\s+me|電話|携帯|けいたい|でんわ|电话|電話|"
                            r"手机|手機|微信|同号|전화|핸드폰|휴대폰|카톡|line|ライン|연락처")
_ORDER_CONTEXT = re.compile(r"order|tracking|track|invoice|parcel|package|shipment|ref|item|sku|注文|追跡|伝票|"
                            r"お問い合わせ番号|问い合わせ|订单|訂單|单号|單號|运单|運單|快递|快遞|物流|주문|송장|운송장|"
                            r"#|no\.|번호:")


def find_contacts(view: View, policy: Policy, own_addresses: frozenset[str] = frozenset()) -> list[Hit]:
    hits: list[Hit] = []
    text = view.text
    if "@" in text:
        hits.extend(_emails(view, policy, own_addresses))
    hits.extend(_phones(view))
    return [h for h in hits if policy.enabled("contact", h.rule)]


def _allowed_email(addr: str, domain: str, policy: Policy, own: frozenset[str]) -> bool:
    if is_own(addr, own) or addr in policy.allow_emails:
        return True
    labels = domain.split(".")
    return any(".".join(labels[i:]) in policy.allow_domains for i in range(len(labels)))


def _emails(view: View, policy: Policy, own: frozenset[str]) -> list[Hit]:
    text = view.text
    hits: list[Hit] = []
    known = tlds()
    spans: list[tuple[int, int]] = []
    for m in _EMAIL.finditer(text):
        local, domain, tld = m.group(1), m.group(2), m.group(3)
        if tld not in known or local.startswith(".") or local.endswith("."):
            continue
        addr = f"{local}@{domain}"
        spans.append((m.start(), m.end()))
        if _allowed_email(addr, domain, policy, own):
            continue
        rule = "contact.email_obfuscated" if view.obfuscated(m.start(), m.end()) else "contact.email"
        hits.append(Hit("contact", rule, m.start(), m.end(), "e-mail address"))
    providers = "|".join(re.escape(p) for p in policy.settings.contact.mail_providers)
    if providers:
        bare = re.compile(r"(?<![a-z0-9._%+-])[a-z0-9._%+-]{2,64}@(?:" + providers + r")(?![a-z0-9-]|\.[a-z])")
        for m in bare.finditer(text):
            if is_own(m.group(0), own):
                spans.append((m.start(), m.end()))
                continue
            hits.append(Hit("contact", "contact.email_obfuscated", m.start(), m.end(), "address without domain"))
            spans.append((m.start(), m.end()))
    provider_set = set(policy.settings.contact.mail_providers)
    for m in _TOKEN_AT.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in spans):
            continue
        rev = m.group(0)[::-1]
        rm = _EMAIL.fullmatch(rev)
        if rm and rm.group(3) in known and rm.group(2).split(".")[0] in provider_set and not is_own(rev, own):
            hits.append(Hit("contact", "contact.email_reversed", m.start(), m.end(), "reversed e-mail address"))
    return hits


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


def _digit_clusters(digits: str) -> list[tuple[int, int]]:
    """Windows around every stretch of at least 8 ASCII digits whose neighbours are at most
    _DIGIT_GAP apart: a phone number lies inside one (with up to 3 characters of "+ " before it
    and the character after it, which the pattern's look-ahead needs). The phone pattern then
    runs only there, not over the whole text."""
    marked = digits.translate(_DIGITS_AS_ZERO)
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


def _phones(view: View) -> list[Hit]:
    digits = view.digits
    if "o" in digits:
        digits = _O_AS_ZERO.sub("0", digits)
    clusters = _digit_clusters(digits)
    if not clusters:
        return _phone_words(view)
    hits: list[Hit] = []
    for m in (m for start, end in clusters for m in _PHONE.finditer(digits, start, end)):
        chunk = m.group(0)
        groups = [len(g) for g in re.findall(r"[0-9]+", chunk)]
        number = "".join(re.findall(r"[0-9]", chunk))
        if len(number) < 8 or len(number) > 15:
            continue
        before = view.text[max(0, m.start() - 30) : m.start()]
        after = view.text[m.end() : m.end() + 12]
        phone_ctx = bool(_PHONE_CONTEXT.search(before) or _PHONE_CONTEXT.search(after))
        plan = _phone_like(number, groups, bool(m.group(1)))
        if plan is None:
            if not (phone_ctx and 9 <= len(number) <= 13):
                continue
            plan = "context"
        if not phone_ctx and (_ORDER_CONTEXT.search(before[-25:]) or (plan in ("nanp-ungrouped", "cn-mobile")
                              and _ORDER_CONTEXT.search(before))):
            continue  # an order, tracking or reference number
        if re.fullmatch(r"(?:19|20)\d{2}[01]\d[0-3]\d.*", number) and not phone_ctx and len(groups) > 1:
            continue  # a date and time: 2024.03.15 10:30
        hits.append(Hit("contact", "contact.phone", m.start(), m.end(), f"phone number ({plan})"))
    return hits + _phone_words(view)


def _phone_words(view: View) -> list[Hit]:
    text = view.text
    return [Hit("contact", "contact.phone_words", m.start(), m.end(), "phone number in words")
            for start, end in _word_clusters(text) for m in _PHONE_WORDS.finditer(text, start, end)]


def _word_clusters(text: str) -> list[tuple[int, int]]:
    """Windows around every chain of at least 7 number words with 1 to 3 characters between
    neighbours (one more character at the end, for the pattern's look-ahead). A match of
    _PHONE_WORDS lies inside one: its words are occurrences the finder reports (a word is all
    letters and the characters between are not, so no earlier occurrence can overlap one), and
    consecutive ones. The pattern, which has no literal to skip to, then runs only there."""
    out: list[tuple[int, int]] = []
    first = last_end = -10
    count = 0
    for _idx, start, end in _NUMBER_FINDER.find_matches_as_indexes(text):
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
