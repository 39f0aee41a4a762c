"""The one hyperscan pass (relay.policy.scanner) must find exactly what each finder's own prefilters
find: the same findings (category, rule, span, detail, weight) from scan_text, and the same reports
from check(), on the adversarial and ordinary tables, every corpus message, random strings dense in
what the patterns look for, and hypothesis-generated text."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.message import parts
from relay.message.html import HtmlDocument, HtmlTooComplex
from relay.message.normalize import fold, match_view, normalize
from relay.message.phones import literals_in
from relay.policy import Policy, engine
from relay.policy.scanner import prefilter_form, ready, scanner_for
from relay.policy.settings import build_policy
from tests.unit.policy.cases import ADVERSARIAL, ORDINARY
from tests.unit.policy.conftest import CORPUS, POLICY_PATH

OWN = frozenset(fold(a) for a in ("john.doe@gmail.com", "b-7f3k2q9x@relay.example", "shop@seller.example"))

#: pieces the patterns look for (phrases of every language, obfuscations, links, contacts)
PIECES = ["5", "★", "⭐", "5星", "好评", "返现", "five star", "review", "leave a", "feedback", " ", "  ", "\n", "\t",
          "x", "。", "wechat", ":", "line id", "sale", "now", "act now", "哦", "20", "%", " off", "％", "@", "tg",
          "insta", "coupon", "code", "クーポン", "レビュー", "お願い", "리뷰", "부탁", "쿠폰", "限时", "特价", "dot",
          " at ", "gmail", "(at)", "[.]", "hxxp", "h t t p", "://", "//", "www,", ",com", "%2e", "%2f", "点", "com",
          "example", "http://", "mailto:", "data:text/html,", "javascript:", "tel:", "+81", "090", "1234", "5678",
          "one", "two", "oh", "nine", "seven", "eight", "whatsapp", "telegram", "skype", "@name_1", "加", "微信",
          "call me", "my number is", "unsubscribe", "follow us on", "アットマーク", "골뱅이", "ｅ", "Ａ", "\u200b",
          "e-mail me directly", "id:", "rate us", "don't leave a bad review", "店铺上新", "check out our shop",
          "ｃｏｍ", "\u00a0", "\u3000", "é", "日"]


def _corpus_texts() -> Iterator[str]:
    for path in sorted(CORPUS.rglob("*.eml")):
        raw = engine.to_crlf(path.read_bytes())
        try:
            root = parts.parse(raw)
            leaves = list(root.leaves())
        except Exception:  # a message the parser refuses: its texts are not needed here
            continue
        for leaf in leaves:
            if leaf.is_attachment or not leaf.content_type.startswith("text/"):
                continue
            text = parts.decode_text(parts.decode_body(raw, leaf), leaf.charset)[0][:60_000]
            if leaf.content_type == "text/html":
                try:
                    text = HtmlDocument(text).reading
                except HtmlTooComplex:
                    continue
            yield text


def _texts() -> list[str]:
    rnd = random.Random(22)
    made = ["".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 80))) for _ in range(1500)]
    return [t for _, t in ADVERSARIAL] + list(ORDINARY) + list(_corpus_texts()) + made


TEXTS = _texts()


@pytest.fixture(autouse=True)
def compiled(policy: Policy) -> None:
    """scan_text takes the one pass once the policy's database is compiled (the daemon compiles it
    in a thread at start); these tests compile it first."""
    scanner_for(policy)


def _same(text: str, policy: Policy, own: frozenset[str] = frozenset()) -> int:
    assert ready(policy) is not None
    new = engine.scan_text(text, policy, own)
    old = engine.scan_text(text, policy, own, one_pass=False)
    assert new == old, text
    return len(old)


def test_scan_text_finds_what_the_regex_path_finds(policy: Policy) -> None:
    found = sum(_same(t, policy) for t in TEXTS)
    assert found > 2000  # the texts do hold findings
    assert len(TEXTS) > 1800


def test_with_own_addresses_masked(policy: Policy) -> None:
    for text in TEXTS[::3]:
        _same(text, policy, OWN)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=40).map("".join))
def test_generated_text(text: str) -> None:
    _same(text, _policy())


_POLICY: list[Policy] = []


def _policy() -> Policy:
    if not _POLICY:
        from relay.policy import load_policy

        _POLICY.append(load_policy(POLICY_PATH))
        scanner_for(_POLICY[0])
    return _POLICY[0]


def test_literals_are_those_aho_corasick_reports(policy: Policy) -> None:
    """The number words and messenger keywords from the pass are the leftmost non-overlapping ones
    literals_in (Aho–Corasick) gives."""
    scanner = scanner_for(policy)
    for text in TEXTS:
        view = match_view(normalize(text)).text
        got = scanner.scan(view)
        assert got is not None
        assert got.literals == literals_in(view), text


def test_check_reports_agree_on_the_corpus(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole messages: check() with the pass and with the regex path give the same report."""
    paths = sorted(CORPUS.rglob("*.eml"))
    assert len(paths) > 50
    reports = []
    for path in paths:
        raw = path.read_bytes()
        try:
            reports.append(engine.check(raw, policy, own_addresses=["john.doe@gmail.com"]))
        except Exception as exc:  # the parser's own refusals are the same on both paths
            reports.append(type(exc))
    monkeypatch.setattr(engine, "ready", lambda _policy: None)
    for path, new in zip(paths, reports, strict=True):
        raw = path.read_bytes()
        try:
            old = engine.check(raw, policy, own_addresses=["john.doe@gmail.com"])
        except Exception as exc:
            assert new is type(exc), path
            continue
        assert new == old, path


