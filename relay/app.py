"""The daemon: store, pipeline, SMTP listeners and the delivery worker on one event loop.

Like uvicorn's Server: the CLI builds Settings and calls Relay(settings).run().
SIGTERM/SIGINT: stop accepting, finish sessions (bounded), let deliveries finish or
return to the queue, exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from relay.config import Settings
from relay.delivery.maildir import MaildirTransport
from relay.delivery.smtp import SmtpTransport
from relay.delivery.transport import Transport
from relay.delivery.worker import DeliveryWorker
from relay.pipeline.context import Context
from relay.pipeline.runner import Pipeline, Stage
from relay.pipeline.stages.authenticate import Authenticate
from relay.pipeline.stages.authorize import Authorize
from relay.pipeline.stages.content import Content
from relay.pipeline.stages.resolve import Resolve
from relay.pipeline.stages.rewrite import Rewrite
from relay.pipeline.stages.rules import Rules
from relay.pipeline.stages.sign import Sign
from relay.smtp.handler import RelayHandler
from relay.smtp.listeners import start_all
from relay.smtp.server import Limits
from relay.smtp.tls import TlsContexts, client_context
from relay.store.db import Database, connect_sync
from relay.store.migrate import migrate

log = structlog.get_logger("relay")


def build_stages(ctx: Context) -> list[Stage]:
    """The fixed stage order (a security property: authorize before rewrite, sign last)."""
    return [Resolve(ctx), Authorize(ctx), Authenticate(ctx), Rules(ctx), Content(ctx), Rewrite(ctx), Sign(ctx)]


def migrate_store(path: Path) -> list[str]:
    conn = connect_sync(path)
    try:
        return [f"{m.version:04d}_{m.name}" for m in migrate(conn)]
    finally:
        conn.close()


def load_signer(settings: Settings, *, create: bool = False) -> Any:
    """The DKIM signer for relay.domain; with create=True a missing RSA key is generated."""
    from relay import dkim

    key_path = settings.dkim_key_path
    if not key_path.exists():
        if not create:
            raise FileNotFoundError(f"DKIM key {key_path} does not exist; run `relay dkim keygen`")
        txt = dkim.generate_rsa_key(key_path)
        log.warning("generated a DKIM key; publish this DNS record",
                    record=dkim.txt_record(settings.dkim.selector, settings.relay.domain, txt))
    ed_key = settings.dkim.ed25519_key.read_bytes() if settings.dkim.ed25519_key else None
    return dkim.Signer(domain=settings.relay.domain, selector=settings.dkim.selector,
                       rsa_key_pem=key_path.read_bytes(), ed25519_key=ed_key)


def build_transport(settings: Settings) -> Transport:
    if settings.delivery.transport == "smtp":
        return SmtpTransport(settings, tls_context=client_context(settings) if settings.delivery.tls_ca_file else None)
    return MaildirTransport(settings.maildir_path)


class Relay:
    def __init__(self, settings: Settings, *, transport: Transport | None = None, signer: Any = None,
                 clock: Callable[[], float] = time.time, create_key: bool = True) -> None:
        self.settings = settings
        self.clock = clock
        self._transport = transport
        self._signer = signer
        self._create_key = create_key
        self.db = Database(settings.db_path, group_commit_max=settings.store.group_commit_max)
        self.servers: list[asyncio.Server] = []
        self.worker: DeliveryWorker | None = None
        self.limits = Limits.from_settings(settings)
        self.tls = TlsContexts.from_settings(settings)
        self.ctx: Context | None = None
        self._stopped = asyncio.Event()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for server in self.servers for sock in server.sockets]

    async def start(self) -> None:
        settings = self.settings
        settings.relay.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        applied = await asyncio.to_thread(migrate_store, settings.db_path)
        if applied:
            log.info("migrated store", applied=applied)
        await self.db.open()
        signer = self._signer if self._signer is not None else load_signer(settings, create=self._create_key)
        transport = self._transport or build_transport(settings)
        self.ctx = Context(settings=settings, db=self.db, signer=signer, clock=self.clock)
        self.worker = DeliveryWorker(settings, self.db, transport, signer=signer, clock=self.clock)
        await self.worker.start()
        handler = RelayHandler(self.ctx, Pipeline(build_stages(self.ctx)), on_queued=self.worker.notify)
        self.servers = await start_all(self.ctx, handler, self.limits, self.tls)
        log.info("relay started", domain=settings.relay.domain, transport=settings.delivery.transport,
                 listen=[f"{h}:{p}" for h, p in self.addresses])

    def reload_tls(self) -> bool:
        """Re-read tls.cert_file/key_file (SIGHUP); open sessions keep theirs, the next STARTTLS uses the new."""
        return self.tls.reload() if self.tls is not None else False

    async def stop(self, grace: float = 30.0) -> None:
        self.limits.accepting = False
        for server in self.servers:
            server.close()
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), grace)
            except TimeoutError:
                log.warning("SMTP sessions still open at shutdown; closing them")
        if self.worker:
            await self.worker.stop(grace)
        await self.db.close()
        self._stopped.set()
        log.info("relay stopped")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("shutting down")
        await self.stop()
