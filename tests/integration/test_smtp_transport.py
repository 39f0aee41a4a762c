"""The smarthost transport's own DATA writer: what arrives at the sink is the message, byte for byte.

The relay dot-stuffs with bytes.replace and writes DATA itself (not aiosmtplib's sendmail);
these tests pin what that must keep: dot-stuffing of every line that starts with ".", CRLF
line ends, the SIZE it announces, answers mapped to temporary/permanent, a reused connection.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.delivery.smtp import SmtpTransport, wire_data
from relay.delivery.transport import DeliveryError
from tests.support import Sink, make_settings

#: (message as handed to the transport, what the receiving server must see)
CASES = [
    (b"Subject: a\r\n\r\nbody\r\n", b"Subject: a\r\n\r\nbody\r\n"),
    (b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\n", b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\n"),
    (b"Subject: a\r\n\r\nline\r\n.\r\nMAIL FROM:<x@y>\r\n", b"Subject: a\r\n\r\nline\r\n.\r\nMAIL FROM:<x@y>\r\n"),
    (b"Subject: a\r\n\r\nno final line end", b"Subject: a\r\n\r\nno final line end\r\n"),
    (b"Subject: a\r\n\r\nbare\nlf\n.\nend\n", b"Subject: a\r\n\r\nbare\r\nlf\r\n.\r\nend\r\n"),
    (b"Subject: a\r\n\r\nbare\rcr\r.\r", b"Subject: a\r\n\r\nbare\r\ncr\r\n.\r\n"),
    (b"Subject: a\r\n\r\nends with a dot line\r\n.", b"Subject: a\r\n\r\nends with a dot line\r\n.\r\n"),
]


def _aiosmtplib_payload(message: bytes) -> bytes:
    """What aiosmtplib's sendmail puts on the wire after DATA (its regexes), the reference."""
    message = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", message)


@pytest.mark.parametrize(("message", "_seen"), CASES)
def test_wire_data_is_what_aiosmtplib_would_send(message: bytes, _seen: bytes) -> None:
    payload, size = wire_data(message)
    assert payload == _aiosmtplib_payload(message)
    assert size == len(_aiosmtplib_payload(message).replace(b"\r\n..", b"\r\n."))


def test_wire_data_stuffs_a_dot_on_the_first_line() -> None:
    assert wire_data(b".hidden\r\n") == (b"..hidden\r\n", 9)


def test_wire_data_leaves_a_clean_message_uncopied() -> None:
    message = b"Subject: a\r\n\r\n" + b"QUJD" * 1000 + b"\r\n"
    assert wire_data(message)[0] is message


def _transport(tmp_path: Path, port: int) -> SmtpTransport:
    return SmtpTransport(make_settings(tmp_path / "state", smarthost=port))


async def test_dotted_lines_arrive_intact(tmp_path: Path, sink: Sink) -> None:
    transport = _transport(tmp_path, sink.port)
    try:
        for message, _ in CASES:
            await transport.send("from@relay.example", "to@buyer.example", message)
    finally:
        await transport.close()
    got = await sink.wait_for(len(CASES))
    assert [r.data for r in got] == [seen for _, seen in CASES]
    assert all(r.rcpt_tos == ["to@buyer.example"] and r.mail_from == "from@relay.example" for r in got)


async def test_a_big_message_arrives_intact_over_one_kept_connection(tmp_path: Path, sink: Sink) -> None:
    body = b"".join(b".line %d starts with a dot\r\nplain %d\r\n" % (i, i) for i in range(100_000))
    message = b"Subject: big\r\n\r\n" + body
    transport = _transport(tmp_path, sink.port)
    try:
        await transport.send("from@relay.example", "to@buyer.example", message)
        await transport.send("from@relay.example", "to@buyer.example", b"Subject: small\r\n\r\n.\r\n")
        assert len(transport._idle) == 1  # the second message reused the first one's connection
    finally:
        await transport.close()
    got = await sink.wait_for(2)
    assert got[0].data == message
    assert got[1].data == b"Subject: small\r\n\r\n.\r\n"


@pytest.mark.parametrize(("where", "reply", "permanent"), [
    ("data", "451 4.3.0 try later", False),
    ("data", "552 5.3.4 too big", True),
    ("rcpt", "550 5.1.1 no such user", True),
    ("rcpt", "450 4.2.1 mailbox busy", False),
])
async def test_answers_map_to_temporary_or_permanent(tmp_path: Path, sink: Sink, where: str, reply: str,
                                                      permanent: bool) -> None:
    if where == "data":
        sink.replies.append(reply)
    else:
        sink.rcpt_reply = reply
    transport = _transport(tmp_path, sink.port)
    try:
        with pytest.raises(DeliveryError) as info:
            await transport.send("from@relay.example", "to@buyer.example", b"Subject: a\r\n\r\nx\r\n")
        assert info.value.permanent is permanent
        assert info.value.code == int(reply[:3])
        sink.rcpt_reply = None
        # the connection was reset, not left mid-transaction: the next message goes through
        await transport.send("from@relay.example", "to@buyer.example", b"Subject: b\r\n\r\ny\r\n")
    finally:
        await transport.close()
    assert [r.data for r in await sink.wait_for(1)] == [b"Subject: b\r\n\r\ny\r\n"]
