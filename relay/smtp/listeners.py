"""Start every listener with its own flavour: MX listeners (smtp.listen; STARTTLS when a
certificate is configured, required on tls.require_tls entries, PROXY protocol on
trust.proxy_protocol entries) and submission listeners (smtp.submission_listen: STARTTLS, then
AUTH PLAIN/LOGIN with a party's password before MAIL).
"""

from __future__ import annotations

import asyncio

from relay.config import ListenError
from relay.pipeline.context import Context
from relay.smtp.identity import PartyAuthenticator
from relay.smtp.limits import Limits
from relay.smtp.server import make_factory, start_listeners
from relay.smtp.shared import SharedListener
from relay.smtp.tls import TlsContexts
from relay.trust import passwords


def party_authenticator(ctx: Context) -> PartyAuthenticator:
    async def check(login: str, password: bytes) -> int | None:
        party_id, stored = await ctx.store.credentials.password_of_address(login.strip().lower())
        ok = await asyncio.to_thread(passwords.verify, password, stored)
        return party_id if ok else None

    return check


async def start_all(ctx: Context, handler: object, limits: Limits, tls: TlsContexts | None) -> list[asyncio.Server | SharedListener]:
    """Every listener, or none: an address that cannot be bound closes those already bound and
    raises ListenError naming its key (the daemon then exits 1 with that one line)."""
    settings = ctx.settings
    servers: list[asyncio.Server | SharedListener] = []
    key = "smtp.listen"
    item = ""
    try:
        for item in settings.smtp.listen:
            factory = make_factory(settings, handler, limits, tls=tls, require_tls=item in settings.tls.require_tls,
                                   proxy=item in settings.trust.proxy_protocol)
            servers += await start_listeners(settings, factory, limits, [item])
        key = "smtp.submission_listen"
        if settings.smtp.submission_listen:
            factory = make_factory(settings, handler, limits, tls=tls, submission=True,
                                   party_authenticator=party_authenticator(ctx))
            for item in settings.smtp.submission_listen:
                servers += await start_listeners(settings, factory, limits, [item])
    except OSError as exc:
        for server in servers:
            server.close()
        raise ListenError(key, item, exc) from None
    return servers
