"""Several worker processes on one machine (smtp.workers = N): a small supervisor.

Reads: smtp.workers. Before any worker starts, the supervisor returns rows a crash left
'sending' to the queue and makes sure the store and the DKIM key exist; then it forks N
workers, each a full Relay (accepting from listening sockets the supervisor bound once, taking
turns by their open sessions: relay/smtp/shared.py; its own group-committing
writer — SQLite serialises their transactions — and its own delivery worker, claiming
rows under BEGIN IMMEDIATE so no row is sent twice). They share the connection/rate counters
(relay/smtp/counters.py), the HTTP listener, and their metrics files (relay/metrics.py), so limits
and /metrics are the relay's, not one process's. A worker that dies is replaced after its own
'sending' rows are returned to the queue. SIGTERM/SIGINT/SIGHUP are passed on.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from relay.app import Relay, check_store_keys, keys_in_store, load_signer, migrate_store
from relay.config import ListenError, Settings
from relay.delivery import lease
from relay.metrics import Metrics, reset_worker_files, use_worker_files, worker_gone
from relay.rules import tokens
from relay.smtp import shared
from relay.smtp.spool import Spool
from relay.store.errors import StoreUnavailable
from relay.store.open import open_store, uses_postgresql
from relay.systemd import Notifier

log = structlog.get_logger("relay.supervisor")

RESTART_DELAY = 1.0
#: A worker's exit status for "cannot bind a listen address" (worker 0's http.listen): replacing
#: it would fail the same way forever, so the supervisor stops the others and exits 1.
EX_CANNOT_LISTEN = 75


def _recover(settings: Settings, pid: int | None) -> int:
    """The rows of dead worker `pid` (its nonce unknown: every owner of that pid here), or with None
    before any worker runs, those of gone processes of this node (relay.node) and leases that ran out. Through
    the store the workers use (a short-lived one: the supervisor runs no event loop of its own)."""
    return asyncio.run(_recover_rows(settings, pid))


async def _recover_rows(settings: Settings, pid: int | None) -> int:
    store = open_store(settings, pool_size=1)
    await store.open()
    try:
        if pid is None:
            return await store.queue.reclaim(time.time(), settings.relay.node, lease.process_alive)
        return await store.queue.recover(time.time(), lease.process_prefix(settings.relay.node, pid), prefix=True)
    except StoreUnavailable:
        raise
    except Exception:  # the unit's own failure: nothing returned (the sweepers take the rows back later)
        return 0
    finally:
        await store.close()


def _prewarm() -> None:
    """Load, before the fork, what each worker would otherwise load for itself — the TLD list, the
    PDF, image, QR-code and file-type readers — and freeze it out of the collector's sight, so that
    the workers share those pages instead of a copy each (2 workers under 50 × 10 MB: peak PSS of
    all processes 293 → 256 MiB)."""
    import filetype  # noqa: F401
    import pypdf  # noqa: F401
    import zxingcpp  # noqa: F401
    from PIL import Image  # noqa: F401

    from relay.policy.links import tlds

    tlds()
    gc.collect()
    gc.freeze()


_PR_SET_PDEATHSIG = 1


def _die_with(supervisor: int) -> None:
    """In the child (Linux): SIGTERM when the supervisor dies, even by SIGKILL, so that a worker
    does not live on alone with the port and the store; it stops as on any SIGTERM, finishing the
    transactions in progress. A supervisor already gone before this: the worker does not start."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:
        os._exit(0)


def metrics_dir(settings: Settings) -> Path:
    return settings.relay.state_dir / "metrics"


def _run_worker(settings: Settings, config_path: Path | None) -> None:
    """In the child: one Relay on a fresh event loop; never returns."""
    code = 0
    try:
        # Only the supervisor talks to systemd (NotifyAccess=main): workers get no notifier.
        os.environ.pop("NOTIFY_SOCKET", None)
        use_worker_files(metrics_dir(settings))  # whichever worker serves /metrics sums them all
        relay = Relay(settings, recover_queue=False, config_path=config_path,
                      metrics=Metrics(worker_files=metrics_dir(settings)))
        asyncio.run(relay.run())
    except ListenError as exc:
        print(f"relay: {exc}", file=sys.stderr, flush=True)
        code = EX_CANNOT_LISTEN
    except BaseException:  # a crash must end only this process, visibly
        log.exception("worker crashed")
        code = 1
    finally:
        os._exit(code)


