"""python -m relay.policy.train [--corpus PATH …] [--out PATH] [--seed 1] — train the policy model.

Reads JSONL corpora ({"id", "lang", "text", "labels": [marketing|review|contact …], …}; by default
data/policy/corpus.jsonl, composed from phrase banks, data/policy/offtopic.jsonl, legitimate mail
that is no marketplace conversation (code, logs, headers, test messages), and
data/policy/written/*.jsonl, whole messages written by hand); holds back 20 % of them by a hash of each id (and the seed); trains one
L2 logistic regression per category (scikit-learn, the `train` extra) on exactly the features
relay.policy.model computes at run time (its hashing builds the sparse matrix); quantises the
weights; scores the held-back part with the run-time Model itself and fits Platt's calibration
there. The thresholds are chosen on the held-back hand-written messages (the composed ones are far
easier to tell apart than real mail, and would set them too low): per category `low`, the lowest
threshold that touches at most LOW_FPR of the legitimate ones, and `high`, the lowest whose
precision reaches HIGH_PRECISION (never below low). Prints precision/recall/F1 at both, per
category, per held-back set and per language; writes the model file (the same corpora and seed give
the same bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relay.message.normalize import normalize
from relay.policy import model as M

DATA = Path("data/policy")
HOLD_BACK = 0.20
HIGH_PRECISION = 0.99
LOW_FPR = 0.01


@dataclass(slots=True)
class Example:
    id: str
    lang: str
    labels: frozenset[str]
    cp: np.ndarray
    written: bool = False  # a whole message written by hand (data/policy/written/), not composed


def default_corpora() -> list[Path]:
    return [DATA / "corpus.jsonl", DATA / "offtopic.jsonl", *sorted((DATA / "written").glob("*.jsonl"))]


def read_corpus(path: Path) -> list[Example]:
    out: list[Example] = []
    written = path.parent.name == "written"
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                labels = frozenset(rec.get("labels") or ())
                unknown = labels - set(M.CATEGORIES)
                if unknown:
                    raise ValueError(f"unknown labels {sorted(unknown)}")
                out.append(Example(str(rec["id"]), str(rec.get("lang", "?")), labels,
                                   M.codepoints(normalize(str(rec["text"])).text), written))
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"{path}:{lineno}: {exc}") from None
    return out


def held_back(ex_id: str, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{ex_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HOLD_BACK


def window_rows(cp: np.ndarray, f: M.Featuriser) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(window index, bucket, value 1/√n) of every distinct n-gram of each block of one text in each
    window holding that block, and the number of windows: the sparse rows whose dot product with the
    weights is Model.raw_scores (n: the window's distinct n-grams, M.window_counts, at least the floor)."""
    if not cp.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0
    grams, per_block = M.block_grams(cp, f)
    block, bucket = np.nonzero(grams != 1 << f.bits)[0], grams[grams != 1 << f.bits].astype(np.int64)
    counts = M.window_counts(per_block)
    nw = counts.size
    norm = 1.0 / np.sqrt(np.maximum(counts, f.floor))
    if nw == 1:
        rows, cols = [np.zeros(block.size, np.int64)], [bucket]
    else:
        rows, cols = [], []
        for k in (block - 1, block):  # block j lies in windows j-1 and j (those that exist)
            ok = (k >= 0) & (k < nw)
            rows.append(k[ok])
            cols.append(bucket[ok])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    return r, c, norm[r], nw


def build_matrix(examples: Sequence[Example], f: M.Featuriser) -> tuple[Any, np.ndarray]:
    """One CSR row per window of every example, and each row's example index."""
    from scipy import sparse

    rows, cols, vals, owner = [], [], [], []
    base = 0
    for i, ex in enumerate(examples):
        r, c, v, nw = window_rows(ex.cp, f)
        rows.append(r + base)
        cols.append(c)
        vals.append(v)
        owner.append(np.full(nw, i, dtype=np.int64))
        base += nw
    x = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(base, 1 << f.bits), dtype=np.float64)
    x.sum_duplicates()
    x.sort_indices()
    return x, np.concatenate(owner)


