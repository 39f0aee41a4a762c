"""Connection and message-rate counters of the whole relay on this machine, shared by its workers.

Reads nothing from config: limits.py passes smtp.max_connections, smtp.max_connections_per_ip and
smtp.max_messages_per_ip_per_minute at each call (so a reload applies at once). The supervisor
makes one table before it forks (relay/supervisor.py); each worker counts in its own column, so a
worker that dies is cleared with clear_slot() and its siblings' counts stay right.

`Counters` is the interface the SMTP server uses; `SharedCounters` is the one-machine backend: a
fixed hash table in a memfd mapped by every worker, each update under a POSIX record lock on that
memfd (fcntl: ~2 µs a lock and unlock, and the kernel drops it if its holder dies — a semaphore
would be held forever by a worker killed inside). Measured: a SQLite upsert in its own
transaction costs ~25 µs even unsynced, and would queue behind the store's writer. Several nodes
(PostgreSQL) would provide another class with the same methods, backed by the store.

An entry is one client address: its open connections per worker and its MAIL commands in 60
one-second buckets (a sliding minute, to the second). An address seen neither in a connection
now nor in a message for a minute is forgotten, its entry reused. A table too full to find room
within PROBE entries lets the connection or message through uncounted (and says so in the log):
the limits protect against floods from a few addresses, and a flood from as many addresses as
the table has entries is beyond what a per-address limit can stop anyway.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
import tempfile
import time
import zlib
from typing import Protocol

import structlog

log = structlog.get_logger("relay.smtp")

#: Entries of the table (distinct addresses with a connection open now or a message in the last minute).
CAPACITY = 16384
#: Entries looked at for one address before the table counts as full for it.
PROBE = 64
WINDOW = 60  # seconds of the message-rate window, one bucket each

_HEAD = struct.Struct("<16sIxxxxq")  # address key, used flag, second of the newest bucket
_BUCKETS = struct.Struct(f"<{WINDOW}I")
_TOTAL = struct.Struct("<i")


class Counters(Protocol):
    """What the SMTP server asks of the relay-wide counters (one machine or several)."""

    def connect(self, ip: str, max_total: int, max_per_ip: int | None) -> str | None:
        """Count a new connection from `ip`, unless that would go over a limit: None when counted,
        "total" or "per_ip" (not counted) otherwise. max_per_ip None: exempt from the per-address limit
        (still counted)."""
        ...

    def disconnect(self, ip: str) -> None:
        """A connection counted by connect(ip, …) or move(…, ip, …) ended."""
        ...

    def move(self, old_ip: str, new_ip: str, max_per_ip: int | None) -> bool:
        """Count an open connection under `new_ip` instead of `old_ip` (PROXY protocol: the client
        behind the load balancer); False (still under `old_ip`) when `new_ip` is at its limit."""
        ...

    def allow_message(self, ip: str, limit: int, now: float | None = None) -> bool:
        """Count one MAIL from `ip`; False (not counted) when `limit` were counted in the last minute."""
        ...

    def connections(self, ip: str) -> int:
        """Open connections from `ip` in all workers."""
        ...

    def total(self) -> int:
        """Open connections in all workers."""
        ...


def _key(ip: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, ip).rjust(16, b"\0")
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, ip.partition("%")[0])
    except OSError:  # not an address ("?", a UNIX socket): a key of its own that is no address
        return b"\xff" + zlib.crc32(ip.encode()).to_bytes(4, "big").rjust(15, b"\xff")


class SharedCounters:
    """The counters in shared memory, one column per worker slot (see the module docstring)."""

    def __init__(self, slots: int = 1, capacity: int = CAPACITY) -> None:
        self.slots, self.capacity = slots, capacity
        self.slot = 0  # this process's column: set in each worker after the fork
        self._slots = struct.Struct(f"<{slots}i")
        self._entry = _HEAD.size + self._slots.size + _BUCKETS.size
        self._base = _TOTAL.size * slots  # the per-slot totals come first
        size = self._base + self._entry * capacity
        # Linux: an anonymous memory file; elsewhere (one process only) an unlinked temporary file
        self._file = None if hasattr(os, "memfd_create") else tempfile.TemporaryFile()
        self._fd = self._file.fileno() if self._file is not None else os.memfd_create("relay-counters",
                                                                                          os.MFD_CLOEXEC)
        os.ftruncate(self._fd, size)  # zero-filled; pages are only backed once touched
        self._mem = mmap.mmap(self._fd, size)
        self._full_warned = 0.0

    # -- the lock ----------------------------------------------------------------------------
    def __enter__(self) -> SharedCounters:
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)

    # -- the table ---------------------------------------------------------------------------
    def _find(self, key: bytes, now_s: int, create: bool) -> int:
        """Offset of `key`'s entry (made when `create`), or -1."""
        start = zlib.crc32(key) % self.capacity
        free = -1
        for i in range(min(PROBE, self.capacity)):
            off = self._base + ((start + i) % self.capacity) * self._entry
            k, used, newest = _HEAD.unpack_from(self._mem, off)
            if not used:  # never used: the key is not further on
                if free < 0:
                    free = off
                break
            if k == key:
                return off
            if free < 0 and now_s - newest >= WINDOW and not any(self._slots.unpack_from(self._mem, off + _HEAD.size)):
                free = off  # idle for a minute: may be taken, but the key may still be further on
        if not create or free < 0:
            if create:
                self._warn_full()
            return -1
        self._mem[free:free + self._entry] = bytes(self._entry)
        _HEAD.pack_into(self._mem, free, key, 1, now_s - WINDOW)
        return free

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._full_warned > 60:
            self._full_warned = now
            log.warning("connection/rate table full: an address goes uncounted", capacity=self.capacity)

    def _add(self, off: int, delta: int) -> None:
        at = off + _HEAD.size + _TOTAL.size * self.slot
        _TOTAL.pack_into(self._mem, at, _TOTAL.unpack_from(self._mem, at)[0] + delta)

    def _add_total(self, delta: int) -> None:
        at = _TOTAL.size * self.slot
        _TOTAL.pack_into(self._mem, at, _TOTAL.unpack_from(self._mem, at)[0] + delta)

    def _count(self, off: int) -> int:
        return sum(self._slots.unpack_from(self._mem, off + _HEAD.size))

    def _total(self) -> int:
        return sum(self._slots.unpack_from(self._mem, 0))

    # -- Counters ----------------------------------------------------------------------------
    def connect(self, ip: str, max_total: int, max_per_ip: int | None) -> str | None:
        key, now_s = _key(ip), int(time.monotonic())
        with self:
            if self._total() >= max_total:
                return "total"
            off = self._find(key, now_s, create=True)
            if off >= 0 and max_per_ip is not None and self._count(off) >= max_per_ip:
                return "per_ip"
            self._add_total(1)
            if off >= 0:
                self._add(off, 1)
            return None

    def disconnect(self, ip: str) -> None:
        with self:
            self._add_total(-1)
            self._uncount(_key(ip))

    def _uncount(self, key: bytes) -> None:
        off = self._find(key, int(time.monotonic()), create=False)
        if off >= 0 and self._count(off) > 0:
            self._add(off, -1)

    def move(self, old_ip: str, new_ip: str, max_per_ip: int | None) -> bool:
        key, now_s = _key(new_ip), int(time.monotonic())
        with self:
            off = self._find(key, now_s, create=True)
            if off >= 0 and max_per_ip is not None and self._count(off) >= max_per_ip:
                return False
            self._uncount(_key(old_ip))
            if off >= 0:
                self._add(off, 1)
            return True

    def allow_message(self, ip: str, limit: int, now: float | None = None) -> bool:
        key = _key(ip)
        now_s = int(time.monotonic() if now is None else now)
        with self:
            off = self._find(key, now_s, create=True)
            if off < 0:
                return True
            at = off + _HEAD.size + self._slots.size
            k, used, newest = _HEAD.unpack_from(self._mem, off)
            buckets = list(_BUCKETS.unpack_from(self._mem, at))
            if now_s - newest >= WINDOW:
                buckets = [0] * WINDOW
            else:
                for second in range(newest + 1, now_s + 1):  # the seconds since the newest bucket: empty
                    buckets[second % WINDOW] = 0
            allowed = sum(buckets) < limit
            if allowed:
                buckets[now_s % WINDOW] += 1
            if now_s > newest:
                _HEAD.pack_into(self._mem, off, k, used, now_s)
            _BUCKETS.pack_into(self._mem, at, *buckets)
            return allowed

    def connections(self, ip: str) -> int:
        with self:
            off = self._find(_key(ip), int(time.monotonic()), create=False)
            return self._count(off) if off >= 0 else 0

    def total(self) -> int:
        with self:
            return self._total()

    # -- the supervisor ------------------------------------------------------------------------
    def clear_slot(self, slot: int) -> None:
        """The worker in `slot` is gone: its connections are closed (its messages stay counted)."""
        with self:
            _TOTAL.pack_into(self._mem, _TOTAL.size * slot, 0)
            for i in range(self.capacity):
                at = self._base + i * self._entry + _HEAD.size + _TOTAL.size * slot
                if self._mem[at:at + _TOTAL.size] != b"\0\0\0\0":
                    _TOTAL.pack_into(self._mem, at, 0)
