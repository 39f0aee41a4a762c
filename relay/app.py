"""The daemon: store, pipeline, SMTP listeners and the delivery worker on one event loop.

Like uvicorn's Server: the CLI builds Settings and calls Relay(settings).run().
SIGTERM/SIGINT: stop accepting, finish transactions in progress (smtp.shutdown_timeout, then
421), let deliveries finish or return to the queue, exit 0. SIGHUP: Relay.reload() (reload.py).
systemd: READY=1 once listening, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1 (systemd.py).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from relay import reload as reloading
from relay.config import Settings
from relay.delivery.maildir import MaildirTransport
from relay.delivery.smtp import SmtpTransport
from relay.delivery.transport import Transport
from relay.delivery.worker import DeliveryWorker
from relay.http import HttpServer
from relay.metrics import Metrics
from relay.pipeline.context import Context
from relay.pipeline.runner import Pipeline, Stage
from relay.pipeline.stages.authenticate import Authenticate
from relay.pipeline.stages.authorize import Authorize
from relay.pipeline.stages.content import Content
from relay.pipeline.stages.egress import Egress
from relay.pipeline.stages.resolve import Resolve
from relay.pipeline.stages.rewrite import Rewrite
from relay.pipeline.stages.rules import Rules
from relay.pipeline.stages.sign import Sign
from relay.retention import RetentionTask
from relay.smtp import shared
from relay.smtp.handler import RelayHandler
from relay.smtp.limits import Limits
from relay.smtp.listeners import start_all
from relay.smtp.shared import SharedListener
from relay.smtp.spool import Spool
from relay.smtp.tls import TlsContexts, client_context
from relay.store.interface import Store
from relay.store.migrate import migrate_file
from relay.store.open import open_store, uses_postgresql
from relay.systemd import Notifier

log = structlog.get_logger("relay")


def build_stages(ctx: Context) -> list[Stage]:
    """The fixed stage order (a security property: authorize before rewrite, egress after the last
    change, sign last)."""
    return [Resolve(ctx), Authorize(ctx), Authenticate(ctx), Rules(ctx), Content(ctx), Rewrite(ctx), Egress(ctx),
            Sign(ctx)]


def migrate_store(path: Path) -> list[str]:
    return migrate_file(path)


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


async def signer_for(settings: Settings, store: Store, *, create: bool = False) -> Any:
    """The DKIM signer from where dkim.source says: the key file (load_signer) or the store, sealed
    under store.key_file (relay/keys.py; ConfigError when the KEK or the key is missing or wrong)."""
    if settings.dkim.source == "store":
        from relay import keys

        return await keys.dkim_signer(settings, store.secrets)
    return load_signer(settings, create=create)


async def unsubscribe_secret_for(settings: Settings, store: Store) -> bytes:
    """The unsubscribe tokens' secret from where rules.unsubscribe_secret_source says."""
    if settings.rules.unsubscribe_secret_source == "store":
        from relay import keys

        return await keys.unsubscribe_secret(settings, store.secrets)
    from relay.rules import tokens

    return tokens.load_secret(settings.relay.state_dir)


def keys_in_store(settings: Settings) -> bool:
    return settings.dkim.source == "store" or settings.rules.unsubscribe_secret_source == "store"


async def check_store_keys(settings: Settings) -> None:
    """Before anything starts (relay/supervisor.py): the keys dkim.source and
    rules.unsubscribe_secret_source take from the store are there and open with this node's
    store.key_file; ConfigError (exit 78) otherwise."""
    if not uses_postgresql(settings):  # PostgreSQL: opening the store migrates
        await asyncio.to_thread(migrate_store, settings.db_path)
    store = open_store(settings, pool_size=1)
    await store.open()
    try:
        if settings.dkim.source == "store":
            await signer_for(settings, store)
        if settings.rules.unsubscribe_secret_source == "store":
            await unsubscribe_secret_for(settings, store)
    finally:
        await store.close()


def build_transport(settings: Settings) -> Transport:
    if settings.delivery.transport == "smtp":
        return SmtpTransport(settings, tls_context=client_context(settings) if settings.delivery.tls_ca_file else None)
    return MaildirTransport(settings.maildir_path)


