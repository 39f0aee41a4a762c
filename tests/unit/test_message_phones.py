"""The one contact finder on phone numbers and messenger IDs (relay.message.contacts.find_contacts).

Tables of what a hostile seller or a careless buyer writes, in English, Japanese, Chinese and
Korean, each with the piece a finding must cover; tables of what a legitimate seller writes
about orders, tracking, prices, dates, ISBNs and postcodes, which must not be found; and
generated obfuscations of known numbers (the oracle is where the generator put the digits, not
the finder).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.message.contacts import find_contacts
from relay.message.normalize import match_view, normalize
from relay.message.phones import messengers_in

ZW = "\u200b"

# (kind, text, the piece of it a finding of that kind must cover)
POSITIVE: list[tuple[str, str, str]] = [
    # English
    ("phone", "call me on +1 (555) 123-4567 after six", "+1 (555) 123-4567"),
    ("phone", "my number 555.123.4567", "555.123.4567"),
    ("phone", "<a href='tel:+447700900123'>ring</a>", "+447700900123"),
    ("phone", "tel:%2B447700900123", "%2B447700900123"),
    ("phone", "0044 7700 900 123 any time", "0044 7700 900 123"),
    ("phone", "reach me: 0 7 7 0 0 9 0 0 1 2 3", "0 7 7 0 0 9 0 0 1 2 3"),
    # an order word before, but words between it and the number say the number is something else
    ("phone", "Tracking: 123 Write to 090-1234-5678", "090-1234-5678"),
    ("phone", "Order shipped, thanks! Ring me 090 1234 5678", "090 1234 5678"),
    ("phone", "07700/900/123", "07700/900/123"),
    ("phone", "+44 7700\r\n900 123", "+44 7700\r\n900 123"),
    ("phone", "+44 7700\n> 900 123", "+44 7700\n> 900 123"),
    ("phone", f"0{ZW}7{ZW}7{ZW}0{ZW}0 9{ZW}0{ZW}0 1{ZW}2{ZW}3", f"0{ZW}7{ZW}7{ZW}0{ZW}0 9{ZW}0{ZW}0 1{ZW}2{ZW}3"),
    ("phone", "0\u00ad7700\u00ad900\u00ad123", "0\u00ad7700\u00ad900\u00ad123"),
    ("phone", "O77OO 9OO l23", "O77OO 9OO l23"),
    ("phone", "five five five one two three four five six seven", "five five five one two three four five six seven"),
    ("phone", "zero seven seven zero zero, nine oh oh, one two three", "zero seven seven zero zero, nine oh oh, one two three"),
    ("phone", "text me: zero seven 700 nine zero zero 123", "zero seven 700 nine zero zero 123"),
    ("phone", "+1 five five five 123 four five six seven", "+1 five five five 123 four five six seven"),
    ("phone", "ＦＩＶＥ ｆｉｖｅ five one two three four five six seven", "ＦＩＶＥ ｆｉｖｅ five one two three four five six seven"),
    ("messenger", "WhatsApp me on +44 7700 900123", "WhatsApp me"),
    ("phone", "WhatsApp me on +44 7700 900123", "+44 7700 900123"),
    ("messenger", "whatsapp: +44 7700 900123", "whatsapp: +44 7700 900123"),
    ("messenger", "wa.me/447700900123", "wa.me/447700900123"),
    ("messenger", "https://api.whatsapp.com/send?phone=447700900123", "api.whatsapp.com/send?phone=447700900123"),
    ("messenger", "t.me/cheapdeals", "t.me/cheapdeals"),
    ("messenger", "find me as @cheapdeals on Telegram", "@cheapdeals on Telegram"),
    ("messenger", "telegram: @cheapdeals", "telegram: @cheapdeals"),
    ("messenger", "message me on Signal", "message me on Signal"),
    ("messenger", "add us on kakaotalk", "add us on kakaotalk"),
    ("messenger", "skype: live:shop.owner", "skype: live:shop.owner"),
    ("messenger", "Skype ID: shop.owner", "Skype ID: shop.owner"),
    ("messenger", "line: @shopkyoto", "line: @shopkyoto"),
    ("messenger", "LINE ID: shop_kyoto99", "LINE ID: shop_kyoto99"),
    ("messenger", "L\u200bI\u200bN\u200bE ID: shop_kyoto99", "L\u200bI\u200bN\u200bE ID: shop_kyoto99"),
    ("messenger", "WeChat: seller2024", "WeChat: seller2024"),
    # Japanese
    ("phone", "電話は０９０－１２３４－５６７８まで", "０９０－１２３４－５６７８"),
    ("phone", "〇九〇・一二三四・五六七八", "〇九〇・一二三四・五六七八"),
    ("phone", "携帯 090ー1234ー5678", "090ー1234ー5678"),
    ("phone", "＋８１ ９０ １２３４ ５６７８", "＋８１ ９０ １２３４ ５６７８"),
    ("phone", "(090)1234-5678にお電話ください", "090)1234-5678"),
    ("phone", "⓪⑨⓪-①②③④-⑤⑥⑦⑧", "⓪⑨⓪-①②③④-⑤⑥⑦⑧"),
    ("messenger", "ＬＩＮＥ ＩＤ：ｓｈｏｐ＿ｋｙｏｔｏ", "ＬＩＮＥ ＩＤ：ｓｈｏｐ＿ｋｙｏｔｏ"),
    ("messenger", "ラインIDはshopkyotoです", "ラインIDはshopkyoto"),
    ("messenger", "LINEで連絡ください", "LINEで連絡"),
    ("messenger", "詳しくはline.me/ti/p/abcdefまで", "line.me/ti/p/abcdef"),
    ("messenger", "テレグラムで連絡ください", "テレグラムで連絡"),
    # Chinese
    ("phone", "电话 壹叁捌 壹贰叁肆 伍陆柒捌", "壹叁捌 壹贰叁肆 伍陆柒捌"),
    ("phone", "手机：138 1234 5678", "138 1234 5678"),
    ("phone", "+86 138-1234-5678", "+86 138-1234-5678"),
    ("phone", "幺叁捌幺贰叁肆伍陆柒捌", "幺叁捌幺贰叁肆伍陆柒捌"),
    ("phone", "１３８ｌ２３４５６７８", "１３８ｌ２３４５６７８"),
    ("messenger", "微信号：shop8888", "微信号：shop8888"),
    ("messenger", "加我微信 abc_123", "加我微信"),
    ("messenger", "加V：shop8888", "加V"),
    ("messenger", "QQ：987654321", "QQ：987654321"),
    ("messenger", "薇信: seller2024", "薇信: seller2024"),
    ("messenger", "加我whatsapp", "加我whatsapp"),
    ("phone", "携帯 〇八〇・九八七六・五四三二\r\n공일공 삼삼삼삼 칠칠칠칠", "〇八〇・九八七六・五四三二"),
    ("phone", "携帯 〇八〇・九八七六・五四三二\r\n공일공 삼삼삼삼 칠칠칠칠", "공일공 삼삼삼삼 칠칠칠칠"),
    ("phone", "090-1234-5678\n080-9876-5432", "080-9876-5432"),
    # Korean
    ("phone", "공일공 일이삼사 오육칠팔", "공일공 일이삼사 오육칠팔"),
    ("phone", "010-1234-5678로 연락주세요", "010-1234-5678"),
    ("phone", "전화 02-123-4567", "02-123-4567"),
    ("phone", "+82 10 1234 5678", "+82 10 1234 5678"),
    ("messenger", "카톡 아이디: shop123", "카톡 아이디: shop123"),
    ("messenger", "카카오톡으로 연락주세요", "카카오톡으로 연락"),
    ("messenger", "텔레그램 아이디: @cheapdeals", "텔레그램 아이디: @cheapdeals"),
    ("messenger", "라인으로 연락주세요", "라인으로 연락"),
    ("messenger", "open.kakao.com/o/sAbCdEf", "open.kakao.com/o/sAbCdEf"),
    ("messenger", "왓츠앱 번호: +44 7700 900123", "왓츠앱 번호: +44 7700 900123"),
]

# Legitimate seller and buyer messages: no phone number, no messenger ID.
NEGATIVE: list[str] = [
    # English
    "Your order 123-1234567-1234567 has shipped.",
    "Amazon order # 249-5551234-7654321 was refunded",
    "Order 123-1234567-1234567 and order 249-5551234-7654321 ship together",
    "Tracking: 1Z999AA10123456784",
    "Tracking number is 0901 2345 678",
    "USPS tracking 9400 1000 0000 0000 0000 00",
    "The tracking number is 9400111899223197428490",
    "FedEx tracking 7489 1234 5678, delivery by Friday",
    "Total: $1,234.56 including shipping",
    "Paid 1 299,00 kr on 2024-03-15",
    "Delivered 2024-03-15 10:30",
    "Delivery window 2024/03/15 14:00-16:00",
    "Rental from 03/15/2024 - 04/15/2024",
    "Qty 2 x 3 pcs, box 10 x 20 x 30 cm, 1.5 kg",
    "ISBN 978-4-06-123456-7",
    "ISBN 0-306-40615-2 is the paperback",
    "zip 94105-1234",
    "Postcode: 01234-5678",
    "Item 3 of 5: two left in stock, one more on the way",
    "I'll send the line drawing tomorrow; the deadline is Friday",
    "Subject line: your order",
    "We line the box with paper. Check online: the marketplace page.",
    "Thanks @everyone for the orders",
    "Payment via WeChat Pay or Alipay is fine",
    "The line identification number is on the label",
    "Version 2.0 of the design, size 10, 12 or 14",
    "Oh, one more thing: the blue one is sold out.",
    "Someone phoned about the delivery; I told them it arrives by five.",
    "Invoice INV-2024-000123 attached",
    "SKU 4901234567894 (JAN code) is the refill",
    # Japanese
    "お問い合わせ番号は 1234-5678-9012 です。",
    "注文番号 250-1234567-1234567 の商品を発送しました",
    "〒150-0001 東京都渋谷区神宮前1-2-3",
    "二〇二四年三月十五日に発送しました",
    "お届け予定日：2024年3月15日 14時〜16時",
    "価格は¥12,800（税込）です",
    "オンラインで確認してください",
    # Chinese
    "订单号 202403150001，预计三到五天送达。",
    "快递单号 SF1234567890123",
    "运单号：773012345678901",
    "价格 ¥1,280，已于2024年3月15日发货",
    "邮编 100080",
    "我们已发货。公司会尽快处理。加油！",
    # Korean
    "송장번호는 123456789012 입니다.",
    "운송장 번호 6012-3456-7890",
    "주문번호 2024031500012345",
    "우편번호 06236 서울시 강남구",
    "배송은 2~3일 걸립니다. 가격은 12,900원입니다.",
    "3일 이내 발송, 일주일 안에 도착합니다",
]


def _covers(text: str, kind: str, piece: str) -> bool:
    start = text.index(piece)
    end = start + len(piece)
    return any(c.kind == kind and c.start <= start and c.end >= end for c in find_contacts(text))


@pytest.mark.parametrize(("kind", "text", "piece"), POSITIVE, ids=[f"{k}:{t}" for k, t, _ in POSITIVE])
def test_found_and_covered(kind: str, text: str, piece: str) -> None:
    found = find_contacts(text)
    assert _covers(text, kind, piece), [(c.kind, c.rule, text[c.start : c.end]) for c in found]


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_texts_hold_no_phone_or_messenger(text: str) -> None:
    found = [(c.rule, text[c.start : c.end]) for c in find_contacts(text) if c.kind != "email"]
    assert found == []


def test_findings_carry_kind_rule_and_span_of_the_original_text() -> None:
    text = "Hi! ０９０−１２３４−５６７８ or LINE ID: shop_kyoto99 or bob@example.com"
    got = [(c.kind, c.rule, text[c.start : c.end]) for c in find_contacts(text)]
    assert got == [("phone", "contact.phone", "０９０−１２３４−５６７８"),
                   ("messenger", "contact.messenger.line", "LINE ID: shop_kyoto99"),
                   ("email", "contact.email", "bob@example.com")]


def test_messenger_windows_find_what_a_whole_pass_finds() -> None:
    """The messenger patterns run only near their keywords; the findings must be those of a
    pass over the whole text."""
    rnd = random.Random(7)
    pieces = ["line", " id", ":", "@", "shop_1", "微信", "号", "加", "v", "카톡", " 아이디", "telegram", " on ", "me",
              "whatsapp", "wa.me/", "t.me/", "+", "44", " ", "\n", "x" * 30, "で", "連絡", "skype", "signal", "qq",
              "123456", "contact", "라인", "으로", "연락", "kakao", ".com/", "open.", "ライン", "テレグラム"]
    made = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 80))) for _ in range(2000)]
    hits = 0
    for raw in [t for _, t, _ in POSITIVE] + NEGATIVE + made:
        text = match_view(normalize(raw)).text
        whole = messengers_in(text, windowed=False)
        assert messengers_in(text) == whole, raw
        hits += len(whole)
    assert hits > 500


# --- generated obfuscations ------------------------------------------------------------------

_GLYPHS: dict[str, list[str]] = {
    "ascii": list("0123456789"),
    "fullwidth": [chr(0xFF10 + i) for i in range(10)],
    "kanji": list("〇一二三四五六七八九"),
    "financial": list("零壹贰叁肆伍陆柒捌玖"),
    "korean": list("공일이삼사오육칠팔구"),
    "circled": ["⓪", *(chr(0x2460 + i) for i in range(9))],
    "dingbat": ["⓿", *(chr(0x2776 + i) for i in range(9))],
    "word": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
}
_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff"]


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, list[str], bool]:
    """(prefix, digit groups, may the groups run together) of a number that fits a plan."""
    d = lambda n: "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=n, max_size=n)))  # noqa: E731
    plan = draw(st.sampled_from(["jp", "kr", "cn", "uk", "intl", "intl00", "nanp"]))
    if plan == "jp":
        return "", ["0" + draw(st.sampled_from("789")) + "0", d(4), d(4)], True
    if plan == "kr":
        return "", ["010", d(4), d(4)], True
    if plan == "cn":
        return "", ["1" + draw(st.sampled_from("3456789")) + d(1), d(4), d(4)], True
    if plan == "uk":
        return "", ["07" + d(3), d(6)], True
    if plan == "intl":
        return draw(st.sampled_from(["+", "＋", "+ "])) + draw(st.sampled_from(["81", "44", "82", "86"])), [
            d(2), d(4), d(4)], True
    if plan == "intl00":
        return "", ["00" + draw(st.sampled_from(["81", "44", "82", "86"])), d(2), d(4), d(4)], True
    return "", [draw(st.sampled_from("23456789")) + d(2), d(3), d(4)], False


@st.composite
def obfuscated(draw: st.DrawFn) -> tuple[str, int, int]:
    """A text holding an obfuscated phone number, and where the number's digits start and end."""
    prefix, groups, loose = draw(phone_numbers())
    styles = draw(st.lists(st.sampled_from(sorted(_GLYPHS)), min_size=1, max_size=3))
    letters = not draw(st.integers(0, 5))  # sometimes: ASCII digits with O for 0 and l for 1
    group_seps = [" ", "-", ".", "/", "\n", "\r\n", "・", "ー", "－", " - ", ") ", "  ", "_"]
    if loose:
        group_seps += ["", "\u200b"]
    tokens: list[tuple[str, bool]] = []  # (glyph, is a word)
    for g, group in enumerate(groups):
        if g:
            tokens.append((draw(st.sampled_from(group_seps)), False))
        for k, ch in enumerate(group):
            if letters:
                glyph = {"0": draw(st.sampled_from(["0", "O", "o"])), "1": draw(st.sampled_from(["1", "l", "I"]))}.get(ch, ch)
            else:
                glyph = _GLYPHS[draw(st.sampled_from(styles))][int(ch)]
            if k and draw(st.booleans()):
                tokens.append((draw(st.sampled_from(_INVISIBLE)), False))
            tokens.append((glyph, len(glyph) > 1))
    # a word stands apart from its neighbours: one space where nothing visible separates them
    body = ""
    for i, (tok, word) in enumerate(tokens):
        prev_word = i > 0 and tokens[i - 1][1]
        visible = " \r\n-./・ー－_)"
        if (word or prev_word) and i > 0 and body[-1:] not in visible and tok[:1] not in visible:
            body += " "
        body += tok
    before = draw(st.sampled_from(["", "Hi, here: ", "電話 ", "연락처: ", "我的手机 ", "ring ", "(", "お電話は"]))
    after = draw(st.sampled_from(["", " thanks", "です", "로 연락주세요", ".", ")", "\nBest"]))
    text = before + prefix + body + after
    return text, len(before), len(before) + len(prefix) + len(body)


