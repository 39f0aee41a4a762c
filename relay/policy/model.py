"""The trained policy model: hashed character n-grams → per-category probability (numpy only).

Reads the `[model]` section of policy.toml (through settings.py) and the model file it names
(relay/policy/model.npz by default, written by `python -m relay.policy.train`). Gives no replies
and records nothing: the engine turns a probability at or above a category's `low` threshold into
a `model.<category>` Finding (hold between low and high, the configured action above high).

Features. The text is the rules' normalized text (relay.message.normalize: NFKC width folding,
case folding; CJK kept), with ASCII digits read as "0" and every whitespace character as a space
(one for one, so offsets stay those of the normalized text). Its code points
(`np.frombuffer(text.encode("utf-32-le"), np.uint32)`) are hashed per n-gram (n = nmin..nmax) by a
32-bit rolling polynomial computed with whole-array arithmetic, salted per n, mixed
multiplicatively; the top `bits` bits are the bucket. Each category's weight is an int16 (a scale
per category), so window sums are exact integers: the trainer and the daemon get the same numbers.

Windows. A long message must not dilute a promotion in 50 KB of filler: the text is cut into
blocks of `stride` characters (an n-gram belongs to the block where it starts, and counts ONCE
there however often it recurs: repeating a phrase, or a run of one letter, cannot pile up weight)
and every window is two consecutive blocks (≤ 2·stride characters; a text up to that long is one
window). With n the distinct n-grams of its blocks (at least `floor`, so that one word
cannot decide a two-word text), a window's raw score is bias + scale·Σ weights / √n. (A learned
length·√n term was tried and dropped: it took the sign that pushes every long window up, and long
legitimate replies with it.) The message's score is the maximum over its windows, and its
probability the logistic of Platt's a·raw + b stored with the model.
"""

from __future__ import annotations

import io
import json
import math
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CATEGORIES: tuple[str, ...] = ("marketing", "review", "contact")
FORMAT = 1
DEFAULT_PATH = Path(__file__).with_name("model.npz")

_P = np.uint32(0x01000193)       # FNV prime: the rolling polynomial's base
_MIX = np.uint32(0x9E3779B1)     # 2^32 / golden ratio (odd): multiplicative mixing
_SALT = 0x85EBCA6B               # per-n salt of the multiplier
_MASK32 = 0xFFFFFFFF
#: ASCII as the featuriser reads it: digits → "0", controls and whitespace → " "
_ASCII_BYTES = bytes(0x20 if i <= 0x20 else 0x30 if 0x30 <= i <= 0x39 else i for i in range(256))
#: weights are quantised to ±QMAX and packed, biased by QBIAS, in LANE-bit lanes of one uint64 per
#: bucket: a block's sum over every category is one integer addition per n-gram, and no lane can
#: carry into the next while stride · (nmax - nmin + 1) · (2·QMAX + 1) < 2^LANE
QMAX = 511
QBIAS = QMAX + 1
LANE = 21


@dataclass(frozen=True, slots=True)
class Featuriser:
    nmin: int = 1
    nmax: int = 4
    bits: int = 18
    stride: int = 300   # a window is two blocks: 600 characters
    floor: int = 1      # n in √n is at least this: one word cannot dominate a two-word text

    def meta(self) -> dict[str, int]:
        return {"nmin": self.nmin, "nmax": self.nmax, "bits": self.bits, "stride": self.stride, "floor": self.floor}


def codepoints(folded: str) -> np.ndarray:
    """The folded text's code points, ASCII digits as "0", ASCII controls and whitespace as " "
    (one for one: same length as the text)."""
    if folded.isascii():
        return np.frombuffer(folded.encode("ascii").translate(_ASCII_BYTES), dtype=np.uint8).astype(np.uint32)
    cp = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
    np.putmask(cp, cp - np.uint32(0x30) < np.uint32(10), np.uint32(0x30))
    np.putmask(cp, cp <= np.uint32(0x20), np.uint32(0x20))
    return cp


def _multiplier(n: int) -> int:
    """The odd multiplier that mixes the hashes of n-grams (one per n, so lengths do not collide)."""
    return (int(_MIX) + 2 * n * _SALT) & _MASK32


def buckets(cp: np.ndarray, f: Featuriser, out: np.ndarray | None = None) -> list[np.ndarray]:
    """Per n (nmin..nmax), the bucket of the n-gram starting at each position 0..len-n (written
    into the rows of `out`, if given, and returned as views of them)."""
    res: list[np.ndarray] = []
    h = cp
    shift = np.uint32(32 - f.bits)
    tmp = np.empty(cp.size, dtype=np.uint32)
    for n in range(1, f.nmax + 1):
        m = max(cp.size - n + 1, 0)
        if n > 1 and m:
            h = np.multiply(h[:m], _P, out=tmp[:m] if h is cp else h[:m])
            np.add(h, cp[n - 1 :], out=h)
        elif n > 1:
            h = h[:0]
        if n >= f.nmin:
            mixed = np.multiply(h, np.uint32(_multiplier(n)))
            if out is None:
                res.append(np.right_shift(mixed, shift, out=mixed))
            else:
                row = out[n - f.nmin, :m]
                np.right_shift(mixed, shift, out=row, casting="unsafe")
                res.append(row)
    return res