def test_a_pattern_without_a_prefilter_form_runs_on_its_literals(policy: Policy) -> None:
    """A back-reference or inline flags have no hyperscan form: such a rule is triggered by its
    required literals (or runs over the whole text) and still finds what the regex path finds."""
    import tomllib

    data = tomllib.loads(POLICY_PATH.read_text("utf-8"))
    data["marketing"]["rules"].append({"id": "marketing.test_backref", "patterns": [r"(?P<w>sale)\s(?P=w)", r"(?i:promo)\w{2}"]})
    data["review"]["rules"].append({"id": "review.test_unbounded", "patterns": [r"rate\s+us", r"(x)?"]})
    custom = build_policy(data)
    scanner = scanner_for(custom)
    assert scanner.always["review"]  # "(x)?" matches the empty string: no form, no literal
    for text in [*TEXTS[::4], "sale sale!", "PROMOTE promoxy", "rate      us", "x rate\nus"]:
        _same(text, custom)
    assert any(r == "marketing.test_backref" for _, r, *_ in engine.scan_text("a sale sale", custom))


def test_prefilter_forms() -> None:
    word = "".join(f"\\x{{{ord(c):x}}}" for c in "unsubscribe")
    assert prefilter_form(r"unsubscribe(?![a-z])") == word  # a look-ahead moves the ends: dropped
    # an opening look-behind of one character: that character, or the start of the text
    assert prefilter_form(r"(?<![a-z])unsubscribe") == "(?:^|[\\x{0}-\\x{60}\\x{7b}-\\x{d7ff}\\x{e000}-\\x{10ffff}])" + word
    # presence only: a closing look-ahead kept
    assert prefilter_form(r",(?=com)", presence=True) == "\\x{2c}(?:\\x{63}\\x{6f}\\x{6d})"
    assert prefilter_form(r"(a)\1") is None
    assert prefilter_form(r"(?i)abc") is None
    assert prefilter_form(r"(?i:a)bc") is None
    assert prefilter_form(r"x?") is None
    # after a wide gap only what ends the match is kept
    assert prefilter_form(r"好评[^。\n]{0,12}返现") == "\\x{8fd4}\\x{73b0}"


def test_a_reloaded_policy_gets_its_own_scanner(policy: Policy) -> None:
    """One scanner per policy object; the same rules share one compiled database, other rules
    compile their own."""
    import tomllib

    from relay.policy import load_policy

    again = load_policy(POLICY_PATH)
    assert scanner_for(policy) is scanner_for(policy)
    assert scanner_for(again) is not scanner_for(policy)
    assert scanner_for(again).policy is again
    assert scanner_for(again).db is scanner_for(policy).db
    data = tomllib.loads(POLICY_PATH.read_text("utf-8"))
    data["marketing"]["rules"][0]["patterns"].append("mega\\s+deal")
    changed = build_policy(data)
    assert scanner_for(changed).db is not scanner_for(policy).db
    assert any(r == "marketing.coupon.en" for _, r, *_ in engine.scan_text("a mega  deal", changed))


def test_an_uncompiled_policy_takes_the_regex_path(policy: Policy) -> None:
    """Until its database is compiled (in a thread, at start), a policy's texts take the regex path;
    the CLI's one-off check never waits for a compile."""
    from relay.policy import load_policy
    from relay.policy.scanner import compile_in_background

    fresh = load_policy(POLICY_PATH)
    assert ready(fresh) is None
    text = "leave a 5 star review and visit example.com"
    assert engine.scan_text(text, fresh) == engine.scan_text(text, fresh, one_pass=False)
    compile_in_background(fresh).join()
    assert ready(fresh) is not None


def test_a_text_hyperscan_cannot_read_is_refused_not_misread(policy: Policy) -> None:
    """Lone surrogates are no UTF-8: scan() answers None (scan_text then takes the regex path;
    the texts the engine reads have U+FFFD in their place)."""
    assert scanner_for(policy).scan("leave a review \udcff please") is None


def test_a_worker_takes_the_parents_database(policy: Policy) -> None:
    """dumps()/install(): a policy worker loads the parent's compiled scanner instead of compiling;
    a blob of another policy is refused (the worker then compiles its own)."""
    import tomllib

    from relay.policy import load_policy
    from relay.policy.scanner import dumps, install

    blob = dumps(policy)
    again = load_policy(POLICY_PATH)
    assert install(again, blob)
    assert scanner_for(again).policy is again
    for text in TEXTS[::5]:
        _same(text, again)
    data = tomllib.loads(POLICY_PATH.read_text("utf-8"))
    data["review"]["rules"][0]["patterns"].append("write\\s+to\\s+me")
    assert not install(build_policy(data), blob)
    assert not install(again, b"not a scanner")


def test_scans_from_several_threads_at_once(policy: Policy) -> None:
    """Hyperscan's scratch space serves one scan at a time: each thread has its own."""
    import threading

    text = "leave a 5 star review, whatsapp me +81 90 1234 5678 好评返现 hxxp://x[.]com " * 100
    want = engine.scan_text(text, policy, one_pass=False)
    wrong: list[object] = []

    def work() -> None:
        for _ in range(20):
            got = engine.scan_text(text, policy)
            if got != want:
                wrong.append(got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