class Supervisor:
    def __init__(self, settings: Settings, config_path: Path | None = None,
                 fork: Callable[[], int] = os.fork) -> None:
        self.settings = settings
        self.config_path = config_path
        self.fork = fork
        self.children: dict[int, int] = {}  # pid → slot
        self.stopping = False
        self.failed = False
        self.notifier = Notifier()
        self._ready = False
        self.shared: shared.Shared | None = None

    def _spawn(self, slot: int) -> None:
        supervisor = os.getpid()
        pid = self.fork()
        if pid == 0:
            if shared.SHARED is not None:
                shared.SHARED.slot = shared.SHARED.counters.slot = slot
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            _die_with(supervisor)
            _run_worker(self.settings, self.config_path)
        self.children[pid] = slot
        log.info("worker started", pid=pid, slot=slot)

    def _forward(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            self.notifier.stopping()
            if self.shared is not None:
                # Once the workers have closed theirs too, new connections are refused, not queued
                self.shared.close()
        elif signum == signal.SIGHUP:
            self.notifier.status("workers reloading")
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        s = self.settings
        s.relay.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not uses_postgresql(s):  # PostgreSQL: the first store opened (_recover's) migrates
            migrate_store(s.db_path)
        if s.dkim.source == "file":
            load_signer(s, create=True)  # create the key once, not in N racing workers
        Spool(s.spool_path).clean()  # no worker runs yet: every spool file is a leftover
        recovered = _recover(s, None)
        if recovered:
            log.warning("queue rows were in flight at the last stop; retrying them", count=recovered)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._forward)
        _prewarm()
        reset_worker_files(metrics_dir(s))
        shared.SHARED = self.shared = shared.bind_all(s)
        for slot in range(s.smtp.workers):
            self._spawn(slot)
        last_ping = 0.0
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:  # nobody exited: tell systemd how we are, then look again shortly
                if not self._ready and not self.stopping and self.shared is not None and self.shared.balance.serving():
                    self._ready = True
                    self.notifier.ready(f"{len(self.children)} workers accepting mail")
                interval = self.notifier.watchdog_interval
                if interval and time.monotonic() - last_ping >= interval:
                    self.notifier.notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                time.sleep(0.2)
                continue
            slot = self.children.pop(pid, -1)
            if slot < 0:
                continue
            if self.shared is not None:
                self.shared.balance.clear(slot)  # its siblings stop leaving connections to it
                self.shared.counters.clear_slot(slot)  # its connections are closed
            worker_gone(metrics_dir(s), pid)
            if self.stopping:
                log.info("worker stopped", pid=pid, status=status)
                continue
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EX_CANNOT_LISTEN:
                self.failed = True  # it said which address on stderr
                self._forward(signal.SIGTERM, None)
                continue
            returned = _recover(s, pid)
            log.error("worker died; replacing it", pid=pid, status=status, rows_returned=returned)
            time.sleep(RESTART_DELAY)
            if not self.stopping:
                self._spawn(slot)
        if self.shared is not None:
            self.shared.close()
        log.info("supervisor stopped")
        return 1 if self.failed else 0


#: glibc mallopt(): allocations from this size on are mmapped and given back to the kernel when
#: freed. glibc's default adapts the threshold upwards after the first large free (up to 32 MiB),
#: after which the megabyte-sized buffers of large messages come from per-thread arenas that keep
#: them: bench/inflight_memory.py --pdf, 50 x 10 MB: peak RSS 278 MiB with the default, 165 MiB at
#: 256 KiB. Not 256 KiB itself: asyncio reads a socket into a fresh 256 KiB buffer (then shrinks it),
#: which at that threshold is an mmap and a munmap per read — 15% more CPU per 5 KB message.
MMAP_THRESHOLD = 512 * 1024
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Large buffers straight from and back to the kernel (glibc only; elsewhere nothing changes)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def serve(settings: Settings, config_path: Path | None = None) -> int:
    tune_malloc()  # before the workers fork: they inherit it
    # Before any worker: N workers creating it at once could read each other's empty file. Raises
    # ConfigError (exit 78) on a key too short to be a secret.
    if settings.rules.unsubscribe_secret_source == "file":
        tokens.ensure_secret(settings.relay.state_dir)
    if keys_in_store(settings):
        # The KEK and the keys taken from the store, checked once before any worker: a node without
        # the KEK (or the keys) stops here with exit 78 and one line saying what is missing.
        asyncio.run(check_store_keys(settings))
    if settings.smtp.workers <= 1:
        asyncio.run(Relay(settings, config_path=config_path).run())
        return 0
    if sys.platform != "linux":
        raise SystemExit("smtp.workers > 1 needs Linux")
    return Supervisor(settings, config_path).run()