def fit(x: Any, y: np.ndarray, c: float, seed: int, weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():  # one class only: a constant model
        return np.zeros(x.shape[1]), (10.0 if y[0] else -10.0)
    lr = LogisticRegression(C=c, solver="liblinear", random_state=seed, max_iter=1000)
    lr.fit(x, y, sample_weight=weight)
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def train_category(x: Any, owner: np.ndarray, examples: Sequence[Example], train_idx: np.ndarray,
                   cat: str, c: float, seed: int, written_weight: float = 1.0) -> tuple[np.ndarray, float]:
    """Weights for one category. Every window of a message without the label is a negative; a
    one-window positive is a positive; of a longer positive only its best window (multiple-instance
    learning: by a first model that counted all its windows positive) is, the rest being unknown."""
    in_train = np.zeros(len(examples), bool)
    in_train[train_idx] = True
    pos = np.array([cat in ex.labels for ex in examples])
    counts = np.bincount(owner, minlength=len(examples))
    sel = in_train[owner]
    y = pos[owner].astype(np.int64)
    weight = np.where(np.array([ex.written for ex in examples])[owner], written_weight, 1.0)
    w, b = fit(x[sel], y[sel], c, seed, weight[sel])
    long_pos = in_train & pos & (counts > 1)
    if not long_pos.any():
        return w, b
    scores = x @ w + b
    keep = sel & ~long_pos[owner]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for i in np.flatnonzero(long_pos):
        lo = first[i]
        keep[lo + int(np.argmax(scores[lo : lo + counts[i]]))] = True
    return fit(x[keep], y[keep], c, seed, weight[keep])


def quantise(w: np.ndarray) -> tuple[np.ndarray, float]:
    peak = float(np.abs(w).max(initial=0.0))
    scale = peak / M.QMAX if peak > 0 else 1.0
    return np.rint(w / scale).astype(np.int16), scale


def max_raw(model: M.Model, examples: Iterable[Example]) -> np.ndarray:
    out = []
    for ex in examples:
        raw = model.raw_scores(ex.cp) if ex.cp.size else np.full((1, len(model.categories)), -np.inf)
        out.append(raw.max(axis=0))
    return np.array(out).reshape(-1, len(model.categories))


def platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    finite = np.isfinite(raw)
    if y[finite].min(initial=1) == y[finite].max(initial=0):
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, solver="lbfgs", max_iter=1000)
    lr.fit(raw[finite].reshape(-1, 1), y[finite])
    return float(lr.coef_[0][0]), float(lr.intercept_[0])


