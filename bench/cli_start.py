"""How fast `relay` starts: wall time of `relay --help` and of a few subcommands' --help, beside the
bare interpreter's start on the same machine, and what the CLI's own imports cost (-X importtime);
then start-up plus one command on a small store (a read and a write, in a temporary state dir).

    python bench/cli_start.py [--runs 15]

Figures only: nothing passes or fails (tests/integration/test_cli_polish.py checks *what* is
imported, which does not depend on how busy the machine is).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def wall(argv: list[str], runs: int) -> tuple[float, float, float]:
    """Median and best wall time, and median CPU time (user + system: what a busy machine does not
    inflate), of a command, in seconds."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), min(times), statistics.median(cpu)


def import_costs(argv: list[str]) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of every top-level import `argv` makes, largest first."""
    r = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, env=ENV, capture_output=True, text=True)
    out = []
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.split("|")
        if not name.startswith("  "):  # top level only: nested ones are inside their parent's figure
            out.append((int(cumulative), name.strip()))
    return sorted(out, reverse=True)


def store_commands(runs: int) -> None:
    """Start-up plus one command on a store of 2 parties and a thread (made by the CLI itself)."""
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "relay.toml"
        cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{Path(tmp) / "state"}"\n')
        base = [py, "-m", "relay", "--config", str(cfg)]
        for argv in (["party", "add", "--role", "seller", "--email", "s@s.example", "--name", "S", "--ref", "S-1"],
                     ["party", "add", "--role", "buyer", "--email", "b@b.example", "--name", "B"],
                     ["thread", "open", "--buyer", "b@b.example", "--seller", "S-1", "--order", "O-1"]):
            subprocess.run(base + argv, cwd=ROOT, env=ENV, capture_output=True, check=True)
        rows = [("relay party show 1 (a read)", ["party", "show", "1"]),
                ("relay thread show 1 (a read)", ["thread", "show", "1"]),
                ("relay queue list (a read)", ["queue", "list"]),
                ("relay audit verify (a read)", ["audit", "verify"]),
                ("relay party vacation 1 on|off (a write)", ["party", "vacation", "1", "on"])]
        print(f"\n{'start-up + one command':44} {'median ms':>10} {'best ms':>9} {'CPU ms':>8}")
        for label, argv in rows:
            median, best, cpu = wall(base + argv, runs)
            print(f"{label:44} {median * 1000:10.1f} {best * 1000:9.1f} {cpu * 1000:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    py = sys.executable
    rows = [("python3 -c pass (the interpreter alone)", [py, "-c", "pass"]),
            ("relay --help", [py, "-m", "relay", "--help"]),
            ("relay queue list --help", [py, "-m", "relay", "queue", "list", "--help"]),
            ("relay serve --help", [py, "-m", "relay", "serve", "--help"]),
            ("relay config check --help", [py, "-m", "relay", "config", "check", "--help"])]
    print(f"{'command':44} {'median ms':>10} {'best ms':>9} {'CPU ms':>8}")
    for label, argv in rows:
        median, best, cpu = wall(argv, args.runs)
        print(f"{label:44} {median * 1000:10.1f} {best * 1000:9.1f} {cpu * 1000:8.1f}")
    costs = import_costs(["-m", "relay", "--help"])
    relay_us = sum(us for us, name in costs if name.startswith("relay"))
    print(f"\nimports of `relay --help` under relay.*: {relay_us / 1000:.1f} ms (cumulative, -X importtime)")
    print("largest top-level imports:")
    for us, name in costs[:8]:
        print(f"  {us / 1000:8.1f} ms  {name}")
    store_commands(args.runs)


if __name__ == "__main__":
    main()
