"""Behind a front MTA: results from its Authentication-Results (by authserv-id, topmost only), the
client's address from XCLIENT or the PROXY protocol; nobody else may use either. The DNS server here
never answers, so anything checked locally would be 451."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from relay.store import audit
from tests.integration.test_limits import Session
from tests.support import World, message, provision

AUTHSERV = "mx.front.test"


@pytest.fixture
def silent_dns() -> Iterator[int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


async def relay_behind(start_relay: Any, dns_port: int, front: str = "127.0.0.1", proxy: bool = False,
                       proxy_from: str = "127.0.0.0/8", **smtp: Any) -> Any:
    return await start_relay(
        smtp={"listen": ["127.0.0.1:0"], "proxy_from": [proxy_from] if proxy else [], **smtp},
        trust={"authenticate": "enforce", "front_mta": {"addresses": [front], "authserv_id": AUTHSERV},
               "proxy_protocol": ["127.0.0.1:0"] if proxy else []},
        dns={"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": "0.5s"})


def proxy_v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 25\r\n".encode()


def proxy_v2(client: str) -> bytes:
    """A binary PROXY v2 header: PROXY command, TCP over IPv4 (HAProxy's proxy-protocol.txt §2.2)."""
    body = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + (40000).to_bytes(2, "big") + (25).to_bytes(2, "big")
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


def with_results(world: World, *results: str) -> bytes:
    head = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return head.encode() + message(world.seller_email, world.buyer_alias)


async def transact(s: Session, world: World, data: bytes) -> bytes:
    assert (await s.cmd(f"MAIL FROM:<{world.seller_email}>")).startswith(b"250")
    assert (await s.cmd(f"RCPT TO:<{world.buyer_alias}>")).startswith(b"250")
    assert (await s.cmd("DATA")).startswith(b"354")
    s.writer.write(data + b"\r\n.\r\n")
    return await s.reply(10)


def auth_events(world: World) -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return [e for e in audit.iter_all(conn) if e.reason.startswith("authenticate.")]
    finally:
        conn.close()


async def test_xclient_and_topmost_results_from_front_mta(start_relay: Any, silent_dns: int) -> None:
    relay = await relay_behind(start_relay, silent_dns)
    world = provision(relay.settings)
    s = await Session.open(relay.addresses[0][1])
    assert (await s.reply()).startswith(b"220")
    s.writer.write(b"EHLO front.test\r\n")
    ehlo = b""
    while not ehlo.endswith(b"250 HELP\r\n"):
        ehlo += await asyncio.wait_for(s.reader.readline(), 5)
    assert b"250-XCLIENT" in ehlo
    assert (await s.cmd("XCLIENT ADDR=203.0.113.9 HELO=client.example")).startswith(b"220")
    assert (await s.cmd("EHLO client.example")).startswith(b"250")
    good = with_results(world, f"{AUTHSERV}; dkim=pass header.d=seller.example; spf=fail smtp.mailfrom=seller.example")
    assert (await transact(s, world, good)).startswith(b"250")
    # the front MTA's own (topmost) result is the one read; a forged pass below it is ignored
    forged = with_results(world, f"{AUTHSERV}; dkim=none; spf=softfail smtp.mailfrom=seller.example",
                          f"{AUTHSERV}; dkim=pass header.d=seller.example")
    assert (await transact(s, world, forged)).startswith(b"550 5.7.1")
    # results under another authserv-id count for nothing
    other = with_results(world, "mx.elsewhere.test; dkim=pass header.d=seller.example")
    assert (await transact(s, world, other)).startswith(b"451 4.7.0")
    s.close()
    passed, spoofed = [e for e in auth_events(world) if e.event == "stage.authenticate"]
    assert passed.detail["source"] == "front_mta" and passed.detail["client"] == "203.0.113.9"
    assert spoofed.reason == "authenticate.spoofed"


async def test_xclient_and_results_refused_from_other_peers(start_relay: Any, silent_dns: int) -> None:
    relay = await relay_behind(start_relay, silent_dns, front="192.0.2.1")
    world = provision(relay.settings)
    s = await Session.open(relay.addresses[0][1])
    assert (await s.reply()).startswith(b"220")
    s.writer.write(b"EHLO client.test\r\n")
    ehlo = b""
    while not ehlo.endswith(b"250 HELP\r\n"):
        ehlo += await asyncio.wait_for(s.reader.readline(), 5)
    assert b"XCLIENT" not in ehlo
    assert (await s.cmd("XCLIENT ADDR=203.0.113.9")).startswith(b"550 5.7.0")
    data = with_results(world, f"{AUTHSERV}; dkim=pass header.d=seller.example; dmarc=pass header.from=seller.example")
    assert (await transact(s, world, data)).startswith(b"451 4.7.0")  # checked locally; DNS is silent
    s.close()


@pytest.mark.parametrize("header", [proxy_v1, proxy_v2])
async def test_proxy_header_naming_the_front_mta(start_relay: Any, silent_dns: int, header: Any) -> None:
    """A load balancer (127.0.0.1, smtp.proxy_from) forwards the front MTA's connection: the address
    in the header is the front MTA's, so its Authentication-Results are believed."""
    relay = await relay_behind(start_relay, silent_dns, front="192.0.2.25", proxy=True)
    world = provision(relay.settings)
    s = await Session.open(relay.addresses[0][1])
    s.writer.write(header("192.0.2.25"))
    assert (await s.reply()).startswith(b"220")
    assert (await s.cmd("EHLO mx.front.test")).startswith(b"250")
    data = with_results(world, f"{AUTHSERV}; dmarc=pass header.from=seller.example")
    assert (await transact(s, world, data)).startswith(b"250")
    s.close()
    (ev,) = [e for e in auth_events(world) if e.event == "stage.authenticate"]
    assert ev.detail["client"] == "192.0.2.25" and ev.detail["how"] == "dmarc"


@pytest.mark.parametrize("header", [proxy_v1, proxy_v2])
async def test_a_load_balancer_does_not_make_its_clients_the_front_mta(start_relay: Any, silent_dns: int,
                                                                       header: Any) -> None:
    """The balancer's own address is even listed as a front MTA: a client it forwards is still only
    the client in the header, its forged Authentication-Results are ignored (checked locally: the
    silent DNS makes that 451), and it may not use XCLIENT."""
    relay = await relay_behind(start_relay, silent_dns, front="127.0.0.1", proxy=True)
    world = provision(relay.settings)
    s = await Session.open(relay.addresses[0][1])
    s.writer.write(header("203.0.113.7"))
    assert (await s.reply()).startswith(b"220")
    assert (await s.cmd("EHLO client.example")).startswith(b"250")
    assert (await s.cmd("XCLIENT ADDR=192.0.2.25")).startswith(b"550 5.7.0")
    data = with_results(world, f"{AUTHSERV}; dkim=pass header.d=seller.example; dmarc=pass header.from=seller.example")
    assert (await transact(s, world, data)).startswith(b"451 4.7.0")
    s.close()


async def test_proxy_header_from_other_peer_closes(start_relay: Any, silent_dns: int) -> None:
    """Only smtp.proxy_from peers may send a PROXY header; being the front MTA is not enough."""
    relay = await relay_behind(start_relay, silent_dns, front="127.0.0.1", proxy=True, proxy_from="192.0.2.0/24")
    for header in (proxy_v1, proxy_v2):
        s = await Session.open(relay.addresses[0][1])
        s.writer.write(header("203.0.113.7"))
        assert await asyncio.wait_for(s.reader.read(), 5) == b""  # no greeting: closed
        s.close()


async def test_connections_behind_a_load_balancer_are_limited_per_client(start_relay: Any, silent_dns: int) -> None:
    """smtp.max_connections_per_ip counts the client named in the PROXY header, not the balancer
    (which carries everyone's connections)."""
    relay = await relay_behind(start_relay, silent_dns, front="192.0.2.25", proxy=True, max_connections_per_ip=2)
    port = relay.addresses[0][1]
    held = []
    for header in (proxy_v1, proxy_v2, proxy_v1):  # three from 203.0.113.7: the third is over
        s = await Session.open(port)
        s.writer.write(header("203.0.113.7"))
        held.append(s)
    replies = [await s.reply() for s in held]
    assert [r[:3] for r in replies] == [b"220", b"220", b"421"], replies
    others = [await Session.open(port) for _ in range(3)]  # other clients, same balancer
    for i, s in enumerate(others):
        s.writer.write(proxy_v2(f"198.51.100.{i + 1}"))
        assert (await s.reply()).startswith(b"220")
    assert relay.limits.per_ip.get("203.0.113.7") == 2 and relay.limits.per_ip.get("127.0.0.1") == 0
    for s in held + others:
        s.close()
