"""The benchmark harness in smoke mode (`python -m bench --smoke --scenario 5k`), so it cannot rot.

Runs it as a subprocess against a real relay and smarthost sink; asserts it measured and printed
figures (and checked rewriting and DKIM first). No timing thresholds: figures are not a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_prints_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    bench = subprocess.Popen([sys.executable, "-m", "bench", "--smoke", "--scenario", "5k", "--json", str(out)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        stdout, stderr = bench.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(bench.pid, signal.SIGKILL)  # the bench and the relay and sink it started
        stdout, stderr = bench.communicate()
        raise AssertionError(f"the smoke bench did not finish in 240 s: {stdout[-1500:]} {stderr[-1500:]}") from None
    assert bench.returncode == 0, stderr[-2000:]
    assert "one message checked (rewritten, DKIM verifies): ok" in stdout, stdout
    assert "5 KB plain text" in stdout and "msgs/s" in stdout
    [row] = json.loads(out.read_text())
    assert row["target"] == "relay" and "error" not in row, row
    assert row["accepted"] == row["messages"] == 60 and row["refused"] == 0 and row["complete"], row
    assert row["sink"] >= row["accepted"]
    for figure in ("msgs_per_s", "cpu_per_1000", "peak_rss_mib", "p50_ms", "p99_ms"):
        assert row[figure] > 0, (figure, row)
