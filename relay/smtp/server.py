"""SMTP listeners on our own event loop: aiosmtpd sessions with the relay's limits and TLS.

Reads: smtp.listen, smtp.submission_listen, smtp.hostname, smtp.max_message_size, smtp.command_timeout,
smtp.data_timeout, smtp.shutdown_timeout, the limits in limits.py (live: Limits.update() on reload),
tls.*, trust.proxy_protocol, smtp.proxy_from.
Replies: 421 4.7.0 over the connection limits, 451 4.7.1 over the message rate, 452 4.3.1 when DATA
in flight is at its memory bound or a spool file cannot be written, 552 5.3.4 over the size limit,
554 5.5.0 for commands pipelined after end-of-data (PIPELINING is not offered; Postfix:
smtpd_forbid_unauth_pipelining), 421 4.3.2 to idle sessions and after the transaction in progress
on shutdown.
DATA is read in large chunks up to <CRLF>.<CRLF> (not line by line as aiosmtpd does), so
long lines are accepted and receiving costs one scan of the bytes. Beyond smtp.spool_threshold
the chunks go to a spool file (spool.py) instead of memory; a spooled message is read back for
its checks only when one of smtp.spool_concurrency slots is free, and its file is removed once
DATA is answered (or the session ends).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

import aiosmtpd.smtp
import structlog
from aiosmtpd.smtp import MISSING, SMTP

from relay.config import Settings, split_hostport
from relay.scan import find_rare, forget_finished
from relay.smtp import replies, shared
from relay.smtp.identity import IdentityMixin, capture_credentials
from relay.smtp.limits import DEFAULT_RESERVATION, MEMORY_FACTOR, Limits
from relay.smtp.shared import SharedListener
from relay.smtp.spool import Spool, SpoolFile
from relay.smtp.tls import TlsContexts

__all__ = ["Limits", "RelaySMTP", "make_factory", "start_listeners"]

log = structlog.get_logger("relay.smtp")


class _ClassInspect:
    """aiosmtpd's SMTP.__init__ asks `inspect` for the session's and the handler's auth_* members
    and for handle_EHLO's signature on every connection (~100 µs, a twentieth of a small message's
    CPU). The answers depend on the classes alone: worked out once per class, then looked up."""

    def __init__(self) -> None:
        self._auth: dict[type, tuple[str, ...]] = {}
        self._signatures: dict[tuple[object, bool], inspect.Signature] = {}

    def getmembers(self, obj: object) -> list[tuple[str, Any]]:
        # The only caller keeps the members named auth_*: those (bound to obj) are all it gets.
        names = self._auth.get(type(obj))
        if names is None:
            names = self._auth[type(obj)] = tuple(n for n, _ in inspect.getmembers(obj) if n.startswith("auth_"))
        return [(name, getattr(obj, name)) for name in names]

    def signature(self, fn: Any) -> inspect.Signature:
        key = (getattr(fn, "__func__", fn), hasattr(fn, "__self__"))  # bound: without `self`
        sig = self._signatures.get(key)
        if sig is None:
            sig = self._signatures[key] = inspect.signature(fn)
        return sig


_HOOK_PREFIXES = ("smtp_", "handle_")
_hook_names: dict[type, tuple[str, ...]] = {}


def _hook_dir(obj: object) -> list[str]:
    """aiosmtpd's SMTP.__init__ calls dir() on the session and the handler on every connection to
    keep the names starting with smtp_ / handle_ (~170 names, ~35 µs). Those are what this returns:
    the class's, listed once, plus any the instance itself holds."""
    names = _hook_names.get(type(obj))
    if names is None:
        names = _hook_names[type(obj)] = tuple(n for n in dir(type(obj)) if n.startswith(_HOOK_PREFIXES))
    own = [n for n in getattr(obj, "__dict__", ()) if n.startswith(_HOOK_PREFIXES) and n not in names]
    return [*names, *own] if own else list(names)


