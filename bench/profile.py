"""--profile: py-spy samples the relay during each throughput pass; a raw file per scenario and a summary.

Reads py-spy's collapsed stacks ("frame;frame;… count"). Prints the functions with the most samples
on top of the stack (self) and, for relay/ code, including callees: where to look first.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import Counter
from pathlib import Path

_ENTRY = ("(relay/__main__", "(relay/cli/", "(relay/supervisor", "(relay/app")  # every sample passes them


def available() -> bool:
    return shutil.which("py-spy") is not None


class Profiler:
    def __init__(self, path: Path, pids: list[int]) -> None:
        self.path, self.pids = path, pids
        self._procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        for pid in self.pids:
            self._procs.append(await asyncio.create_subprocess_exec(
                "py-spy", "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--nolineno",
                "--rate", "200", "--format", "raw", "--output", f"{self.path}.{pid}.txt",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
        await asyncio.sleep(0.5)  # py-spy attaches

    async def stop(self) -> str:
        for proc in self._procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            await proc.wait()
        stacks = Counter[str]()
        for f in self.path.parent.glob(f"{self.path.name}.*.txt"):
            for line in f.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if count.isdigit():
                    stacks[stack] += int(count)
        return summarize(stacks)


def summarize(stacks: Counter[str], top: int = 12) -> str:
    total = sum(stacks.values()) or 1
    self_time, inclusive = Counter[str](), Counter[str]()
    for stack, n in stacks.items():
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        self_time[frames[-1]] += n
        for frame in set(frames):
            if "(relay/" in frame and not any(k in frame for k in _ENTRY):
                inclusive[frame] += n
    lines = [f"    {total} samples; self (top of stack):"]
    lines += [f"      {n / total:6.1%}  {f}" for f, n in self_time.most_common(top)]
    lines.append("    relay/ functions including callees:")
    lines += [f"      {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)
