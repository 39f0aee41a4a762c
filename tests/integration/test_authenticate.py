"""Sender authentication over real sockets, against a local DNS server started by the test.

Zones: a Gmail-like domain (aligned DKIM, SPF pass through include), an Outlook-like domain with no
DMARC record (aligned DKIM pass, SPF fail), a p=reject domain with a forged From, an SPF pass for
an unaligned envelope with a broken DKIM signature, and a name server that never answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.store import audit
from tests.dkimtools import dns_server
from tests.support import World, eventually, maildir_messages, make_settings, message, provision, send_expect
from tests.trustzone import add_seller, sign, zone


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with dns_server(zone()) as (port, _resolver):
        yield port


def settings(tmp_path: Path, dkim_key: Path, port: int, timeout: str = "3s") -> Any:
    return make_settings(tmp_path / "state", dkim={"private_key": str(dkim_key)},
                         trust={"authenticate": "enforce"},
                         dns={"nameservers": ["127.0.0.1"], "port": port, "timeout": timeout})


def events(world: World, event: str = "stage.authenticate") -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return [e for e in audit.iter_all(conn) if e.event == event]
    finally:
        conn.close()


async def test_gmail_like_aligned_dkim_and_spf_pass(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                    dns_port: int) -> None:
    s = settings(tmp_path, dkim_key, dns_port)
    world = provision(s)
    seller = add_seller(world, "shop@gmail.test")
    relay = await start_relay(s)
    port = relay.addresses[0][1]
    data = sign(message("Shop <shop@gmail.test>", seller.buyer_alias), "gmail.test")
    assert await send_expect(port, "shop@gmail.test", [seller.buyer_alias], data) == (250, "")
    (ev,) = events(world)
    assert ev.reason == "authenticate.pass"
    assert ev.detail["spf"] == "pass" and ev.detail["dkim"] == ["gmail.test=pass"]
    assert ev.detail["dmarc_policy"] == "none"
    delivered = (await eventually(lambda: maildir_messages(s)))[0]
    # results stay in the audit, not in the delivered message
    assert b"Authentication-Results" not in delivered and b"gmail.test=pass" not in delivered


async def test_outlook_like_no_dmarc_aligned_dkim_passes(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                         dns_port: int) -> None:
    s = settings(tmp_path, dkim_key, dns_port)
    world = provision(s)
    seller = add_seller(world, "seller@outlook.test")
    relay = await start_relay(s)
    data = sign(message("Seller <seller@outlook.test>", seller.buyer_alias), "outlook.test")
    assert await send_expect(relay.addresses[0][1], "seller@outlook.test", [seller.buyer_alias], data) == (250, "")
    (ev,) = events(world)
    assert ev.reason == "authenticate.pass" and ev.detail["how"] == "dkim_aligned"
    assert ev.detail["spf"] == "fail" and ev.detail["dmarc_policy"] == "none-published"


async def test_forged_from_at_reject_domain_refused(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                    dns_port: int) -> None:
    s = settings(tmp_path, dkim_key, dns_port)
    world = provision(s)
    seller = add_seller(world, "ceo@strict.test")
    relay = await start_relay(s)
    data = message("CEO <ceo@strict.test>", seller.buyer_alias)
    code, text = await send_expect(relay.addresses[0][1], "ceo@strict.test", [seller.buyer_alias], data)
    assert (code, text[:5]) == (550, "5.7.1")
    (ev,) = events(world)
    assert ev.reason == "authenticate.spoofed" and ev.detail["spf"] == "fail" and ev.detail["dkim"] == []
    assert ev.detail["dmarc_policy"] == "reject"
    assert maildir_messages(s) == []  # refused in the dialogue: nothing delivered, no bounce


async def test_same_forgery_refused_without_any_dmarc_record(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                             dns_port: int) -> None:
    s = settings(tmp_path, dkim_key, dns_port)
    world = provision(s)
    seller = add_seller(world, "seller@outlook.test")
    relay = await start_relay(s)
    data = message("Seller <seller@outlook.test>", seller.buyer_alias)  # not signed
    code, _ = await send_expect(relay.addresses[0][1], "seller@outlook.test", [seller.buyer_alias], data)
    assert code == 550
    assert [e.reason for e in events(world)] == ["authenticate.spoofed"]


async def test_spf_pass_unaligned_envelope_with_broken_dkim_refused(start_relay: Any, tmp_path: Path,
                                                                    dkim_key: Path, dns_port: int) -> None:
    s = settings(tmp_path, dkim_key, dns_port)
    world = provision(s)
    seller = add_seller(world, "shop@brand.test", "bounces@bulk.test")
    relay = await start_relay(s)
    signed = sign(message("Brand <shop@brand.test>", seller.buyer_alias, body="Original body.\r\n"), "brand.test")
    tampered = signed.replace(b"Original body.", b"Altered body!!")
    code, _ = await send_expect(relay.addresses[0][1], "bounces@bulk.test", [seller.buyer_alias], tampered)
    assert code == 550
    (ev,) = events(world)
    assert ev.detail["spf"] == "pass" and ev.detail["spf_domain"] == "bulk.test"
    assert ev.detail["dkim"] == ["brand.test=fail"]
    # the same message untampered passes on its aligned DKIM signature
    code, _ = await send_expect(relay.addresses[0][1], "bounces@bulk.test", [seller.buyer_alias], signed)
    assert code == 250


async def test_dns_timeout_is_451_never_a_pass(start_relay: Any, tmp_path: Path, dkim_key: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        s = settings(tmp_path, dkim_key, silent.getsockname()[1], timeout="0.5s")
        world = provision(s)
        seller = add_seller(world, "shop@gmail.test")
        relay = await start_relay(s)
        data = sign(message("Shop <shop@gmail.test>", seller.buyer_alias), "gmail.test")
        code, text = await send_expect(relay.addresses[0][1], "shop@gmail.test", [seller.buyer_alias], data)
        assert (code, text[:5]) == (451, "4.7.0")
        (ev,) = events(world, "message.tempfailed")
        assert ev.reason == "authenticate.dns_tempfail" and ev.detail["spf"] == "temperror"
        assert maildir_messages(s) == []
    finally:
        silent.close()


async def test_unreadable_dkim_is_a_permerror_never_451(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                                        dns_port: int) -> None:
    s = settings(tmp_path, dkim_key, dns_port)
    world = provision(s)
    seller = add_seller(world, "shop@gmail.test", "seller@outlook.test")
    relay = await start_relay(s)
    port = relay.addresses[0][1]
    # a header line without a colon made dkimpy raise before any signature was read: 451 on every retry
    signed = sign(message("Shop <shop@gmail.test>", seller.buyer_alias), "gmail.test")
    junk = signed.replace(b"\r\n\r\n", b"\r\nthis line has no colon\r\n\r\n", 1)
    assert await send_expect(port, "shop@gmail.test", [seller.buyer_alias], junk) == (250, "")  # aligned SPF
    # a tag list dkimpy cannot parse: that signature is a permerror, the sender is still judged
    bad = b"DKIM-Signature: v=1; a=rsa-sha256; d=outlook.test; s=selector1; garbage; bh=AAAA; b=AAAA\r\n"
    code, _ = await send_expect(port, "seller@outlook.test", [seller.buyer_alias],
                                bad + message("Seller <seller@outlook.test>", seller.buyer_alias))
    assert code == 550
    first, second = events(world)
    assert first.reason == "authenticate.pass" and first.detail["dkim"] == ["gmail.test=permerror"]
    assert second.reason == "authenticate.spoofed" and second.detail["dkim"] == ["outlook.test=permerror"]