aiosmtpd.smtp.inspect = _ClassInspect()  # type: ignore[assignment]
aiosmtpd.smtp.dir = _hook_dir  # type: ignore[attr-defined]  # its only callers keep smtp_*/handle_* names

END_OF_DATA = b"\r\n.\r\n"
CHUNK = 256 * 1024


def unstuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: remove the leading dot of every line that has one."""
    if data.startswith(b"."):
        data = data[1:]
    if find_rare(data, b"\r\n.", b".", 0, len(data)) < 0:  # usually none: no copy, no slow scan
        return data
    return data.replace(b"\r\n.", b"\r\n")


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# "<local@domain>" of plain ASCII dot-atoms, then nothing or parameters after a space or tab: the
# form (nearly) every client sends. Anything else (quoting, comments, literals, leading space,
# UTF-8) goes to aiosmtpd's own parser.
_PLAIN_PATH = re.compile(rf"<({_DOT_ATOM})@({_DOT_ATOM})>(?:[ \t]+(?=[^ \t(])|$)")


class RelaySMTP(IdentityMixin):
    def __init__(self, handler: object, *, limits: Limits, tls: TlsContexts | None = None,
                 spool: Spool | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.tls = tls
        self.spool = spool  # None: every message stays in memory
        self._counted_ip: str | None = None  # the address this connection is counted under
        self._opened = False
        self._in_data = False
        self._held = 0  # in-flight bytes this session holds
        self._continued: list[bytes] = []  # lines of a multi-line reply not yet sent

    async def push(self, status: str | bytes) -> None:
        """Send one reply line; the lines of a multi-line reply ("250-…" up to "250 …") go out
        together in one write, not one TCP segment each (EHLO: seven syscalls and wake-ups)."""
        line = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") if isinstance(status, str) else status
        if len(line) > 3 and line[3:4] == b"-" and line[:3].isdigit():
            self._continued.append(line + b"\r\n")
            return
        if self._continued:
            line = b"".join(self._continued) + line
            self._continued.clear()
        self._writer.write(line + b"\r\n")
        await self._writer.drain()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's MAIL/RCPT path parser, answered directly for a plain `<local@domain>`.
        Its own declares a typing.Protocol class on every call and parses through the email
        package's header tokenizer: ~47 µs, twice a message, where this takes ~1 µs. Same
        answers (tests/unit/test_smtp_getaddr.py compares them)."""
        m = _PLAIN_PATH.match(arg)
        if m is None:
            return super()._getaddr(arg)
        if self.local_part_limit and len(m.group(1)) > self.local_part_limit:
            return None, None
        return f"{m.group(1)}@{m.group(2)}", arg[m.end():]

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
        else:
            # A front MTA, and a load balancer on a PROXY listener (counted under its client's
            # address once its header is read: accept_proxy), speak for many clients.
            over = self.limits.connect(ip, exempt=self.is_front_peer(ip) or self.is_proxy_peer(ip))
            if over is None:
                self._counted_ip = ip
            else:
                refusal = replies.TOO_MANY_CONNECTIONS if over == "total" else replies.TOO_MANY_FROM_IP
        self.limits.opened()
        self._opened = True
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
        if self._opened:
            self._opened = False
            self.limits.closed()
        if self._counted_ip is not None:
            self.limits.counters.disconnect(self._counted_ip)
            self._counted_ip = None
        self._release()
        super().connection_lost(error)

    # -- PROXY protocol (called by the handler's handle_PROXY) --------------------------------------
    async def accept_proxy(self, proxy_data: Any) -> bool:
        """A PROXY header (v1 or v2), believed only from an smtp.proxy_from peer. The client in it
        becomes the session's client: counted under its address, and the front MTA only if that
        address is one (the load balancer's own address proves nothing). False closes the connection."""
        assert self.session is not None
        tcp = self._tcp_ip()
        if not self.is_proxy_peer(tcp):
            log.info("PROXY header from a peer not in smtp.proxy_from", peer=tcp)
            return False
        try:
            client = str(ipaddress.ip_address(str(proxy_data.src_addr))) if proxy_data.src_addr else ""
        except ValueError:
            client = ""
        self.session.relay_front_mta = bool(client) and self.is_front_peer(client)  # type: ignore[attr-defined]
        if not client:  # PROXY UNKNOWN / v2 LOCAL: the balancer's own connection (a health check)
            return True
        self.session.relay_client_ip = client  # type: ignore[attr-defined]
        if self._counted_ip is not None:
            exempt = self.session.relay_front_mta  # type: ignore[attr-defined]
            if not self.limits.counters.move(self._counted_ip, client,
                                             None if exempt else self.limits.max_connections_per_ip):
                log.info("connection refused", peer=client, via=tcp, reply=str(replies.TOO_MANY_FROM_IP))
                await self.push(str(replies.TOO_MANY_FROM_IP))
                return False
            self._counted_ip = client
        return True

    # -- TLS: a reloaded certificate is used from the next STARTTLS on ------------------------
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls is not None:
            self.tls_context = self.tls.server
        await super().smtp_STARTTLS(arg)

    # -- message rate -----------------------------------------------------------------------------
    async def smtp_MAIL(self, arg: str | None) -> None:
        if not self.limits.accepting:
            self.close_with(replies.SHUTTING_DOWN)
            return
        if self.session is not None and self.session.host_name and self.envelope is not None \
                and self.envelope.mail_from is None and not self.limits.allow_message(self.client_ip()):
            log.info("message rate exceeded", peer=self.client_ip())
            await self.push(str(replies.RATE_LIMITED))
            return
        await super().smtp_MAIL(arg)

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
        if not await self._reserve():
            await self.push(str(replies.INFLIGHT_FULL))
            return
        self._in_data = True
        spooled: SpoolFile | None = None
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self._reset_timeout(self.limits.data_timeout)
            content, refusal, pipelined = await self._read_data()
            if isinstance(content, SpoolFile):
                spooled, content = content, b""
            if refusal is not None or pipelined:
                self._set_post_data_state()
                await self.push(str(replies.PIPELINED_AFTER_DATA if pipelined else refusal))
                if pipelined:
                    log.info("commands pipelined after end-of-data", peer=self.client_ip())
                    assert self.transport is not None
                    self.transport.close()
                return
            if spooled is None:
                status = await self._handle(content)
            else:
                # Only a few spooled messages are in memory at once; the rest wait here, on disk.
                async with self.limits.spool_slots:
                    self._hold_exactly(spooled.size * MEMORY_FACTOR)
                    try:
                        content = await asyncio.to_thread(spooled.read)
                        # the spool file holds exactly these bytes until the reply: the store may
                        # link it as the original instead of writing a copy (store/blobfiles.py)
                        assert self.envelope is not None
                        self.envelope.relay_raw_file = spooled.path  # type: ignore[attr-defined]
                        status = await self._handle(content)
                    finally:
                        # Parsers (pypdf, the email package) leave reference cycles holding copies of
                        # the message's parts; freed only when the cyclic GC gets to them, they pile
                        # up over many large messages. Free them before the next one takes the slot
                        # (cheap: the daemon freezes its start-up objects out of the GC, see app.py).
                        content = b""
                        gc.collect()
                        forget_finished()
            del content
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
        finally:
            if spooled is not None:
                spooled.remove()
            self._release()
            self._in_data = False
            if not self.limits.accepting:  # shutting down: this transaction was the last one
                self.close_with(replies.SHUTTING_DOWN)

    async def _handle(self, content: bytes) -> Any:
        assert self.envelope is not None
        self.envelope.content = content
        self.envelope.original_content = content
        try:
            return await self._call_handler_hook("DATA")
        finally:  # the envelope outlives DATA until the next MAIL: drop the message now
            self.envelope.content = self.envelope.original_content = None
            self.envelope.relay_raw_file = None  # type: ignore[attr-defined]

    def _declared_size(self) -> int | None:
        """SIZE= of this transaction's MAIL (RFC 1870), capped by the size limit."""
        assert self.envelope is not None
        for opt in self.envelope.mail_options:
            key, _, value = str(opt).partition("=")
            if key.upper() == "SIZE" and value.isdigit():
                return min(int(value), self.data_size_limit or int(value))
        return None

    def _will_spool(self) -> bool:
        """SIZE= says the message is beyond the spool threshold: spool it from the first chunk."""
        size = self._declared_size()
        return self.spool is not None and size is not None and size > self.limits.spool_threshold

    async def _reserve(self) -> bool:
        """Take what receiving this DATA holds in memory: the read buffer of a spooled message;
        else the message and its copies while it is checked (it grows if SIZE= was not given)."""
        if self._will_spool():
            want = 2 * CHUNK
        else:
            want = (self._declared_size() or DEFAULT_RESERVATION) * MEMORY_FACTOR
        wait = min(0.9 * (self._timeout_duration or 60.0), 60.0)  # answer before the command timeout
        if await self.limits.reserve(want, wait):
            self._held = want
            return True
        log.info("in-flight DATA at its bound", inflight=self.limits.inflight, peer=self.client_ip())
        return False

    def _grow(self, size: int) -> bool:
        need = size * MEMORY_FACTOR - self._held
        if need <= 0:
            return True
        need = max(need, 1 << 20)  # grow in steps, not per chunk
        if self.limits.try_grow(need):
            self._held += need
            return True
        return False

    def _hold_exactly(self, nbytes: int) -> None:
        self._release()
        self._held = nbytes
        self.limits.hold(nbytes)

    def _release(self) -> None:
        if self._held:
            self.limits.release(self._held)
            self._held = 0

    async def _read_data(self) -> tuple[bytes | SpoolFile, replies.Reply | None, bool]:
        """Read up to the end-of-data line: (unstuffed content in memory or in a spool file, refusal,
        commands pipelined after it)."""
        opened: list[SpoolFile] = []  # the spool file this DATA opened: removed if reading fails
        try:
            return await self._read_chunks(opened)
        except BaseException:
            for spool in opened:
                spool.remove()
            raise

    async def _read_chunks(self, opened: list[SpoolFile]) -> tuple[bytes | SpoolFile, replies.Reply | None, bool]:
        reader = self._reader
        limit = self.data_size_limit or (1 << 62)
        threshold = self.limits.spool_threshold if self.spool is not None else 1 << 62
        if self._will_spool():
            threshold = 0
        # The CRLF that ended the DATA command starts the buffer, so an empty message
        # (".\r\n" right away) is found by the same search; it is context, never content.
        buf = bytearray(b"\r\n")
        skip = 2
        spool: SpoolFile | None = None
        received = 0
        refusal: replies.Reply | None = None
        search_from = 0
        while True:
            # "\r\n" is on every line, "." seldom: hop between dots (0.2 vs 4.8 ms per 10 MB)
            idx = find_rare(buf, END_OF_DATA, b".", search_from, len(buf))
            if idx >= 0:
                break
            if refusal is not None:
                # Refused: keep reading to the terminator but keep nothing, except the few bytes a
                # terminator split across two reads needs. (Trim only after the search: the chunk
                # just read may hold the terminator.)
                del buf[: -(len(END_OF_DATA) - 1)]
            elif (spool is not None or len(buf) > threshold) and len(buf) > 2 * len(END_OF_DATA):
                try:
                    if spool is None:
                        assert self.spool is not None
                        spool = self.spool.create()
                        opened.append(spool)
                        self._hold_exactly(2 * CHUNK)  # from now on only the read buffer is in memory
                    buf = spool.spill(buf, skip)
                    skip = 0
                except OSError as exc:  # disk full, spool directory unwritable: read on, then 452
                    log.error("cannot write the spool file", error=str(exc))
                    refusal = replies.STORAGE_FULL
                    self._release()
                    if spool is not None:
                        spool.remove()
                        spool = None
            search_from = max(0, len(buf) - len(END_OF_DATA) + 1)
            chunk = await reader.read(CHUNK)
            if not chunk:
                raise ConnectionResetError("connection closed during DATA")
            buf += chunk
            received += len(chunk)
            if refusal is None and received > limit:
                refusal = replies.MESSAGE_TOO_BIG
            elif refusal is None and spool is None and len(buf) <= threshold and not self._grow(len(buf)):
                # (past the threshold the buffer goes to the spool file next, not into more memory:
                # a full first read — the chunk plus the CRLF ahead of it — must not ask for room)
                refusal = replies.INFLIGHT_FULL
            if refusal is not None:
                self._release()
                if spool is not None:
                    spool.remove()
                    spool = None
        leftover = len(buf) > idx + len(END_OF_DATA)
        if refusal is not None:
            return b"", refusal, leftover
        if spool is not None:
            try:
                spool.write_unstuffed(buf, idx + 2, skip)
                spool.finish()
            except OSError as exc:
                log.error("cannot write the spool file", error=str(exc))
                spool.remove()
                return b"", replies.STORAGE_FULL, leftover
            return spool, None, leftover
        with memoryview(buf) as view:
            content = bytes(view[2 : idx + 2])  # one copy (a bytearray slice would make two)
        del buf
        return unstuff(content), None, leftover


