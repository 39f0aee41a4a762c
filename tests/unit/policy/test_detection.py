"""Table-driven detection tests: every adversarial string is caught in its category, in the
body and in the subject, and ordinary messages in four languages come back with no findings."""

from __future__ import annotations

import pytest

from relay.policy import Policy, check
from tests.unit.policy.cases import ADVERSARIAL, ORDINARY
from tests.unit.policy.conftest import html, plain

OWN = ("buyer-x7k2@relay.example",)


@pytest.mark.parametrize(("category", "text"), ADVERSARIAL, ids=[t for _, t in ADVERSARIAL])
def test_adversarial_caught_in_body(policy: Policy, category: str, text: str) -> None:
    report = check(plain(f"Hello,\n\n{text}\n\nRegards"), policy)
    assert category in {f.category for f in report.findings}, report.findings
    for f in report.findings:
        assert f.part == "1"
        assert 0 <= f.start < f.end


@pytest.mark.parametrize(("category", "text"), ADVERSARIAL[:40], ids=[t for _, t in ADVERSARIAL[:40]])
def test_adversarial_caught_in_html(policy: Policy, category: str, text: str) -> None:
    import html as h

    report = check(html(f"<p>Hello,</p><p>{h.escape(text)}</p>"), policy)
    assert category in {f.category for f in report.findings}


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_messages_are_clean(policy: Policy, text: str) -> None:
    report = check(plain(f"Hello,\n\n{text}\n\nKind regards,\nThe shop"), policy, own_addresses=OWN)
    assert report.findings == [], [(f.rule, f.detail) for f in report.findings]
    assert report.action == "none"


@pytest.mark.parametrize("charset", ["iso-2022-jp", "shift_jis", "euc-jp"])
def test_japanese_charsets(policy: Policy, charset: str) -> None:
    report = check(plain("レビューをお願いします。ご注文ありがとうございます。", charset=charset, cte="8bit"), policy)
    assert {f.category for f in report.findings} == {"review"}


@pytest.mark.parametrize(("charset", "text", "category"), [
    ("gb2312", "亲，麻烦给个五星好评哦", "review"),
    ("gb18030", "加微信 abc_123", "contact"),
    ("big5", "好評返現", "review"),
    ("euc-kr", "리뷰 작성하시면 쿠폰 드려요", "review"),
    ("ks_c_5601-1987", "카톡 아이디: shop123", "contact"),
    ("utf-16", "visit example.com", "links"),
    ("utf-7", "visit example.com/x", "links"),
])
def test_cjk_and_unicode_charsets(policy: Policy, charset: str, text: str, category: str) -> None:
    codec = {"ks_c_5601-1987": "cp949"}.get(charset, charset)
    head = (f"Subject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    import base64

    raw = head + base64.encodebytes(text.encode(codec)).replace(b"\n", b"\r\n")
    assert category in {f.category for f in check(raw, policy).findings}


def test_gb2312_label_on_utf8_bytes(policy: Policy) -> None:
    raw = (b"Subject: x\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n" + "加我微信 13812345678".encode())
    cats = {f.rule for f in check(raw, policy).findings}
    assert "contact.phone" in cats


def test_quoted_printable_soft_break_inside_domain(policy: Policy) -> None:
    raw = (b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"visit exam=\r\nple.com today\r\n")
    assert {f.category for f in check(raw, policy).findings} == {"links"}


def test_url_in_encoded_subject_split_across_words(policy: Policy) -> None:
    raw = (b"Subject: =?utf-8?B?dmlzaXQgZXhhbQ==?= =?utf-8?B?cGxlLmNvbQ==?=\r\n"
           b"Content-Type: text/plain\r\n\r\nhello\r\n")
    report = check(raw, policy)
    assert [f.part for f in report.findings] == ["header:subject"]
    assert report.reject_category == "messages may not contain links to websites"


def test_html_hiding_and_markup_links(policy: Policy) -> None:
    cases = {
        '<p>exa<!-- x -->mple.com</p>': "links",
        '<p>example&#46;com</p>': "links",
        '<p>example&period;com</p>': "links",
        '<div style="display:none">visit example.com</div>': "links",
        '<a href="https://phishing-site.evil">Verify</a>': "links",
        '<img src="cid:logo" alt="call 090-1234-5678">': "contact",
        '<form action="http://evil.example/post"><input></form>': "links",
        '<meta http-equiv="refresh" content="0;url=http://evil.example/">': "links",
        '<!--[if mso]><v:roundrect href="http://vml.example/">x</v:roundrect><![endif]-->': "links",
        '<a href="https://marketplace.example/o/1">http://www.bank.com</a>': "links",
        '<a href="mailto:john@gmail.com">write me</a>': "links",
        '<img src="https://t.example/p.gif" width="1" height="1">': "tracking",
    }
    for markup, category in cases.items():
        report = check(html(f"<html><body>{markup}</body></html>"), policy)
        assert category in {f.category for f in report.findings}, markup


def test_allowlisted_links_and_inline_images_are_clean(policy: Policy) -> None:
    body = ('<p>Track: <a href="https://www.ups.com/track?n=1">https://www.ups.com/track?n=1</a></p>'
            '<img src="cid:photo1" alt="your item">')
    assert check(html(body), policy).findings == []


def test_reject_reply_never_contains_matched_text(policy: Policy) -> None:
    report = check(plain("buy at evil-shop.example.com now"), policy)
    assert report.action == "reject"
    assert report.reject_category and "evil" not in report.reject_category


def test_own_addresses_are_not_contact_details(policy: Policy) -> None:
    text = "On Mon, Alice <alice@gmail.com> wrote: see you"
    assert check(plain(text), policy, own_addresses=["alice@gmail.com"]).findings == []
    assert check(plain(text), policy).findings[0].rule == "contact.email"


def test_marketing_scoring_needs_more_than_one_weak_signal(policy: Policy) -> None:
    assert check(plain("We have a summer sale."), policy).findings == []
    report = check(plain("Big summer sale! 20% off everything, shop now."), policy)
    assert {f.category for f in report.findings} == {"marketing"}


def test_list_headers_count_as_marketing_signal(policy: Policy) -> None:
    raw = (b"Subject: News\r\nList-Unsubscribe: <mailto:u@list.example>\r\nContent-Type: text/plain\r\n\r\n"
           b"Summer sale this week.\r\n")
    assert {f.rule for f in check(raw, policy).findings} == {"marketing.list_headers", "marketing.promotion.ja"} \
        or "marketing.list_headers" in {f.rule for f in check(raw, policy).findings}


def test_verdict_order(policy: Policy) -> None:
    report = check(plain("call 090-1234-5678 or visit example.com"), policy)
    assert report.action == "reject"
    report = check(plain("call 090-1234-5678"), policy)
    assert report.action == "redact" and report.reject_category is None
