"""Graceful stop in-process: idle sessions get 421 at once, a transaction in progress may finish,
one that does not finish within smtp.shutdown_timeout gets 421; logs carry thread and message ids."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import structlog

from relay import logging as relay_logging
from tests.support import maildir_messages, message, provision, send


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), 5)


async def test_stop_drains_sessions(start_relay: Any) -> None:
    relay = await start_relay(smtp={"shutdown_timeout": "1s"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]

    async def session(ehlo: bool = True) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await read_reply(reader)).startswith(b"220")
        if ehlo:
            writer.write(b"HELO client.test\r\n")
            assert (await read_reply(reader)).startswith(b"250")
        return reader, writer

    idle_r, idle_w = await session()
    slow_r, slow_w = await session()  # in a transaction that never ends
    slow_w.write(f"MAIL FROM:<{world.seller_email}>\r\n".encode())
    assert (await read_reply(slow_r)).startswith(b"250")
    busy_r, busy_w = await session()  # in a transaction that ends during the drain
    busy_w.write(f"MAIL FROM:<{world.seller_email}>\r\nRCPT TO:<{world.buyer_alias}>\r\nDATA\r\n".encode())
    for _ in range(3):
        await read_reply(busy_r)

    stopping = asyncio.create_task(relay.stop(grace=5))
    assert (await read_reply(idle_r)).startswith(b"421 4.3.2")  # idle: told at once
    assert await idle_r.read() == b""
    # new connections are refused while draining
    try:
        await asyncio.open_connection("127.0.0.1", port)
        raise AssertionError("listener still open")
    except OSError:
        pass
    # the transaction in progress finishes: 250, then 421 and the session ends
    busy_w.write(message(world.seller_email, world.buyer_alias, body="drained\r\n") + b"\r\n.\r\n")
    assert (await read_reply(busy_r)).startswith(b"250 ")
    assert (await read_reply(busy_r)).startswith(b"421 4.3.2")
    # the one that never finishes is cut at shutdown_timeout with 421
    assert (await read_reply(slow_r)).startswith(b"421 4.3.2")
    await stopping
    for w in (idle_w, slow_w, busy_w):
        w.close()
    assert [m for m in maildir_messages(relay.settings) if b"drained" in m]


async def test_log_lines_carry_thread_and_message_ids(start_relay: Any) -> None:
    stream = io.BytesIO()
    relay_logging.configure("info", "json", stream=stream)
    try:
        relay = await start_relay()
        world = provision(relay.settings)
        port = relay.addresses[0][1]
        await send(port, world.seller_email, [world.buyer_alias], message(world.seller_email, world.buyer_alias))
        for _ in range(100):
            lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.startswith(b"{")]
            if any(e["event"] == "delivered" for e in lines):
                break
            await asyncio.sleep(0.05)
        accepted = next(e for e in lines if e["event"] == "message accepted")
        delivered = next(e for e in lines if e["event"] == "delivered")
        assert accepted["thread"] == world.thread_id and accepted["message"] == 1 and accepted["peer"] == "127.0.0.1"
        assert delivered["thread"] == world.thread_id and delivered["message"] == 1 and delivered["queue"] == 1
        assert all("timestamp" in e and "level" in e for e in lines)
    finally:
        structlog.contextvars.clear_contextvars()
        relay_logging.configure("info", "json")
