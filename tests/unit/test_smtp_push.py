"""Reply lines: a multi-line reply is written once, whole; single lines as they come."""

from __future__ import annotations

import pytest

from relay.smtp.limits import Limits
from relay.smtp.server import RelaySMTP


class _Writer:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        return None


class _Handler:
    async def handle_DATA(self, *args: object) -> str:
        return "250 OK"


@pytest.mark.parametrize(("lines", "writes"), [
    (["220 ready"], [b"220 ready\r\n"]),
    (["250-relay.example", "250-SIZE 1000", "250-8BITMIME", "250 HELP"],
     [b"250-relay.example\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 HELP\r\n"]),
    (["250-one", "250 two", "354 go ahead"], [b"250-one\r\n250 two\r\n", b"354 go ahead\r\n"]),
    ([b"550-5.7.1 first", b"550 5.7.1 last"], [b"550-5.7.1 first\r\n550 5.7.1 last\r\n"]),
    (["2-0 not a code", "ok"], [b"2-0 not a code\r\n", b"ok\r\n"]),
])
async def test_multi_line_replies_leave_in_one_write(lines: list[str | bytes], writes: list[bytes]) -> None:
    smtp = RelaySMTP(_Handler(), limits=Limits(10, 10, 10.0), hostname="relay.example")
    writer = _Writer()
    smtp._writer = writer  # type: ignore[assignment]
    for line in lines:
        await smtp.push(line)
    assert writer.writes == writes
