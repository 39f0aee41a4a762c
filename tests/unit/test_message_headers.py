"""relay.message.headers from tables: address lists parsed from the raw value, display names decoded
afterwards, and the header facts the authorize stage judges From by. The oracle for "what a reader
sees" is the address a client would send a reply to, written out by hand for each input."""

from __future__ import annotations

import pytest

from relay.message.headers import (
    MAX_ADDRESS_VALUE,
    AddressList,
    Mailbox,
    decode_unstructured,
    display_addresses,
    parse_address_list,
)
from relay.pipeline.headers import facts


def boxes(raw: str) -> list[tuple[str, str]]:
    return [(mb.display_name, mb.addr_spec) for mb in parse_address_list(raw).mailboxes]


@pytest.mark.parametrize(("raw", "want"), [
    # an encoded word is one atom of a phrase: its quotes, brackets and commas are name text
    ("=?utf-8?q?=22registered=40seller=2Eexample=22?= <attacker@evil.example>",
     [('"registered@seller.example"', "attacker@evil.example")]),
    ("=?utf-8?q?Shop_=3Cregistered=40seller=2Eexample=3E?= <attacker@evil.example>",
     [("Shop <registered@seller.example>", "attacker@evil.example")]),
    ("=?utf-8?q?a=2C_b?= <c@x.test>", [("a, b", "c@x.test")]),
    ("=?utf-8?b?PHJlZ2lzdGVyZWRAc2VsbGVyLmV4YW1wbGU+?= <attacker@evil.example>",
     [("<registered@seller.example>", "attacker@evil.example")]),
    # plain, quoted, upper-case, routes, CJK and 8-bit names
    ("Kyoto Crafts <Shop@Example.TEST>", [("Kyoto Crafts", "shop@example.test")]),
    ('"Doe, John" <john@x.test>', [("Doe, John", "john@x.test")]),
    ('"john@x.com" <john@x.com>', [("john@x.com", "john@x.com")]),
    ("<@route.a,@route.b:user@x.test>", [("", "user@x.test")]),
    ("山田太郎 <taro@x.jp>", [("山田太郎", "taro@x.jp")]),
    ("Jöhn Müller <j@x.test>", [("Jöhn Müller", "j@x.test")]),
    ("=?iso-2022-jp?b?GyRCOzNFRBsoQg==?= <t@x.jp>", [("山田", "t@x.jp")]),
    ("=?UTF-8?B?5bGx55Sw?= <t@x.jp>", [("山田", "t@x.jp")]),
    ("=?bogus-charset?q?abc?= <a@x.test>", [("abc", "a@x.test")]),  # bad charset tolerated
    ("a@x.test, B <b@y.test>", [("", "a@x.test"), ("B", "b@y.test")]),
    ("", []),
])
def test_parse_address_list(raw: str, want: list[tuple[str, str]]) -> None:
    assert boxes(raw) == want


def test_comments_are_decoded_and_part_of_the_shown_name() -> None:
    (mb,) = parse_address_list("a@x.test (=?utf-8?q?shop=40seller=2Eexample?=)").mailboxes
    assert mb == Mailbox("", "a@x.test", ("shop@seller.example",))
    assert mb.shown_name == "shop@seller.example" and mb.domain == "x.test"


def test_groups_are_counted_and_their_members_kept() -> None:
    al = parse_address_list("Friends: a@x.test, B <b@y.test>;")
    assert al.groups == 1 and [mb.addr_spec for mb in al.mailboxes] == ["a@x.test", "b@y.test"]
    assert parse_address_list("undisclosed-recipients:;") == AddressList(groups=1)


@pytest.mark.parametrize("raw", [
    '"unterminated <a@x.test>',  # the quote never closes: no address can be read
    "shop",  # no domain
    "a@",  # the stdlib raises IndexError here
    "John, Smith <j@x.test>",  # an unquoted comma leaves a mailbox without a domain
    "(" * 5000,  # nested comments: RecursionError inside the parser
    '"' * (MAX_ADDRESS_VALUE + 1),  # quadratic in the parser: refused by length, not parsed
])
def test_malformed_input_degrades_to_absent(raw: str) -> None:
    al = parse_address_list(raw)
    assert al.invalid >= 1 and al.defects


