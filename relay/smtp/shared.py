"""Listeners shared by the worker processes (smtp.workers > 1), who takes the next connection, and
the connection/rate counters all workers count in (counters.py).

Reads: smtp.listen, smtp.submission_listen, smtp.workers.

The supervisor binds every listen address once, before it forks the workers; each worker accepts
from those same sockets (one kernel queue per address, as with Postfix's master). A worker takes a
connection only while it holds no more open sessions than the least loaded sibling, plus one; the
counts live in memory the supervisor shares with all workers. A worker busy with a long check does
not come back to accept, so the idle one does; and a sibling whose event loop has not turned for
STALE seconds (stuck, or stopped) is left out of the comparison, so it cannot hold connections back.

Why not SO_REUSEPORT: the kernel gives each worker its own queue and picks the queue by a hash of
the client's address and port, whatever the worker is doing. Under 50 concurrent 10 MB messages one
worker got 30 of them and the other 20, and then sat idle while the first checked its last ten, one
at a time. A queue bound to one worker also loses its waiting connections (reset) when that worker
dies; the shared queue keeps them for the siblings and the replacement.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import structlog

from relay.config import ListenError, Settings, split_hostport
from relay.smtp.counters import SharedCounters

log = structlog.get_logger("relay.smtp")

#: The kernel's queue of connections not yet accepted, per shared listener.
LISTEN_BACKLOG = 1024
#: A worker that let its siblings take connections looks again after this long (or as soon as one
#: of its own sessions ends).
RECHECK = 0.005
#: After running out of file descriptors (or memory) for a new connection: wait before the next try.
ACCEPT_RETRY_DELAY = 1.0
#: A worker may hold this many sessions more than the least loaded sibling and still accept.
SLACK = 1
#: Each worker's loop stamps its slot this often; a slot older than STALE is a busy or stuck worker.
TICK = 0.05
STALE = 0.25
_ABSENT = -1  # a slot whose worker is not serving (not started yet, stopping, dead)
_SLOT = struct.Struct("id")  # open sessions, time.monotonic() of the last stamp (system-wide clock)


class Balance:
    """Each worker's open sessions, one slot per worker, in anonymous shared memory (inherited over fork)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._mem = mmap.mmap(-1, _SLOT.size * workers)
        for slot in range(workers):
            self.clear(slot)

    def clear(self, slot: int) -> None:
        """The worker in `slot` does not serve (not started yet, stopping, or dead)."""
        self.publish(slot, _ABSENT)

    def publish(self, slot: int, sessions: int, now: float | None = None) -> None:
        _SLOT.pack_into(self._mem, slot * _SLOT.size, sessions, time.monotonic() if now is None else now)

    def slots(self) -> list[tuple[int, float]]:
        """(open sessions, last stamp) of every slot."""
        return [_SLOT.unpack_from(self._mem, slot * _SLOT.size) for slot in range(self.workers)]

    def serving(self) -> bool:
        """At least one worker has its listeners up."""
        return any(n != _ABSENT for n, _ in self.slots())

    def my_turn(self, slot: int, sessions: int, now: float | None = None) -> bool:
        """May the worker in `slot`, holding `sessions`, take one more? Siblings not serving, or
        whose loop has not stamped its slot for STALE seconds, do not count."""
        now = time.monotonic() if now is None else now
        others = [n for i, (n, stamped) in enumerate(self.slots())
                  if i != slot and n != _ABSENT and now - stamped <= STALE]
        return not others or sessions <= min(others) + SLACK