@settings(max_examples=400, deadline=None)
@given(obfuscated())
def test_an_obfuscated_phone_number_is_found(case: tuple[str, int, int]) -> None:
    text, start, end = case
    found = [c for c in find_contacts(text) if c.kind == "phone"]
    digits_start = start + len(text[start:]) - len(text[start:].lstrip("+＋ "))
    assert any(c.start <= digits_start and c.end >= end for c in found), (
        text, [(c.rule, text[c.start : c.end]) for c in find_contacts(text)])


@st.composite
def order_like(draw: st.DrawFn) -> str:
    d = lambda n: "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=n, max_size=n)))  # noqa: E731
    kind = draw(st.sampled_from(["amazon", "usps", "ups", "price", "date", "isbn", "jp_post", "yen", "time"]))
    if kind == "amazon":
        return f"{d(3)}-{d(7)}-{d(7)}"
    if kind == "usps":
        digits = "9" + d(21)
        sep = draw(st.sampled_from([" ", "", "-"]))
        return sep.join(digits[i : i + 4] for i in range(0, 22, 4))
    if kind == "ups":
        alnum = draw(st.lists(st.sampled_from("ABCDEFGHJKMNPQRSTUVWXYZ0123456789"), min_size=16, max_size=16))
        return "1Z" + "".join(alnum)
    if kind == "price":
        return f"${draw(st.integers(0, 10**9)):,}.{d(2)}"
    if kind == "yen":
        return f"¥{draw(st.integers(0, 10**9)):,}"
    if kind == "date":
        y, m, day = draw(st.integers(1990, 2039)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
        sep = draw(st.sampled_from(["-", "/", "."]))
        return f"{y}{sep}{m:02d}{sep}{day:02d} {draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    if kind == "time":
        return f"{draw(st.integers(0, 23)):02d}:00-{draw(st.integers(0, 23)):02d}:30"
    if kind == "isbn":
        return f"ISBN {draw(st.sampled_from(['978', '979']))}-{d(1)}-{d(2)}-{d(6)}-{d(1)}"
    return f"〒{d(3)}-{d(4)}"


@settings(max_examples=300, deadline=None)
@given(st.lists(order_like(), min_size=1, max_size=3),
       st.sampled_from(["Your order {} has shipped.", "Tracking: {}", "お問い合わせ番号 {} です", "订单号 {}",
                        "송장번호 {} 입니다", "{}"]))
def test_order_and_tracking_ids_are_not_phone_numbers(ids: list[str], template: str) -> None:
    text = template.format(", ".join(ids))
    assert [text[c.start : c.end] for c in find_contacts(text) if c.kind == "phone"] == []
