"""One message cannot stall the daemon: its checks run off the loop, within a CPU budget.

While a hostile message is being checked, another session gets its banner, EHLO and 250 and
/healthz answers; a message over policy.max_cpu_seconds gets a 5xx (never 4xx: it would cost
the same on every retry) and the replaced worker serves the next message.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
import urllib.request

from relay.store import audit
from tests.support import NO_LIMITS, Sink, World, message, open_data, provision, read_reply, send_expect

LIVENESS = 5.0  # a generous bound: a stalled loop answers after tens of seconds, a live one in ms


def hostile_html(world: World, kb: int) -> bytes:
    """HTML of unclosed `<a ` tags: the slowest input for the policy's HTML reader when this was written."""
    tags = b"<a " * (kb * 1024 // 3)
    body = b"\r\n".join(tags[i:i + 76] for i in range(0, len(tags), 76))
    return (f"From: {world.seller_email}\r\nTo: {world.buyer_alias}\r\nSubject: hostile\r\n"
            "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
            "hello\r\n--b1\r\nContent-Type: text/html\r\n\r\n").encode() + body + b"\r\n--b1--\r\n"


def large_text(world: World, mb: int) -> bytes:
    """An ordinary long letter: no finding, just many megabytes to read (~10 ms of checks per MB)."""
    line = "The parcel ships on Monday; the engraving is done and the gift box is wrapped.\r\n"
    return message(world.seller_email, world.buyer_alias, "Long letter", line * (mb * 1024 * 1024 // len(line)))


def timed_session(port: int, world: World) -> tuple[float, float, dict[str, object]]:
    """Seconds to the banner and EHLO, seconds to the answer of a normal message, its refusals."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("client.test")
        greeted = time.monotonic() - started
        refused = client.sendmail(world.seller_email, [world.buyer_alias],
                                  message(world.seller_email, world.buyer_alias, "Meanwhile", "Still there?\r\n"))
    return greeted, time.monotonic() - started, dict(refused)


def timed_health(port: int) -> tuple[float, int]:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=120) as response:
        status = response.status
    return time.monotonic() - started, status


async def test_hostile_message_does_not_stall_other_sessions(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port, policy={"max_cpu_seconds": 3}, rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    # 64 KB: below the old in-loop size limit, and tens of seconds of CPU for the HTML reader as it was.
    reader, writer, answer = await open_data(port, world.seller_email, world.buyer_alias)
    assert answer.startswith(b"354")
    try:
        writer.write(hostile_html(world, 64) + b"\r\n.\r\n")
        await writer.drain()
        # The probes measure from threads: a stalled loop could not even time itself.
        session, health = await asyncio.gather(asyncio.to_thread(timed_session, port, world),
                                               asyncio.to_thread(timed_health, relay.http.address[1]))
        greeted, answered, refused = session
        assert refused == {}
        assert greeted < LIVENESS and answered < LIVENESS
        assert health[0] < LIVENESS and health[1] in (200, 503)
        hostile_reply = await asyncio.wait_for(read_reply(reader), 60)
    finally:
        writer.close()
    # Refused for good, or (once the HTML reader is linear) simply checked; never a 4xx.
    assert not hostile_reply.startswith(b"4"), hostile_reply
    received = await sink.wait_for(1)
    assert received[0].message["Subject"] == "Meanwhile"


async def test_over_cpu_budget_is_refused_permanently_and_the_next_message_passes(start_relay, sink: Sink) -> None:
    # A budget (20 ms) no 8 MB letter fits in (~100 ms), while a short note needs well under 1 ms.
    relay = await start_relay(smarthost=sink.port, policy={"max_cpu_seconds": 0.02, "workers": 1})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias], large_text(world, 8))
    assert code == 554 and text.startswith("5.6.0") and "too complex" in text
    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias],
                                message(world.seller_email, world.buyer_alias, "Short", "Ships Monday.\r\n"))
    assert code == 250
    assert (await sink.wait_for(1))[0].message["Subject"] == "Short"
    conn = world.conn()
    try:
        reasons = [e.reason for e in audit.iter_all(conn) if e.event == "message.rejected"]
    finally:
        conn.close()
    assert reasons == ["content.too_costly"]
