"""The shipped model file is the one the committed corpus and training script produce (issue 22):
retrain with the documented command into a temporary file and compare. The quantised weights must
be equal; the metadata's floats (Platt parameters, thresholds) equal to 1e-6, since another CPU's
floating-point paths may differ in the last bits. Takes about half a minute."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "relay" / "policy" / "model.npz"

pytest.importorskip("sklearn")


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_the_shipped_model_is_what_the_corpus_and_script_produce(tmp_path: Path) -> None:
    out = tmp_path / "model.npz"
    done = subprocess.run([sys.executable, "-m", "relay.policy.train", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "high" in done.stdout and "P " in done.stdout  # it printed its metrics
    with np.load(SHIPPED, allow_pickle=False) as shipped, np.load(out, allow_pickle=False) as rebuilt:
        assert np.array_equal(shipped["weights"], rebuilt["weights"])
        meta_shipped = json.loads(shipped["meta"].tobytes().decode())
        meta_rebuilt = json.loads(rebuilt["meta"].tobytes().decode())
    assert _close(meta_shipped, meta_rebuilt), (meta_shipped, meta_rebuilt)
