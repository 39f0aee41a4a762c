"""Maildir transport: the outbox when no smarthost is configured (delivery.transport = "maildir").

Reads: delivery.maildir (default <state_dir>/outbox). Each message is written to tmp/,
fsynced, and renamed into new/ (atomic; readers never see half a file); the directory
is fsynced after the rename. Return-Path and Delivered-To carry the envelope.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from pathlib import Path

from relay.delivery.transport import DeliveryError


class MaildirTransport:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner-only: it holds real mail
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def _unique(self) -> str:
        now = time.time()
        return f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    def _write(self, envelope_from: str, recipient: str, data: bytes) -> str:
        name = self._unique()
        tmp = self.root / "tmp" / name
        new = self.root / "new" / name
        envelope = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {recipient}\r\n".encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(envelope)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, new)
            dirfd = os.open(self.root / "new", os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DeliveryError(f"maildir write failed: {exc.strerror}", permanent=False) from exc
        return f"maildir {name}"

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> str:
        return await asyncio.to_thread(self._write, envelope_from, recipient, data)

    async def close(self) -> None:
        return None
