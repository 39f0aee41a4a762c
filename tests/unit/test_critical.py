"""[Important] markers and the critical categories, from tables (relay.policy.critical)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import RulesSection
from relay.policy.critical import CriticalWords, find_marker, fold, message_text, strip_markers

WORDS = CriticalWords.load(Path(__file__).resolve().parents[2] / "config" / "critical.toml")
MARKERS = RulesSection().important_markers


@pytest.mark.parametrize(("subject", "marker"), [
    ("[Important] your engraving", "[Important]"),
    ("[IMPORTANT] shipping address", "[Important]"),
    ("Re: [important] address", "[Important]"),
    ("［Ｉｍｐｏｒｔａｎｔ］ full width", "[Important]"),
    ("【重要】 marketing brackets are not the marker", None),
    ("[重要] お届け先について", "[重要]"),
    ("［重要］ 全角括弧", "[重要]"),
    ("[중요] 배송지 확인", "[중요]"),
    ("Important: no brackets", None),
    ("[Imp ortant]", None),
    ("", None),
])
def test_marker_after_width_and_case_folding(subject: str, marker: str | None) -> None:
    assert find_marker(subject, MARKERS) == marker


@pytest.mark.parametrize(("text", "categories"), [
    # English
    ("Which colour would you like for the engraving?", ["customization"]),
    ("Please send your initials for the monogram", ["customization"]),
    ("Can we schedule the delivery date? When will you be home?", ["delivery_scheduling"]),
    ("The courier needs a delivery slot", ["delivery_scheduling"]),
    ("Your shipping address is missing the apartment number", ["shipping_address"]),
    ("The parcel was returned to sender", ["shipping_address"]),
    ("Your postcode looks wrong; also which size do you need?", ["customization", "shipping_address"]),
    # whole words only: "addressed" is not "address", "fonts" is not "which font"
    ("I addressed your concern in our new blog post", []),
    ("Big SALE this weekend, 50% off everything!", []),
    ("Please leave us a five-star review", []),
    ("Check out our new collection", []),
    # Japanese
    ("名入れの文字をお知らせください", ["customization"]),
    ("配達日の日時指定をお願いします", ["delivery_scheduling"]),
    ("お届け先のご住所に部屋番号がありません", ["shipping_address"]),
    ("セール開催中！レビューをお願いします", []),
    # Chinese
    ("请确认刻字内容和尺寸", ["customization"]),
    ("请告诉我方便的送货时间", ["delivery_scheduling"]),
    ("您的收货地址不完整，缺少门牌号", ["shipping_address"]),
    ("双十一大促销，全场五折", []),
    # Korean
    ("각인 문구를 알려 주세요", ["customization"]),
    ("배송 일정 조율이 필요합니다", ["delivery_scheduling"]),
    ("배송지 주소와 우편번호를 확인해 주세요", ["shipping_address"]),
    ("리뷰 작성 부탁드립니다", []),
    # full-width Latin folds to ASCII
    ("ＳＨＩＰＰＩＮＧ　ＡＤＤＲＥＳＳ is wrong", ["shipping_address"]),
])
def test_classification(text: str, categories: list[str]) -> None:
    assert [f.category for f in WORDS.classify(text)] == categories


def test_prefix_words_and_phrases_across_line_breaks() -> None:
    assert [f.word for f in WORDS.classify("we are rescheduling")] == ["rescheduling"]
    assert [f.category for f in WORDS.classify("the delivery\n  date")] == ["delivery_scheduling"]


def test_strip_markers_keeps_the_rest() -> None:
    assert strip_markers("［重要］ お届け先", MARKERS).strip() == fold("お届け先")


def test_message_text_drops_quotes_and_attachments_and_reads_html() -> None:
    raw = (b"From: a@x.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"new text\r\n> quoted address\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\n"
           b"attached address\r\n--b--\r\n")
    text = message_text(raw)
    assert "new text" in text and "address" not in text
    html = (b"From: a@x.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            b"<p>Your <b>shipping&nbsp;address</b></p><style>.address{}</style>")
    assert [f.category for f in WORDS.classify(message_text(html))] == ["shipping_address"]
    assert message_text(b"\xff\xfe garbage without header") is not None


def test_bad_word_lists_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown critical categories"):
        CriticalWords({"marketing": {"en": ["sale"]}})
    with pytest.raises(ValueError, match="non-empty"):
        CriticalWords({"customization": {"en": ["", "x"]}})
    bad = tmp_path / "c.toml"
    bad.write_text("[customization\n")
    with pytest.raises(ValueError):
        CriticalWords.load(bad)
