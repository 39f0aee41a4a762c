"""The SQLite store: one writer with group commit (aiosqlite's thread), and readers.

Reads config: store.group_commit_max; the database file is <relay.state_dir>/relay.db.
Every repository function in relay/store/ is a plain synchronous function taking a
sqlite3.Connection; Database.write() runs it inside the writer's next transaction on the
writer's thread; Database.read() runs a short lookup on the event loop's own read-only
connection (WAL readers do not wait for the writer), Database.read_in_thread() a long read
(a blob, a count over a table) on aiosqlite's reader thread.

Group commit: while one transaction is being written and fsynced, new units queue up;
the next transaction takes all of them (up to group_commit_max), each inside its own
SAVEPOINT so that one failing unit does not spoil its neighbours. A unit's future is
resolved only after COMMIT returned, i.e. after the WAL was fsynced (synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from relay.store.checkpoint import Checkpointer
from relay.store.errors import StoreUnavailable

__all__ = ["Database", "StoreUnavailable", "connect_sync", "run_in_transaction"]

T = TypeVar("T")
Unit = Callable[[sqlite3.Connection], Any]

#: Called with the text of every statement the store's connections run (sqlite3's trace callback),
#: when set before Database.open(): the capacity bench (bench/capacity.py) counts round trips with
#: it. None (the default) adds nothing to a statement.
STATEMENT_TRACE: Callable[[str], object] | None = None

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def connect_sync(path: Path | str) -> sqlite3.Connection:
    """A plain connection with the store's pragmas (used by the migrator and the CLI)."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Owner-only from the first byte: the file holds real addresses.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def begin_immediate(conn: sqlite3.Connection, timeout: float = 10.0) -> None:
    """BEGIN IMMEDIATE, retried every 0.2 ms while another process holds the write lock; after
    `timeout` (store.busy_timeout) an OperationalError that says so.

    SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, which makes several
    writer processes (smtp.workers, the CLI) wait far longer than the lock is held.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    f"database is locked: the write lock was not free within store.busy_timeout ({timeout:g} s)"
                ) from exc
            time.sleep(0.0002)


class _Request:
    __slots__ = ("abandoned", "done", "granted")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.granted = False
        self.abandoned = False


class WriterLock:
    """The relay processes' queue for the store's write lock: flock on <db>-writer.lock, waited
    for at most `timeout` (store.busy_timeout), then StoreUnavailable (a 451 for the client), never
    a hang. Free: one non-blocking flock. Taken: a helper thread (a daemon: it never holds up the
    process's exit) blocks in flock, woken by the kernel when the lock is free, no polling, while
    the writer thread waits for it with the deadline; a wait given up is marked so, and the helper
    hands the lock straight back when it gets it."""

    def __init__(self, path: str, timeout: float) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._helper: threading.Thread | None = None

    def acquire(self) -> float:
        """Take the lock; return the time left of the timeout (for BEGIN IMMEDIATE)."""
        deadline = time.monotonic() + self.timeout
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return self.timeout
        except BlockingIOError:
            pass
        if self._helper is None:
            self._helper = threading.Thread(target=self._serve, name="store-flock", daemon=True)
            self._helper.start()
        request = _Request()
        self._requests.put(request)
        if not request.done.wait(max(0.0, deadline - time.monotonic())):
            with self._mutex:
                if not request.granted:
                    request.abandoned = True
                    raise StoreUnavailable(f"the store's write lock was not free within store.busy_timeout"
                                           f" ({self.timeout:g} s)")
        return max(0.0, deadline - time.monotonic())

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            with self._mutex:
                if request.abandoned:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                else:
                    request.granted = True
            request.done.set()
        os.close(self.fd)  # last: no flock of the helper's can land on a reused descriptor

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._helper is None:
            os.close(self.fd)
        else:
            self._requests.put(None)  # the helper closes it after any wait it is in


def run_in_transaction(conn: sqlite3.Connection, units: list[Unit], timeout: float = 10.0) -> list[tuple[bool, Any]]:
    """Run units in one IMMEDIATE transaction; each in its own savepoint."""
    results: list[tuple[bool, Any]] = []
    begin_immediate(conn, timeout)
    try:
        for unit in units:
            conn.execute("SAVEPOINT unit")
            try:
                value = unit(conn)
            except Exception as exc:  # the unit's own failure: roll back only that unit
                if not conn.in_transaction:
                    # SQLite already rolled the whole transaction back (SQLITE_FULL, IOERR, …):
                    # every unit of the group failed, with this cause (disk full → 452).
                    raise
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                results.append((False, exc))
            else:
                conn.execute("RELEASE unit")
                results.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return results


class Database:
    def __init__(self, path: Path | str, *, group_commit_max: int = 256, busy_timeout: float = 10.0,
                 checkpoint_interval: float = 0.25) -> None:
        self.path = Path(path)
        self.checkpoint_interval = checkpoint_interval
        self.checkpointer: Checkpointer | None = None
        self.group_commit_max = group_commit_max
        self.busy_timeout = busy_timeout
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._lock: WriterLock | None = None
        #: reads that found the file busy on the loop's connection and went to the reader thread
        self.inline_fallbacks = 0
        self._pending: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Number of transactions and units written, for metrics and benchmarks.
        self.transactions = 0
        self.units = 0

    async def open(self) -> None:
        connect_sync(self.path).close()  # create with the right mode and WAL
        self._writer = await aiosqlite.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        for conn in (self._writer, self._reader):
            for pragma in PRAGMAS:
                await conn.execute(pragma)
            await conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        await self._writer.execute("PRAGMA busy_timeout=0")  # begin_immediate() retries itself
        # Each unit of a group commit runs in a SAVEPOINT; SQLite keeps the pages a savepoint may
        # have to restore in a sub-journal, by default a temporary file (open, ~3 page writes per
        # WAL frame, unlink: per transaction). In memory it costs a copy of those pages only. The
        # writer's transactions are short; other connections (CLI sorts) keep temp files.
        await self._writer.execute("PRAGMA temp_store=MEMORY")
        if str(self.path) != ":memory:":
            # checkpoints run beside the writer (relay/store/checkpoint.py), not inside its commits
            await self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self.checkpointer = Checkpointer(self.path, self.checkpoint_interval)
            self.checkpointer.start()
        inline = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        if STATEMENT_TRACE is not None:
            inline.set_trace_callback(STATEMENT_TRACE)
            for conn in (self._writer, self._reader):
                await conn.set_trace_callback(STATEMENT_TRACE)
        inline.execute("PRAGMA foreign_keys=ON")
        inline.execute("PRAGMA query_only=ON")   # a read that tried to write would fail, not write
        inline.execute("PRAGMA busy_timeout=0")  # never block the loop: busy → the reader thread
        self._inline = inline
        if str(self.path) != ":memory:":
            self._lock = WriterLock(f"{self.path}-writer.lock", self.busy_timeout)
        self._task = asyncio.create_task(self._write_loop(), name="store-writer")

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task:
            await self._task
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
            self.checkpointer = None
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def write(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        """Run `unit` in a transaction; return once it is durable.

        The caller may be cancelled (aiosmtpd cancels slow handlers); the write still
        completes or fails as a whole, because the future is shielded from the caller.
        """
        if self._closing or self._task is None:
            raise StoreUnavailable("store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, fut))
        self._wakeup.set()
        return await asyncio.shield(fut)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A short read (indexed lookups) on the loop's own connection, without leaving the loop.

        An indexed lookup takes tens of microseconds; a hop to a worker thread costs more CPU than
        that and, while the loop is busy, waits for the GIL (the 5 ms switch interval) and then for
        the loop to come round again: under load that was most of a message's time to its 250.
        Should the file be busy (WAL recovery, a forced checkpoint), the read goes to the thread."""
        if self._inline is None:
            raise StoreUnavailable("store is closed")
        try:
            return fn(self._inline)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        self.inline_fallbacks += 1
        return await self.read_in_thread(fn)

    async def read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read that may take long (a large blob, a count over a table), off the event loop."""
        if self._reader is None:
            raise StoreUnavailable("store is closed")
        reader = self._reader
        # The result travels in a box emptied here: aiosqlite's thread keeps its last call and
        # result alive until the next one, which for a message content is megabytes held idle.
        box: list[T] = []
        await reader._execute(lambda conn: box.append(fn(conn)), reader._conn)
        return box.pop()

    def _transaction(self, conn: sqlite3.Connection, units: list[Unit]) -> list[tuple[bool, Any]]:
        """run_in_transaction behind the daemon's writer lock (writer thread). Several relay
        processes (smtp.workers) queue on that file lock, woken by the kernel when it is free,
        instead of polling BEGIN IMMEDIATE every 0.2 ms (4 % of CPU with two workers). A CLI
        command does not take it: SQLite's own lock still decides, and begin_immediate waits.
        Both waits together are bounded by store.busy_timeout."""
        if self._lock is None:
            return run_in_transaction(conn, units, self.busy_timeout)
        left = self._lock.acquire()
        try:
            return run_in_transaction(conn, units, left)
        finally:
            self._lock.release()

    async def _write_loop(self) -> None:
        assert self._writer is not None
        writer = self._writer
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self.group_commit_max]
                del self._pending[: len(batch)]
                units = [u for u, _ in batch]
                try:
                    results = await writer._execute(self._transaction, writer._conn, units)
                except Exception as exc:  # the whole transaction failed (disk full, locked…)
                    failure = StoreUnavailable(f"store write failed: {exc}")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(failure)
                    units.clear()
                    continue
                self.transactions += 1
                self.units += len(batch)
                for (_, fut), (ok, value) in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                # aiosqlite's thread keeps its last call (these units, and the messages they
                # wrote) and its result until the next call: empty them rather than wait.
                units.clear()
                results.clear()
                batch.clear()
            if self._closing and not self._pending:
                return