def bucket_of(gram: str, f: Featuriser) -> int:
    """One n-gram's bucket, in plain Python (the reference the vectorised hashes are tested against;
    `gram` already mapped as codepoints() maps it)."""
    h = 0
    for ch in gram:
        h = (h * int(_P) + ord(ch)) & _MASK32
    return ((h * _multiplier(len(gram))) & _MASK32) >> (32 - f.bits)


def windows(length: int, f: Featuriser) -> np.ndarray:
    """The windows of a text of `length` characters, shape (k, 2): [i·stride, (i+2)·stride) clipped,
    i = 0..blocks-2 (a text up to two blocks long is one window; an empty one has none)."""
    nb = -(-length // f.stride)
    if nb == 0:
        return np.zeros((0, 2), dtype=np.int64)
    a = np.arange(max(nb - 1, 1), dtype=np.int64) * f.stride
    return np.stack([a, np.minimum(a + 2 * f.stride, length)], axis=1)


def block_grams(cp: np.ndarray, f: Featuriser) -> tuple[np.ndarray, np.ndarray]:
    """Each block's n-gram buckets, shape (blocks, n-gram lengths · stride), with every repeat and
    every place past the text's end set to the padding bucket (2^bits), and the number of distinct
    n-grams per block. Sorting each block's row on its own is 5× faster than one sort of them all."""
    nb = -(-cp.size // f.stride)
    rows = f.nmax - f.nmin + 1
    pad = 1 << f.bits
    grid = np.full((rows, nb * f.stride), pad, dtype=np.int32)
    buckets(cp, f, out=grid)
    per_block = np.sort(grid.reshape(rows, nb, f.stride).transpose(1, 0, 2).reshape(nb, rows * f.stride), axis=1)
    repeat = np.zeros(per_block.shape, dtype=bool)
    np.equal(per_block[:, 1:], per_block[:, :-1], out=repeat[:, 1:])
    per_block[repeat] = pad
    return per_block, np.count_nonzero(per_block != pad, axis=1)


def window_counts(per_block: np.ndarray) -> np.ndarray:
    """Distinct n-grams per window, from those per block (a gram in both blocks counts twice)."""
    if per_block.size <= 2:
        return per_block.sum(keepdims=True)
    return per_block[:-1] + per_block[1:]


class Model:
    """Weights (2^bits × categories, int16), per-category scale, bias and Platt (a, b)."""

    def __init__(self, weights: np.ndarray, meta: dict[str, Any]) -> None:
        if meta.get("format") != FORMAT:
            raise ValueError(f"model format {meta.get('format')!r}, expected {FORMAT}")
        self.meta = meta
        self.featuriser = Featuriser(**{k: int(meta[k]) for k in ("nmin", "nmax", "bits", "stride")},
                                     floor=int(meta.get("floor", 1)))
        self.categories: tuple[str, ...] = tuple(meta["categories"])
        if weights.shape != (1 << self.featuriser.bits, len(self.categories)) or weights.dtype != np.int16:
            raise ValueError(f"weights {weights.shape} {weights.dtype} do not fit the model's metadata")
        if int(np.abs(weights).max(initial=0)) > QMAX or len(self.categories) > 3:
            raise ValueError(f"weights must lie within ±{QMAX}, for at most 3 categories")
        f = self.featuriser
        if f.stride * (f.nmax - f.nmin + 1) * (2 * QMAX + 1) >= 1 << LANE:
            raise ValueError("stride too long for the packed lanes")
        self.weights = weights
        biased = weights.astype(np.uint64) + np.uint64(QBIAS)  # (two's complement wraps back)
        packed = np.zeros(weights.shape[0] + 1, dtype=np.uint64)
        for j in range(len(self.categories)):
            packed[:-1] |= biased[:, j] << np.uint64(LANE * j)
            packed[-1] |= np.uint64(QBIAS) << np.uint64(LANE * j)  # the padding bucket: a zero weight
        self._packed = packed
        self.scale = np.array([meta["scale"][c] for c in self.categories], dtype=np.float64)
        self.bias = np.array([meta["bias"][c] for c in self.categories], dtype=np.float64)
        self.platt = np.array([meta["platt"][c] for c in self.categories], dtype=np.float64)  # (k, 2)
        self.thresholds: dict[str, dict[str, float]] = meta.get("thresholds", {})

    # --- scoring ------------------------------------------------------------------------
    def window_sums(self, cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer weight sums per window and category, shape (windows, categories), and the
        distinct n-grams per window."""
        k = len(self.categories)
        grams, per_block = block_grams(cp, self.featuriser)
        packed = self._packed.take(grams).sum(axis=1, dtype=np.uint64)  # the padding bucket weighs 0
        shifts = np.arange(k, dtype=np.uint64) * np.uint64(LANE)
        lanes = (packed[:, None] >> shifts) & np.uint64((1 << LANE) - 1)
        blocks = lanes.astype(np.int64) - grams.shape[1] * QBIAS
        counts = window_counts(per_block)
        if per_block.size <= 2:
            return blocks.sum(axis=0, keepdims=True), counts
        return blocks[:-1] + blocks[1:], counts

    def raw_scores(self, cp: np.ndarray) -> np.ndarray:
        """Raw (pre-Platt) score per window and category; shape (windows, categories)."""
        sums, counts = self.window_sums(cp)
        root = np.sqrt(np.maximum(counts, self.featuriser.floor))[:, None]
        return self.bias + self.scale * sums / root

    def probability(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.platt[:, 0] * raw + self.platt[:, 1])))

    def score(self, folded: str) -> Scores:
        """Every category's probability for one folded text, with the window that gave it."""
        cp = codepoints(folded)
        if not cp.size:
            return Scores({c: 0.0 for c in self.categories}, {c: (0, 0) for c in self.categories}, cp)
        raw = self.raw_scores(cp)
        best = raw.argmax(axis=0)
        prob = self.probability(raw[best, np.arange(len(self.categories))])
        wins = windows(cp.size, self.featuriser)
        return Scores({c: float(prob[i]) for i, c in enumerate(self.categories)},
                      {c: (int(wins[best[i], 0]), int(wins[best[i], 1])) for i, c in enumerate(self.categories)},
                      cp)

    def top_features(self, folded: str, scores: Scores, category: str, k: int = 5) -> list[tuple[str, float]]:
        """The n-grams that add most to `category`'s score in its best window (text, contribution)."""
        ci = self.categories.index(category)
        a, b = scores.windows[category]
        cp = scores.cp
        f = self.featuriser
        contrib: dict[tuple[int, int], float] = {}
        where: dict[tuple[int, int], int] = {}
        counts = window_counts(block_grams(cp, f)[1])
        idx = a // f.stride
        norm = self.scale[ci] / math.sqrt(max(int(counts[idx]) if counts.size else 1, f.floor))
        for n, bk in zip(range(f.nmin, f.nmax + 1), buckets(cp, f), strict=True):
            sl = bk[a : min(b, bk.size)]
            if not sl.size:
                continue
            uniq, first = np.unique(sl, return_index=True)  # each gram once, as the score counts it
            sums = self.weights[uniq, ci].astype(np.int64)
            for u, s, p in zip(uniq.tolist(), sums.tolist(), first.tolist(), strict=True):
                if s > 0:
                    contrib[(n, u)] = s * norm
                    where[(n, u)] = a + p
        top = sorted(contrib.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        text = "".join(chr(c) for c in cp[a : min(b + f.nmax, cp.size)].tolist())
        return [(text[where[key] - a : where[key] - a + key[0]], round(float(v), 3)) for key, v in top]


@dataclass(slots=True)
class Scores:
    probability: dict[str, float]
    windows: dict[str, tuple[int, int]]
    cp: np.ndarray


# --- the file -------------------------------------------------------------------------------

def save(path: Path, weights: np.ndarray, meta: dict[str, Any]) -> None:
    """Write the model as an .npz (a zip np.load reads) with fixed entry dates: the same weights and
    metadata give the same bytes (numpy's savez stamps the current time)."""
    def npy(arr: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
        return buf.getvalue()

    blob = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    entries = {"meta.npy": npy(np.frombuffer(blob, dtype=np.uint8)), "weights.npy": npy(weights)}
    tmp = Path(str(path) + ".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compresslevel=9)
    os.replace(tmp, path)


def read_meta(path: Path) -> dict[str, Any]:
    """The model file's metadata alone (cheap: the weights are not read)."""
    with np.load(path, allow_pickle=False) as z:
        meta: dict[str, Any] = json.loads(z["meta"].tobytes().decode())
    return meta


_cache: dict[tuple[str, int, int], Model] = {}
_lock = threading.Lock()


def load(path: Path) -> Model:
    """The model in `path`, read once per process (again only if the file changes)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    model = _cache.get(key)
    if model is None:
        with _lock:
            model = _cache.get(key)
            if model is None:
                with np.load(path, allow_pickle=False) as z:
                    meta = json.loads(z["meta"].tobytes().decode())
                    weights = z["weights"]
                model = Model(weights, meta)
                _cache.clear()
                _cache[key] = model
    return model
