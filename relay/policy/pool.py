"""Run the policy check and the egress check in worker processes, off the event loop, each
message within a CPU budget.

Reads: policy.path (each worker loads it once), policy.workers, policy.max_cpu_seconds.
Raises TooCostly (the content stage answers 554 5.6.0) when a check overruns its budget; any
other failure of a worker is a RuntimeError (the runner's 451 4.3.0). The overrunning worker
is killed and replaced; the other workers and their messages are not disturbed.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import resource
import signal
from collections.abc import Callable, Collection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from relay.policy import engine
from relay.policy.engine import Report
from relay.policy.links import tlds
from relay.policy.settings import Policy, load_policy

log = structlog.get_logger("relay.policy")

#: A worker that has not answered after this much wall-clock time (beyond its CPU budget: a
#: starved or stuck worker) is killed by the parent as if it had overrun its CPU budget.
WALL_FACTOR = 3.0
WALL_GRACE = 5.0
#: Time a new worker may take to start and load the policy file.
START_TIMEOUT = 60.0


class TooCostly(Exception):
    """The check of this message needed more than policy.max_cpu_seconds: it will every time."""


class _OverBudget(BaseException):
    """Raised by SIGPROF in a worker; a BaseException so no `except Exception` in a check swallows it."""


def run(raw: bytes, policy: Policy, own: Collection[str]) -> tuple[Report, bytes | None]:
    """check(); and apply() unless the message is refused or held (nothing to deliver yet)."""
    return engine.check_and_apply(raw, policy, own)


def run_egress(message: bytes, addresses: Collection[str], recipient: str) -> Any:
    """The egress check (relay.pipeline.stages.egress.check) for one outgoing message."""
    from relay.message.contacts import finder_of
    from relay.pipeline.stages.egress import check

    return check(message, finder_of(addresses), recipient)


def _job(request: tuple[Any, ...], policy: Policy) -> Any:
    """One request; a message that comes back unchanged is answered None (not pickled back)."""
    if request[0] == "egress":
        out, stripped, bad = run_egress(*request[1:])
        return (None if out == request[1] else out), stripped, bad
    report, out = run(request[1], policy, request[2])
    return report, (None if out == request[1] else out)


def wall_deadline(max_cpu_seconds: float) -> float:
    return max_cpu_seconds * WALL_FACTOR + WALL_GRACE


# -- the worker process ---------------------------------------------------------------------
_WARM_UP = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe parcel ships on Monday.\r\n")


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _over_budget(signum: int, frame: FrameType | None) -> None:
    raise _OverBudget


def _serve(conn: Connection, path: str, max_cpu_seconds: float, scanner: bytes | None = None) -> None:
    """One worker: load the policy, then check one message at a time until the pipe closes.

    Two limits per message: ITIMER_PROF (CPU time, sub-second) raises _OverBudget between
    bytecodes; RLIMIT_CPU a second later kills the process outright should the check be stuck in
    one long C call that never returns to the interpreter (SIGXCPU's default action)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the daemon: the parent stops us
    signal.signal(signal.SIGPROF, _over_budget)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGXCPU kill must not write a core file
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    policy = load_policy(Path(path))
    from relay.policy.scanner import install, scanner_for

    if scanner is None or not install(policy, scanner):  # the parent's compiled database, if it is this policy's
        scanner_for(policy)  # or compiled here, before the worker says it is ready
    tlds()
    run(_WARM_UP, policy, ())  # first-use costs (~30 ms) are the worker's, not the first message's budget
    run_egress(_WARM_UP, ("a@example.com",), "b@example.com")
    conn.send(("ready", None, 0.0))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        began = _cpu_used()
        soft = math.ceil(began + max_cpu_seconds) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        try:
            signal.setitimer(signal.ITIMER_PROF, max_cpu_seconds)
            try:
                result = _job(request, policy)
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
        except _OverBudget:
            # Exit after saying so: what an interrupted check left half-built is not trusted.
            conn.send(("cpu", None, _cpu_used() - began))
            return
        except Exception as exc:  # a bug in a check: the parent turns it into 451 and audits it
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:500], _cpu_used() - began))
            continue
        conn.send(("ok", result, _cpu_used() - began))


