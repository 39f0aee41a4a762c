"""Spans (offset maps kept as runs) agree with the plain per-character lists they replace."""

from __future__ import annotations

import random

import pytest

from relay.message.normalize import Spans, normalize


def _reference(ops: list[tuple[str, int, int, int]]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for kind, n, s, e in ops:
        if kind == "copy":
            starts.extend(range(s, s + n))
            ends.extend(range(s + 1, s + n + 1))
        else:
            starts.extend([s] * n)
            ends.extend([e] * n)
    return starts, ends


@pytest.mark.parametrize("seed", range(20))
def test_spans_match_per_character_lists(seed: int) -> None:
    rnd = random.Random(seed)
    ops: list[tuple[str, int, int, int]] = []
    src = 0
    for _ in range(rnd.randint(1, 30)):
        n = rnd.randint(0, 6)
        if rnd.random() < 0.5:
            ops.append(("copy", n, src, 0))
            src += n + rnd.choice((0, 0, 2))  # contiguous runs coalesce, gapped ones do not
        else:
            width = rnd.randint(0, 4)
            ops.append(("block", n, src, src + width))
            src += width
    spans = Spans()
    for kind, n, s, e in ops:
        spans.copy(n, s) if kind == "copy" else spans.block(n, s, e)
    starts, ends = _reference(ops)
    assert spans.length == len(starts)
    for i in range(len(starts)):
        assert spans.char(i) == (starts[i], ends[i])
    for start in range(len(starts) + 1):
        for end in range(start, len(starts) + 2):
            want = (0, 0) if end <= start or not starts else (
                starts[min(start, len(starts) - 1)], ends[max(min(start, len(starts) - 1) + 1, min(end, len(starts))) - 1])
            assert spans.span(start, end) == want


@pytest.mark.parametrize(("source", "needle", "original"), [
    ("Call ME at home", "me", "ME"),
    ("ｗｗｗ．Ｅｘａｍｐｌｅ．ｃｏｍ", "www.example.com", "ｗｗｗ．Ｅｘａｍｐｌｅ．ｃｏｍ"),
    ("cafe\u0301 Bar", "bar", "Bar"),            # a combining mark joins the last ASCII letter before it
    ("ex\u200bample.com now", "example.com", "ex\u200bample.com"),
])
def test_normalized_offsets_point_back_to_the_source(source: str, needle: str, original: str) -> None:
    n = normalize(source)
    at = n.text.index(needle)
    s, e = n.source_span(at, at + len(needle))
    assert source[s:e] == original
