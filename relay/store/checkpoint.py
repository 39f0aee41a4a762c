"""WAL checkpoints beside the writer, not inside its commits.

By default SQLite checkpoints in the connection that commits, once the WAL holds 1,000 pages: that
commit then copies the pages into the database file and fsyncs it before the writer can take its
next group, and every message of that group waits for it (on the bench's disk those fsyncs were the
slowest ones, up to 70 ms). The store's writer does not checkpoint (wal_autocheckpoint=0); this
thread does, on its own connection, every `interval` seconds, PASSIVE: it never waits for a reader
or a writer, and a writer never waits for it. With several worker processes each runs one; when one
is under way, another's returns at once. Fewer, larger checkpoints also write a page changed by
many commits once.

Reads: store.checkpoint_interval.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import structlog

log = structlog.get_logger("relay.store")


class Checkpointer:
    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        #: PASSIVE checkpoints run, and frames copied into the database file (read by the tests).
        self.runs = 0
        self.frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for a checkpoint under way (the database is consistent either way)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # the checkpoint fsyncs the database file before the WAL may be written over from its start:
        # said here, not left to how SQLite was built
        conn.execute("PRAGMA synchronous=FULL")
        failing = False
        try:
            while not self._stop.wait(self.interval):
                try:
                    _busy, _log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # disk full, I/O error: the WAL keeps everything meanwhile
                    if not failing:
                        log.error("WAL checkpoint failed; retrying", error=str(exc))
                    failing = True
                    continue
                if failing:
                    log.info("WAL checkpoint works again")
                failing = False
                self.runs += 1
                self.frames += max(0, copied)
        finally:
            conn.close()