def test_decode_unstructured() -> None:
    assert decode_unstructured("Re: [Important] =?UTF-8?Q?caf=C3=A9?= order") == "Re: [Important] café order"
    assert decode_unstructured("=?bogus?q?abc?= =?utf-8?b?5bGx?=") == "abc山"
    assert decode_unstructured("plain") == "plain"


@pytest.mark.parametrize(("text", "want"), [
    ("Kyoto Crafts", ()),
    ('"Shop@Seller.Example"', ("shop@seller.example",)),
    ("shop＠seller．example", ("shop@seller.example",)),  # fullwidth at and full stop
    ("shop\u200b@seller.example", ("shop@seller.example",)),  # a zero-width space does not hide it
    ("mailto:a@x.test and b@y.test", ("a@x.test", "b@y.test")),
    ("Bob @ home", ()),
])
def test_display_addresses(text: str, want: tuple[str, ...]) -> None:
    assert display_addresses(text) == want


def raw_from(value: str) -> bytes:
    return f"From: {value}\r\nSubject: Hello\r\n\r\nbody\r\n".encode()


def test_facts_read_from_the_raw_value() -> None:
    f = facts(raw_from("=?utf-8?q?Shop_=3Cshop=40seller=2Eexample=3E?= <attacker@evil.example>"))
    assert f.from_addresses == ("attacker@evil.example",)
    assert f.from_display_names == ("Shop <shop@seller.example>",) and f.from_groups == 0
    # the encoded word that once became the only address is now only a name without an address
    f = facts(raw_from("=?utf-8?q?=3Cshop=40seller=2Eexample=3E?="))
    assert f.from_addresses == () and f.from_invalid == 1
    f = facts(raw_from("Team: shop@seller.example;"))
    assert f.from_groups == 1 and f.from_addresses == ("shop@seller.example",)


def test_facts_8bit_header() -> None:
    f = facts("From: 山田太郎 <Taro@X.jp>\r\nSubject: 商品について\r\n\r\n".encode())
    assert f.from_addresses == ("taro@x.jp",) and f.from_display_names == ("山田太郎",)
    assert f.subject == "商品について"


@pytest.mark.parametrize("raw", ["=?x-unknown?q?caf=E9?=", "=?utf-8?q?=8C=FF?=", "caf\udce9 \ud800"])
def test_undecodable_bytes_never_come_back_as_surrogates(raw: str) -> None:
    # a lone surrogate cannot be stored, logged or encoded: the refusal record of such a message crashed
    decode_unstructured(raw).encode("utf-8")
    for mb in parse_address_list(f"{raw} <a@x.test>").mailboxes:
        mb.display_name.encode("utf-8")


@pytest.mark.parametrize(("raw", "want"), [
    # QQ Mail / Foxmail: an encoded word inside quotes (not RFC 2047, but what they send)
    ('"=?gb18030?B?z/LX8w==?=" <wujyou@qq.com>', [("向左", "wujyou@qq.com")]),
    ('"=?utf-8?Q?=E5=90=89=E7=94=B0=E5=AD=A6=EF=BC=88I.B.S)?=" <iba@x.test>', [("吉田学（I.B.S)", "iba@x.test")]),
])
def test_encoded_word_inside_quotes_is_a_readable_name(raw: str, want: list[tuple[str, str]]) -> None:
    assert boxes(raw) == want and parse_address_list(raw).invalid == 0


@pytest.mark.parametrize("raw", [
    "A <a@x.test> b@y.test",  # a second address without a comma must not vanish
    "A <a@x.test>>",
    "A <a@x.test",
    "A <a@x.test b@y.test>",
    "a@=?utf-8?q?x?=.test",  # an encoded word is never part of a domain
    '"=?utf-8?q?a?=" <a@x.test> b@y.test',
])
def test_junk_around_a_mailbox_makes_the_list_unreadable(raw: str) -> None:
    assert parse_address_list(raw).invalid >= 1
