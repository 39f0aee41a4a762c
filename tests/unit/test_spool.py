"""Spool files: what reaches the disk is the unstuffed message, wherever the reads split the data;
leftovers are removed at start (all, or those of processes that are gone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.smtp.server import END_OF_DATA, unstuff
from relay.smtp.spool import Spool

# As sent (dot-stuffed): dots at the start of the message and of lines, a line of one dot
# ("..") and of two ("..."), runs of CR LF, and a last line that starts with a dot.
WIRE = (b"..starts with a dot\r\n...two dots\r\nplain\r\n..\r\n\r\n..x\r\n\r\n\r\n"
        b"...\r\nend .\r\n..y")


def spool_in_reads(tmp_path: Path, wire: bytes, reads: list[int]) -> bytes:
    """Feed `wire` + end-of-data in reads of the given sizes through the server's spill steps."""
    data = wire + END_OF_DATA
    spool = Spool(tmp_path / "spool").create()
    buf, skip, pos = bytearray(b"\r\n"), 2, 0
    for size in [*reads, len(data)]:
        if buf.find(END_OF_DATA) >= 0:
            break
        if len(buf) > 2 * len(END_OF_DATA):
            buf, skip = spool.spill(buf, skip), 0
        buf += data[pos : pos + size]
        pos += size
    idx = buf.find(END_OF_DATA)
    spool.write_unstuffed(buf, idx + 2, skip)
    out = spool.read()
    spool.remove()
    return out


def test_every_split_into_two_reads_gives_the_unstuffed_message(tmp_path: Path) -> None:
    expected = unstuff(WIRE + b"\r\n")
    for first in range(1, len(WIRE) + len(END_OF_DATA)):
        assert spool_in_reads(tmp_path, WIRE, [first]) == expected, first


def test_reads_of_one_to_seven_bytes_give_the_unstuffed_message(tmp_path: Path) -> None:
    expected = unstuff(WIRE + b"\r\n")
    for size in range(1, 8):
        assert spool_in_reads(tmp_path, WIRE, [size] * 200) == expected, size


def test_spool_files_are_private_and_unique(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    a, b = spool.create(), spool.create()
    assert a.path != b.path
    assert a.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    a.remove()
    a.remove()  # twice is harmless (refusal, then the end of DATA)
    b.remove()
    assert list((tmp_path / "spool").iterdir()) == []


def test_clean_removes_every_leftover_or_only_those_of_dead_processes(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    mine, dead, odd = directory / f"{os.getpid()}-aa", directory / f"{gone}-bb", directory / "stray"
    for path in (mine, dead, odd):
        path.write_bytes(b"x")
    assert Spool(directory).clean(only_dead=True) == 2
    assert [p.name for p in directory.iterdir()] == [mine.name]
    assert Spool(directory).clean() == 1
    assert Spool(tmp_path / "absent").clean() == 0


@pytest.mark.parametrize("wire", [b"", b"..", b"\r\n", b"x" * 100])
def test_short_messages(tmp_path: Path, wire: bytes) -> None:
    assert spool_in_reads(tmp_path, wire, [3] * 50) == unstuff(wire + b"\r\n")


class _ChunkReader:
    """Hands the data out in reads of exactly `size` bytes (what a fast client gets)."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    async def read(self, _n: int) -> bytes:
        chunk, self.data = self.data[: self.size], self.data[self.size :]
        return chunk


async def test_a_full_first_read_past_the_threshold_spools_without_asking_for_room(tmp_path: Path) -> None:
    """The in-flight budget is taken by a message being checked; a DATA whose first read is a whole
    chunk (past the spool threshold) must go to its spool file, not be refused 452 for room."""
    from aiosmtpd.smtp import Envelope

    from relay.smtp.limits import DEFAULT_RESERVATION, MEMORY_FACTOR, Limits
    from relay.smtp.server import CHUNK, RelaySMTP
    from relay.smtp.spool import SpoolFile

    limits = Limits(10, 10, 10.0, max_inflight=8 << 20)
    limits.spool_threshold = 128 * 1024
    smtp = RelaySMTP(object(), limits=limits, hostname="relay.example", spool=Spool(tmp_path / "spool"))
    smtp.envelope = Envelope()
    limits.hold(12 << 20)  # a spooled message in its slot: over the bound, never refused
    body = b"x" * 76 + b"\r\n"
    smtp._reader = _ChunkReader(body * (3 * CHUNK // len(body)) + END_OF_DATA, CHUNK)  # type: ignore[assignment]
    smtp._hold_exactly(DEFAULT_RESERVATION * MEMORY_FACTOR)  # what DATA without SIZE= reserved
    content, refusal, _ = await smtp._read_data()
    assert refusal is None
    assert isinstance(content, SpoolFile)
    content.remove()


def test_unstuff_removes_exactly_one_leading_dot_per_line() -> None:
    assert unstuff(WIRE + b"\r\n") == (b".starts with a dot\r\n..two dots\r\nplain\r\n.\r\n\r\n.x\r\n\r\n\r\n"
                                       b"..\r\nend .\r\n.y\r\n")
    import random

    rnd = random.Random(6)
    pieces = [b".", b"..", b"\r\n", b"\r", b"\n", b"x", b"ab", b" ", b"\r\n."]
    for _ in range(3000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30)))
        reference = data[1:] if data.startswith(b".") else data
        assert unstuff(data) == reference.replace(b"\r\n.", b"\r\n"), data
