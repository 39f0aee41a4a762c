"""The daemon's daily retention pass: message contents older than audit.retention are cleared.

Reads: audit.retention. Runs once shortly after start and then every `interval` (a day), in
batches (found by a read, cleared in one short write transaction each, their files zeroed after
the commit) so that mail keeps flowing meanwhile.
Audit: retention.cleared (see relay/store/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from relay.store.interface import Store

log = structlog.get_logger("relay.retention")

DAY = 86400.0


async def run_once(store: Store, retention: float, clock: Callable[[], float] = time.time) -> tuple[int, int]:
    """Clear every expired content now; return (blobs, bytes).

    Each batch: found by a read (no lock), cleared in one short write transaction (checked again
    there), its files zeroed and removed after the commit, off the event loop and outside the
    writer lock; so a message arriving meanwhile waits for one small batch at most."""
    now = clock()
    cutoff = now - retention
    total = size = 0
    await store.retention.wipe_cleared()  # what a crash left set aside
    while True:
        batch = await store.retention.expired(cutoff)
        if not batch:
            return total, size
        n, b = await store.retention.clear_expired(cutoff, now, candidates=batch)
        await store.retention.wipe_cleared()
        total, size = total + n, size + b
        if n == 0:  # none of the batch was still due (taken up again meanwhile): the next pass sees
            return total, size


class RetentionTask:
    def __init__(self, store: Store, retention: float, *, clock: Callable[[], float] = time.time,
                 interval: float = DAY, first_delay: float = 1.0) -> None:
        self.store = store
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
                blobs, size = await run_once(self.store, self.retention, self.clock)
                if blobs:
                    log.info("retention cleared message contents", blobs=blobs, bytes=size)
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk or a locked store: try again at the next pass
                log.exception("retention pass failed")
            await asyncio.sleep(self.interval)
