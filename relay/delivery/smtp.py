"""Smarthost transport: aiosmtplib with a small pool of kept-alive connections.

Reads: delivery.smarthost, delivery.tls ("required": STARTTLS with certificate checks;
"opportunistic": STARTTLS when offered, no checks; "off"), delivery.connect_timeout,
delivery.command_timeout, delivery.concurrency (pool size).
4xx answers, refused connections and timeouts are temporary; 5xx answers are permanent.
A dropped connection is tried again at once on a fresh one only when the smarthost had not yet
accepted MAIL (a pooled connection gone stale); dropped after our final dot and before the reply,
the outcome is unknown: an ambiguous DeliveryError, retried later with backoff, as Postfix does.

The mail transaction is driven here (MAIL, RCPT, then our own DATA writer on aiosmtplib's
protocol; MAIL, RCPT and DATA in one write when the smarthost offers PIPELINING, RFC 2920,
their replies read by _Replies) rather than by aiosmtplib's sendmail, which rewrites every line ending and
dot-stuffs with regexes, twice over for SIZE (~200 ms of CPU for a 10 MB message). The message
arrives CRLF-only (the signer writes wire form), so wire_data() only checks that (relay.scan)
and dot-stuffs with one bytes.replace when some line starts with "." (~9 ms).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

import aiosmtplib
from aiosmtplib.email import quote_address

from relay.config import Settings, split_hostport
from relay.delivery.transport import DeliveryError
from relay.scan import find_rare, is_crlf

IDLE_SECONDS = 20.0  # a pooled connection idle longer than this is not reused

_ANY_EOL = re.compile(rb"\r\n|\n|\r(?!\n)")


def wire_data(message: bytes) -> tuple[bytes, int]:
    """(the DATA payload before the final ".", the RFC 1870 SIZE of the message).

    Line ends become CRLF and the message ends with one (what aiosmtplib would send); a line
    starting with "." gets another in front (RFC 5321 section 4.5.2).
    """
    if not is_crlf(message):  # checking, not substituting: no copy when clean
        message = _ANY_EOL.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    size = len(message)
    # A line starting with "." is rare and base64 has no ".": look (memchr-fast) before copying.
    stuffed = message
    if find_rare(message, b"\r\n.", b".", 0, len(message)) >= 0:
        stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed, size


class SmtpTransport:
    def __init__(self, settings: Settings, tls_context: ssl.SSLContext | None = None) -> None:
        assert settings.delivery.smarthost
        self.host, self.port = split_hostport(settings.delivery.smarthost, 25)
        self.mode = settings.delivery.tls
        self.connect_timeout = settings.delivery.connect_timeout
        self.command_timeout = settings.delivery.command_timeout
        self.hostname = settings.smtp_hostname
        self.tls_context = tls_context
        self.max_idle = settings.delivery.concurrency
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._closing: set[asyncio.Future[None]] = set()

    def _client(self) -> aiosmtplib.SMTP:
        start_tls: bool | None = {"required": True, "opportunistic": None, "off": False}[self.mode]
        return aiosmtplib.SMTP(
            hostname=self.host, port=self.port, local_hostname=self.hostname, timeout=self.command_timeout,
            start_tls=start_tls, validate_certs=self.mode == "required", tls_context=self.tls_context,
        )

    async def _acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < IDLE_SECONDS:
                return client, True
            await _quietly_close(client)
        client = self._client()
        try:
            await asyncio.wait_for(client.connect(), self.connect_timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # with delivery.tls = "required", a missing STARTTLS fails here too (aiosmtplib refuses)
            raise DeliveryError(f"connect to smarthost failed: {type(exc).__name__}: {exc}", permanent=False) from exc
        return client, False

    def _release(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected and len(self._idle) < self.max_idle:
            self._idle.append((client, time.monotonic()))
        else:
            task = asyncio.ensure_future(_quietly_close(client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> str:
        for _ in range(2):
            client, reused = await self._acquire()
            progress = _Progress()
            try:
                response = await self._transaction(client, envelope_from, recipient, data, progress)
            except aiosmtplib.SMTPRecipientRefused as exc:
                await self._reset_or_close(client)
                raise DeliveryError(f"recipient refused: {exc.code}", permanent=exc.code >= 500, code=exc.code) from exc
            except aiosmtplib.SMTPServerDisconnected as exc:
                await _quietly_close(client)
                if progress.dot_sent:
                    raise DeliveryError(f"smarthost disconnected after the message, before its reply: {exc}",
                                        permanent=False, ambiguous=True) from exc
                if reused and not progress.mail_accepted:
                    continue  # the pooled connection had gone stale: try once on a fresh one
                raise DeliveryError(f"smarthost disconnected: {exc}", permanent=False) from exc
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset_or_close(client)
                raise DeliveryError(f"smarthost answered {exc.code}: {exc.message[:200]}",
                                    permanent=exc.code >= 500, code=exc.code) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _quietly_close(client)
                raise DeliveryError(f"delivery failed: {type(exc).__name__}: {exc}", permanent=False,
                                    ambiguous=progress.dot_sent) from exc
            self._release(client)
            return response
        raise DeliveryError("smarthost keeps dropping connections", permanent=False)

    async def _transaction(self, client: aiosmtplib.SMTP, envelope_from: str, recipient: str, data: bytes,
                           progress: _Progress) -> str:
        """MAIL, RCPT, DATA for one recipient; the DATA answer's text. Raises what aiosmtplib raises;
        `progress` says how far it got."""
        payload, size = wire_data(data)
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not client.is_connected:
                    raise
                await client.helo()
        if client.supports_extension("pipelining") and _plain(envelope_from) and _plain(recipient):
            return await self._pipelined(client, envelope_from, recipient, payload, size, progress)
        await client.mail(envelope_from, options=[f"SIZE={size}"] if client.supports_extension("size") else [])
        progress.mail_accepted = True
        await client.rcpt(recipient)
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("connection lost")
        try:
            protocol.write(payload)  # the transport sends what it can now and buffers the rest
            protocol.write(b".\r\n")
            progress.dot_sent = True
            response = await protocol.read_response(timeout=self.command_timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            client.close()  # the dialogue is out of step: never reuse this connection
            raise
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response.message

    async def _pipelined(self, client: aiosmtplib.SMTP, envelope_from: str, recipient: str, payload: bytes,
                         size: int, progress: _Progress) -> str:
        """MAIL, RCPT and DATA in one write, their three replies, then the message (RFC 2920): one
        round trip fewer than one command at a time. The connection is lent to a _Replies reader
        for this and given back to aiosmtplib's protocol after; anything out of step closes it."""
        protocol = client.protocol
        transport = protocol.transport if protocol is not None else None
        if protocol is None or not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection lost")
        sized = f" SIZE={size}" if client.supports_extension("size") else ""
        commands = f"MAIL FROM:{quote_address(envelope_from)}{sized}\r\nRCPT TO:{quote_address(recipient)}\r\nDATA\r\n"
        reader = _Replies(protocol, self.command_timeout)
        transport.set_protocol(reader)
        try:
            transport.write(commands.encode("ascii"))
            mail = await reader.reply()
            progress.mail_accepted = mail.code == 250
            rcpt, start = await reader.reply(), await reader.reply()
            refused: aiosmtplib.SMTPResponseException | None = None
            if mail.code != 250:
                refused = aiosmtplib.SMTPSenderRefused(mail.code, mail.message, envelope_from)
            elif rcpt.code not in (250, 251):
                refused = aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
            elif start.code != 354:
                refused = aiosmtplib.SMTPDataError(start.code, start.message)
            if refused is not None:
                if start.code == 354:  # it waits for a message it should have refused: never send one
                    client.close()
                raise refused
            await reader.send(transport, payload)
            progress.dot_sent = True
            response = await reader.reply()
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            client.close()  # the dialogue is out of step: never reuse this connection
            raise
        finally:
            if not transport.is_closing():
                transport.set_protocol(protocol)
        if reader.pending():
            client.close()  # more than the replies we asked for: out of step
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response.message

    async def _reset_or_close(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await _quietly_close(client)
            return
        self._release(client)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quietly_close(client) for client, _ in idle))