class Shared:
    """What the supervisor sets up before forking its workers: the bound sockets and the balance.
    After the fork, each worker's copy also holds that worker's own listeners and counts."""

    def __init__(self, workers: int) -> None:
        self.balance = Balance(workers)
        #: connections and message rates of all workers: the limits hold for the relay, not per process
        self.counters = SharedCounters(workers)
        self.sockets: dict[str, socket.socket] = {}
        self.http_socket: socket.socket | None = None  # http.listen, when enabled
        self.slot = -1  # set in the worker, after the fork
        self.starting = 0  # connections accepted whose session has not started yet
        self._sessions: Callable[[], int] = lambda: 0
        self._listeners: list[SharedListener] = []
        self._ticker: asyncio.TimerHandle | None = None
        self._stopped = False

    def load(self) -> int:
        return self._sessions() + self.starting

    def my_turn(self) -> bool:
        return self.balance.my_turn(self.slot, self.load())

    def changed(self) -> None:
        """This worker's sessions changed: tell the siblings, and look for a connection again."""
        if self._stopped:
            return
        self._stamp()
        for listener in self._listeners:
            listener.resume()

    def listen(self, item: str, factory: Callable[[], asyncio.Protocol],
               sessions: Callable[[], int]) -> SharedListener | None:
        """Serve the shared socket for the listen entry `item` (None: the supervisor did not bind it)."""
        sock = self.sockets.get(item)
        if sock is None:
            return None
        self._sessions = sessions
        listener = SharedListener(sock, factory, self)
        self._listeners.append(listener)
        self.changed()
        if self._ticker is None:
            self._tick()
        return listener

    def _stamp(self) -> None:
        self.balance.publish(self.slot, self.load())

    def _tick(self) -> None:
        """Stamp this worker's slot: its loop turns (a worker stuck in one long step stops stamping)."""
        self._stamp()
        self._ticker = asyncio.get_running_loop().call_later(TICK, self._tick)

    def stop(self) -> None:
        """This worker stops taking connections (its siblings go on)."""
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.balance.clear(self.slot)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        if self.http_socket is not None:
            self.http_socket.close()


#: Set in the supervisor before the fork; workers find their listeners here.
SHARED: Shared | None = None


def bind_all(settings: Settings) -> Shared:
    """Bind every address of smtp.listen and smtp.submission_listen (in the supervisor, before the fork)."""
    shared = Shared(settings.smtp.workers)
    item = ""
    try:
        for item in dict.fromkeys(settings.smtp.listen + settings.smtp.submission_listen):
            shared.sockets[item] = _bind(item)
        if settings.http.enabled:  # every worker answers /metrics and /healthz (relay/http.py)
            item = settings.http.listen
            shared.http_socket = _bind(item)
    except OSError as exc:
        shared.close()
        key = ("smtp.listen" if item in settings.smtp.listen else
               "smtp.submission_listen" if item in settings.smtp.submission_listen else "http.listen")
        raise ListenError(key, item, exc) from None
    return shared


def _bind(item: str) -> socket.socket:
    host, port = split_hostport(item)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as a single process binds
    address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0][4]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class SharedListener:
    """Accepts from one shared socket, one connection per turn of the event loop, while it is this
    worker's turn (Shared.my_turn). Stands where asyncio.Server would: .sockets and .close()."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], shared: Shared) -> None:
        self.sockets = [sock]
        self._sock, self._factory, self._shared = sock, factory, shared
        self._loop = asyncio.get_running_loop()
        self._watching = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.resume()

    def resume(self) -> None:
        """Watch the socket (again)."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._watching and not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._ready)
            self._watching = True

    def _pause(self, delay: float | None) -> None:
        if self._watching:
            self._loop.remove_reader(self._sock.fileno())
            self._watching = False
        if delay is not None and self._retry is None:
            self._retry = self._loop.call_later(delay, self.resume)

    def _ready(self) -> None:
        if not self._shared.my_turn():
            self._pause(RECHECK)  # a sibling takes it; the socket stays readable, so stop watching
            return
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # a sibling took it, or the client gave up already
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.error("cannot accept a connection; trying again shortly", error=str(exc),
                          retry_in=ACCEPT_RETRY_DELAY)
                self._pause(ACCEPT_RETRY_DELAY)
                return
            raise
        conn.setblocking(False)
        self._shared.starting += 1
        self._shared.changed()
        task = self._loop.create_task(self._start(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # reset before the session started
            log.info("connection lost before the greeting", error=str(exc))
            conn.close()
        finally:
            self._shared.starting -= 1
            self._shared.changed()

    def close(self) -> None:
        """Stop accepting here; the socket stays open in the siblings and the supervisor."""
        self._closed = True
        self._pause(None)
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._shared.stop()
        self._sock.close()

    def is_serving(self) -> bool:
        return not self._closed