# aiosmtpd's HELP reads the syntax its decorators put on the command methods we override.
for _name in ("smtp_MAIL", "smtp_DATA", "smtp_STARTTLS"):
    for _attr in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
        if hasattr(getattr(SMTP, _name), _attr):
            setattr(getattr(RelaySMTP, _name), _attr, getattr(getattr(SMTP, _name), _attr))


def make_factory(settings: Settings, handler: object, limits: Limits, *, tls: TlsContexts | None = None,
                 submission: bool = False, require_tls: bool = False, proxy: bool = False,
                 party_authenticator: Any = None) -> Callable[[], RelaySMTP]:
    front = settings.trust.front_mta
    spool = Spool(settings.spool_path)
    proxy_networks = tuple(ipaddress.ip_network(n) for n in settings.smtp.proxy_from) if proxy else ()

    def factory() -> RelaySMTP:
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(tls_context=tls.server, require_starttls=submission or require_tls)
        if submission:
            kwargs.update(auth_required=True, auth_require_tls=True, authenticator=capture_credentials)
        if proxy:
            kwargs.update(proxy_protocol_timeout=settings.smtp.command_timeout)
        smtp = RelaySMTP(
            handler,
            limits=limits,
            tls=tls,
            spool=spool,
            data_size_limit=settings.smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=settings.smtp_hostname,
            ident="relay",
            timeout=settings.smtp.command_timeout,
            **kwargs,
        )
        smtp.front_addresses = frozenset(front.addresses) if front else frozenset()
        smtp.proxy_networks = proxy_networks
        smtp.submission = submission
        smtp.party_authenticator = party_authenticator
        return smtp

    return factory


async def start_listeners(settings: Settings, factory: Callable[[], RelaySMTP], limits: Limits,
                          addresses: list[str] | None = None) -> list[asyncio.Server | SharedListener]:
    """Bind the listen addresses; in a worker process (smtp.workers > 1), serve the sockets the
    supervisor bound for all workers instead (relay/smtp/shared.py)."""
    servers: list[asyncio.Server | SharedListener] = []
    if shared.SHARED is not None:
        limits.on_active = shared.SHARED.changed
    for item in settings.smtp.listen if addresses is None else addresses:
        server: asyncio.Server | SharedListener | None = None
        if shared.SHARED is not None:
            server = shared.SHARED.listen(item, factory, lambda: limits.active)
        if server is None:
            host, port = split_hostport(item)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            server = await asyncio.get_running_loop().create_server(factory, host=host, port=port, family=family,
                                                                    reuse_address=True)
        for sock in server.sockets:
            log.info("listening", address=sock.getsockname()[:2])
        servers.append(server)
    return servers
