"""python -m relay.policy.train [--corpus PATH] [--out PATH] [--seed 1] — train the policy model.

Reads a JSONL corpus ({"id", "lang", "text", "labels": [marketing|review|contact …], …}); holds
back 20 % of it by a hash of each id (and the seed); trains one L2 logistic regression per
category (scikit-learn, the `train` extra) on exactly the features relay.policy.model computes at
run time (its hashing builds the sparse matrix); quantises the weights; scores the held-back part
with the run-time Model itself, fits Platt's calibration there and picks per category a `high`
threshold (precision ≥ 0.99) and a `low` one (recall ≥ 0.97); prints precision/recall/F1 at both,
per category and per language; writes the model file (the same corpus and seed give the same bytes).
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

DEFAULT_CORPUS = Path("data/policy/corpus.jsonl")
HOLD_BACK = 0.20
HIGH_PRECISION = 0.99
LOW_RECALL = 0.97


@dataclass(slots=True)
class Example:
    id: str
    lang: str
    labels: frozenset[str]
    cp: np.ndarray


def read_corpus(path: Path) -> list[Example]:
    out: list[Example] = []
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
                                   M.codepoints(normalize(str(rec["text"])).text)))
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"{path}:{lineno}: {exc}") from None
    return out


def held_back(ex_id: str, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{ex_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HOLD_BACK


def window_rows(cp: np.ndarray, f: M.Featuriser) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(window index, bucket, value) of every n-gram occurrence of each window of one text, and the
    number of windows: the sparse rows whose dot product with the weights is Model.raw_scores."""
    wins = M.windows(cp.size, f)
    if not len(wins):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0
    norm = 1.0 / np.sqrt(np.maximum(M.window_counts(cp.size, f), 1))
    nw = len(wins)
    rows, cols = [], []
    for b in M.buckets(cp, f):
        col = b.astype(np.int64)
        if nw == 1:
            rows.append(np.zeros(b.size, np.int64))
            cols.append(col)
            continue
        block = np.arange(b.size) // f.stride
        for k in (block - 1, block):  # block j lies in windows j-1 and j (those that exist)
            ok = (k >= 0) & (k < nw)
            rows.append(k[ok])
            cols.append(col[ok])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
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


