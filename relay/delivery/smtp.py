"""Smarthost transport: aiosmtplib with a small pool of kept-alive connections.

Reads: delivery.smarthost, delivery.tls ("required": STARTTLS with certificate checks;
"opportunistic": STARTTLS when offered, no checks; "off"), delivery.connect_timeout,
delivery.command_timeout, delivery.concurrency (pool size).
4xx answers, refused connections and timeouts are temporary; 5xx answers are permanent.

The mail transaction is driven here (MAIL, RCPT, then our own DATA writer on aiosmtplib's
protocol) rather than by aiosmtplib's sendmail, which rewrites every line ending and
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
            try:
                response = await self._transaction(client, envelope_from, recipient, data)
            except aiosmtplib.SMTPRecipientRefused as exc:
                await self._reset_or_close(client)
                raise DeliveryError(f"recipient refused: {exc.code}", permanent=exc.code >= 500, code=exc.code) from exc
            except aiosmtplib.SMTPServerDisconnected as exc:
                await _quietly_close(client)
                if reused:
                    continue  # the pooled connection had gone stale: try once on a fresh one
                raise DeliveryError(f"smarthost disconnected: {exc}", permanent=False) from exc
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset_or_close(client)
                raise DeliveryError(f"smarthost answered {exc.code}: {exc.message[:200]}",
                                    permanent=exc.code >= 500, code=exc.code) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _quietly_close(client)
                raise DeliveryError(f"delivery failed: {type(exc).__name__}: {exc}", permanent=False) from exc
            self._release(client)
            return response
        raise DeliveryError("smarthost keeps dropping connections", permanent=False)

    async def _transaction(self, client: aiosmtplib.SMTP, envelope_from: str, recipient: str, data: bytes) -> str:
        """MAIL, RCPT, DATA for one recipient; the DATA answer's text. Raises what aiosmtplib raises."""
        payload, size = wire_data(data)
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not client.is_connected:
                    raise
                await client.helo()
        await client.mail(envelope_from, options=[f"SIZE={size}"] if client.supports_extension("size") else [])
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
            response = await protocol.read_response(timeout=self.command_timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            client.close()  # the dialogue is out of step: never reuse this connection
            raise
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


async def _quietly_close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()
