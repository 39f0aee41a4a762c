"""SMTP limits: connections (total, per IP) and messages per IP per minute — the whole relay's,
counted with its sibling workers (counters.py) —, and this process's memory spent on DATA in
flight and how many spooled (large) messages it checks at once.

Reads: smtp.max_connections, smtp.max_connections_per_ip, smtp.max_messages_per_ip_per_minute,
smtp.data_timeout, smtp.max_inflight_bytes, smtp.spool_threshold, smtp.spool_concurrency (with
smtp.workers, each process takes its share of max_inflight_bytes and spool_concurrency).
The server answers 421 / 451 4.7.1 / 452 4.3.1 from these; a spooled message waiting for its
turn gets no reply until it has one (its session stays open, within smtp.data_timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from relay.config import Settings
from relay.smtp import replies
from relay.smtp.counters import Counters, SharedCounters

log = structlog.get_logger("relay.smtp")

#: Bytes of memory one received byte costs until the reply is sent: the receive buffer, the
#: content, the rewritten and the signed copy, the parsers' working copies (measured with
#: bench/inflight_memory.py: about 9 x a 15 MB message above the idle RSS before spooling;
#: with smtp.spool_threshold raised so ten 10 MB PDF mails stay in memory, 4.8 x, and one
#: such message alone peaks at about 6 x). A spooled message is charged this only while checked.
MEMORY_FACTOR = 10
#: What a DATA without a SIZE= declaration reserves up front (it grows as bytes arrive).
DEFAULT_RESERVATION = 256 * 1024


class _PerIp:
    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def get(self, ip: str, default: int = 0) -> int:
        return self.counters.connections(ip) or default

    def __getitem__(self, ip: str) -> int:
        return self.counters.connections(ip)


@dataclass
class Limits:
    """Live-updatable limits for all sessions of one process; the connection and rate counts they
    are checked against are the whole relay's (`counters`, shared with the sibling workers)."""

    max_connections: int
    max_connections_per_ip: int
    data_timeout: float
    max_messages_per_minute: int = 600
    max_inflight: int = 512 << 20
    max_message_size: int = 25 << 20
    command_timeout: float = 300.0
    spool_threshold: int = 1 << 20
    spool_concurrency: int = 2
    #: open sessions of this process (the siblings' share of the listeners: relay/smtp/shared.py)
    active: int = 0
    #: connections and message rates of the whole relay (all workers): relay/smtp/counters.py
    counters: Counters = field(default_factory=SharedCounters)
    accepting: bool = True
    inflight: int = 0
    _room: asyncio.Condition | None = None
    _spool_slots: asyncio.Semaphore | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: open sessions (RelaySMTP), for the shutdown drain
    sessions: set[Any] = field(default_factory=set)
    #: called with "accepted" or "refused" for every new connection (metrics)
    on_connection: Callable[[str], None] | None = None
    #: called after `active` changed (shared listeners: the siblings see it; see relay/smtp/shared.py)
    on_active: Callable[[], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, counters: Counters | None = None) -> Limits:
        limits = cls(0, 0, 0.0, counters=counters or SharedCounters())
        limits.update(settings)
        return limits

    def update(self, settings: Settings) -> None:
        """Take new values from a reloaded configuration; sessions see them at their next check."""
        s = settings.smtp
        self.max_connections, self.max_connections_per_ip = s.max_connections, s.max_connections_per_ip
        self.data_timeout, self.command_timeout = s.data_timeout, s.command_timeout
        self.max_message_size = s.max_message_size
        self.max_messages_per_minute = s.max_messages_per_ip_per_minute
        self.max_inflight = s.worker_inflight_bytes
        self.spool_threshold = s.spool_threshold
        if s.worker_spool_concurrency != self.spool_concurrency:
            # Sessions already waiting keep the old semaphore; new ones take turns in the new one.
            self.spool_concurrency, self._spool_slots = s.worker_spool_concurrency, None

    def opened(self) -> None:
        self.active += 1
        if self.on_active is not None:
            self.on_active()

    def closed(self) -> None:
        self.active -= 1
        if self.on_active is not None:
            self.on_active()

    async def drain(self, timeout: float) -> int:
        """Shutdown: refuse new sessions, close idle ones with 421, give transactions in progress
        `timeout` seconds to end (each session then closes itself with 421), then close the rest.
        Returns the number of sessions closed in the middle of a transaction."""
        self.accepting = False
        for session in list(self.sessions):
            if not session.in_transaction:
                session.close_with(replies.SHUTTING_DOWN)
        deadline = time.monotonic() + timeout
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            for session in list(self.sessions):  # a session that ended its transaction with RSET
                if not session.in_transaction:
                    session.close_with(replies.SHUTTING_DOWN)
        cut = list(self.sessions)
        for session in cut:
            session.close_with(replies.SHUTTING_DOWN)
        if cut:
            log.warning("SMTP transactions cut short by the shutdown (answered 421)", count=len(cut))
            await asyncio.sleep(0)  # let connection_lost run
        return len(cut)

    # -- connections and message rate: the whole relay's ---------------------------------------
    def connect(self, ip: str, exempt: bool = False) -> str | None:
        """Count a new connection from `ip` against smtp.max_connections and (unless `exempt`: a
        front MTA, a load balancer) smtp.max_connections_per_ip; "total" / "per_ip" when over."""
        return self.counters.connect(ip, self.max_connections, None if exempt else self.max_connections_per_ip)

    def allow_message(self, ip: str, now: float | None = None) -> bool:
        """Count one MAIL from `ip`; False when it is over max_messages_per_minute in the last 60 s."""
        return self.counters.allow_message(ip, self.max_messages_per_minute, now)

    @property
    def per_ip(self) -> _PerIp:
        """Open connections per address, in all workers (read-only: counters.connections)."""
        return _PerIp(self.counters)

    # -- spooled messages: a few at a time through the pipeline ------------------------------
    @property
    def spool_slots(self) -> asyncio.Semaphore:
        """Held while a spooled message is in memory for its checks (FIFO: no session starves)."""
        if self._spool_slots is None:
            self._spool_slots = asyncio.Semaphore(self.spool_concurrency)
        return self._spool_slots

    # -- memory for DATA in flight ---------------------------------------------------------
    def _fits(self, nbytes: int) -> bool:
        return self.inflight == 0 or self.inflight + nbytes <= self.max_inflight

    def try_grow(self, nbytes: int) -> bool:
        if not self._fits(nbytes):
            return False
        self.inflight += nbytes
        return True

    def hold(self, nbytes: int) -> None:
        """Count memory already bounded elsewhere (a spooled message in its slot): never refused."""
        self.inflight += nbytes

    async def reserve(self, nbytes: int, wait: float) -> bool:
        """Take `nbytes` of the in-flight budget, waiting up to `wait` seconds for room."""
        if self.try_grow(nbytes):
            return True
        if self._room is None:
            self._room = asyncio.Condition()
        try:
            async with self._room:
                await asyncio.wait_for(self._room.wait_for(lambda: self._fits(nbytes)), wait)
        except TimeoutError:
            return False
        return self.try_grow(nbytes)

    def release(self, nbytes: int) -> None:
        self.inflight = max(0, self.inflight - nbytes)
        if self._room is not None:
            room = self._room

            async def _notify() -> None:
                async with room:
                    room.notify_all()

            task = asyncio.get_running_loop().create_task(_notify())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
