"""A smarthost that goes away after our final dot, before its reply: the outcome is unknown.

The relay must not resend at once (that is only for a connection that dropped before MAIL was
accepted: a pooled connection gone stale); it records the attempt as ambiguous (audit, message
state, relay_delivery_ambiguous_total) and retries later with backoff, as Postfix does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relay.store.db import connect_sync
from tests.support import eventually, message, provision, send


class DroppingSmarthost:
    """A scripted SMTP server on 127.0.0.1: keeps connections open between messages (so the relay
    reuses them) and hangs up, without a reply, after the final dot of every message whose
    subject is in `drop_once` (the first time it sees it)."""

    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.drop_once: set[str] = set()
        self.arrivals: list[tuple[float, str, bool]] = []  # (when, subject, answered 250)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 strict.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    ext = b"250-PIPELINING\r\n" if self.pipelining else b""
                    writer.write(b"250-strict.test\r\n" + ext + b"250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    subject = next((h[9:].strip().decode() for h in data.split(b"\r\n") if h.startswith(b"Subject: ")),
                                   "")
                    if subject in self.drop_once:
                        self.drop_once.discard(subject)
                        self.arrivals.append((time.monotonic(), subject, False))
                        writer.close()  # gone after the final dot: the relay cannot know
                        return
                    self.arrivals.append((time.monotonic(), subject, True))
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:  # MAIL, RCPT, RSET, NOOP
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("pipelining", [True, False])
async def test_a_drop_after_the_final_dot_is_ambiguous_and_retried_later(start_relay: Any, pipelining: bool) -> None:
    host = DroppingSmarthost(pipelining)
    await host.start()
    try:
        relay = await start_relay(smarthost=host.port, delivery={"retry_base": "2s", "retry_max": "2s"})
        world = provision(relay.settings)
        port = relay.addresses[0][1]
        await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "first"))
        await eventually(lambda: len(host.arrivals) == 1)  # delivered; its connection stays in the pool
        host.drop_once.add("second")
        await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "second"))
        await eventually(lambda: len(host.arrivals) == 2)
        dropped_at = host.arrivals[1][0]
        await asyncio.sleep(1.0)
        # not sent again at once on a fresh connection: it may well have been taken
        assert [(s, ok) for _, s, ok in host.arrivals] == [("first", True), ("second", False)]
        conn = connect_sync(relay.settings.db_path)
        try:
            events = conn.execute("SELECT event, reason FROM audit_events WHERE event LIKE 'delivery.%' ORDER BY seq"
                                  ).fetchall()
            assert ("delivery.ambiguous", "delivery.outcome_unknown") in events
            assert conn.execute("SELECT state, reason FROM messages WHERE subject = 'second'").fetchone() == \
                ("queued", "delivery.outcome_unknown")
        finally:
            conn.close()
        assert b"relay_delivery_ambiguous_total 1.0" in relay.metrics.render()
        # … and retried after its backoff
        await eventually(lambda: len(host.arrivals) == 3, timeout=10)
        when, subject, ok = host.arrivals[2]
        assert (subject, ok) == ("second", True) and when - dropped_at >= 1.5
    finally:
        await host.stop()
