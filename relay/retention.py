"""The daemon's daily retention pass: message contents older than audit.retention are cleared.

Reads: audit.retention. Runs once shortly after start and then every `interval` (a day), in
batches (one short write transaction each) so that mail keeps flowing meanwhile.
Audit: retention.cleared (see relay/store/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable

import structlog

from relay.store import retention as retention_repo
from relay.store.db import Database

log = structlog.get_logger("relay.retention")

DAY = 86400.0


async def run_once(db: Database, retention: float, clock: Callable[[], float] = time.time) -> tuple[int, int]:
    """Clear every expired content now; return (blobs, bytes)."""
    now = clock()
    cutoff = now - retention
    total = size = 0
    while True:
        n, b = await db.write(functools.partial(retention_repo.clear_expired, cutoff=cutoff, now=now))
        total, size = total + n, size + b
        if n == 0:
            return total, size


class RetentionTask:
    def __init__(self, db: Database, retention: float, *, clock: Callable[[], float] = time.time,
                 interval: float = DAY, first_delay: float = 1.0) -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        self.interval = interval
        self.first_delay = first_delay
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_delay)
        while True:
            try:
                blobs, size = await run_once(self.db, self.retention, self.clock)
                if blobs:
                    log.info("retention cleared message contents", blobs=blobs, bytes=size)
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk or a locked store: try again at the next pass
                log.exception("retention pass failed")
            await asyncio.sleep(self.interval)
