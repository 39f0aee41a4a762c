"""Relay core over real sockets: refusals, round trips, threading, retries, bounces, restarts."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import sqlite3

import pytest

from relay.store import audit
from relay.store import queue as queue_repo
from tests.support import (
    DOMAIN,
    Sink,
    World,
    dkim_ok,
    eventually,
    maildir_messages,
    message,
    provision,
    send,
    send_expect,
)


def events(world: World, event: str | None = None) -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return [e for e in audit.iter_all(conn) if event is None or e.event == event]
    finally:
        conn.close()


def reasons(world: World) -> list[str]:
    return [e.reason for e in events(world)]


def no_real_address(data: bytes, *addresses: str) -> None:
    text = data.decode("utf-8", "replace").lower()
    for a in addresses:
        assert a.lower() not in text, f"{a} leaked"


async def test_refusals_are_coded_and_audited(start_relay) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    ok = message(world.seller_email, world.buyer_alias)

    # unknown alias, foreign domain
    assert (await send_expect(port, world.seller_email, [f"nosuchalias123@{DOMAIN}"], ok))[0] == 550
    code, text = await send_expect(port, world.seller_email, ["someone@elsewhere.example"], ok)
    assert code == 554 and "relay" in text.lower()
    # a stranger in the envelope (and in From)
    stranger = message("mallory@evil.example", world.buyer_alias)
    code, text = await send_expect(port, "mallory@evil.example", [world.buyer_alias], stranger)
    assert code == 550 and "5.7.1" in text
    # the right envelope but a stranger in From
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias],
                                   message("mallory@evil.example", world.buyer_alias))
    assert code == 550 and "5.7.1" in text
    # a stranger in the envelope, the right address in From
    code, _ = await send_expect(port, "mallory@evil.example", [world.buyer_alias], ok)
    assert code == 550
    # the buyer writing to their own alias is not "the other party", and the reply says what to do;
    # the same reply as a stranger's, or anyone could test which real address is behind an alias
    code, own = await send_expect(port, world.buyer_email, [world.buyer_alias],
                                  message(world.buyer_email, world.buyer_alias))
    assert code == 550 and "5.7.1" in own and "each alias stands for one party" in own
    code, stranger = await send_expect(port, "mallory@evil.example", [world.buyer_alias],
                                       message("mallory@evil.example", world.buyer_alias))
    assert (code, stranger) == (550, own)
    # revoked alias
    conn = world.conn()
    try:
        from relay.store import threads

        conn.execute("BEGIN IMMEDIATE")
        threads.revoke_alias(conn, world.buyer_alias.split("@")[0])
        conn.execute("COMMIT")
    finally:
        conn.close()
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias], ok)
    assert code == 550 and "5.1.1" in text

    got = reasons(world)
    for reason in ("rcpt.unknown_alias", "rcpt.foreign_domain", "rcpt.sender_not_party",
                   "authorize.header_from_not_party", "rcpt.revoked_alias"):
        assert reason in got, reason
    # no reply text ever carries an address
    for e in events(world, "message.rejected"):
        assert "@" not in e.detail.get("reply", "")


async def test_seller_to_buyer_round_trip_via_smarthost(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    body = (f"Hello Alice,\r\nYour order ships tomorrow. Reach me at {world.seller_email.upper()}\r\n"
            f"or {world.seller_staff}.\r\n")
    first = message(f"Kyoto Crafts <{world.seller_email}>", world.buyer_alias, "Your order",
                    body, message_id="<seller-1@mail.seller.example>",
                    headers={"Reply-To": world.seller_staff, "X-Mailer": "Seller Mail 1.0",
                             "Received": "from laptop (10.1.2.3) by mail.seller.example"})
    await send(port, world.seller_email, [world.buyer_alias], first)
    got = (await sink.wait_for(1))[0]
    assert got.rcpt_tos == [world.buyer_email]
    assert got.mail_from == world.seller_alias
    msg = got.message
    assert msg["To"].addresses[0].addr_spec == world.buyer_email
    assert msg["From"].addresses[0].addr_spec == world.seller_alias
    assert msg["From"].addresses[0].display_name == "Kyoto Crafts"
    assert msg["Reply-To"] is None and msg["X-Mailer"] is None and msg["Received"] is None
    assert msg["Message-ID"].endswith(f"@{DOMAIN}>")
    no_real_address(got.data, world.seller_email, world.seller_staff)
    assert world.seller_alias in got.data.decode()
    assert dkim_ok(relay, got.data)
    relay_id_1 = msg["Message-ID"]

    # the buyer replies the way their client does: In-Reply-To the id they saw
    reply = message(world.buyer_email, world.seller_alias, "Re: Your order", "Thanks!\r\n",
                    message_id="<buyer-1@buyer.example>",
                    headers={"In-Reply-To": relay_id_1, "References": relay_id_1})
    await send(port, world.buyer_email, [world.seller_alias], reply)
    got2 = (await sink.wait_for(2))[1]
    msg2 = got2.message
    assert got2.rcpt_tos == [world.seller_email]
    assert msg2["From"].addresses[0].addr_spec == world.buyer_alias
    # the seller's client threads by its own original id
    assert msg2["In-Reply-To"] == "<seller-1@mail.seller.example>"
    assert msg2["References"] == "<seller-1@mail.seller.example>"
    no_real_address(got2.data, world.buyer_email)
    assert dkim_ok(relay, got2.data)
    relay_id_2 = msg2["Message-ID"]

    # third level: the seller answers the buyer's reply
    third = message(world.seller_email, world.buyer_alias, "Re: Your order", "You are welcome.\r\n",
                    message_id="<seller-2@mail.seller.example>",
                    headers={"In-Reply-To": relay_id_2,
                             "References": f"<seller-1@mail.seller.example> {relay_id_2}"})
    await send(port, world.seller_email, [world.buyer_alias], third)
    msg3 = (await sink.wait_for(3))[2].message
    # the buyer knows the first message by our relay id and their own reply by its own id
    assert msg3["In-Reply-To"] == "<buyer-1@buyer.example>"
    assert msg3["References"].split() == [relay_id_1, "<buyer-1@buyer.example>"]

    await eventually(lambda: [e.event for e in events(world)].count("delivery.delivered") == 3)
    assert [e.event for e in events(world)].count("message.accepted") == 3


async def test_maildir_delivery_and_multiple_alias_recipients(start_relay) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    await send(port, world.seller_email, [world.buyer_alias], message(world.seller_email, world.buyer_alias))
    for _ in range(100):
        if maildir_messages(relay.settings):
            break
        await asyncio.sleep(0.05)
    files = maildir_messages(relay.settings)
    assert len(files) == 1
    assert not list((relay.settings.maildir_path / "tmp").iterdir())
    data = files[0]
    assert data.startswith(f"Return-Path: <{world.seller_alias}>".encode())
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == world.buyer_email
    no_real_address(data.split(b"\r\n", 2)[2], world.seller_email)
    assert dkim_ok(relay, data)


async def test_smarthost_451_then_250_delivers_once(start_relay, sink: Sink) -> None:
    sink.replies = ["451 4.3.0 try later"]
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias))
    await sink.wait_for(1)
    await eventually(lambda: "delivery.delivered" in [e.event for e in events(world)])
    await asyncio.sleep(0.3)
    assert len(sink.received) == 1 and sink.refused == 1
    names = [e.event for e in events(world)]
    assert names.count("delivery.deferred") == 1 and names.count("delivery.delivered") == 1


async def test_smarthost_550_sends_notice_without_recipient_address(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    sink.replies = [f"550 5.1.1 <{world.buyer_email}>: mailbox unavailable"]
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "Where is it"))
    notice = (await sink.wait_for(1))[0]
    assert notice.rcpt_tos == [world.seller_email]
    assert notice.mail_from in ("", "<>")
    assert world.buyer_email not in notice.data.decode()
    assert world.buyer_alias in notice.message.get_content()
    assert notice.message["Auto-Submitted"] == "auto-replied"
    assert dkim_ok(relay, notice.data)
    assert "delivery.bounced" in [e.event for e in events(world)]
    await eventually(lambda: "notice.delivered" in [e.event for e in events(world)])


async def test_smarthost_down_across_restart(start_relay, sink: Sink) -> None:
    port = sink.port
    await sink.stop()
    relay = await start_relay(smarthost=port)
    world = provision(relay.settings)
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias))
    await asyncio.sleep(0.5)
    await relay.stop(grace=2)
    conn = world.conn()
    try:
        pending = queue_repo.listing(conn, "queued")
    finally:
        conn.close()
    assert len(pending) == 1 and pending[0].attempts >= 1
    await sink.start()
    relay2 = await start_relay(relay.settings)
    got = await sink.wait_for(1, timeout=10)
    assert got[0].rcpt_tos == [world.buyer_email]
    assert relay2.worker is not None


@pytest.mark.parametrize("seq", [b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n",
                                 b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\r\n.\r\r\n", b"\r\r\n.\r\r\n"])
async def test_smuggling_sequences_are_refused(start_relay, seq: bytes) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    payload = (f"From: {world.seller_email}\r\nTo: {world.buyer_alias}\r\nSubject: probe\r\n\r\nfirst".encode()
               + seq + f"MAIL FROM:<{world.seller_email}>\r\nRCPT TO:<{world.buyer_alias}>\r\nDATA\r\n"
               f"From: {world.seller_email}\r\nSubject: SMUGGLED\r\n\r\nsmuggled\r\n".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    log = b""

    async def expect(prefix: bytes) -> bytes:
        line = await asyncio.wait_for(reader.readline(), 5)
        while line[3:4] == b"-":
            line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(prefix), line
        return line

    await expect(b"220")
    for cmd, want in ((b"EHLO probe.test", b"250"), (f"MAIL FROM:<{world.seller_email}>".encode(), b"250"),
                      (f"RCPT TO:<{world.buyer_alias}>".encode(), b"250"), (b"DATA", b"354")):
        writer.write(cmd + b"\r\n")
        log += await expect(want)
    writer.write(payload + b"\r\n.\r\n")
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"QUIT\r\n")
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"550"), answer
    assert b"354" not in rest
    await asyncio.sleep(0.2)
    assert maildir_messages(relay.settings) == []
    conn = sqlite3.connect(relay.settings.db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE state != 'rejected'").fetchone()[0] == 0
    finally:
        conn.close()


async def test_size_limit_and_empty_and_dot_stuffing(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port, smtp={"max_message_size": 20000})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    big = message(world.seller_email, world.buyer_alias, body="x" * 70 + "\r\n" * 1 + ("y" * 76 + "\r\n") * 400)
    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias], big)
    assert code == 552
    dotted = message(world.seller_email, world.buyer_alias, body=".leading dot\r\n..two dots\r\n.\r\nend\r\n")
    await send(port, world.seller_email, [world.buyer_alias], dotted)
    got = (await sink.wait_for(1))[0]
    body = got.data.split(b"\r\n\r\n", 1)[1]
    assert b"\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n" in b"\r\n" + body
    assert re.search(rb"^DKIM-Signature:", got.data, re.M)


async def test_lifetime_expiry_bounces_with_notice(start_relay, sink: Sink) -> None:
    sink.replies = ["451 4.3.0 busy"] * 3
    relay = await start_relay(smarthost=sink.port, delivery={"lifetime": "1s", "retry_base": "0.2s"})
    world = provision(relay.settings)
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "Slow"))
    notice = (await sink.wait_for(1, timeout=15))[0]
    assert notice.rcpt_tos == [world.seller_email] and sink.refused == 3
    assert "gave up" in notice.message.get_content()
    bounced = [e for e in events(world) if e.event == "delivery.bounced"]
    assert len(bounced) == 1 and bounced[0].reason == "delivery.expired"
