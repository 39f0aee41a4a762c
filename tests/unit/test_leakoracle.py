"""The leak oracle itself: it sees every form of an address the end-to-end tests write, and it
reports nothing on the same messages written with aliases only."""

from __future__ import annotations

import pytest

from tests.leakforms import CASES, Case, Parties, forward, text_message
from tests.leakoracle import forms_found, normalize

SELLER = "kenji.sato@gmail.com"
BUYER = "alice.wong@example.org"
SELLER_ALIAS = "q7c2mx9fk4ta8wzp3e@relay.example"
BUYER_ALIAS = "h3v8rn2ye6qk5dcj7u@relay.example"

REAL = Parties(SELLER, "Kenji Sato", BUYER, "Alice Wong", BUYER_ALIAS)
#: The same messages, written as the relay should deliver them: aliases where the addresses were.
MASKED = Parties(SELLER_ALIAS, "Kenji Sato", BUYER_ALIAS, "Alice Wong", BUYER)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_oracle_finds_every_form(case: Case) -> None:
    found = forms_found(case.build(REAL), [SELLER, BUYER], allow_in_to=None)
    assert any(SELLER in f for f in found), found
    if case.writes_other:
        assert any(BUYER in f for f in found), found


@pytest.mark.parametrize("case", [c for c in CASES if c.id != "forward_rfc822"], ids=lambda c: c.id)
def test_oracle_is_quiet_on_aliases(case: Case) -> None:
    assert forms_found(case.build(MASKED), [SELLER, BUYER], allow_in_to=BUYER) == []


def test_forward_route_headers_are_reported_even_without_an_address() -> None:
    found = forms_found(forward(MASKED), [SELLER, BUYER], allow_in_to=BUYER)
    assert {f for f in found if "forwarded" in f} == {
        "forwarded message keeps its received header", "forwarded message keeps its x-originating-ip header",
        "forwarded message keeps its return-path header"}
    assert len(found) == 3, found


def test_recipient_allowed_only_in_top_level_to() -> None:
    msg = text_message(MASKED, "Hello,\r\nYour parcel ships on Monday.\r\n")
    assert forms_found(msg, [SELLER, BUYER], allow_in_to=BUYER) == []
    found = forms_found(msg, [SELLER, BUYER], allow_in_to=None)
    assert found and all(f.startswith(("message header to ", "raw message")) and BUYER in f for f in found), found
    cc = text_message(MASKED, "Hello.\r\n", extra={"Cc": BUYER})
    assert forms_found(cc, [SELLER, BUYER], allow_in_to=BUYER)


@pytest.mark.parametrize("written", [
    "ｋｅｎｊｉ．ｓａｔｏ＠ｇｍａｉｌ．ｃｏｍ", "kenji.sato アットマーク gmail。com", "KENJI.SATO@GMAIL.COM",
    "kеnji.sаto@gmаil.com",  # Cyrillic е and а
    "kenji . sato [at] gmail [.] com", "kenji.sato&#64;gmail&#46;com", "k\u200be\u00adnji.sato@gmail.com\ufe0f",
    "kenjisato+shop@gmail.com", "k.e.n.j.i.sato@googlemail.com", "bounce+kenji.sato=gmail.com@lists.example",
    "moc.liamg@otas.ijnek", "kenji%2esato%40gmail%2ecom",
])
def test_normalised_forms(written: str) -> None:
    msg = text_message(MASKED, f"Hello,\r\n{written}\r\n")
    assert forms_found(msg, [SELLER], allow_in_to=None), normalize(written)


def test_a_different_person_is_not_reported() -> None:
    msg = text_message(MASKED, "Hello,\r\nwrite to kenji.satoh@gmail.net or sato@gmail.com.\r\n")
    assert forms_found(msg, [SELLER, BUYER], allow_in_to=BUYER) == []
