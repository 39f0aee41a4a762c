"""The link patterns run only inside windows (around colons, inside dotted tokens); that must find
exactly what one pass over the whole text finds. Checked on the adversarial table, the text of every
corpus message and random strings dense in dots, colons, slashes and digits."""

from __future__ import annotations

import random
import re

import pytest

from relay.message import parts
from relay.message.normalize import match_view, normalize
from relay.policy import Policy, links
from relay.policy.engine import to_crlf
from tests.unit.policy.cases import ADVERSARIAL, ORDINARY
from tests.unit.policy.conftest import CORPUS

_COLON_PATTERNS = (links._SCHEME_URL, links._APP_URL, links._DATA_URI, links._SCRIPT_URI, links._MAILTO)
_DOT_PATTERNS = (links._IPV4, links._DOMAIN)


def _texts() -> list[str]:
    texts = [t for _, t in ADVERSARIAL] + [t for t in ORDINARY]
    for path in sorted(CORPUS.rglob("*.eml"))[:200]:
        raw = to_crlf(path.read_bytes())
        try:
            root = parts.parse(raw)
            for leaf in root.leaves():
                if leaf.content_type.startswith("text/"):
                    texts.append(parts.decode_text(parts.decode_body(raw, leaf), leaf.charset)[0][:50_000])
        except Exception:  # a malformed message: its text is not needed here
            continue
    rnd = random.Random(7)
    alphabet = "ab1.9:/ \n\t@-xw.:" + "é日"
    texts += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 400))) for _ in range(400)]
    texts += ["http://a.example/" + "x" * 2100 + ":http://b.example", "1.2.3.4.5 9.9.9.9", "x:" * 500]
    return [match_view(normalize(t)).text for t in texts]


TEXTS = _texts()


def _spans(it: object) -> list[tuple[int, int]]:
    return [m.span() for m in it]  # type: ignore[attr-defined]


@pytest.mark.parametrize("pattern", _COLON_PATTERNS, ids=lambda p: p.pattern[:20])
def test_colon_windows_find_what_a_whole_pass_finds(pattern: re.Pattern[str]) -> None:
    for text in TEXTS:
        assert _spans(links._finditer(pattern, text, links._near_colons(text))) == _spans(pattern.finditer(text))


@pytest.mark.parametrize("pattern", _DOT_PATTERNS, ids=lambda p: p.pattern[:20])
def test_dotted_token_windows_find_what_a_whole_pass_finds(pattern: re.Pattern[str]) -> None:
    for text in TEXTS:
        assert _spans(links._finditer(pattern, text, links._dotted_tokens(text))) == _spans(pattern.finditer(text))


def test_the_corpus_gave_texts() -> None:
    assert len(TEXTS) > 700


@pytest.mark.parametrize(("pattern", "plain_form"), [
    (links._PROTO_REL, r"(?<![\w:/])//[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,8}(?![\w-])"),
    (links._MAILTO, r"(?<![a-z0-9])mailto\s{0,2}:\s{0,2}([^\s<>\"'?,;]{1,320})"),
    (links._DATA_URI, r"(?<![a-z0-9])data:[a-z]{1,20}/[a-z0-9.+-]{1,60}[;,][^\s<>\"']{0,2048}"),
], ids=["protocol_relative", "mailto", "data_uri"])
def test_literal_first_rewrites_match_the_plain_form(pattern: re.Pattern[str], plain_form: str) -> None:
    """The look-behind moved after the first literal changes the speed, not the matches."""
    plain = re.compile(plain_form)
    extra = ["//a.b //c.d", "x//a.b", "://a.b", "mailto:a@b.c", "xmailto:a@b", "data:text/html,x", "adata:a/b,c"]
    for text in [*TEXTS, *extra]:
        assert _spans(pattern.finditer(text)) == _spans(plain.finditer(text))


def _phone_texts() -> list[str]:
    rnd = random.Random(11)
    alphabet = "0123456789 -.+()o ax\n"
    made = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 300))) for _ in range(600)]
    fixed = ["call +81 90-1234-5678 now", "tel 090 1234 5678x", "12345678", "1234567", "+ 1 2 3 4 5 6 7 8 9a",
             "a1234567890", "order 2024.03.15 10:30 ok", "0 9 0 1 2 3 4 5 6 7 8", "1    2345678901"]
    return [contact_digits(t) for t in [*TEXTS, *made, *fixed]]


def contact_digits(text: str) -> str:
    from relay.message.phones import letter_digits

    return letter_digits(text)


def test_phone_windows_find_what_a_whole_pass_finds() -> None:
    from relay.message.phones import _PHONE, _digit_clusters

    for text in _phone_texts():
        windowed = [m for s, e in _digit_clusters(text) for m in _PHONE.finditer(text, s, e)]
        whole = [m for m in _PHONE.finditer(text) if len(re.findall(r"[0-9]", m.group(0))) >= 8]
        assert _spans(windowed) == _spans(whole), text
        # a non-ASCII text takes the regex path, an ASCII one the find loop: the same windows
        assert [(s, min(e, len(text))) for s, e in _digit_clusters(text + "\u3000")] == _digit_clusters(text), text


