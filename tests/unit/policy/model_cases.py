"""The held-out table of the policy model (issue 22): hand-written messages, one module per language
(model_cases_en/ja/zh/ko.py), written independently of the generator's phrase banks in data/policy/.
The model never trains on them; tests assert its recall and false-positive rate here.
test_corpus_data.py checks that none of them appears in data/policy/corpus.jsonl.

CASES rows have the corpus's fields: id, lang, text, labels, kind ("case.<category>" or "case.legit"),
direction ("seller", or "buyer" for texts written with a leading "B:").
"""

from __future__ import annotations

from tests.unit.policy import model_cases_en, model_cases_ja, model_cases_ko, model_cases_zh

LANGS = {"en": model_cases_en, "ja": model_cases_ja, "zh": model_cases_zh, "ko": model_cases_ko}
CATEGORIES = ("marketing", "review", "contact")


def _rows() -> list[dict]:
    rows: list[dict] = []
    for lang, module in LANGS.items():
        n = 0
        for label, texts in (("marketing", module.MARKETING), ("review", module.REVIEW),
                             ("contact", module.CONTACT), ("", module.LEGIT)):
            for text in texts:
                n += 1
                direction = "seller"
                if text.startswith("B:"):
                    direction, text = "buyer", text[2:]
                rows.append({
                    "id": f"case-{lang}-{n:03d}",
                    "lang": lang,
                    "text": text,
                    "labels": [label] if label else [],
                    "kind": f"case.{label or 'legit'}",
                    "direction": direction,
                })
    return rows


CASES: list[dict] = _rows()


def cases(lang: str | None = None, label: str | None = None) -> list[dict]:
    """Rows of one language and/or one category ("" for the legitimate ones)."""
    out = CASES
    if lang is not None:
        out = [c for c in out if c["lang"] == lang]
    if label is not None:
        out = [c for c in out if (label in c["labels"] if label else not c["labels"])]
    return out
