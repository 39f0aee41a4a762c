"""Forged From headers over real sockets, with sender authentication enforced against a local DNS server.

The attacker holds an account at the seller's own mail provider (mail.test), so the provider's DKIM
key signs whatever the attacker writes and d=mail.test aligns with any mail.test From. The only thing
between the attacker and the seller's name is how From is parsed: from the raw value, display names
decoded afterwards. Refusals name the problem, never an address, and happen before delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from relay.dkim import public_txt_from_private, txt_record
from relay.store import audit
from tests.dkimtools import dns_server, rsa_pem
from tests.support import World, maildir_messages, make_settings, message, provision, send_expect
from tests.trustzone import add_seller

SELLER = "shop@mail.test"
ATTACKER = "attacker@mail.test"
KEY = 21  # the provider's signing key (tests.dkimtools.rsa_pem's n)

# The provider signs its users' mail; its SPF does not cover 127.0.0.1, so only DKIM can pass.
ZONE = 'mail.test. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"\n'


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with dns_server(ZONE + txt_record("s1", "mail.test", public_txt_from_private(rsa_pem(2048, KEY))) + "\n") as (
            port, _):
        yield port


def provider_signed(data: bytes) -> bytes:
    """What mail.test's outbound server adds to every message of every one of its users."""
    return dkim.sign(data, b"s1", b"mail.test", rsa_pem(2048, KEY),
                     include_headers=[b"from", b"to", b"subject", b"date"]) + data


def audit_events(world: World) -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return list(audit.iter_all(conn))
    finally:
        conn.close()


async def send_from(start_relay: Any, tmp_path: Path, dkim_key: Path, dns_port: int,
                    from_value: str) -> tuple[int, str, list[audit.AuditEvent], Any]:
    s = make_settings(tmp_path / "state", dkim={"private_key": str(dkim_key)}, trust={"authenticate": "enforce"},
                      dns={"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": "3s"})
    world = provision(s)
    seller = add_seller(world, SELLER)
    relay = await start_relay(s)
    data = provider_signed(message(from_value, seller.buyer_alias))
    # the envelope is the registered address: MAIL FROM costs a direct-to-MX attacker nothing
    code, text = await send_expect(relay.addresses[0][1], SELLER, [seller.buyer_alias], data)
    return code, text, audit_events(world), s


def refused_for(events: list[audit.AuditEvent]) -> list[str]:
    return [e.reason for e in events if e.event == "message.rejected"]


@pytest.mark.parametrize("from_value", [
    # the display name is a quoted registered address; the mailbox is the attacker's
    "=?utf-8?q?=22shop=40mail=2Etest=22?= <attacker@mail.test>",
    # <registered> hidden in the encoded word: decoded first, it became a second (or the only) address
    "=?utf-8?q?Shop_=3Cshop=40mail=2Etest=3E?= <attacker@mail.test>",
    # decoded first, the attacker's address fell into a comment and the registered one was all that
    # was left: the message was relayed as the seller's, aligned by the provider's DKIM signature
    "=?utf-8?q?Shop_=3Cshop=40mail=2Etest=3E_=28?= <attacker@mail.test> (=?utf-8?q?=29?=)",
    # fullwidth ＠ and ．: NFKC folds them to what a reader takes them for
    "=?utf-8?b?c2hvcO+8oG1haWzvvI50ZXN0?= <attacker@mail.test>",
])
async def test_encoded_word_forgery_is_refused_and_never_aligns(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                                dns_port: int, from_value: str) -> None:
    code, text, events, s = await send_from(start_relay, tmp_path, dkim_key, dns_port, from_value)
    assert (code, text) == (550, "5.7.1 From display name contains a different address")
    assert refused_for(events) == ["authorize.from_display_address"]
    assert not [e for e in events if e.reason == "authenticate.pass"]
    assert maildir_messages(s) == []
    for e in events:  # neither address reaches the audit trail through this refusal
        assert ATTACKER not in str(e.detail) and SELLER not in str(e.detail)


async def test_encoded_word_that_was_the_only_address_is_no_address(start_relay: Any, tmp_path: Path,
                                                                     dkim_key: Path, dns_port: int) -> None:
    # decoded first, this From read as exactly the seller's address, and d=mail.test aligned with it
    code, _, events, s = await send_from(start_relay, tmp_path, dkim_key, dns_port,
                                         "=?utf-8?q?Shop_=3Cshop=40mail=2Etest=3E?=")
    assert code == 550
    assert refused_for(events) == ["authorize.header_from_count"]
    assert not [e for e in events if e.reason == "authenticate.pass"] and maildir_messages(s) == []


async def test_plain_display_name_with_another_address_is_refused(start_relay: Any, tmp_path: Path,
                                                                  dkim_key: Path, dns_port: int) -> None:
    code, text, events, _ = await send_from(start_relay, tmp_path, dkim_key, dns_port,
                                            '"support@marketplace.test" <shop@mail.test>')
    assert (code, text) == (550, "5.7.1 From display name contains a different address")
    assert refused_for(events) == ["authorize.from_display_address"]


async def test_group_syntax_in_from_is_refused(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                               dns_port: int) -> None:
    code, text, events, s = await send_from(start_relay, tmp_path, dkim_key, dns_port, "Shop: shop@mail.test;")
    assert (code, text) == (550, "5.7.1 Group syntax is not allowed in From")
    assert refused_for(events) == ["authorize.from_group"]
    assert maildir_messages(s) == []


@pytest.mark.parametrize("from_value", [
    '"shop@mail.test" <shop@mail.test>',  # what Outlook writes when the contact has no name
    '"SHOP@Mail.Test" <shop@mail.test>',
    "=?utf-8?q?Kyoto_Crafts_=28shop=40mail=2Etest=29?= <shop@mail.test>",
    "Kyoto Crafts <shop@mail.test>",
])
async def test_same_address_in_display_name_passes(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                   dns_port: int, from_value: str) -> None:
    code, _, events, _ = await send_from(start_relay, tmp_path, dkim_key, dns_port, from_value)
    assert code == 250
    assert [e.detail["how"] for e in events if e.reason == "authenticate.pass"] == ["dkim_aligned"]