def test_phone_word_windows_find_what_a_whole_pass_finds() -> None:
    """_PHONE_WORDS runs only around chains of number words; it must find what a pass over the
    whole text finds, on texts dense in number words, near-words and separators."""
    from relay.message.phones import _NUMBER_WORDS, _PHONE_WORDS, _word_clusters

    rnd = random.Random(13)
    words = [*_NUMBER_WORDS, "someone", "phone", "ohm", "nineteen", "a", "x"]
    gaps = [" ", ", ", "-", " - ", "\n", "  ", "", "    ", ",,"]
    made = ["".join(rnd.choice(words) + rnd.choice(gaps) for _ in range(rnd.randint(1, 30))) for _ in range(3000)]
    found = 0
    for text in [*TEXTS, *made]:
        windowed = [m for s, e in _word_clusters(text) for m in _PHONE_WORDS.finditer(text, s, e)]
        whole = list(_PHONE_WORDS.finditer(text))
        assert _spans(windowed) == _spans(whole), text
        found += len(whole)
    assert found > 100  # the texts do hold numbers in words


def test_letter_digits_find_what_the_plain_rewrite_finds() -> None:
    """letter_digits reads O/l/I as digits only near digits; the phone pattern must find on it
    what it finds after the plain rule (a letter run next to a digit or, O and l, within two
    separators after one; applied until nothing changes) rewrote the whole text."""
    from relay.message.phones import _PHONE, letter_digits

    sep = "[\\s.\\-‐‑‒–—―−ー－・()/_*|>]"
    plain = re.compile(f"(?:(?<=[0-9])[oli]+|(?:(?<=[0-9]{sep})|(?<=[0-9]{sep}{{2}}))[ol][oli]*"
                       f"|(?<![a-z])[oli]+(?={sep}{{0,3}}[0-9]))(?![a-z])")

    def rewrite(text: str) -> str:
        for _ in range(3):
            new = plain.sub(lambda m: m.group().translate(str.maketrans("oli", "011")), text)
            if new == text:
                break
            text = new
        return text

    rnd = random.Random(17)
    pieces = ["o", "l", "i", "0", "1", "5", "-", " ", ".", "・", "\n", "x", "lol", "only", "oil", "  "]
    made = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 60))) for _ in range(3000)]
    fixed = ["o1", "1o", "-o", "oo1", "1oo", "no 0o0 -o-", "l1", "1l", "-i-", "il1", "olio", "o77oo 9oo l23",
             "070 0000 oooo", "10 oz", "too 5", "re-open", "1 lb", "olo・0000 0000", "olo o000 0000"]
    found = 0
    for text in [*TEXTS, *made, *fixed]:
        got = [m.span() for m in _PHONE.finditer(letter_digits(text))]
        assert got == [m.span() for m in _PHONE.finditer(rewrite(text))], text
        found += len(got)
    assert found > 100


def _phrase_texts() -> list[str]:
    rnd = random.Random(5)
    pieces = ["5", "★", "⭐", "5星", "好评", "five star", "review", "leave", " ", "\n", "x", "ig", "@name_1", "。",
              "wechat", ":", "line id", "sale", "now", "act now", "哦", "20", "%", " off", "％", "@", "tg", "insta"]
    made = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 120))) for _ in range(400)]
    lines = "\r\n".join(f"{i}" + "X" * 77 for i in range(1, 70))
    return [*TEXTS, *[match_view(normalize(t)).text for t in [*made, lines]]]


def test_phrase_windows_find_what_a_whole_pass_finds(policy: Policy) -> None:
    """Phrase patterns run only within their width of a required literal's occurrence; the hits
    must be those of a pass over the whole text, for every category."""
    from relay.policy.phrases import find_phrases

    checked = 0
    for text in _phrase_texts():
        view = match_view(normalize(text))
        found = policy.phrase_literals_in(view.text)
        for cat in ("contact", "marketing", "review"):
            whole = find_phrases(view, policy.phrases[cat], found, windowed=False)
            windowed = find_phrases(view, policy.phrases[cat], found)
            assert [(h.rule, h.start, h.end) for h in windowed] == [(h.rule, h.start, h.end) for h in whole], text
            checked += len(whole)
    assert checked > 50  # the texts do hold phrases


def test_triggers_never_miss_an_obfuscation_that_is_there() -> None:
    """match_view runs an obfuscation's pattern only when its cheap trigger says it may match:
    a trigger must say so for every text the pattern does match."""
    from relay.message import normalize as nz

    pieces = ["at", " at ", "\tat\t", "gmail", "qq", " ", "アット", "あっと", "골뱅이", "アットマーク", "h", "x", "*",
              "tt", "p", "s", ":", "/", "\\", "dot", "点", "(", "[", ".", ",", "com", "www", "%2f", "%2e", "%3a",
              "a", "b", "\t"]
    rnd = random.Random(11)
    made = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 40))) for _ in range(3000)]
    shaped = [f"name{sep}{word}{sep}{provider} dot com" for word in ("at", "アット", "あっと", "アットマーク", "골뱅이")
              for sep in (" ", "\t", "  ") for provider in ("gmail", "qq", "me")]
    shaped += [f"{h}{t}{p}{s}://x" for h in ("h", "H") for t in ("xx", "**", "x*", "tt", "t t", "t  t")
               for p in ("p", " p") for s in ("", "s", " s")]
    raw = [t for _, t in ADVERSARIAL] + list(ORDINARY) + made + shaped
    fired: set[str] = set()
    for text in [*TEXTS, *(normalize(t).text for t in raw)]:
        present = nz.needles_in(text)
        for name, pattern, _ in nz._DEOBFUSCATIONS:
            if re.search(pattern, text):
                fired.add(name)
                assert nz._TRIGGERS[name](text, present), (name, text)
    assert {"word_at", "hxxp", "spaced_http", "bracket_at", "spaced_run"} <= fired  # the texts exercised them