def prf(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    tp = int((pred & y).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int(y.sum()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def thresholds(prob: np.ndarray, y: np.ndarray, legit: np.ndarray) -> tuple[float, float]:
    """(high, low): `low` the lowest threshold at which at most LOW_FPR of the `legit` messages
    score, `high` the lowest whose precision reaches HIGH_PRECISION (never below low)."""
    order = np.argsort(-prob, kind="stable")
    p, t, neg = prob[order], y[order].astype(np.int64), legit[order].astype(np.int64)
    k = np.arange(1, p.size + 1)
    precision = np.cumsum(t) / k
    fpr = np.cumsum(neg) / max(int(neg.sum()), 1)
    # a threshold must not split equal scores: look only at the last of each run of ties
    last = np.r_[p[1:] != p[:-1], True] if p.size else np.zeros(0, bool)
    ok_f = np.flatnonzero(last & (fpr <= LOW_FPR))
    low = float(p[ok_f[-1]]) if ok_f.size else 1.0
    ok_p = np.flatnonzero(last & (precision >= HIGH_PRECISION))
    high = float(p[ok_p[-1]]) if ok_p.size else 1.0
    return round(max(high, low), 4), round(low, 4)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m relay.policy.train", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, action="append",
                    help="a JSONL corpus (repeatable; default data/policy/corpus.jsonl and data/policy/written/*.jsonl)")
    ap.add_argument("--out", type=Path, default=M.DEFAULT_PATH)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--C", type=float, default=100.0, help="inverse L2 regularisation (default 100)")
    ap.add_argument("--written-weight", type=float, default=10.0,
                    help="weight of a hand-written message against a composed one (default 10)")
    ap.add_argument("--bits", type=int, default=18, help="hash buckets: 2^bits (default 18)")
    ap.add_argument("--floor", type=int, default=150, help="n in √n at least this (default 150)")
    ap.add_argument("--ngrams", default="1-4", help="n-gram lengths, e.g. 1-4 or 2-5 (default 1-4)")
    args = ap.parse_args(argv)
    nmin, nmax = (int(v) for v in args.ngrams.split("-"))
    f = M.Featuriser(nmin=nmin, nmax=nmax, bits=args.bits, floor=args.floor)
    t0 = time.perf_counter()
    corpora = args.corpus or default_corpora()
    examples = [ex for path in corpora for ex in read_corpus(path)]
    if not examples:
        raise SystemExit(f"{', '.join(map(str, corpora))}: no messages")
    back = np.array([held_back(ex.id, args.seed) for ex in examples])
    train_idx, test_idx = np.flatnonzero(~back), np.flatnonzero(back)
    x, owner = build_matrix(examples, f)
    print(f"{len(examples)} messages ({train_idx.size} train, {test_idx.size} held back), {x.shape[0]} windows, "
          f"{x.nnz} non-zeros; features {time.perf_counter() - t0:.1f} s")
    weights = np.zeros((1 << f.bits, len(M.CATEGORIES)), dtype=np.int16)
    meta: dict[str, Any] = {"format": M.FORMAT, **f.meta(), "categories": list(M.CATEGORIES),
                            "scale": {}, "bias": {}, "platt": {}, "thresholds": {}}
    for j, cat in enumerate(M.CATEGORIES):
        w, b = train_category(x, owner, examples, train_idx, cat, args.C, args.seed, args.written_weight)
        weights[:, j], meta["scale"][cat] = quantise(w)
        meta["bias"][cat] = b
        meta["platt"][cat] = [1.0, 0.0]
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    test = [examples[i] for i in test_idx]
    raw = max_raw(M.Model(weights, meta), test)
    written = np.array([ex.written for ex in test])
    tune = written if written.any() else np.ones(len(test), bool)  # where calibration and thresholds come from
    legit = np.array([not ex.labels for ex in test])
    langs = sorted({ex.lang for ex in test})
    report: list[str] = []
    for j, cat in enumerate(M.CATEGORIES):
        y = np.array([cat in ex.labels for ex in test])
        meta["platt"][cat] = list(platt(raw[tune, j], y[tune].astype(np.int64)))
        a, c = meta["platt"][cat]
        prob = 1.0 / (1.0 + np.exp(-(a * raw[:, j] + c)))
        high, low = thresholds(prob[tune], y[tune], legit[tune])
        meta["thresholds"][cat] = {"high": high, "low": low}
        report.append(f"{cat}: high {high} low {low} (held back: {int(y.sum())} of {y.size};"
                      f" thresholds from the {int(tune.sum())} {'written' if written.any() else ''} ones)")
        for part, sel in (("composed", ~written), ("written", written)):
            for lang in ["all", *langs]:
                m = sel & (np.ones(y.size, bool) if lang == "all" else np.array([ex.lang == lang for ex in test]))
                if not m.any():
                    continue
                ph, rh, _ = prf(prob[m] >= high, y[m])
                pl, rl, _ = prf(prob[m] >= low, y[m])
                fp = int((legit[m] & (prob[m] >= low)).sum())
                report.append(f"  {part:8} {lang:4} n={int(m.sum()):5} pos={int(y[m].sum()):4}  "
                              f"≥high P {ph:.3f} R {rh:.3f}   ≥low P {pl:.3f} R {rl:.3f}"
                              f"  legitimate ≥low {fp}/{int(legit[m].sum())}")
    meta["training"] = {"messages": len(examples), "held_back": int(test_idx.size), "seed": args.seed,
                        "C": args.C, "written_weight": args.written_weight, "corpora": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in corpora}}
    M.save(args.out, weights, meta)
    print("\n".join(report))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
