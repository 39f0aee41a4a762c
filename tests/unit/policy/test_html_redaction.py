"""Redaction inside HTML parts, made in the lexbor DOM: a finding in the text the policy judges (the
reading of relay.message.html) is cut out of the text nodes, attributes or comments it spans; a URL
finding takes the URL out of its attribute.

The oracle is independent of the code under test: the delivered HTML part is decoded by the e-mail
package and read by the stdlib html.parser (text, every attribute value, comment data; entities
decoded, then tab/LF/CR dropped and %-escapes decoded, as a URL parser would). What the finding
matched must be gone from that reading and the innocuous text around it must survive.
"""

from __future__ import annotations

import email
import threading
from email import policy as email_policy
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from relay.message.html import HtmlDocument, HtmlTooComplex
from relay.policy import Policy, apply, check, load_policy
from relay.policy.engine import check_and_apply, explain
from tests.unit.policy.conftest import POLICY_PATH, html


@pytest.fixture(scope="module")
def redacting(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The real policy file with links redacted instead of refused (so that link redaction shows)."""
    text = POLICY_PATH.read_text(encoding="utf-8")
    assert '[links]\naction = "reject"' in text
    path = Path(tmp_path_factory.mktemp("policy")) / "policy.toml"
    path.write_text(text.replace('[links]\naction = "reject"', '[links]\naction = "redact"'), encoding="utf-8")
    return load_policy(path)


class _Reading(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[str] = []

    def handle_data(self, data: str) -> None:
        self.seen.append(data)

    def handle_comment(self, data: str) -> None:
        self.seen.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen += [v for _, v in attrs if v]


def stdlib_reads(markup: str) -> str:
    p = _Reading()
    p.feed(markup)
    p.close()
    joined = " ".join(p.seen)
    return joined + "\n" + unquote(unescape(joined).translate(str.maketrans("", "", "\t\n\r")))


def delivered_html(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


HELLO = "Hello there, the parcel ships Monday"
BYE = "thanks again"

# (name, body, what must be gone, what must survive)
CASES = [
    ("link-split-across-tags", f"<p>{HELLO}. See evil<b>shop</b>.example.com {BYE}</p>",
     ["evilshop", "shop.example.com"], [HELLO, BYE]),
    ("link-entities", f"<p>{HELLO}. See evilshop&#46;example&period;com {BYE}</p>",
     ["evilshop"], [HELLO, BYE]),
    ("comment-inside-url", f"<p>{HELLO}. See evil<!-- x -->shop.example.com {BYE}</p>",
     ["evilshop", "shop.example.com"], [HELLO, BYE]),
    ("duplicate-href", f'<p>{HELLO}. <a href="https://evilshop.example.com/" href="https://x.example/">click here</a>'
     f" {BYE}</p>", ["evilshop"], [HELLO, "click here", BYE]),
    ("tab-in-scheme", f'<p>{HELLO}. <a href="h&#09;ttps://evilshop.example.com/">click here</a> {BYE}</p>',
     ["evilshop"], [HELLO, "click here", BYE]),
    ("base-href", f'<html><head><base href="https://evilshop.example.com/"></head><body><p>{HELLO}</p>'
     f"<p>{BYE}</p></body></html>", ["evilshop"], [HELLO, BYE]),
    ("link-text-is-the-url", f'<p>{HELLO}. <a href="https://evilshop.example.com/">evilshop.example.com</a> {BYE}</p>',
     ["evilshop"], [HELLO, BYE]),
    ("mailto-link", f'<p>{HELLO}. <a href="mailto:taro@gmail.com">write to me</a> {BYE}</p>',
     ["taro@gmail"], [HELLO, "write to me", BYE]),
    ("meta-refresh", f'<meta http-equiv="refresh" content="0;url=https://evilshop.example.com/"><p>{HELLO}</p>',
     ["evilshop"], [HELLO]),
    ("phone-split-by-b", f"<p>{HELLO}. Call me: 090-<b>1234</b>-5678 {BYE}</p>",
     ["1234", "5678"], [HELLO, "Call me:", BYE]),
    ("phone-display-none", f'<div style="display:none">call 090-1234-5678</div><p>{HELLO}</p><p>{BYE}</p>',
     ["1234-5678"], [HELLO, BYE]),
    ("phone-title-attribute", f'<p title="tel 090-1234-5678">{HELLO}</p><p>{BYE}</p>',
     ["1234-5678"], [HELLO, BYE, "tel "]),
    ("phone-alt-attribute", f'<img src="cid:x" alt="call 090-1234-5678"><p>{HELLO}</p>',
     ["1234-5678"], [HELLO, "cid:x"]),
    ("phone-noscript", f"<p>{HELLO}</p><noscript>call 090-1234-5678</noscript><p>{BYE}</p>",
     ["1234-5678"], [HELLO, BYE]),
    ("phone-template", f"<p>{HELLO}</p><template><p>call 090-1234-5678</p></template><p>{BYE}</p>",
     ["1234-5678"], [HELLO, BYE]),
    ("phone-comment", f"<p>{HELLO}</p><!-- call 090-1234-5678 --><p>{BYE}</p>",
     ["1234-5678"], [HELLO, BYE, "call "]),
    ("phone-split-in-conditional-comment", f"<!--[if mso]><p>call 090-<b>1234</b>-5678</p><![endif]--><p>{HELLO}</p>",
     ["1234"], [HELLO]),
    ("email-entity", f"<p>{HELLO}. Mail taro&#64;gmail.com {BYE}</p>", ["taro@gmail", "taro&#64;"], [HELLO, BYE]),
    ("email-split-by-comment", f"<p>{HELLO}. Mail ta<!-- x -->ro@gmail.com {BYE}</p>", ["ro@gmail"], [HELLO, BYE]),
    ("cjk", "<p>日本語のテキスト。電話 090-1234-5678 まで。中文内容。한국어 텍스트.</p>",
     ["1234-5678"], ["日本語のテキスト。電話 ", " まで。中文内容。한국어 텍스트."]),
]


@pytest.mark.parametrize(("name", "body", "gone", "kept"), CASES, ids=[c[0] for c in CASES])
def test_html_redaction(redacting: Policy, name: str, body: str, gone: list[str], kept: list[str]) -> None:
    raw = html(body)
    report = check(raw, redacting)
    assert report.action in ("redact", "strip"), report
    out = apply(raw, report, redacting)
    delivered = delivered_html(out)
    seen = stdlib_reads(delivered)
    for text in gone:
        assert text not in seen, (text, delivered)
    for text in kept:
        assert text in seen, (text, delivered)
    assert check(out, redacting).action == "none", delivered  # nothing left for the policy either


def test_a_redacted_links_text_is_kept_and_its_href_is_hash(redacting: Policy) -> None:
    raw = html('<p>Order: <a href="https://evilshop.example.com/" title="shop">see the shop</a></p>')
    out = delivered_html(apply(raw, check(raw, redacting), redacting))
    assert 'href="#"' in out and "see the shop" in out and 'title="shop"' in out


def test_a_stripped_tracking_pixel_goes_with_its_element(policy: Policy) -> None:
    raw = html('<p>Hi</p><img src="https://t.example/p.gif" width="1" height="1"><img src="cid:item" alt="item">')
    report, out = check_and_apply(raw, policy)
    assert [f.rule for f in report.findings] == ["tracking.pixel"]
    assert out is not None
    delivered = delivered_html(out)
    assert "t.example" not in delivered and '<img src="cid:item" alt="item">' in delivered


def test_remote_css_url_is_emptied(policy: Policy) -> None:
    raw = html('<div style="background:url(https://t.example/bg.png); color:red">Hi</div>'
               "<style>p { background: url('https://t.example/s.png') }</style><p>there</p>")
    report, out = check_and_apply(raw, policy)
    assert {f.rule for f in report.findings} == {"tracking.remote_css"}
    assert out is not None
    delivered = delivered_html(out)
    assert "t.example" not in delivered and "color:red" in delivered and "there" in delivered


def test_explain_names_what_was_found(redacting: Policy) -> None:
    raw = html('<p>call 090-<b>1234</b>-5678</p><a href="https://evilshop.example.com/">x</a>')
    report = check(raw, redacting)
    explained = {f.rule: explain(raw, f) for f in report.findings}
    assert explained["contact.phone"] == "090-1234-5678"
    assert explained["links.html_domain"] == "https://evilshop.example.com/"


def test_nothing_found_leaves_the_part_byte_identical(policy: Policy) -> None:
    raw = html("<P>Thanks <b>for</b> the order!<br>See you<!-- c --></P>")
    _, out = check_and_apply(raw, policy)
    assert out == raw


# --- hostile markup: linear, read as WHATWG reads an unterminated construct, or refused -----------------

N = 200_000


@pytest.mark.parametrize(("name", "source", "absent"), [
    ("unterminated-comment", "<p>shown</p><!-- " + "secret@example.com <p>x</p> " * (N // 28), "secret@"),
    ("comment-openers", "<p>shown</p>" + "<!--" * (N // 4) + "after@example.com", "after@"),
    ("pi-openers", "<p>shown</p>" + "<?x " * (N // 4) + "after@example.com", "after@"),
    ("bogus-openers", "<p>shown</p>" + "<!x " * (N // 4) + "after@example.com", "after@"),
    ("end-tag-openers", "<p>shown</p>" + "</a" * (N // 3) + "after@example.com", "after@"),
    ("cdata-openers", "<p>shown</p>" + "<![CDATA[" * (N // 9) + "after@example.com", "after@"),
    ("deep-but-allowed-nesting", "<p>shown</p>" + "<div>" * 900 + "<!-- after@example.com " * (N // 24), "after@"),
])
def test_unterminated_construct_runs_to_the_end(name: str, source: str, absent: str) -> None:
    doc = HtmlDocument(source)
    assert "shown" in doc.text
    assert absent not in doc.text


@pytest.mark.parametrize(("name", "source"), [
    ("unclosed-a", "<p>shown</p>" + "<a " * (N // 3) + "after@example.com"),
    ("open-quotes", "<p>shown</p>" + "<a b='" * (N // 6) + "after@example.com"),
    ("100k-attributes", "<p " + " ".join(f"a{i}" for i in range(100_000)) + ">x</p>"),
    ("deep-nesting", "<p>shown</p>" + "<div>" * (N // 5) + "after@example.com"),
])
def test_markup_too_costly_to_parse_is_refused_not_deferred(policy: Policy, name: str, source: str) -> None:
    """One element with thousands of attributes, or elements nested thousands deep, cost lexbor n^2: the
    part is refused before parsing, and the message with it (the content stage answers 554 5.6.0: the
    same bytes fail every time)."""
    with pytest.raises(HtmlTooComplex):
        HtmlDocument(source)
    report, out = check_and_apply(html(source), policy)
    assert report.action == "reject" and report.unreadable == ["1"] and out is None
    assert {e["event"] for e in report.audit_events()} == {"policy.unreadable"}


def test_text_before_and_after_terminated_constructs_is_kept() -> None:
    doc = HtmlDocument("<p>one</p><!-- c --><p>two</p><?pi?><p>three</p><!x><p>four")
    assert doc.text.split() == ["one", "two", "three", "four"]


def test_hostile_input_answers_in_a_thread_within_a_generous_bound(policy: Policy) -> None:
    source = "<!--" * (N // 8) + "<div>" * (N // 10) + "<b>x</b>" * (N // 16)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (check_and_apply(html(source), policy), done.set()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "200 KB of hostile markup still being checked after 10 s"
