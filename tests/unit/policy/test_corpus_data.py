"""The policy model's training data (data/policy/) and its held-out table (model_cases.py), issue 22:
the generator reproduces the checked-in corpus byte for byte, the corpus has its counts and valid labels,
and no held-out case appears in it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from tests.unit.policy.model_cases import CASES, CATEGORIES

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "policy"
CORPUS = DATA / "corpus.jsonl"
LANGS = ("en", "ja", "zh", "ko")
FIELDS = ["id", "lang", "text", "labels", "kind", "direction"]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def norm(text: str) -> str:
    """NFKC, case-folded, letters and digits only: the 'approximately the same text' key."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def test_generator_reproduces_corpus(tmp_path: Path) -> None:
    out = tmp_path / "corpus.jsonl"
    subprocess.run([sys.executable, str(DATA / "generate.py"), "--out", str(out)], check=True, timeout=60)
    assert out.read_bytes() == CORPUS.read_bytes(), "run python3 data/policy/generate.py and commit the result"


def test_rows_well_formed(rows: list[dict]) -> None:
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    for r in rows:
        assert list(r) == FIELDS, r["id"]
        assert r["lang"] in LANGS and r["id"].startswith(r["lang"] + "-")
        assert r["direction"] in ("seller", "buyer")
        assert r["text"].strip()
        assert len(r["labels"]) == len(set(r["labels"]))
        assert all(label in CATEGORIES for label in r["labels"]), r["id"]
        if r["labels"]:
            assert r["kind"].split(".")[0] in r["labels"], r["id"]
        else:
            assert r["kind"].startswith("legit."), r["id"]
    assert len({r["text"] for r in rows}) == len(rows), "duplicate texts"
    assert CORPUS.stat().st_size < 15 * 1024 * 1024


def test_counts(rows: list[dict]) -> None:
    per_lang = Counter(r["lang"] for r in rows)
    for lang in LANGS:
        assert per_lang[lang] >= 5000, lang
        mine = [r for r in rows if r["lang"] == lang]
        legit = sum(1 for r in mine if not r["labels"])
        assert 0.5 <= legit / len(mine) <= 0.6, lang
        for cat in CATEGORIES:
            assert sum(1 for r in mine if cat in r["labels"]) >= 800, (lang, cat)
        kinds = Counter(r["kind"] for r in mine)
        assert sum(1 for k in kinds if k.startswith("legit.")) >= 10, lang
        assert sum(1 for r in mine if r["direction"] == "buyer" and not r["labels"]) >= 300, lang


def test_held_out_table_shape() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    for lang in LANGS:
        mine = [c for c in CASES if c["lang"] == lang]
        for cat in CATEGORIES:
            assert sum(1 for c in mine if cat in c["labels"]) >= 40, (lang, cat)
        assert sum(1 for c in mine if not c["labels"]) >= 60, lang
    texts = [norm(c["text"]) for c in CASES]
    assert len(texts) == len(set(texts)), "a held-out case is written twice"


def test_held_out_cases_not_in_corpus(rows: list[dict]) -> None:
    """No case's normalised first 40 characters start a corpus message or appear anywhere inside one."""
    starts = {norm(r["text"])[:40] for r in rows}
    blob = "\x00".join(norm(r["text"]) for r in rows)
    leaked = []
    for c in CASES:
        key = norm(c["text"])[:40]
        assert len(key) >= 8, c["id"]
        if key in starts or key in blob:
            leaked.append((c["id"], c["text"]))
    assert not leaked, leaked


def _bank_entries(lang: str) -> list[str]:
    spec = importlib.util.spec_from_file_location(f"policy_bank_{lang}", DATA / f"bank_{lang}.py")
    assert spec and spec.loader
    bank = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bank)

    def strings(obj: object) -> list[str]:
        if isinstance(obj, str):
            return [obj]
        if isinstance(obj, dict):
            obj = list(obj.values())
        if isinstance(obj, (list, tuple)):
            return [s for item in obj for s in strings(item)]
        return []

    names = ("LEGIT", "BUYER_LEGIT", "MARKETING", "REVIEW", "CONTACT", "BUYER_CONTACT", "GRAMMAR")
    return [s for name in names for s in strings(getattr(bank, name))]


def _grams(text: str) -> set[str]:
    t = norm(re.sub(r"\{[a-z]+\}", " ", text))
    return {t[i:i + 4] for i in range(len(t) - 3)}


@pytest.mark.parametrize("lang", LANGS)
def test_held_out_cases_not_paraphrased_from_banks(lang: str) -> None:
    """No case is mostly covered by one phrase-bank entry: under half of a case's character 4-grams may
    come from any single entry (slots removed), so the table stays independent of the training phrasing."""
    entries = [g for g in (_grams(e) for e in _bank_entries(lang)) if len(g) >= 8]
    close = []
    for c in (c for c in CASES if c["lang"] == lang):
        g = _grams(c["text"])
        best = max(len(g & e) for e in entries) / len(g)
        if best >= 0.5:
            close.append((c["id"], round(best, 2), c["text"]))
    assert not close, close


# --- data/policy/written/: whole messages written by hand, one file per language -----------------

WRITTEN = sorted((DATA / "written").glob("*.jsonl"))


@pytest.fixture(scope="module")
def written() -> list[dict]:
    return [json.loads(line) for path in WRITTEN for line in path.read_text(encoding="utf-8").splitlines()]


def test_written_files_well_formed(written: list[dict]) -> None:
    assert {p.stem.split("-")[0] for p in WRITTEN} == set(LANGS)
    ids = [r["id"] for r in written]
    assert len(ids) == len(set(ids))
    for r in written:
        assert list(r) == FIELDS, r["id"]
        assert r["lang"] in LANGS and re.fullmatch(rf"{r['lang']}-9\d{{5}}", r["id"]), r["id"]
        assert r["direction"] in ("seller", "buyer") and r["text"].strip()
        assert all(label in CATEGORIES for label in r["labels"]) and len(r["labels"]) == len(set(r["labels"]))
        assert r["kind"] == f"written.{r['labels'][0] if r['labels'] else 'legit'}", r["id"]
    keys = [norm(r["text"])[:40] for r in written]
    assert len(keys) == len(set(keys)), "two written messages start the same way"


def test_written_counts(written: list[dict]) -> None:
    for lang in LANGS:
        mine = [r for r in written if r["lang"] == lang]
        assert len(mine) >= 500, lang
        assert sum(1 for r in mine if not r["labels"]) >= 200, lang
        for cat in CATEGORIES:
            assert sum(1 for r in mine if cat in r["labels"]) >= 90, (lang, cat)


def test_held_out_cases_not_in_written(written: list[dict]) -> None:
    """The held-out table stays unseen by the hand-written training messages too: no case's start
    begins or appears in one, and no case shares half its character 4-grams with one."""
    blob = "\x00".join(norm(r["text"]) for r in written)
    grams = [g for g in (_grams(r["text"]) for r in written) if len(g) >= 8]
    close = []
    for c in CASES:
        g = _grams(c["text"])
        if norm(c["text"])[:40] in blob or max(len(g & e) for e in grams) / len(g) >= 0.5:
            close.append((c["id"], c["text"]))
    assert not close, close
