"""relay.crlf.is_crlf: the cheap wire-form check must say exactly what counting CR, LF and CRLF says."""

from __future__ import annotations

import random

import pytest

from relay.crlf import is_crlf


def _by_counting(data: bytes) -> bool:
    return data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n")


@pytest.mark.parametrize(("data", "clean"), [
    (b"", True),
    (b"no line end", True),
    (b"a\r\nb\r\n", True),
    (b"\r\n\r\n", True),
    (b"a\nb", False),            # bare LF
    (b"a\rb", False),            # bare CR
    (b"a\r", False),             # CR at the very end
    (b"\na\r", False),           # one bare LF and one bare CR: the counts agree, the pairs do not
    (b"a\r\r\n\n", False),
    (b"a\n\r", False),
    (b"x\r\n.\r\n", True),
])
def test_table(data: bytes, clean: bool) -> None:
    assert is_crlf(data) is clean
    assert _by_counting(data) is clean


def test_agrees_with_counting_on_random_line_ends() -> None:
    rnd = random.Random(5321)
    pieces = [b"a", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\n\r"]
    for _ in range(20_000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        assert is_crlf(data) is _by_counting(data), data
