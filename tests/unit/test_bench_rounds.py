"""bench: the median row keeps every round's msgs/s and p99, and the report prints them beside the
median, so a reader sees when one noisy round decided a figure."""

from __future__ import annotations

from typing import Any

import pytest

from bench.messages import SCENARIOS
from bench.report import print_table
from bench.run import median_of


def _run(rate: float, p99: float) -> dict[str, Any]:
    return {"scenario": "5k", "target": "relay", "loader": "python", "accepted": 10,
            "msgs_per_s": rate, "p99_ms": p99, "cpu_per_1000": 4.0}


def test_the_median_row_keeps_each_round() -> None:
    row = median_of([_run(400.0, 30.0), _run(380.0, 250.0), _run(410.0, 40.0)])
    assert row["msgs_per_s"] == 400.0 and row["p99_ms"] == 40.0 and row["rounds"] == 3
    assert row["by_round"] == {"msgs_per_s": [400.0, 380.0, 410.0], "p99_ms": [30.0, 250.0, 40.0]}


@pytest.mark.parametrize("runs, printed", [
    ([_run(400.0, 30.0), _run(380.0, 250.0)], "relay: by round, msgs/s 400.0 / 380.0; p99 ms 30.0 / 250.0"),
    ([_run(400.0, 30.0)], None),  # one round: nothing beside the median
])
def test_the_report_prints_the_rounds(runs: list[dict[str, Any]], printed: str | None,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    print_table([median_of(runs)], SCENARIOS, header=False)
    out = capsys.readouterr().out
    if printed:
        assert printed in out
    else:
        assert "by round" not in out