class _Progress:
    """How far one mail transaction got: what a dropped connection means depends on it."""

    __slots__ = ("dot_sent", "mail_accepted")

    def __init__(self) -> None:
        self.mail_accepted = False
        self.dot_sent = False  # the whole message and its final "." are written


def _plain(address: str) -> bool:
    """An address to write into a pipelined command as it is (ASCII, no line break); any other
    takes aiosmtplib's own path, which encodes or refuses it."""
    return address.isascii() and "\r" not in address and "\n" not in address


class _Replies(asyncio.Protocol):
    """The replies to pipelined commands, read in order off the connection.

    aiosmtplib's protocol holds one reply at a time and drops what arrives while no command of
    its own waits, so pipelined replies would be lost there. Flow control and the end of the
    connection are passed on to it, so that it knows when it gets the connection back."""

    MAX_REPLY = 64 * 1024
    PIECE = 256 * 1024
    #: Up to this size the message and its final "." go out in one write: one segment and one
    #: wake-up of the smarthost instead of two, for one copy of a small message.
    JOIN = 64 * 1024

    def __init__(self, owner: asyncio.BaseProtocol, timeout: float) -> None:
        self.owner = owner
        self.timeout = timeout
        self.buffer = bytearray()
        self.closed = False
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.connection_lost(exc)
        self._wake()

    def pause_writing(self) -> None:
        self.paused = True
        self.owner.pause_writing()

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()
        self.owner.resume_writing()

    async def send(self, transport: asyncio.WriteTransport, payload: bytes) -> None:
        """Write the message and the "." that ends it; a large one in pieces, each once the transport
        has sent the last: given 10 MB at once it keeps what the socket does not take right away as a
        copy in its own buffer."""
        if len(payload) <= self.JOIN and not self.paused and not self.closed:
            transport.write(payload + b".\r\n")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        with memoryview(payload) as view:
            for start in range(0, len(view), self.PIECE):
                while self.paused and not self.closed:
                    self._waiter = loop.create_future()
                    try:
                        await asyncio.wait_for(self._waiter, max(0.0, deadline - loop.time()))
                    except TimeoutError:
                        raise aiosmtplib.SMTPTimeoutError("timed out sending the message to the smarthost") from None
                if self.closed:
                    raise aiosmtplib.SMTPServerDisconnected("the smarthost closed the connection")
                transport.write(view[start : start + self.PIECE])
        transport.write(b".\r\n")

    def pending(self) -> bool:
        return bool(self.buffer)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def reply(self) -> aiosmtplib.SMTPResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while (found := self._take()) is None:
            if self.closed:
                raise aiosmtplib.SMTPServerDisconnected("the smarthost closed the connection")
            if len(self.buffer) > self.MAX_REPLY:
                raise aiosmtplib.SMTPServerDisconnected("the smarthost's reply is too long")
            self._waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for the smarthost's reply") from None
        return found

    def _take(self) -> aiosmtplib.SMTPResponse | None:
        """One whole reply ("250-…" lines up to "250 …") off the buffer, or None while incomplete."""
        pos, lines = 0, []
        while True:
            end = self.buffer.find(b"\n", pos)
            if end < 0:
                return None
            line = bytes(self.buffer[pos:end]).rstrip(b"\r")
            pos = end + 1
            lines.append(line)
            if line[3:4] != b"-":
                break
        del self.buffer[:pos]
        code = int(line[:3]) if line[:3].isdigit() and len(line[:3]) == 3 else -1
        text = "\n".join(x[4:].decode("utf-8", "replace") for x in lines)
        return aiosmtplib.SMTPResponse(code, text)


async def _quietly_close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()
