"""SMTP limits and injection over real sockets: floods, rate, slow clients, big headers, deep MIME,
long lines, in-flight memory, pipelining after end-of-data, CR/LF in addresses, the smuggling probe."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

from tests.support import NO_LIMITS, World, eventually, maildir_messages, message, provision, send_expect

PROBE = Path("/work/shared/tools/smtp_smuggling_probe.py")


class Session:
    """A raw SMTP client: send lines, read whole (multi-line) replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Session:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def reply(self, timeout: float = 5) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        while line[3:4] == b"-":
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line

    async def cmd(self, text: str | bytes, timeout: float = 5) -> bytes:
        self.writer.write((text.encode() if isinstance(text, str) else text) + b"\r\n")
        return await self.reply(timeout)

    async def start(self, world: World, size: int | None = None) -> None:
        assert (await self.reply()).startswith(b"220")
        assert (await self.cmd("EHLO client.test")).startswith(b"250")
        opt = f" SIZE={size}" if size else ""
        assert (await self.cmd(f"MAIL FROM:<{world.seller_email}>{opt}")).startswith(b"250")
        assert (await self.cmd(f"RCPT TO:<{world.buyer_alias}>")).startswith(b"250")

    def close(self) -> None:
        self.writer.close()


def stored(world: World) -> int:
    conn = sqlite3.connect(world.settings.db_path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages WHERE state != 'rejected'").fetchone()[0])
    finally:
        conn.close()


async def test_connection_flood_gets_421(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS, smtp={"listen": ["127.0.0.1:0"], "max_connections_per_ip": 3, "max_connections": 5})
    port = relay.addresses[0][1]
    held = [await Session.open(port) for _ in range(3)]
    for s in held:
        assert (await s.reply()).startswith(b"220")
    extra = await Session.open(port)
    assert (await extra.reply()).startswith(b"421 4.7.0")
    held[0].close()
    await eventually(lambda: relay.limits.per_ip.get("127.0.0.1", 0) == 3)  # the refused one is gone too
    await asyncio.sleep(0.05)
    again = await Session.open(port)
    assert (await again.reply()).startswith(b"220")
    for s in [*held[1:], extra, again]:
        s.close()


async def test_message_rate_per_ip(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS, smtp={"listen": ["127.0.0.1:0"], "max_messages_per_ip_per_minute": 2})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    data = message(world.seller_email, world.buyer_alias)
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], data))[0] == 250
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], data))[0] == 250
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias], data)
    assert (code, text[:5]) == (451, "4.7.1")


async def test_trickling_client_is_cut_off_and_idle_client_closed(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS, smtp={"listen": ["127.0.0.1:0"], "data_timeout": "1s", "command_timeout": "1s"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    s = await Session.open(port)
    await s.start(world)
    assert (await s.cmd("DATA")).startswith(b"354")
    closed = False
    for _ in range(100):  # one byte every 50 ms keeps resetting nothing: cut after data_timeout
        try:
            s.writer.write(b"x")
            await s.writer.drain()
        except (ConnectionError, OSError):
            closed = True
            break
        if s.reader.at_eof():
            closed = True
            break
        await asyncio.sleep(0.05)
    if not closed:
        closed = await asyncio.wait_for(s.reader.read(), 1) == b""
    assert closed
    idle = await Session.open(port)
    assert (await idle.reply()).startswith(b"220")
    assert await asyncio.wait_for(idle.reader.read(), 5) == b""  # closed after command_timeout
    s.close()
    idle.close()
    assert stored(world) == 0


async def test_oversized_headers_and_too_many_fields(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS, smtp={"listen": ["127.0.0.1:0"], "max_header_bytes": "4k", "max_header_fields": 50})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    big = message(world.seller_email, world.buyer_alias, headers={"X-Big": "a" * 5000})
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias], big)
    assert (code, text[:5]) == (552, "5.3.4")
    many = message(world.seller_email, world.buyer_alias, headers={f"X-F{i}": "v" for i in range(60)})
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], many))[0] == 552
    ok = message(world.seller_email, world.buyer_alias, headers={f"X-F{i}": "v" for i in range(30)})
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], ok))[0] == 250


def nested(depth: int, leaves: int = 1) -> str:
    body = "plain text\r\n"
    for level in range(depth):
        b = f"b{level}"
        inner = f"Content-Type: {'multipart/mixed; boundary=' + chr(34) + 'b' + str(level - 1) + chr(34) if level else 'text/plain'}\r\n\r\n{body}"
        parts = "".join(f"--{b}\r\n{inner}\r\n" for _ in range(leaves if level == 0 else 1))
        body = f"{parts}--{b}--\r\n"
    return body


