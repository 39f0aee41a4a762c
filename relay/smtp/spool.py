"""Spool files: DATA beyond smtp.spool_threshold goes to disk while it is received, not to memory.

Reads: relay.state_dir (files live in <state_dir>/spool, 0700; each file 0600, named
<pid>-<random> so a worker's leftovers can be told from a live sibling's). A spool file lives
from the moment DATA outgrows the threshold until the reply to DATA: the store commits the
message itself before 250, so nothing here is fsynced or kept. Leftovers of a crash are
removed at start (clean()). Replies: none (the server answers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import structlog

from relay.delivery.lease import process_alive
from relay.scan import find_rare

log = structlog.get_logger("relay.smtp")

#: RFC 5321 §4.5.2: a line starting with a dot was sent with one more dot.
STUFFED = b"\r\n."


def safe_cut(buf: bytearray) -> int:
    """Where buf can be cut for the spool file: the last 4 bytes stay (an end-of-data line split
    across reads must still be found) and no CRLF-dot straddles the cut (it must be unstuffed)."""
    cut = len(buf) - 4
    if buf[cut - 2 : cut] == b"\r\n":
        return cut - 2
    if buf[cut - 1 : cut] == b"\r":
        return cut - 1
    return cut


class SpoolFile:
    """One message being written to disk, unstuffed as it goes."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "wb")
        self.size = 0

    def spill(self, buf: bytearray, skip: int = 0) -> bytearray:
        """Write what can be written of the DATA read so far (buf, more than 8 bytes, of which
        buf[:skip] is context only); return the rest as a fresh small buffer (deleting from
        the front of the big one would keep its allocation)."""
        cut = safe_cut(buf)
        self.write_unstuffed(buf, cut, skip)
        return buf[cut:]

    def write_unstuffed(self, buf: bytearray, end: int, skip: int = 0) -> None:
        """Write buf[skip:end] without the stuffed dots of its lines (buf[:skip] is context only).

        The caller ends the block where no CRLF-dot can straddle it (see safe_cut).
        """
        out_from, start = skip, 0
        with memoryview(buf) as view:
            while True:
                i = find_rare(buf, STUFFED, b".", start, end)  # memchr hops: base64 has no "."
                if i < 0:
                    break
                self._write(view[out_from : i + 2])
                out_from = start = i + 3
            self._write(view[out_from:end])

    def _write(self, part: memoryview) -> None:
        if part:
            self._file.write(part)
            self.size += len(part)

    def finish(self) -> None:
        self._file.close()

    def read(self) -> bytes:
        """The whole message as one bytes object (the pipeline's checks need it in memory)."""
        self._file.close()
        return self.path.read_bytes()

    def remove(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def create(self) -> SpoolFile:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return SpoolFile(self.directory)

    def clean(self, *, only_dead: bool = False) -> int:
        """Remove spool files left by a crash: all of them, or (a worker among siblings sharing the
        directory) only those whose process is gone. Returns how many were removed."""
        removed = 0
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return 0
        for path in entries:
            pid, _, _ = path.name.partition("-")
            if only_dead and pid.isdigit() and process_alive(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        if removed:
            log.info("removed leftover spool files", count=removed, directory=str(self.directory))
        return removed