class Relay:
    def __init__(self, settings: Settings, *, transport: Transport | None = None, signer: Any = None,
                 clock: Callable[[], float] = time.time, create_key: bool = True,
                 recover_queue: bool = True, config_path: Path | None = None,
                 notifier: Notifier | None = None, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.config_path = config_path
        self._transport = transport
        self._signer = signer
        #: A signer handed in (tests, tools): reloads keep it, whatever dkim.source says.
        self.explicit_signer = signer
        self._create_key = create_key
        self._recover_queue = recover_queue  # False in a worker process: the supervisor recovers
        self.store = open_store(settings)  # store.url: SQLite (default) or PostgreSQL
        self.servers: list[asyncio.Server | SharedListener] = []
        self.worker: DeliveryWorker | None = None
        # in a worker process, the counters all workers share (the limits are the relay's)
        self.limits = Limits.from_settings(settings, shared.SHARED.counters if shared.SHARED is not None else None)
        self.metrics = metrics or Metrics()
        self.limits.on_connection = lambda result: self.metrics.smtp_sessions.labels(result).inc()
        self.http: HttpServer | None = None
        self.notifier = notifier or Notifier()
        self.tls = TlsContexts.from_settings(settings)
        self.ctx: Context | None = None
        #: Called by reload() with the new settings: see relay/reload.py for the contract.
        self.reloaders: list[reloading.Reloader] = reloading.builtin_reloaders(self)
        self.retention: RetentionTask | None = None
        self._stopped = asyncio.Event()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for server in self.servers for sock in server.sockets]

    def add_reloader(self, reloader: reloading.Reloader) -> None:
        self.reloaders.append(reloader)

    async def start(self) -> None:
        settings = self.settings
        settings.relay.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.notifier.status("migrating the store")
        if not uses_postgresql(settings):  # PostgreSQL: open() migrates, under the migrator's lock
            applied = await asyncio.to_thread(migrate_store, settings.db_path)
            if applied:
                log.info("migrated store", applied=applied)
        await self.store.open()
        # Spool files of DATA a crash interrupted: that client got no 250 and sends again. A worker
        # among siblings removes only those of processes that are gone.
        Spool(settings.spool_path).clean(only_dead=not self._recover_queue)
        signer = self._signer if self._signer is not None else await signer_for(settings, self.store,
                                                                                 create=self._create_key)
        secret = await unsubscribe_secret_for(settings, self.store)
        transport = self._transport or build_transport(settings)
        self.ctx = Context(settings=settings, store=self.store, signer=signer, clock=self.clock,
                           extras={"metrics": self.metrics, "reloaders": self.reloaders,
                                   "unsubscribe_secret": secret})
        self.worker = DeliveryWorker(settings, self.store, transport, signer=signer, clock=self.clock,
                                     metrics=self.metrics, large_slots=lambda: self.limits.spool_slots)
        self.notifier.status("recovering the queue")
        await self.worker.start(recover=self._recover_queue)
        handler = RelayHandler(self.ctx, Pipeline(build_stages(self.ctx), observe=self._observe_stage),
                               on_queued=self.worker.notify)
        pool = self.ctx.extras.get("policy_pool")
        if pool is not None:
            self.notifier.status("starting the policy workers")
            await pool.start()
        if settings.http.enabled:
            self.http = HttpServer(self, self.metrics)
            await self.http.start()
        self.servers = await start_all(self.ctx, handler, self.limits, self.tls)
        self.metrics.up_since.set(time.time())
        self.retention = RetentionTask(self.store, settings.audit.retention, clock=self.clock)
        self.retention.start()
        log.info("relay started", domain=settings.relay.domain, transport=settings.delivery.transport,
                 listen=[f"{h}:{p}" for h, p in self.addresses])

    def reload_tls(self) -> bool:
        """Re-read tls.cert_file/key_file (SIGHUP); open sessions keep theirs, the next STARTTLS uses the new."""
        return self.tls.reload() if self.tls is not None else False

    def _observe_stage(self, stage: str, seconds: float) -> None:
        self.metrics.stage_seconds.labels(stage).observe(seconds)

    async def stop(self, grace: float = 30.0) -> None:
        self.notifier.stopping("draining SMTP sessions")
        self.limits.accepting = False
        for server in self.servers:
            server.close()
        await self.limits.drain(min(grace, self.settings.smtp.shutdown_timeout))
        self.servers = []
        if self.retention:
            await self.retention.stop()
        if self.worker:
            self.notifier.status("finishing deliveries in flight")
            await self.worker.stop(grace)
        pool = self.ctx.extras.get("policy_pool") if self.ctx else None
        if pool is not None:
            await pool.stop()
        if self.http:
            await self.http.stop()
        await self.store.close()
        await self.notifier.close()
        self._stopped.set()
        log.info("relay stopped")

    async def reload(self, path: Path | None = None) -> bool:
        """Read the configuration file again and hand it to the reloaders; False (old config kept) on error."""
        return await reloading.reload(self, path or self.config_path)

    def status_line(self) -> str:
        depth = self.worker.inflight if self.worker else 0
        return f"{len(self.limits.sessions)} SMTP sessions, {depth} deliveries in flight"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        hups: list[asyncio.Task[bool]] = []
        loop.add_signal_handler(signal.SIGHUP, lambda: hups.append(loop.create_task(self._on_hup())))
        try:
            await self.start()
        except BaseException:
            # Whatever did start (the HTTP listener, the store's writer, the delivery worker, policy
            # workers) must not outlive a failed start: the process would hang with a port open.
            await self.stop(0)
            raise
        # What start() loaded (policy, TLD list, compiled patterns, the store's statements) lives as
        # long as the process: move it out of the collector's sight, so a full collection (the SMTP
        # server runs one after each large message) walks only what came later. Unfrozen, one full
        # collection here took 20–150 ms: the p99 tail.
        gc.collect()
        gc.freeze()
        # The store's writer thread needs the GIL back for a moment after each COMMIT; with the
        # default 5 ms switch interval it waits that long whenever the loop is busy, and every
        # message's 250 waits with it. 1 ms: the busy loop hands over sooner; costs a few switches.
        sys.setswitchinterval(0.001)
        self.notifier.ready("accepting mail on " + ", ".join(f"{h}:{p}" for h, p in self.addresses))
        self.notifier.start_watchdog()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 30)
            except TimeoutError:
                self.notifier.status(self.status_line())
        log.info("shutting down")
        for task in hups:
            await task
        await self.stop(self.settings.smtp.shutdown_timeout)

    async def _on_hup(self) -> bool:
        self.notifier.reloading()
        ok = await self.reload()
        self.notifier.ready("configuration reloaded" if ok else "configuration reload refused; old one kept")
        return ok
