"""Delivery worker: due queue rows → transport → result; backoff; bounce notices.

Reads: delivery.concurrency, delivery.retry_base, delivery.retry_max, delivery.lifetime,
delivery.lease_seconds, relay.domain, relay.notice_from, smtp.spool_threshold and
smtp.spool_concurrency (a content that big is never kept in memory between DATA and delivery, and
only that many are delivered at once: the others wait, unread, in the store). Each attempt is
leased ('sending', attempts+1, lease_until, a new fencing token: relay/delivery/lease.py) before
the transport is called and its result written right after, only under that token. The lease is
renewed every third of delivery.lease_seconds while the attempt runs; the same tick's sweep takes
back any process's leases that ran out. stop() returns only this process's unfinished rows.
4xx/timeouts back off exponentially until the row's lifetime ends; a 5xx or an expired lifetime
bounces it, and a notice goes to the sender's registered address.
A smarthost gone after our final dot and before its reply leaves the outcome unknown: deferred
with backoff like any 4xx, and recorded as such (delivery.ambiguous, relay_delivery_ambiguous_total).
Audit: delivery.delivered|deferred|ambiguous|bounced|recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from relay.config import Settings
from relay.delivery import lease
from relay.delivery.notices import build_notice
from relay.delivery.transport import DeliveryError, Transport
from relay.metrics import Metrics
from relay.store import messages as messages_repo
from relay.store import queue as queue_repo
from relay.store.interface import Store

log = structlog.get_logger("relay.delivery")

#: Contents of just-queued rows kept in memory for their first attempt (saves a store read).
CACHE_BYTES = 32 * 1024 * 1024


def backoff(settings: Settings, attempts: int) -> float:
    base, cap = settings.delivery.retry_base, settings.delivery.retry_max
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class DeliveryWorker:
    def __init__(self, settings: Settings, store: Store, transport: Transport, *, signer: Any = None,
                 clock: Callable[[], float] = time.time, poll_interval: float = 1.0,
                 metrics: Metrics | None = None,
                 large_slots: Callable[[], asyncio.Semaphore] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.signer = signer
        self.clock = clock
        self.poll_interval = poll_interval
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._cache: dict[int, bytes] = {}
        self.large = settings.smtp.spool_threshold
        #: Slots for a large content in memory; the relay shares the SMTP side's (Limits.spool_slots),
        #: so that at most smtp.spool_concurrency large messages are in memory, checked or delivered.
        own = asyncio.Semaphore(settings.smtp.worker_spool_concurrency)
        self.large_slots = large_slots or (lambda: own)
        self.owner = lease.new_owner(settings.relay.node)  # recorded on claimed rows (see recover(owner=…))
        self.lease = settings.delivery.lease_seconds
        #: what this process holds now: queue id → fencing token (renewed by _leases)
        self._held: dict[int, int] = {}
        self._lease_task: asyncio.Task[None] | None = None
        self.leases_lost = 0
        self._cached_bytes = 0
        self.delivered = 0
        self.deferred = 0
        self.bounced = 0
        self.ambiguous = 0

    def notify(self, items: list[tuple[int, bytes]] | None = None) -> None:
        """New rows are due; `items` hands over their (queue id, content) so no store read is needed."""
        for queue_id, data in items or ():
            if len(data) > min(CACHE_BYTES // 4, self.large):
                continue  # read from the store when its turn comes, a few at a time
            while self._cache and self._cached_bytes + len(data) > CACHE_BYTES:
                # oldest first: a row held or dropped meanwhile never takes its entry out
                self._cached_bytes -= len(self._cache.pop(next(iter(self._cache))))
            self._cache[queue_id] = data
            self._cached_bytes += len(data)
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def start(self, recover: bool = True) -> None:
        """Start delivering; `recover` takes back at once the rows a crash left 'sending' (those of a
        process of this host that is gone, and leases that ran out); the sweeper does so later too."""
        if recover:
            recovered = await self.sweep()
            if recovered:
                log.warning("queue rows were in flight at the last stop; retrying them", count=recovered)

        self._task = asyncio.create_task(self._loop(), name="delivery")
        self._lease_task = asyncio.create_task(self._leases(), name="delivery-leases")

    async def sweep(self) -> int:
        """Return to the queue the rows whose lease ran out or whose local owner is gone."""
        now = self.clock()
        return await self.store.queue.reclaim(now, self.settings.relay.node, lease.process_alive)

    async def renew(self) -> list[int]:
        """Extend this process's leases; return the queue ids whose lease was lost meanwhile."""
        held = list(self._held.items())
        if not held:
            return []
        until = self.clock() + self.lease
        lost = await self.store.queue.renew(held, until)
        for qid in lost:
            # Its result will not be written (the token no longer matches); another process
            # has it or will. The attempt itself is not cut: that would make the outcome unknown.
            self.leases_lost += 1
            log.warning("a delivery's lease was lost while it ran", queue=qid)
        return lost

    async def _leases(self) -> None:
        """Every third of the lease: renew ours, then take back the expired leases of any process."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew()
                swept = await self.sweep()
                if swept:
                    log.warning("leases ran out; their rows went back to the queue", count=swept)
                    self._wake.set()
            except self.store.failures as exc:
                log.error("could not renew or sweep delivery leases", error=str(exc))

    async def stop(self, grace: float = 30.0) -> None:
        """Stop taking rows; let deliveries in flight finish (bounded), the rest stay queued."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                # Back to the queue now rather than at the next start (the send may have happened);
                # only ours: a sibling process's rows in flight are still being delivered.
                now = self.clock()
                returned = await self.store.queue.recover(now, self.owner)
                log.warning("deliveries cut short by the shutdown went back to the queue", count=returned)
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
            self._lease_task = None
        await self.transport.close()

    async def _loop(self) -> None:
        concurrency = self.settings.delivery.concurrency
        while not self._stopping:
            free = concurrency - len(self._inflight)
            claimed: list[queue_repo.QueueItem] = []
            if free > 0:
                # Only claim what there are free slots for: claimed rows never wait in memory.
                now = self.clock()
                try:
                    claimed = await self.store.queue.claim_due(now, free, self.owner, self.lease)
                except self.store.failures as exc:
                    log.error("could not read the queue", error=str(exc))
            for item in claimed:
                self._held[item.id] = item.lease_token
                task = asyncio.create_task(self._deliver(item))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if claimed and len(claimed) < free:
                continue  # there may be more due and there are slots left
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    def _outcome(self, outcome: str, item: queue_repo.QueueItem) -> None:
        if self.metrics is not None:
            self.metrics.deliveries.labels(outcome, item.kind).inc()

    async def _deliver(self, item: queue_repo.QueueItem) -> None:
        # Every log line of this attempt, the transport's included, names the message and thread.
        with structlog.contextvars.bound_contextvars(message=item.message_id, thread=item.thread_id, queue=item.id):
            try:
                await self._attempt(item)
            finally:
                if self._held.get(item.id) == item.lease_token:
                    del self._held[item.id]

    async def _attempt(self, item: queue_repo.QueueItem) -> None:
        try:
            data = self._cache.pop(item.id, None)
            if data is not None:
                self._cached_bytes -= len(data)
                size: int | None = len(data)
            else:
                size, data = await self.store.messages.small_blob(item.blob_sha256, self.large)
            if size is None:
                await self._record_bounce(item, "delivery.content_missing", "message content is gone")
                return
            try:
                if size < self.large:
                    response = await self._send(item, data)
                else:
                    async with self.large_slots():
                        response = await self._send(item, data)
            except DeliveryError as exc:
                await self._failed(item, exc)
                return
            now, sent = self.clock(), time.perf_counter()
            if not await self.store.queue.mark_delivered(item, now, response):
                log.warning("delivered, but the queue entry was changed meanwhile", queue=item.id)
            if self.metrics is not None:
                self.metrics.record_seconds.observe(time.perf_counter() - sent)
            self.delivered += 1
            self._outcome("delivered", item)
            if self.metrics is not None and item.kind == "message":
                self.metrics.delivery_latency.observe(max(0.0, now - item.created_at))
            log.info("delivered", queue=item.id, message=item.message_id, thread=item.thread_id,
                     attempt=item.attempts, kind=item.kind)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a store failure: the row stays 'sending'; its lease, no longer renewed, runs out
            # and a sweeper returns it to the queue.
            log.exception("delivery crashed", queue=item.id)
        finally:
            self._wake.set()

    async def _send(self, item: queue_repo.QueueItem, data: bytes | None) -> str:
        if data is None:
            data = await self.store.messages.get_blob(item.blob_sha256)
            if data is None:  # cleared since its size was read
                raise DeliveryError("message content is gone", permanent=True)
        return await self.transport.send(item.envelope_from, item.recipient, data)

    async def _failed(self, item: queue_repo.QueueItem, exc: DeliveryError) -> None:
        now = self.clock()
        if exc.permanent:
            await self._record_bounce(item, "delivery.rejected", exc.text)
            return
        next_at = now + backoff(self.settings, item.attempts)
        if next_at >= item.expires_at:
            await self._record_bounce(item, "delivery.expired", exc.text)
            return
        await self.store.queue.defer(item, now, next_at, exc.text, ambiguous=exc.ambiguous)
        self.deferred += 1
        self._outcome("deferred", item)
        if exc.ambiguous:
            self.ambiguous += 1
            if self.metrics is not None:
                self.metrics.ambiguous.inc()
            log.warning("delivery outcome unknown; retrying later", queue=item.id, message=item.message_id,
                        attempt=item.attempts, next_attempt_at=next_at)
        log.info("deferred", queue=item.id, message=item.message_id, attempt=item.attempts, error=exc.text[:200])

    async def _record_bounce(self, item: queue_repo.QueueItem, reason: str, error: str) -> None:
        now = self.clock()
        notice = None
        if item.kind == "message":
            notice = await self._notice_for(item, reason)
        await self.store.queue.bounce(item, now, reason, error, notice)
        self.bounced += 1
        self._outcome("bounced", item)
        log.warning("bounced", queue=item.id, message=item.message_id, reason=reason, kind=item.kind)

    async def _notice_for(self, item: queue_repo.QueueItem, reason: str) -> tuple[str, str, bytes] | None:
        return await notice_for_message(self.settings, self.store, self.signer, item.message_id, reason)



async def notice_for_message(settings: Settings, store: Store, signer: Any, message_id: int,
                             reason: str) -> tuple[str, str, bytes] | None:
    """(recipient, envelope sender, signed notice) for the sender of `message_id`, or None."""
    row = await store.messages.get(message_id)
    return notice_from_row(settings, signer, row, reason)


def notice_from_row(settings: Settings, signer: Any, row: messages_repo.MessageRow | None,
                    reason: str) -> tuple[str, str, bytes] | None:
    """The same, from a message row already read (the CLI reads it in its own transaction)."""
    if row is None or not row.envelope_from:
        return None
    data = build_notice(domain=settings.relay.domain, notice_from=settings.relay.notice_from,
                        to=row.envelope_from, alias=f"{row.rcpt_alias}@{settings.relay.domain}",
                        subject=" ".join((row.subject or "").split()), received_at=row.received_at, reason=reason)
    if signer is not None:
        data = signer.sign(data)
    return row.envelope_from, "", data
