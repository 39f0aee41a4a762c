"""The benchmark harness in smoke mode (`python -m bench --smoke --scenario 5k`), so it cannot rot.

Runs it as a subprocess against a real relay and smarthost sink; asserts it measured and printed
figures (and checked rewriting and DKIM first). No timing thresholds: figures are not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_prints_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--scenario", "5k", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "one message checked (rewritten, DKIM verifies): ok" in done.stdout, done.stdout
    assert "5 KB plain text" in done.stdout and "msgs/s" in done.stdout
    [row] = json.loads(out.read_text())
    assert row["target"] == "relay" and "error" not in row, row
    assert row["accepted"] == row["messages"] == 60 and row["refused"] == 0 and row["complete"], row
    assert row["sink"] >= row["accepted"]
    for figure in ("msgs_per_s", "cpu_per_1000", "peak_rss_mib", "p50_ms", "p99_ms"):
        assert row[figure] > 0, (figure, row)
