"""The PostgreSQL store's connections: a pool for short READ COMMITTED transactions, and one
dedicated connection that LISTENs for work (reconnected when it drops).

Reads config: store.url, store.password_file (a PgTarget, relay/store/url.py). Several relay nodes
share the database: every repository transaction is short (no lock is ever held across an SMTP
conversation; relay/store/pg/queue.py), and a failure to reach the server is StoreUnavailable (a
4xx for the client), whose text names the server by its safe URL, never with the password.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import structlog

from relay.store.db import StoreUnavailable
from relay.store.migrate import Migration
from relay.store.pg import migrate as pg_migrate
from relay.store.url import PgTarget

log = structlog.get_logger("relay.store.pg")

#: The channel enqueueing notifies (relay/store/pg/queue.py) and idle workers listen on.
QUEUE_CHANNEL = "relay_queue"

#: What a lost or refused connection raises inside asyncpg (besides the server's own errors).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError, asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError, asyncpg.exceptions.InvalidPasswordError,
)


class PgDatabase:
    #: Called with the text of every statement sent on the pool's connections (asyncpg's query
    #: logger: BEGIN, COMMIT and the pool's reset included; COPY is not), when set before open():
    #: the capacity bench (bench/capacity.py) counts round trips with it. None: no logger at all.
    statement_trace: Callable[[str], object] | None = None

    def __init__(self, target: PgTarget, *, min_size: int = 1, max_size: int = 10,
                 command_timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.target = target
        self.min_size, self.max_size = min_size, max_size
        self.command_timeout, self.connect_timeout = command_timeout, connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        #: write transactions committed by this process
        self.transactions = 0

    def _connect_args(self) -> dict[str, Any]:
        return {"dsn": self.target.dsn(), "password": self.target.password, "timeout": self.connect_timeout,
                "command_timeout": self.command_timeout,
                "server_settings": {"application_name": "relay",
                                    "default_transaction_isolation": "read committed"}}

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """StoreUnavailable for a connection failure: the server's safe URL and the error's kind."""
        detail = str(exc) if not isinstance(exc, TimeoutError) else "timed out"
        if self.target.password:
            detail = detail.replace(self.target.password, "***")
        return StoreUnavailable(f"PostgreSQL store {self.target.safe_url()} unavailable:"
                                f" {type(exc).__name__}: {detail}")

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(min_size=self.min_size, max_size=self.max_size,
                                                   init=self._trace if PgDatabase.statement_trace else None,
                                                   **self._connect_args())
        except CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from None

    @staticmethod
    async def _trace(conn: asyncpg.Connection) -> None:
        trace = PgDatabase.statement_trace
        if trace is not None:
            conn.add_query_logger(lambda record: trace(record.query))

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PgDatabase:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection outside a transaction (each statement commits: reads, LISTEN)."""
        try:
            conn = await self.pool.acquire()
        except CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One short READ COMMITTED transaction: committed when the block ends, rolled back when it
        raises. A lost connection is StoreUnavailable (the transaction did not commit, or — if
        the loss came during COMMIT — may have: the callers' writes are idempotent or fenced)."""
        async with self.connection() as conn:
            try:
                async with conn.transaction(isolation="read_committed"):
                    yield conn
            except CONNECTION_ERRORS as exc:
                raise self.unavailable(exc) from None
            self.transactions += 1

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only REPEATABLE READ transaction: several statements that must see one state (a
        content and its pieces, the audit chain walked in batches)."""
        async with self.connection() as conn:
            try:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    yield conn
            except CONNECTION_ERRORS as exc:
                raise self.unavailable(exc) from None

    async def migrate(self) -> list[Migration]:
        async with self.connection() as conn:
            return await pg_migrate.migrate(conn)

    # --- LISTEN/NOTIFY -------------------------------------------------------------------------

    async def wait_for_notify(self, timeout: float, channel: str = QUEUE_CHANNEL) -> bool:
        """Until a NOTIFY on `channel` arrives (True) or `timeout` passes (False). The first call
        starts the listening connection; after it was lost and came back, waiters are woken
        (True) once, as a notification may have been missed meanwhile."""
        if self._listener is None:
            self._listener = Listener(self._connect_args, channel)
            await self._listener.start()
        return await self._listener.wait(timeout)


class Listener:
    """One connection that LISTENs on a channel; reconnects with backoff when it drops."""

    def __init__(self, connect_args: Callable[[], dict[str, Any]], channel: str, *,
                 ping_interval: float = 5.0) -> None:
        self.connect_args = connect_args
        self.channel = channel
        self.ping_interval = ping_interval
        self.event = asyncio.Event()
        self.connected = asyncio.Event()
        #: times the connection was (re)established, for tests and metrics
        self.connects = 0
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="store-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout)  # else: waits time out, polling goes on

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        self.event.clear()
        return True

    def _notified(self, *_: object) -> None:
        self.event.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(**self.connect_args())
                await conn.add_listener(self.channel, self._notified)
                self._conn = conn
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                self.connects += 1
                if self.connects > 1:
                    self.event.set()  # a NOTIFY sent while we were away is lost: look once
                self.connected.set()
                backoff = 0.1
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.ping_interval)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=self.ping_interval)  # a silent loss
            except asyncio.CancelledError:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
                raise
            except Exception as exc:  # lost, refused, timed out: try again
                log.warning("store.listen_lost", channel=self.channel, error=type(exc).__name__)
            self.connected.clear()
            self._conn = None
            if conn is not None:
                conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def drop_for_test(self) -> None:
        """Cut the connection as a network failure would (tests)."""
        if self._conn is not None:
            self._conn.terminate()




class PgRepo:
    """A repository of the PostgreSQL store: its calls run on the store's pool (relay/store/pg/store.py)."""

    __slots__ = ("db",)

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