def fit(x: Any, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():  # one class only: a constant model
        return np.zeros(x.shape[1]), (10.0 if y[0] else -10.0)
    lr = LogisticRegression(C=c, solver="liblinear", random_state=seed, max_iter=1000)
    lr.fit(x, y)
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def train_category(x: Any, owner: np.ndarray, examples: Sequence[Example], train_idx: np.ndarray,
                   cat: str, c: float, seed: int) -> tuple[np.ndarray, float]:
    """Weights for one category. Every window of a message without the label is a negative; a
    one-window positive is a positive; of a longer positive only its best window (multiple-instance
    learning: by a first model that counted all its windows positive) is, the rest being unknown."""
    in_train = np.zeros(len(examples), bool)
    in_train[train_idx] = True
    pos = np.array([cat in ex.labels for ex in examples])
    counts = np.bincount(owner, minlength=len(examples))
    sel = in_train[owner]
    y = pos[owner].astype(np.int64)
    w, b = fit(x[sel], y[sel], c, seed)
    long_pos = in_train & pos & (counts > 1)
    if not long_pos.any():
        return w, b
    scores = x @ w + b
    keep = sel & ~long_pos[owner]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for i in np.flatnonzero(long_pos):
        lo = first[i]
        keep[lo + int(np.argmax(scores[lo : lo + counts[i]]))] = True
    return fit(x[keep], y[keep], c, seed)


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


def thresholds(prob: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(high, low): the lowest threshold whose precision reaches HIGH_PRECISION, and the highest
    whose recall reaches LOW_RECALL (never above high)."""
    order = np.argsort(-prob, kind="stable")
    p, t = prob[order], y[order].astype(np.int64)
    tp = np.cumsum(t)
    k = np.arange(1, p.size + 1)
    precision = tp / k
    recall = tp / max(int(t.sum()), 1)
    # a threshold must not split equal scores: look only at the last of each run of ties
    last = np.r_[p[1:] != p[:-1], True] if p.size else np.zeros(0, bool)
    ok_p = np.flatnonzero(last & (precision >= HIGH_PRECISION))
    high = float(p[ok_p[-1]]) if ok_p.size else 1.0
    ok_r = np.flatnonzero(last & (recall >= LOW_RECALL))
    low = float(p[ok_r[0]]) if ok_r.size else 0.5
    return round(high, 4), round(min(low, high), 4)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m relay.policy.train", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=M.DEFAULT_PATH)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--C", type=float, default=10.0, help="inverse L2 regularisation (default 10)")
    ap.add_argument("--bits", type=int, default=18, help="hash buckets: 2^bits (default 18)")
    ap.add_argument("--ngrams", default="1-4", help="n-gram lengths, e.g. 1-4 or 2-5 (default 1-4)")
    args = ap.parse_args(argv)
    nmin, nmax = (int(v) for v in args.ngrams.split("-"))
    f = M.Featuriser(nmin=nmin, nmax=nmax, bits=args.bits)
    t0 = time.perf_counter()
    examples = read_corpus(args.corpus)
    if not examples:
        raise SystemExit(f"{args.corpus}: no messages")
    back = np.array([held_back(ex.id, args.seed) for ex in examples])
    train_idx, test_idx = np.flatnonzero(~back), np.flatnonzero(back)
    x, owner = build_matrix(examples, f)
    print(f"{len(examples)} messages ({train_idx.size} train, {test_idx.size} held back), {x.shape[0]} windows, "
          f"{x.nnz} non-zeros; features {time.perf_counter() - t0:.1f} s")
    weights = np.zeros((1 << f.bits, len(M.CATEGORIES)), dtype=np.int16)
    meta: dict[str, Any] = {"format": M.FORMAT, **f.meta(), "categories": list(M.CATEGORIES),
                            "scale": {}, "bias": {}, "platt": {}, "thresholds": {}}
    for j, cat in enumerate(M.CATEGORIES):
        w, b = train_category(x, owner, examples, train_idx, cat, args.C, args.seed)
        weights[:, j], meta["scale"][cat] = quantise(w)
        meta["bias"][cat] = b
        meta["platt"][cat] = [1.0, 0.0]
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    test = [examples[i] for i in test_idx]
    raw = max_raw(M.Model(weights, meta), test)
    report: list[str] = []
    for j, cat in enumerate(M.CATEGORIES):
        y = np.array([cat in ex.labels for ex in test])
        meta["platt"][cat] = list(platt(raw[:, j], y.astype(np.int64)))
        a, c = meta["platt"][cat]
        prob = 1.0 / (1.0 + np.exp(-(a * raw[:, j] + c)))
        high, low = thresholds(prob, y)
        meta["thresholds"][cat] = {"high": high, "low": low}
        langs = sorted({ex.lang for ex in test})
        report.append(f"{cat}: high {high} low {low} (held back: {int(y.sum())} of {y.size})")
        for lang in ["all", *langs]:
            m = np.ones(y.size, bool) if lang == "all" else np.array([ex.lang == lang for ex in test])
            ph, rh, fh = prf(prob[m] >= high, y[m])
            pl, rl, fl = prf(prob[m] >= low, y[m])
            report.append(f"  {lang:4} n={int(m.sum()):6} pos={int(y[m].sum()):5}  "
                          f"≥high P {ph:.3f} R {rh:.3f} F1 {fh:.3f}   ≥low P {pl:.3f} R {rl:.3f} F1 {fl:.3f}")
    meta["training"] = {"messages": len(examples), "held_back": int(test_idx.size), "seed": args.seed,
                        "C": args.C, "corpus_sha256": hashlib.sha256(args.corpus.read_bytes()).hexdigest()}
    M.save(args.out, weights, meta)
    print("\n".join(report))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
