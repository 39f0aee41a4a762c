"""Test harness: a real recording SMTP sink, a relay started in the test's loop, provisioning.

The sink is a real aiosmtpd server on 127.0.0.1:0 that records every transaction and can
be told to answer 4xx/5xx, or to disappear and come back on the same port.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.app import Relay
from relay.config import Settings, settings_from_dict
from relay.model import Role
from relay.store import parties, threads
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate

DOMAIN = "relay.example"

#: For tests that send several unsolicited seller messages in one thread (not about the rules).
NO_LIMITS = {"max_unsolicited_per_order": 1_000_000, "max_unsolicited_per_thread_per_day": 1_000_000}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


class _SinkHandler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.sink.rcpt_reply:
            return self.sink.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.replies:
            reply = self.sink.replies.pop(0)
            if not reply.startswith("2"):
                self.sink.refused += 1
                return reply
        self.sink.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                           envelope.original_content or b""))
        self.sink.arrived.set()
        return "250 2.0.0 Ok: queued"


class Sink:
    """A recording smarthost. `replies` is a script of DATA answers used up in order."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[str] = []
        self.rcpt_reply: str | None = None
        self.refused = 0
        self.arrived = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(_SinkHandler(self), enable_SMTPUTF8=True, data_size_limit=64 << 20, hostname="sink.test"),
            host="127.0.0.1", port=self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async def _wait() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.received


def make_settings(state_dir: Path, *, smarthost: int | None = None, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "relay": {"domain": DOMAIN, "state_dir": str(state_dir)},
        "smtp": {"listen": ["127.0.0.1:0"], "workers": 1},  # one process: the tests run its Relay in their loop
        "delivery": {"transport": "maildir", "retry_base": "0.2s", "retry_max": "1s"},
        "dkim": {"selector": "test"},
        "logging": {"format": "json"},
        "http": {"listen": "127.0.0.1:0"},
        # The provisioned domains (seller.example, buyer.example) have no DNS; tests of sender
        # authentication set "enforce" with their own local DNS server.
        "trust": {"authenticate": "off"},
    }
    if smarthost is not None:
        data["delivery"].update({"transport": "smtp", "smarthost": f"127.0.0.1:{smarthost}", "tls": "off"})
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return settings_from_dict(data)


@dataclass
class World:
    """Provisioned parties and a thread, with the addresses tests write to."""

    settings: Settings
    seller_id: int = 0
    buyer_id: int = 0
    thread_id: int = 0
    seller_email: str = "shop@seller.example"
    seller_staff: str = "staff@seller.example"
    buyer_email: str = "alice@buyer.example"
    buyer_alias: str = ""
    seller_alias: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def conn(self) -> sqlite3.Connection:
        conn = connect_sync(self.settings.db_path)
        migrate(conn)
        return conn


def write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    ((ok, value),) = run_in_transaction(conn, [fn])
    if not ok:
        raise value
    return value


def provision(settings: Settings, *, seller_name: str = "Kyoto Crafts", buyer_name: str = "Alice",
              seller_email: str | None = None, seller_staff: str | None = None,
              buyer_email: str | None = None) -> World:
    """A seller, a buyer and their thread; the addresses default to World's (realistic ones for the leak tests)."""
    world = World(settings)
    world.seller_email = seller_email or world.seller_email
    world.seller_staff = seller_staff or world.seller_staff
    world.buyer_email = buyer_email or world.buyer_email
    conn = world.conn()
    try:
        seller = write(conn, lambda c: parties.add(c, Role.SELLER, seller_name,
                                                   [world.seller_email, world.seller_staff]))
        buyer = write(conn, lambda c: parties.add(c, Role.BUYER, buyer_name, [world.buyer_email]))
        thread, _ = write(conn, lambda c: threads.open_thread(c, buyer.id, seller.id, order="ORD-1"))
    finally:
        conn.close()
    world.seller_id, world.buyer_id, world.thread_id = seller.id, buyer.id, thread.id
    world.buyer_alias = f"{thread.buyer_alias}@{DOMAIN}"
    world.seller_alias = f"{thread.seller_alias}@{DOMAIN}"
    return world


def message(sender: str, to: str, subject: str = "Hello", body: str = "Hello there.\r\n",
            headers: dict[str, str] | None = None, message_id: str | None = None) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             "Date: Sun, 22 Nov 2026 10:00:00 +0000", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body.encode("utf-8")


def smtp_send(port: int, mail_from: str, rcpts: list[str], data: bytes) -> dict[str, Any]:
    """Send with the stdlib client (blocking: call through asyncio.to_thread)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        utf8 = not (mail_from.isascii() and all(r.isascii() for r in rcpts))
        return client.sendmail(mail_from, rcpts, data, mail_options=["SMTPUTF8"] if utf8 else [])


async def send(port: int, mail_from: str, rcpts: list[str], data: bytes) -> dict[str, Any]:
    return await asyncio.to_thread(smtp_send, port, mail_from, rcpts, data)


async def send_expect(port: int, mail_from: str, rcpts: list[str], data: bytes) -> tuple[int, str]:
    """Send and return (code, text) of the refusal, or (250, '') when accepted."""
    try:
        await send(port, mail_from, rcpts, data)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return code, text.decode()
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code, exc.smtp_error.decode()
    except smtplib.SMTPSenderRefused as exc:
        return exc.smtp_code, exc.smtp_error.decode()
    return 250, ""



async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """The last line of one reply, however many lines it has."""
    line = await reader.readline()
    while line[3:4] == b"-":
        line = await reader.readline()
    return line


async def open_data(port: int, sender: str, rcpt: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A hand-driven session through EHLO, MAIL, RCPT and DATA; the last answer: 354, or the refusal
    (e.g. 452 while in-flight memory is full)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await read_reply(reader)
        for cmd in (b"EHLO client.test", f"MAIL FROM:<{sender}>".encode(), f"RCPT TO:<{rcpt}>".encode(), b"DATA"):
            writer.write(cmd + b"\r\n")
            answer = await read_reply(reader)
    except BaseException:
        writer.close()
        raise
    return reader, writer, answer


async def send_raw(port: int, sender: str, rcpt: str, data: bytes, *, hang_up_after: int | None = None) -> bytes:
    """A hand-driven session: the data exactly as given (bare LFs too) and the terminator in the
    same write, or hang up after `hang_up_after` bytes of it. Returns the last reply (the refusal,
    if MAIL, RCPT or DATA was refused; b"" after hanging up)."""
    reader, writer, answer = await open_data(port, sender, rcpt)
    try:
        if not answer.startswith(b"354"):
            return answer
        if hang_up_after is not None:
            writer.write(data[:hang_up_after])
            await writer.drain()
            return b""
        writer.write(data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"))
        await writer.drain()
        return await asyncio.wait_for(read_reply(reader), 30)
    finally:
        writer.close()


def dkim_dnsfunc(relay: Relay) -> Callable[..., bytes | None]:
    signer = relay.ctx.signer if relay.ctx else None
    assert signer is not None
    name = f"{signer.selector}._domainkey.{DOMAIN}."
    record = signer.rsa_txt.encode()

    def dnsfunc(qname: Any, timeout: int = 5) -> bytes | None:
        q = qname.decode() if isinstance(qname, bytes) else str(qname)
        return record if q.rstrip(".") + "." == name else None

    return dnsfunc


def dkim_ok(relay: Relay, data: bytes) -> bool:
    return bool(dkim.verify(data, dnsfunc=dkim_dnsfunc(relay)))


def maildir_messages(settings: Settings) -> list[bytes]:
    new = settings.maildir_path / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (for state written just after a reply)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
