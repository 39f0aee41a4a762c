"""RelaySMTP._getaddr answers a plain `<local@domain>` itself and everything else through aiosmtpd:
the answers (address, rest of the line) are aiosmtpd's own, for every path a client may send."""

from __future__ import annotations

import random

import pytest
from aiosmtpd.smtp import SMTP

from relay.smtp.limits import Limits
from relay.smtp.server import _PLAIN_PATH, RelaySMTP


class _Handler:
    pass


def _session(local_part_limit: int = 0) -> RelaySMTP:
    session = RelaySMTP(_Handler(), limits=Limits(10, 10, 10.0), hostname="relay.example")
    session.local_part_limit = local_part_limit
    return session


CASES = [
    "<buyer-123@relay.example>",
    "<buyer-123@relay.example> SIZE=5000 BODY=8BITMIME",
    "<a@b>  SIZE=1",
    "<a.b+tag@sub.example.com>\tSIZE=1",
    "<o'brien@example.ie>",
    "<{weird}|=~#$%&*/?^`@example.org>",
    "<a@b> ",
    "<a@b>SIZE=1",
    "<a@b> (comment) SIZE=1",
    "<a@b>(comment)",
    "<a..b@c>",
    "<.a@c>",
    "<a.@c>",
    "<a@c.>",
    '<"quoted local"@example.com>',
    "<a@[127.0.0.1]>",
    "<@relay1.example:a@b.example>",
    "<>",
    "< a@b>",
    " <a@b>",
    "a@b",
    "<a@b",
    "<a@b>>",
    "<ä@b.example>",
    "<a@bü.example>",
    "<a b@c>",
    "<a@b c>",
    "",
]


def _outcome(fn: object, arg: str) -> object:
    """The answer, or the kind of exception (aiosmtpd's parser raises IndexError on some input)."""
    try:
        return fn(arg)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("arg", CASES)
def test_answers_are_aiosmtpds(arg: str) -> None:
    session = _session()
    assert session._getaddr(arg) == SMTP._getaddr(session, arg)


def test_the_common_form_takes_the_fast_path() -> None:
    # The point of the override: the form every client sends must not reach the slow parser.
    assert _PLAIN_PATH.match("<buyer-123@relay.example> SIZE=5000 BODY=8BITMIME")
    assert _PLAIN_PATH.match("<buyer-123@relay.example>")
    assert not _PLAIN_PATH.match('<"x y"@relay.example>')


@pytest.mark.parametrize("limit", [0, 3, 8])
def test_local_part_limit_is_applied_the_same_way(limit: int) -> None:
    session = _session(limit)
    for arg in ("<abc@x.example>", "<abcd@x.example> SIZE=1", "<abcdefghi@x.example>", "<a.b.c.d@x>"):
        assert session._getaddr(arg) == SMTP._getaddr(session, arg)


def test_random_paths_match_aiosmtpd() -> None:
    pieces = ["<", ">", "@", ".", "a", "Z", "9", "-", "+", "'", '"', "(", ")", " ", "\t", "\\", "[", "]",
              ",", ":", ";", "é", "=", "SIZE=1", "example", "b.example", "<a@b.example>", "x"]
    tails = ["", " ", " SIZE=1", "  X=1 Y", "(c)", " (c) X", "\tZ", "X", " \t", "> x"]
    rnd = random.Random(8)
    session = _session()
    fast = 0
    for _ in range(20_000):
        arg = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        if rnd.random() < 0.3:
            arg = "<" + arg
        elif rnd.random() < 0.3:  # near the plain form: atoms, dots and a tail that may break it
            atoms = ["a", "b-c", "o'k", "x+y", "é", "", '"q"', "9"]
            local = ".".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 3)))
            domain = ".".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 3)))
            arg = f"<{local}@{domain}>" + rnd.choice(tails)
        if _PLAIN_PATH.match(arg):
            fast += 1
        assert _outcome(session._getaddr, arg) == _outcome(lambda a: SMTP._getaddr(session, a), arg), arg
    assert fast > 100  # the comparison covered the fast path, not only the fallback