async def test_deep_mime_nesting_and_part_count(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS, smtp={"listen": ["127.0.0.1:0"], "max_mime_depth": 5, "max_mime_parts": 20})
    world = provision(relay.settings)
    port = relay.addresses[0][1]

    def msg(depth: int, leaves: int = 1) -> bytes:
        head = message(world.seller_email, world.buyer_alias).split(b"\r\n\r\n")[0]
        head = head.replace(b"Content-Type: text/plain; charset=utf-8",
                            f'Content-Type: multipart/mixed; boundary="b{depth - 1}"'.encode())
        return head + b"\r\n\r\n" + nested(depth, leaves).encode()

    assert (await send_expect(port, world.seller_email, [world.buyer_alias], msg(3)))[0] == 250
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias], msg(8))
    assert (code, text[:5]) == (554, "5.6.0")
    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias], msg(1, leaves=30))
    assert code == 554


async def test_line_length(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    longish = message(world.seller_email, world.buyer_alias, body="y" * 2000 + "\r\n")
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], longish))[0] == 250
    too_long = message(world.seller_email, world.buyer_alias, body="y" * 9000 + "\r\n")
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias], too_long)
    assert (code, text[:5]) == (552, "5.6.0")


async def test_inflight_bound_makes_new_data_wait_then_452(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS, smtp={"listen": ["127.0.0.1:0"], "max_inflight_bytes": "1MiB", "command_timeout": "1s",
                                    "data_timeout": "10s"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    data = message(world.seller_email, world.buyer_alias, body=("z" * 70 + "\r\n") * 1400)
    a, b = await Session.open(port), await Session.open(port)
    await a.start(world, size=200_000)
    await b.start(world, size=200_000)
    assert (await a.cmd("DATA")).startswith(b"354")  # holds 4 x 200 kB of the 1 MiB budget
    assert (await b.cmd("DATA", timeout=10)).startswith(b"452 4.3.1")  # waited ~1 s, no room
    a.writer.write(data + b"\r\n.\r\n")
    answer = asyncio.ensure_future(a.reply(10))
    while not answer.done():  # b stays within its 1 s command timeout however long a's checks take
        assert (await b.cmd("NOOP")).startswith(b"250")
        await asyncio.wait([answer], timeout=0.3)
    assert answer.result().startswith(b"250")
    assert relay.limits.inflight == 0
    assert (await b.cmd("DATA")).startswith(b"354")  # room again
    b.writer.write(data + b"\r\n.\r\n")
    assert (await b.reply(10)).startswith(b"250")
    a.close()
    b.close()


async def test_commands_pipelined_after_end_of_data_are_refused(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS)
    world = provision(relay.settings)
    s = await Session.open(relay.addresses[0][1])
    await s.start(world)
    assert (await s.cmd("DATA")).startswith(b"354")
    smuggled = (f"MAIL FROM:<{world.seller_email}>\r\nRCPT TO:<{world.buyer_alias}>\r\nDATA\r\n"
                f"Subject: smuggled\r\n\r\nx\r\n.\r\n").encode()
    s.writer.write(message(world.seller_email, world.buyer_alias) + b"\r\n.\r\n" + smuggled)
    assert (await s.reply()).startswith(b"554 5.5.0")
    assert await asyncio.wait_for(s.reader.read(), 5) == b""  # and the session is closed
    s.close()
    assert stored(world) == 0


async def test_cr_lf_in_addresses_and_display_names(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS)
    world = provision(relay.settings)
    s = await Session.open(relay.addresses[0][1])
    assert (await s.reply()).startswith(b"220")
    assert (await s.cmd("EHLO client.test")).startswith(b"250")
    assert (await s.cmd(b"MAIL FROM:<shop\r@seller.example>")).startswith(b"553")
    assert (await s.cmd(b"MAIL FROM:<shop@seller.example\x00>")).startswith(b"553")
    assert (await s.cmd(f"MAIL FROM:<{world.seller_email}>")).startswith(b"250")
    assert (await s.cmd(f"RCPT TO:<{world.buyer_alias}\rBcc@x.test>".encode())).startswith(b"553")
    s.close()
    # an encoded CR/LF in the display name cannot turn into a header line of ours
    evil = "=?utf-8?q?Evil=0D=0AX-Injected=3A_yes?= <shop@seller.example>"
    data = message(evil, world.buyer_alias)
    assert (await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias], data))[0] == 250
    (out,) = await eventually(lambda: maildir_messages(relay.settings))
    head = out.split(b"\r\n\r\n")[0]
    assert b"\r\nX-Injected" not in head and b"Evil" not in head
    assert b"Kyoto Crafts" in head


async def test_smuggling_probe_finds_nothing(start_relay: Any) -> None:
    relay = await start_relay(rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    names = ["lf.lf", "lf.cr", "cr.lf", "cr.cr", "lf.crlf", "cr.crlf", "crlf.lf", "crlf.cr", "nul-before",
             "nul-after", "crlf.crcrlf", "crcrlf.crcrlf"]

    async def probe(name: str) -> str:  # one process per sequence, in parallel (each waits ~11 s)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(PROBE), "127.0.0.1", str(port), "--from", world.seller_email,
            "--to", world.buyer_alias, "--only", name, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return out.decode()

    lines = [line for out in await asyncio.gather(*(probe(n) for n in names)) for line in out.splitlines()]
    assert len(lines) == 12, lines
    assert not [line for line in lines if "SMUGGLED" in line]
    assert all(" REJECTED " in line for line in lines), lines
    assert stored(world) == 0

