"""SMTP listeners on our own event loop: aiosmtpd sessions with the relay's limits.

Reads: smtp.listen, smtp.hostname, smtp.max_message_size, smtp.max_connections,
smtp.max_connections_per_ip, smtp.command_timeout, smtp.data_timeout, smtp.shutdown_timeout
(all live: Limits.update() on reload). Replies: 421 4.7.0 over the connection limits, 552 5.3.4
over the size limit, 421 4.3.2 to idle sessions and after the transaction in progress on shutdown.
DATA is read in large chunks up to <CRLF>.<CRLF> (not line by line as aiosmtpd does), so
long lines are accepted and receiving costs one scan of the bytes.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiosmtpd.smtp import MISSING, SMTP

from relay.config import Settings, split_hostport
from relay.smtp import replies

log = structlog.get_logger("relay.smtp")

END_OF_DATA = b"\r\n.\r\n"


@dataclass
class Limits:
    """Shared, live-updatable limits and counters for all sessions of one process."""

    max_connections: int
    max_connections_per_ip: int
    data_timeout: float
    max_message_size: int = 25 << 20
    command_timeout: float = 300.0
    active: int = 0
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)
    accepting: bool = True
    sessions: set[RelaySMTP] = field(default_factory=set)
    #: called with "accepted" or "refused" for every new connection (metrics)
    on_connection: Callable[[str], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        limits = cls(0, 0, 0.0)
        limits.update(settings)
        return limits

    def update(self, settings: Settings) -> None:
        """Take new values from a reloaded configuration; sessions see them at their next check."""
        smtp = settings.smtp
        self.max_connections, self.max_connections_per_ip = smtp.max_connections, smtp.max_connections_per_ip
        self.data_timeout, self.command_timeout = smtp.data_timeout, smtp.command_timeout
        self.max_message_size = smtp.max_message_size

    async def drain(self, timeout: float) -> int:
        """Shutdown: refuse new sessions, close idle ones with 421, give transactions in progress
        `timeout` seconds to end (each session then closes itself with 421), then close the rest.
        Returns the number of sessions closed in the middle of a transaction."""
        self.accepting = False
        for session in list(self.sessions):
            if not session.in_transaction:
                session.close_with(replies.SHUTTING_DOWN)
        deadline = time.monotonic() + timeout
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            for session in list(self.sessions):  # a session that ended its transaction with RSET
                if not session.in_transaction:
                    session.close_with(replies.SHUTTING_DOWN)
        cut = list(self.sessions)
        for session in cut:
            session.close_with(replies.SHUTTING_DOWN)
        if cut:
            log.warning("SMTP transactions cut short by the shutdown (answered 421)", count=len(cut))
            await asyncio.sleep(0)  # let connection_lost run
        return len(cut)


def unstuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: remove the leading dot of every line that has one."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


class RelaySMTP(SMTP):
    def __init__(self, handler: object, *, limits: Limits, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self.limits = limits
        self._counted_ip: str | None = None
        self._in_data = False

    @property
    def in_transaction(self) -> bool:
        """Between MAIL and the reply to DATA: a shutdown waits for it (RFC 5321 §3.8)."""
        return self._in_data or (self.envelope is not None and self.envelope.mail_from is not None)

    def close_with(self, reply: object) -> None:
        """Say `reply` (a 421) and close; aiosmtpd's connection_lost ends the session task."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(f"{reply}\r\n".encode())
            transport.close()

    # -- connection limits ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again for the same session
        super().connection_made(transport)
        if not first:
            return
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        refusal = None
        if not self.limits.accepting:
            refusal = replies.SHUTTING_DOWN
        elif self.limits.active >= self.limits.max_connections:
            refusal = replies.TOO_MANY_CONNECTIONS
        elif self.limits.per_ip[ip] >= self.limits.max_connections_per_ip:
            refusal = replies.TOO_MANY_FROM_IP
        self.limits.active += 1
        self.limits.per_ip[ip] += 1
        self._counted_ip = ip
        if self.limits.on_connection is not None:
            self.limits.on_connection("refused" if refusal is not None else "accepted")
        if refusal is None:
            self.limits.sessions.add(self)
            self._timeout_duration = self.limits.command_timeout
            self.data_size_limit = self.limits.max_message_size
        else:
            log.info("connection refused", peer=ip, reply=str(refusal))
            if self._handler_coroutine is not None:
                self._handler_coroutine.cancel()
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(f"{refusal}\r\n".encode())
            transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        self.limits.sessions.discard(self)
        if self._counted_ip is not None:
            self.limits.active -= 1
            self.limits.per_ip[self._counted_ip] -= 1
            if self.limits.per_ip[self._counted_ip] <= 0:
                del self.limits.per_ip[self._counted_ip]
            self._counted_ip = None
        super().connection_lost(error)

    # -- DATA in chunks -------------------------------------------------------------------
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._reset_timeout(self.limits.data_timeout)
        self._in_data = True
        try:
            content, too_big = await self._read_data()
            if too_big:
                self._set_post_data_state()
                await self.push(str(replies.MESSAGE_TOO_BIG))
                return
            self.envelope.content = content
            self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
        finally:
            self._in_data = False
            if not self.limits.accepting:  # shutting down: this transaction was the last one
                self.close_with(replies.SHUTTING_DOWN)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if not self.limits.accepting:
            self.close_with(replies.SHUTTING_DOWN)
            return
        await super().smtp_MAIL(arg)

    for _attr in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):  # HELP MAIL
        setattr(smtp_MAIL, _attr, getattr(SMTP.smtp_MAIL, _attr, None))
    del _attr

    async def _read_data(self) -> tuple[bytes, bool]:
        """Read up to the end-of-data line; return (unstuffed content, over the size limit)."""
        reader = self._reader
        limit = self.data_size_limit or (1 << 62)
        # The CRLF that ended the DATA command starts the buffer, so an empty message
        # (".\r\n" right away) is found by the same search.
        buf = bytearray(b"\r\n")
        too_big = False
        search_from = 0
        while True:
            idx = buf.find(END_OF_DATA, search_from)
            if idx >= 0:
                break
            search_from = max(0, len(buf) - len(END_OF_DATA) + 1)
            chunk = await reader.read(256 * 1024)
            if not chunk:
                raise ConnectionResetError("connection closed during DATA")
            buf += chunk
            if len(buf) - 2 > limit:
                # Over the limit: keep reading to the terminator, but keep nothing.
                too_big = True
                del buf[: -(len(END_OF_DATA) - 1)]
                search_from = 0
        leftover = buf[idx + len(END_OF_DATA):]
        if leftover:  # pipelined commands after the terminator stay for the command loop
            reader._buffer[:0] = leftover  # type: ignore[attr-defined]
        if too_big or idx > limit:
            return b"", True
        content = bytes(buf[2 : idx + 2])
        del buf
        return unstuff(content), False


def make_factory(settings: Settings, handler: object, limits: Limits) -> Callable[[], RelaySMTP]:
    def factory() -> RelaySMTP:
        return RelaySMTP(
            handler,
            limits=limits,
            data_size_limit=settings.smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=settings.smtp_hostname,
            ident="relay",
            timeout=settings.smtp.command_timeout,
        )

    return factory


async def start_listeners(settings: Settings, factory: Callable[[], RelaySMTP]) -> list[asyncio.Server]:
    """Bind every smtp.listen address; with several worker processes each binds with SO_REUSEPORT
    and the kernel spreads connections over them."""
    servers = []
    reuse_port = settings.smtp.workers > 1
    for item in settings.smtp.listen:
        host, port = split_hostport(item)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = await asyncio.get_running_loop().create_server(factory, host=host, port=port, family=family,
                                                                reuse_address=True, reuse_port=reuse_port or None)
        for sock in server.sockets:
            log.info("listening", address=sock.getsockname()[:2])
        servers.append(server)
    return servers