# -- the parent side ------------------------------------------------------------------------
class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    async def receive(self, timeout: float) -> tuple[str, Any, float]:
        """The next message from the worker, waiting on its pipe without a thread; EOFError if it died."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = self.conn.fileno()
        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, ready)
        try:
            await asyncio.wait_for(readable, timeout)
        finally:
            loop.remove_reader(fd)
        # Readable: the worker is writing its answer now; recv() returns as soon as it is all here.
        answer: tuple[str, Any, float] = self.conn.recv()
        return answer

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()

    async def reap(self) -> None:
        await asyncio.to_thread(self.process.join, 5)


class WorkerPool:
    """`size` worker processes, started on first use; one message per worker at a time."""

    def __init__(self, path: Path, size: int, max_cpu_seconds: float,
                 scanner: Callable[[], bytes | None] | None = None) -> None:
        self.path = path
        #: scanner.dumps() of the parent's policy once it is compiled: a worker started after that
        #: need not compile it
        self.scanner = scanner
        self.size = size
        self.max_cpu_seconds = max_cpu_seconds
        # forkserver: a fresh single-threaded server forks the workers (the daemon has threads by
        # now, which a plain fork must not copy); with the policy modules preloaded there, a
        # replacement for a killed worker starts in milliseconds instead of re-importing them.
        self._mp = multiprocessing.get_context("forkserver")
        self._mp.set_forkserver_preload(["relay.policy.pool", "relay.pipeline.stages.egress"])
        self._idle: list[_Worker] = []
        self._served: dict[object, int | None] = {}  # a message's key → the worker that checked it
        self._slots: asyncio.Semaphore | None = None
        self._reaping: set[asyncio.Task[None]] = set()
        self.closed = False
        self.busy = 0
        self.replaced = 0  # workers killed for overrunning and replaced (a figure for bench/hostile.py)
        self.worst_cpu = 0.0  # the most CPU seconds one check has used (as its worker reported)

    async def start(self) -> None:
        """Start every worker now (the daemon does, before it listens), so that no message waits
        for a worker to start and warm up (~0.1-0.3 s): an SMTP client may be waiting meanwhile."""
        workers = await asyncio.gather(*(self._start() for _ in range(self.size - len(self._idle))))
        self._idle.extend(workers)

    async def check_and_apply(self, raw: bytes, own: Collection[str], key: object = None) -> tuple[Report, bytes | None]:
        result: tuple[Report, bytes | None] = await self._submit(("policy", raw, frozenset(own)), key)
        return result

    async def egress(self, message: bytes, addresses: Collection[str], recipient: str, key: object = None) -> Any:
        """relay.pipeline.stages.egress.check in a worker: (message or None if unchanged, stripped,
        still wrong). With the policy check's ``key``, the same worker is preferred: it still holds
        its readings of the message's attachments (every image frame through every symbology)."""
        return await self._submit(("egress", message, tuple(addresses), recipient), key)

    def _pick(self, key: object) -> _Worker | None:
        pid = self._served.get(key) if key is not None else None
        for i, worker in enumerate(self._idle):
            if worker.process.pid == pid:
                return self._idle.pop(i)
        return self._idle.pop() if self._idle else None

    async def _submit(self, request: tuple[Any, ...], key: object = None) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            worker = self._pick(key) or await self._start()
            if key is not None:
                self._served[key] = worker.process.pid
                while len(self._served) > 1024:
                    del self._served[next(iter(self._served))]
            self.busy += 1
            try:
                kind, value, cpu = await self._call(worker, request)
                self.worst_cpu = max(self.worst_cpu, cpu)
            except BaseException:
                self._discard(worker)
                raise
            finally:
                self.busy -= 1
            if kind == "ok":
                self._release(worker)
                return value
            if kind == "error":
                self._release(worker)
                raise RuntimeError(f"policy check failed in a worker: {value}")
            self._discard(worker)
            self.replaced += 1
            raise TooCostly(kind)

    async def _call(self, worker: _Worker, request: tuple[Any, ...]) -> tuple[str, Any, float]:
        worker.conn.send(request)
        try:
            return await worker.receive(wall_deadline(self.max_cpu_seconds))
        except TimeoutError:
            log.warning("policy worker overran its wall-clock deadline; killed", pid=worker.process.pid)
            return "wall", None, self.max_cpu_seconds
        except (EOFError, OSError):
            code = worker.process.exitcode
            if code is None:
                await worker.reap()
                code = worker.process.exitcode
            if code == -signal.SIGXCPU:  # RLIMIT_CPU: the check never came back to the interpreter
                return "rlimit", None, self.max_cpu_seconds
            raise RuntimeError(f"policy worker died while checking (exit code {code})") from None

    async def _start(self) -> _Worker:
        parent, child = self._mp.Pipe()
        blob = self.scanner() if self.scanner is not None else None
        process = self._mp.Process(target=_serve, args=(child, str(self.path), self.max_cpu_seconds, blob),
                                   name="relay-policy", daemon=True)
        await asyncio.to_thread(process.start)  # the forkserver's first start imports the policy modules
        child.close()
        worker = _Worker(process, parent)
        try:
            kind, _, _ = await worker.receive(START_TIMEOUT)
        except BaseException:
            self._discard(worker)
            raise
        if kind != "ready":
            self._discard(worker)
            raise RuntimeError(f"policy worker failed to start: {kind}")
        return worker

    def _release(self, worker: _Worker) -> None:
        if self.closed:
            self._discard(worker)
        else:
            self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        try:
            task = asyncio.get_running_loop().create_task(worker.reap())
        except RuntimeError:  # no loop (shutdown from synchronous code): the daemon flag reaps it
            return
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def shutdown(self) -> None:
        """Stop idle workers now; busy ones finish their message and are stopped then (reload)."""
        self.closed = True
        while self._idle:
            self._discard(self._idle.pop())

    async def stop(self) -> None:
        """shutdown(), and wait until the stopped workers are gone."""
        self.shutdown()
        if self._reaping:
            await asyncio.gather(*self._reaping, return_exceptions=True)
