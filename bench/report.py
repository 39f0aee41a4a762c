"""Printing the benchmark: the machine, then per scenario one line per target and the relay / peer ratios.

Reads /proc/cpuinfo and the relay's git revision. Ratios are relay ÷ peer for every figure: above 1
is better for messages/s, below 1 is better for CPU, memory and latency.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

_COLS = [("msgs_per_s", "msgs/s", "{:9.1f}"), ("accept_per_s", "accept/s", "{:9.1f}"),
         ("cpu_per_1000", "CPU s/1k", "{:9.2f}"), ("peak_rss_mib", "RSS MiB", "{:8.0f}"),
         ("peak_pss_mib", "PSS MiB", "{:8.0f}"),
         ("p50_ms", "p50 ms", "{:8.2f}"), ("p95_ms", "p95 ms", "{:8.2f}"), ("p99_ms", "p99 ms", "{:8.2f}"),
         ("latency_rate", "@ msgs/s", "{:9.1f}")]

_TITLES = {key: title for key, title, _ in _COLS}


def describe_machine(root: Path) -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "?"
    return (f"machine: {os.cpu_count()} CPUs ({model or platform.machine()}), Python {platform.python_version()},"
            f" relay {rev}")


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    width = len(fmt.format(0.0))
    value = row.get(key)
    return fmt.format(value) if isinstance(value, (int, float)) else "—".rjust(width)


def print_table(rows: list[dict[str, Any]], scenarios: dict[str, Any], *, header: bool) -> None:
    if header:
        print(f"\n{'scenario':28} {'target':14} {'loader':12} {'msgs':>6}"
              + "".join(f" {title:>{len(fmt.format(0.0))}}" for _, title, fmt in _COLS))
    notes = []
    for i, row in enumerate(rows):
        title = scenarios[row["scenario"]].title if i == 0 else ""
        print(f"{title:28} {row['target']:14} {row['loader']:12} {row.get('accepted', 0):>6}"
              + "".join(f" {_cell(row, key, fmt)}" for key, _, fmt in _COLS))
        if isinstance(row.get("server_cpu_per_1000"), float):
            notes.append(f"{row['target']}: CPU s/1k includes the database server's"
                         f" {row['server_cpu_per_1000']:.2f}")
        if row.get("error"):
            notes.append(f"{row['target']}: {row['error']}")
        if row.get("refused") or row.get("latency_refused"):
            notes.append(f"{row['target']}: {row.get('refused', 0)} refused in the throughput pass, "
                         f"{row.get('latency_refused', 0)} in the latency pass, first: {row.get('first_refusal')}")
        if row.get("complete") is False:
            notes.append(f"{row['target']}: not everything reached the sink ({row.get('sink')} of "
                         f"{row.get('accepted')}); msgs/s counts the time until giving up")
        spread = row.get("by_round") or {}
        if row.get("rounds", 1) > 1 and any(spread.values()):
            notes.append(f"{row['target']}: by round, " + "; ".join(
                f"{_TITLES.get(key, key)} " + " / ".join(f"{v:.1f}" for v in values)
                for key, values in spread.items() if values))
    relay = next((r for r in rows if r["target"] == "relay"), None)
    for peer in (r for r in rows if r["target"] != "relay"):
        if relay:
            cells = []
            for key, _, fmt in _COLS[:-1]:
                a, b = relay.get(key), peer.get(key)
                width = len(fmt.format(0.0))
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
                    cells.append(f"{a / b:{width - 1}.2f}x")
                else:
                    cells.append("—".rjust(width))
            print(f"{'':28} {'relay / ' + peer['target']:28}{'':6}" + "".join(f" {c}" for c in cells))
    for note in notes:
        print(f"{'':28} note: {note}")
    for row in rows:
        if row.get("profile"):
            print(f"  profile of the {row['target']}, {scenarios[row['scenario']].title}:\n{row['profile']}")
