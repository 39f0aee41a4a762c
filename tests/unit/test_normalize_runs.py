"""normalize() copies runs of PLAIN_RANGES characters at once; that must give what the per-cluster
fold gives (every such character folds to itself, one for one, whatever stands next to it)."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.message import normalize as nz

_RANGES = [(ord(m.group(1)), ord(m.group(2))) for m in re.finditer("(.)-(.)", nz.PLAIN_RANGES, re.S)]


def test_every_plain_character_folds_to_itself() -> None:
    assert _RANGES and sum(b - a + 1 for a, b in _RANGES) > 40_000
    for lo, hi in _RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            assert not nz._joins(ch) and not nz._ignorable(cp), hex(cp)
            assert nz._fold(ch) == ch and ch.lower() == ch, hex(cp)


def _reference(source: str) -> tuple[str, list[tuple[int, int]]]:
    """The per-cluster loop (ASCII runs only), as normalize() was written before the plain runs."""
    out: list[str] = []
    spans = nz.Spans()
    n, i = len(source), 0
    while i < n:
        run = re.compile(r"[\x00-\x7f]+").match(source, i)
        if run:
            j = run.end()
            if j < n and nz._joins(source[j]):
                j -= 1
            if j > i:
                out.append(source[i:j].lower())
                spans.copy(j - i, i)
                i = j
                continue
        j = i + 1
        while j < n and nz._joins(source[j]):
            j += 1
        cluster = source[i:j]
        folded = nz._fold(cluster) if not cluster.isascii() else cluster.lower()
        if folded == cluster and j == i + 1:
            out.append(folded)
            spans.copy(1, i)
        else:
            out.append(folded)
            spans.block(len(folded), i, j)
        i = j
    text = "".join(out)
    return text, [spans.char(k) for k in range(len(text))]


def _same(text: str) -> None:
    got = nz.normalize(text)
    want, spans = _reference(text)
    assert got.text == want, text
    assert [got.spans.char(k) for k in range(len(got.text))] == spans, text


_PIECES = ["ご注文", "ありがとう", "ｶﾞ", "ﾞ", "\u3099", "\u0301", "e\u0301", "Ａ", "。", "．", "ﾟ", "한국어", "ㅏ", "\u1161",
           "\u11a8", "가", "ß", "İ", "Ω", "ω", "é", "\u200b", "\u00ad", "①", "٣", "x", "X", " ", "\n", "日本", "中文",
           "ヷ", "〇", "\ufe0f", "📞", "\u3000", "ⓐ", "ﬁ"]


def test_mixed_texts() -> None:
    rnd = random.Random(3)
    for _ in range(3000):
        _same("".join(rnd.choice(_PIECES) for _ in range(rnd.randint(1, 30))))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=4)), max_size=20).map("".join))
def test_generated(text: str) -> None:
    _same(text)
