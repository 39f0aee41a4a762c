"""The whole content policy (rules and model together) on the held-out table of hand-written cases
(tests/unit/policy/model_cases*.py), per category and language: caught (refused, redacted or held)
and legitimate messages touched. Prints figures; the issue's targets are recall >= 97 % per
category and <= 1 % of legitimate messages refused, redacted or held.

    python -m bench.policy_cases [--policy config/policy.toml] [--model PATH] [--misses]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import defaultdict
from pathlib import Path

from relay.policy import check, load_policy
from tests.unit.policy.conftest import plain
from tests.unit.policy.model_cases import CASES, CATEGORIES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, default=ROOT / "config" / "policy.toml")
    ap.add_argument("--model", type=Path, help="a model file instead of the policy's (enables the model)")
    ap.add_argument("--misses", action="store_true", help="print the texts missed and the legitimate ones touched")
    args = ap.parse_args()
    path = args.policy
    if args.model is not None:  # the same policy with [model] on and pointing at this file
        text = args.policy.read_text(encoding="utf-8")
        head, sep, tail = text.partition("[model]\n")
        tail = re.sub(r"(?m)^enabled = \w+", "enabled = true", tail, count=1)
        tail = re.sub(r'(?m)^path = ".*?"', f'path = "{args.model.resolve()}"', tail, count=1)
        tmp = tempfile.NamedTemporaryFile("w", suffix=".toml", dir=args.policy.parent, delete=False)
        tmp.write(head + sep + tail)
        tmp.close()
        path = Path(tmp.name)
    try:
        policy = load_policy(path)
    finally:
        if path != args.policy:
            path.unlink()
    caught: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    legit: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in CASES:
        report = check(plain(case["text"]), policy)
        touched = report.action != "deliver" and any(f.action in ("reject", "hold", "redact")
                                                      for f in report.findings)
        rules = sorted({f.rule for f in report.findings if f.action in ("reject", "hold", "redact")})
        if case["labels"]:
            for label in case["labels"]:
                caught[(label, case["lang"])][0] += touched
                caught[(label, case["lang"])][1] += 1
            if args.misses and not touched:
                print(f"MISS {case['id']} {case['labels']}: {case['text'][:100]!r}")
        else:
            legit[case["lang"]][0] += touched
            legit[case["lang"]][1] += 1
            if args.misses and touched:
                print(f"FP   {case['id']} {rules}: {case['text'][:100]!r}")
    langs = sorted({c["lang"] for c in CASES})
    print(f"{'category':10} " + " ".join(f"{lang:>12}" for lang in langs) + f" {'all':>12}")
    for cat in CATEGORIES:
        cells = [caught[(cat, lang)] for lang in langs]
        tot = [sum(c[0] for c in cells), sum(c[1] for c in cells)]
        print(f"{cat:10} " + " ".join(f"{c[0]:>4}/{c[1]:<3} {100 * c[0] / max(c[1], 1):3.0f}%" for c in [*cells, tot]))
    cells = [legit[lang] for lang in langs]
    tot = [sum(c[0] for c in cells), sum(c[1] for c in cells)]
    print(f"{'legit hit':10} " + " ".join(f"{c[0]:>4}/{c[1]:<3} {100 * c[0] / max(c[1], 1):3.0f}%" for c in [*cells, tot]))


if __name__ == "__main__":
    main()
