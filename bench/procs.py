"""Process-tree accounting from /proc: CPU seconds and resident memory of every process of a server.

Reads nothing but /proc. CPU of a tree is utime+stime of the live processes plus cutime+cstime (the
reaped children), so short-lived Postfix daemons are counted through their master.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

from bench.e2e import peak_rss_mib

_TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(roots: Iterable[int]) -> list[int]:
    """The roots and all their descendants that are alive now."""
    kids = _children()
    out: list[int] = []
    todo = [r for r in roots if os.path.exists(f"/proc/{r}")]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds (user + system) used so far by the trees under `roots`, reaped children included."""
    total = 0
    for pid in tree(roots):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / _TICK


def _field_kib(path: str, name: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(roots: Iterable[int]) -> float:
    """Summed resident set size of the trees under `roots` now (shared pages counted once per process)."""
    return sum(_field_kib(f"/proc/{pid}/status", "VmRSS:") for pid in tree(roots)) / 1024


def pss_mib(roots: Iterable[int]) -> float:
    """Summed proportional set size (shared pages divided among their sharers): the trees' real footprint."""
    return sum(_field_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in tree(roots)) / 1024


class RssSampler:
    """Samples the summed RSS and PSS of a process tree every `interval` seconds and keeps the peaks."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.05) -> None:
        self._roots, self._interval = roots, interval
        self.peak = self.peak_pss = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)

    def sample(self) -> None:
        roots = self._roots()
        now = rss_mib(roots)
        if len(tree(roots)) == 1:  # one process: the kernel's high-water mark misses no spike
            now = max(now, peak_rss_mib(roots[0]))
        self.peak = max(self.peak, now)
        self.peak_pss = max(self.peak_pss, pss_mib(roots))

    async def stop(self) -> float:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.sample()
        return self.peak
