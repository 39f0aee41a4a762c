"""relay.policy.feedback: the categories a hold was for, and a decided message as a corpus line."""

from __future__ import annotations

import pytest

from relay.policy.feedback import (
    category_of,
    corpus_line,
    detect_lang,
    hold_categories,
    masked,
    parse_categories,
    visible_text,
)

PARTIES = ["shop@seller.example", "alice@buyer.example"]


@pytest.mark.parametrize(("category", "rule", "expected"), [
    ("marketing", "model.marketing", "marketing"),
    ("marketing", "phrases.marketing.coupon", "marketing"),
    ("review", "review.ask_rating.en", "review"),
    ("contact", "contact.messenger.line", "contact"),
    ("model", "model.review", "review"),
    ("links", "links.url", None),
    ("tracking", "tracking.pixel", None),
    ("attachment", "attachment.archive", None),
])
def test_category_of_a_finding(category: str, rule: str, expected: str | None) -> None:
    assert category_of(category, rule) == expected


def test_only_the_findings_that_held_count() -> None:
    findings = [("contact", "contact.phone", "redact"), ("review", "review.ask", "hold"),
                ("links", "links.url", "hold"), ("marketing", "model.marketing", "hold"),
                ("review", "review.stars", "hold")]
    assert hold_categories(findings) == ["marketing", "review"]
    assert hold_categories([]) == []


def test_operator_categories() -> None:
    assert parse_categories("Contact, marketing") == ["marketing", "contact"]
    assert parse_categories("none") == []
    for bad in ("", "spam", "review,links", ",,"):
        with pytest.raises(ValueError):
            parse_categories(bad)


@pytest.mark.parametrize(("text", "lang"), [
    ("ご注文ありがとうございます", "ja"), ("注文確認", "zh"), ("感谢您的订单", "zh"), ("주문 감사합니다", "ko"),
    ("Thanks for your order", "en"), ("ｶﾀｶﾅ", "ja"), ("", "en"), ("Order 注文 ありがとう", "ja"),
])
def test_lang_by_script(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_every_form_of_a_party_address_and_any_contact_detail_is_replaced() -> None:
    text = ("Mail SHOP@Seller.Example, shop (at) seller [dot] example, ｓｈｏｐ＠ｓｅｌｌｅｒ．ｅｘａｍｐｌｅ or "
            "alice+orders@buyer.example; also bob@elsewhere.example, +81 90-1234-5678, LINE ID: kyoto_shop99.")
    out = masked(text, PARTIES)
    low = out.lower()
    assert "shop" not in low and "alice" not in low and "bob@" not in low and "kyoto_shop99" not in low
    assert "1234" not in out and "5678" not in out
    assert out.startswith("Mail [email], [email], [email] or [email]; also [email], [phone]")


def test_visible_text_reads_the_message_as_shown() -> None:
    raw = (b"From: Shop <shop@seller.example>\r\nTo: x@relay.example\r\nSubject: =?utf-8?b?5rOo5paH?=\r\n"
           b"X-Secret: do-not-export\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
           b"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlain version\r\n--a\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>HTML version</p>\r\n--a--\r\n--m\r\n"
           b"Content-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n"
           b"attached text\r\n--m\r\nContent-Type: text/html\r\n\r\n<div>Shown <span style=x>too</span>"
           b"<!-- a comment --></div>\r\n--m--\r\n")
    assert visible_text(raw) == "注文\nPlain version\nShown too"
    # bare LF line ends read the same
    assert visible_text(raw.replace(b"\r\n", b"\n")) == "注文\nPlain version\nShown too"


def test_corpus_line() -> None:
    raw = b"Subject: Hi\r\n\r\nPlease leave a review. Write to shop@seller.example\r\n"
    line = corpus_line(7, "dropped", ["review", "marketing"], "seller_to_buyer", raw, PARTIES)
    assert line == {"id": "op-7", "lang": "en", "text": "Hi\nPlease leave a review. Write to [email]",
                    "labels": ["marketing", "review"], "kind": "operator.dropped", "direction": "seller"}
    line = corpus_line(8, "released", ["review"], "buyer_to_seller", raw, PARTIES)
    assert (line["labels"], line["kind"], line["direction"]) == ([], "operator.released", "buyer")
