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
