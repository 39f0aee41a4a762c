"""relay.scan: the cheap whole-message scans must say exactly what the plain ones say
(is_crlf: counting CR, LF and CRLF; find_dashed: bytes.find)."""

from __future__ import annotations

import random

import pytest

from relay import scan
from relay.scan import find_dashed, find_rare, is_crlf


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
def test_is_crlf_table(data: bytes, clean: bool) -> None:
    assert is_crlf(data) is clean
    assert _by_counting(data) is clean


def test_is_crlf_agrees_with_counting_on_random_line_ends() -> None:
    rnd = random.Random(5321)
    pieces = [b"a", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\n\r"]
    for _ in range(20_000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        assert is_crlf(data) is _by_counting(data), data


@pytest.mark.parametrize(("first", "window"), [(1, 1), (1, 2), (1, 5), (2, 64), (256, 64 * 1024)])
@pytest.mark.parametrize("needle", [b"\r\n--b", b"\n--", b"\r\n--b-c", b"-"])
def test_find_dashed_is_find(first: int, window: int, needle: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window growing from `first` to `window` after each miss finds what bytes.find finds."""
    monkeypatch.setattr(scan, "FIRST_WINDOW", first)
    monkeypatch.setattr(scan, "WINDOW", window)
    rnd = random.Random(2046)
    pieces = [b"a", b"-", b"--", b"\r\n", b"\n", b"b", b"\r\n--b", b"--b-c", b"QUJD" * 5]
    for _ in range(3000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25)))
        for start in range(0, len(data) + 1, 3):
            for end in (len(data), max(start, len(data) - 4)):
                assert find_dashed(data, needle, start, end) == data.find(needle, start, end), (data, start, end)


def test_find_dashed_on_a_large_body() -> None:
    body = b"QUJD" * 2_000_000 + b"\r\n--mix--\r\n"
    assert find_dashed(body, b"\r\n--mix", 0, len(body)) == 8_000_000
    text = b"- - -- --- text with dashes --x\r\n" * 20_000 + b"\r\n--mix\r\n"
    assert find_dashed(text, b"\r\n--mix", 0, len(text)) == text.find(b"\r\n--mix")


@pytest.mark.parametrize(("needle", "rare"), [(b"\r\n.", b"."), (b"\r\n--b", b"-"), (b"a.b.", b".")])
def test_find_rare_is_find(needle: bytes, rare: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "WINDOW", 3)
    rnd = random.Random(5321)
    pieces = [b"a", b".", b"..", b"\r\n", b"\r\n.", b"b", b"-", b"\r\n--b", b"a.b."]
    for _ in range(3000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25)))
        for start in range(0, len(data) + 1, 2):
            assert find_rare(data, needle, rare, start, len(data)) == data.find(needle, start), (data, start)


def test_is_crlf_answers_again_for_the_same_object_only() -> None:
    """A large content found clean is remembered by identity; equal bytes in another object, or
    a bytearray changed in place, are scanned again."""
    clean = b"line\r\n" * 20_000
    assert scan.is_crlf(clean) and scan._clean[-1] is clean
    dirty = bytearray(clean)
    dirty[100] = ord("\n")
    assert not scan.is_crlf(bytes(dirty))
    assert scan.is_crlf(clean)
    mutable = bytearray(clean)
    assert scan.is_crlf(mutable) and all(c is not mutable for c in scan._clean)  # a bytearray: never remembered
    mutable[7] = ord("\r")
    assert not scan.is_crlf(mutable)


def test_is_crlf_remembers_interleaved_messages_but_keeps_none_alive() -> None:
    """Several messages checked in turn are all remembered; one nobody holds any more is let go
    at the next addition (its memory is not kept by the memo), and the memo stays bounded."""
    messages = [b"%d\r\n" % i * 30_000 for i in range(3)]
    for m in messages:
        assert scan.is_crlf(m)
    assert all(any(c is m for c in scan._clean) for m in messages)
    del m
    messages.pop(0)  # the first message is finished: only the memo still holds it
    assert scan.is_crlf(b"new\r\n" * 30_000)
    assert not any(c.startswith(b"0\r\n") for c in scan._clean)
    assert all(any(c is m for c in scan._clean) for m in messages)
    for i in range(3 * scan._KEEP):
        messages.append(b"%d:\r\n" % i * 30_000)
        scan.is_crlf(messages[-1])
    assert len(scan._clean) <= scan._KEEP
    messages.clear()
    scan.forget_finished()  # after a message: nothing finished is kept, even without a next one
    assert scan._clean == []
