"""Who the SMTP client is: a trusted front MTA (and the client it speaks for, via XCLIENT), the
client a load balancer names in a PROXY header (server.py: accept_proxy), or a party that logged in
with SMTP AUTH on the submission listener.

Reads: trust.front_mta.addresses, smtp.proxy_from. Replies: 220 after XCLIENT (a fresh session, as Postfix does),
550 5.7.0 XCLIENT from anyone else, 503 5.5.1 XCLIENT inside a transaction, 535 5.7.8 bad login.
Session attributes set: relay_front_mta, relay_client_ip, relay_party_id (read by handler.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = structlog.get_logger("relay.smtp")

#: party id for (login, password), or None; runs the slow hash off the loop
PartyAuthenticator = Callable[[str, bytes], Awaitable[int | None]]

_XTEXT = re.compile(r"\+([0-9A-F]{2})")


def xtext_decode(value: str) -> str:
    return _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), value)


class IdentityMixin(SMTP):
    front_addresses: frozenset[str] = frozenset()
    submission: bool = False
    party_authenticator: PartyAuthenticator | None = None

    #: on a trust.proxy_protocol listener: smtp.proxy_from, the peers whose PROXY header is believed
    proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def is_front_peer(self, ip: str) -> bool:
        return ip in self.front_addresses

    def is_proxy_peer(self, ip: str) -> bool:
        if not self.proxy_networks:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.proxy_networks)

    def _tcp_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else ""

    def client_ip(self) -> str:
        told = getattr(self.session, "relay_client_ip", None)
        return str(told) if told else self._tcp_ip()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.session is not None
        self.session.relay_front_mta = self.is_front_peer(self._tcp_ip())  # type: ignore[attr-defined]

    # -- XCLIENT (Postfix XCLIENT_README) -------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        if not getattr(self.session, "relay_front_mta", False) or not hostname:
            await super().smtp_EHLO(hostname)
            return
        # advertise XCLIENT to the front MTA only: capture the reply lines and add ours
        lines: list[str] = []
        push = self.push

        async def capture(status: str) -> None:
            lines.append(status)

        self.push = capture  # type: ignore[method-assign,assignment]
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self.push = push  # type: ignore[method-assign]
        if lines and lines[-1].startswith("250 "):
            lines.insert(len(lines) - 1, "250-XCLIENT ADDR NAME HELO PROTO LOGIN")
        for line in lines:
            await push(line)

    async def smtp_XCLIENT(self, arg: str | None) -> None:
        if not getattr(self.session, "relay_front_mta", False):
            await self.push("550 5.7.0 Error: insufficient authorization")
            return
        if self.envelope is not None and self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: MAIL transaction in progress")
            return
        attrs: dict[str, str] = {}
        for item in (arg or "").split():
            key, sep, value = item.partition("=")
            if not sep:
                await self.push("501 5.5.4 Syntax: XCLIENT attribute=value...")
                return
            attrs[key.upper()] = xtext_decode(value)
        addr = attrs.get("ADDR", "")
        if addr and addr.upper() not in ("[UNAVAILABLE]", "[TEMPUNAVAIL]"):
            if addr.upper().startswith("IPV6:"):
                addr = addr[5:]
            try:
                addr = str(ipaddress.ip_address(addr))
            except ValueError:
                await self.push("501 5.5.4 Bad XCLIENT ADDR")
                return
        # a fresh session for the client the front MTA speaks for (it must EHLO again)
        assert self.session is not None
        self._set_rset_state()
        self.session.host_name = None
        self.session.extended_smtp = False
        if addr:
            self.session.relay_client_ip = addr  # type: ignore[attr-defined]
        log.info("XCLIENT", front=self._tcp_ip(), client=addr or None)
        await self.push(f"220 {self.hostname} {self.__ident__}")

    # -- SMTP AUTH: aiosmtpd's authenticator is synchronous; the password check is not -----------
    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, captured: AuthResult) -> AuthResult:
        """aiosmtpd's authenticator only captured the credentials; check them here."""
        data = captured.auth_data
        if not captured.success or not isinstance(data, LoginPassword) or self.party_authenticator is None:
            return captured
        login = data.login.decode("utf-8", "replace")
        party = await self.party_authenticator(login, data.password)
        if party is None:
            log.info("SMTP AUTH failed", peer=self.client_ip())
            return AuthResult(success=False, handled=False)
        assert self.session is not None
        self.session.relay_party_id = party  # type: ignore[attr-defined]
        return AuthResult(success=True, auth_data=login)


def capture_credentials(server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    """The `authenticator` given to aiosmtpd: hands the credentials to IdentityMixin._verify."""
    return AuthResult(success=isinstance(data, LoginPassword), auth_data=data)
