"""Load generators: Postfix's smtp-source, or an asyncio SMTP client with the same options that also times DATA→250.

Reads nothing. Both send `count` messages over `sessions` parallel sessions, a new connection per
message unless `reuse`; the Python client can pace itself to a given rate (for the latency pass).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.messages import Message


@dataclass
class LoadResult:
    loader: str
    accepted: int = 0
    refused: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_refusal: str = ""


def smtp_source_path() -> str | None:
    found = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    return found if os.path.exists(found) else None


async def smtp_source(port: int, message: Message, count: int, sessions: int, *, reuse: bool,
                      size: int | None, file: Path | None) -> LoadResult:
    """Run smtp-source: its own unique messages of `size` payload bytes (-l), or the same `file` each time (-F)."""
    exe = smtp_source_path()
    assert exe, "smtp-source is not installed"
    args = [exe, "-s", str(sessions), "-m", str(count), "-M", "bench.example",
            "-f", message.sender, "-t", message.recipients[0]] + (["-d"] if reuse else [])
    args += ["-F", str(file)] if file else ["-l", str(size), "-S", "bench"]
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*args, f"127.0.0.1:{port}", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    result = LoadResult("smtp-source", seconds=time.perf_counter() - t0)
    if proc.returncode == 0:
        result.accepted = count
    else:
        result.refused = count
        result.first_refusal = err.decode(errors="replace").strip().splitlines()[-1] if err else f"exit {proc.returncode}"
    return result


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pipelining = False

    async def reply(self) -> bytes:
        lines = [await self.reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(await self.reader.readline())
        if not lines[-1]:
            raise ConnectionError("connection closed")
        return b"".join(lines)

    def close(self) -> None:
        self.writer.close()


async def _connect(port: int) -> _Conn:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    conn = _Conn(reader, writer)
    greeting = await conn.reply()
    if not greeting.startswith(b"220"):
        raise ConnectionError(greeting.decode(errors="replace").strip())
    writer.write(b"EHLO bench.example\r\n")
    ehlo = await conn.reply()
    conn.pipelining = b"PIPELINING" in ehlo.upper()
    return conn


async def _transaction(conn: _Conn, message: Message, n: int, result: LoadResult) -> bool:
    """One MAIL/RCPT/DATA; True when the message was accepted. Refusals are counted, not raised."""
    cmds = [f"MAIL FROM:<{message.sender}>\r\n".encode()] + [f"RCPT TO:<{r}>\r\n".encode() for r in message.recipients]
    cmds.append(b"DATA\r\n")
    replies = []
    if conn.pipelining:
        conn.writer.write(b"".join(cmds))
        replies = [await conn.reply() for _ in cmds]
    else:
        for c in cmds:
            conn.writer.write(c)
            replies.append(await conn.reply())
            if replies[-1][:1] not in (b"2", b"3"):
                break
    if not (all(r.startswith(b"250") for r in replies[:-1]) and replies[-1].startswith(b"354")):
        result.refused += 1
        result.first_refusal = result.first_refusal or b" / ".join(r.strip() for r in replies).decode(errors="replace")
        if replies[-1].startswith(b"354"):  # a recipient was refused but DATA was not: end it empty
            conn.writer.write(b".\r\n")
            await conn.reply()
        conn.writer.write(b"RSET\r\n")
        await conn.reply()
        return False
    conn.writer.write(message.wire(n))
    await conn.writer.drain()
    t0 = time.perf_counter()
    conn.writer.write(b".\r\n")
    answer = await conn.reply()
    result.latencies.append(time.perf_counter() - t0)
    if answer.startswith(b"250"):
        result.accepted += 1
        return True
    result.refused += 1
    result.first_refusal = result.first_refusal or answer.decode(errors="replace").strip()
    return False


async def python_client(port: int, message: Message, count: int, sessions: int, *, reuse: bool,
                        rate: float | None = None, first: int = 0) -> LoadResult:
    """Send `count` unique copies of `message` (numbered from `first`), optionally paced to `rate` msgs/s."""
    result = LoadResult("python client")
    numbers = itertools.count()
    t0 = time.perf_counter()

    async def session() -> None:
        conn: _Conn | None = None
        while (i := next(numbers)) < count:
            if rate:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            try:
                if conn is None:
                    conn = await _connect(port)
                await _transaction(conn, message, first + i, result)
                if not reuse:
                    conn.writer.write(b"QUIT\r\n")
                    await conn.reply()
                    conn.close()
                    conn = None
            except (OSError, ConnectionError) as e:
                result.refused += 1
                result.first_refusal = result.first_refusal or f"connection: {e}"
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.writer.write(b"QUIT\r\n")
            conn.close()

    await asyncio.gather(*(session() for _ in range(sessions)))
    result.seconds = time.perf_counter() - t0
    return result
