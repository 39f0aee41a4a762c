"""The smarthost sinks: a counting sink for the load (Postfix's smtp-sink -c, or a Python one) and a capture sink.

Reads nothing. The counting sink runs in its own process and reports "mesg=N" after every DATA;
the capture sink keeps the raw messages it receives, for checking rewriting and DKIM before a run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

_PY_SINK = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
count = 0
class H:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        sys.stdout.write(f"mesg={count}\\r"); sys.stdout.flush()
        return "250 2.0.0 Ok"
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(H(), data_size_limit=None), "127.0.0.1", int(sys.argv[1]), backlog=256)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def smtp_sink_path() -> str | None:
    found = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    return found if os.path.exists(found) else None


class CountingSink:
    """An SMTP sink on 127.0.0.1:port in a child process; `count` is the number of messages it has taken."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0
        self.kind = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sink = smtp_sink_path()
        if sink:
            args = [sink, "-c"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [f"127.0.0.1:{self.port}", "256"]
            self.kind = "smtp-sink"
        else:
            args = [sys.executable, "-c", _PY_SINK, str(self.port)]
            self.kind = "python sink"
        self._proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                          stderr=asyncio.subprocess.DEVNULL)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await wait_port(self.port)

    async def _read(self) -> None:
        assert self._proc and self._proc.stdout
        tail = b""
        while chunk := await self._proc.stdout.read(65536):
            tail = (tail + chunk)[-200:]
            found = re.findall(rb"mesg=(\d+)", tail)
            if found:
                self.count = int(found[-1])

    async def stop(self) -> None:
        if self._proc and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        if self._reader:
            await self._reader


class CaptureSink:
    """An in-process SMTP sink that keeps (envelope sender, recipients, raw message) of what it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, list[str], bytes]] = []
        self._server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), bytes(raw)))
        return "250 2.0.0 Ok"

    async def start(self) -> None:
        handler: Any = self
        self._server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(handler, data_size_limit=None), "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            try:  # Python 3.12 waits for open connections (a relay may keep one pooled)
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except TimeoutError:
                pass


async def wait_port(port: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s") from None
            await asyncio.sleep(0.05)
