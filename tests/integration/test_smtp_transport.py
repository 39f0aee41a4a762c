"""The smarthost transport's own DATA writer: what arrives at the sink is the message, byte for byte.

The relay dot-stuffs with bytes.replace and writes DATA itself (not aiosmtplib's sendmail);
these tests pin what that must keep: dot-stuffing of every line that starts with ".", CRLF
line ends, the SIZE it announces, answers mapped to temporary/permanent, a reused connection.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from relay.delivery.smtp import SmtpTransport, _Replies, wire_data
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


# --- pipelining (RFC 2920) -------------------------------------------------------------------


class PipeliningSmarthost:
    """Offers PIPELINING and answers MAIL only once RCPT and DATA have arrived too: a client that
    waited for each reply before the next command would stall here. Records each transaction."""

    def __init__(self, mail: str = "250 ok", rcpt: str = "250 ok", data: str = "354 go on",
                 final: str = "250 2.0.0 queued", close_after_commands: bool = False,
                 delay_data: float = 0.0, close_in_data: bool = False, limit: int = 2 ** 16) -> None:
        self.delay_data, self.close_in_data, self.limit = delay_data, close_in_data, limit
        self.answers = (mail, rcpt, data)
        self.final = final
        self.close_after_commands = close_after_commands
        self.received: list[tuple[list[bytes], bytes]] = []
        self.connections = 0
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, limit=self.limit)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def drop_all(self) -> int:
        """Cut every open connection at once, still listening (a smarthost restart, its idle timeout)."""
        for writer in self._open:
            writer.transport.abort()
        return len(self._open)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        writer.write(b"220 sink ready\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line or line.upper().startswith(b"QUIT"):
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-sink\r\n250-PIPELINING\r\n250 SIZE 100000000\r\n")
                elif verb == b"RSET":
                    writer.write(b"250 reset\r\n")
                elif verb == b"MAIL":
                    commands = [line.rstrip(b"\r\n")]
                    for _ in range(2):  # RCPT and DATA before any reply
                        commands.append((await asyncio.wait_for(reader.readline(), 5)).rstrip(b"\r\n"))
                    if self.close_after_commands:
                        break
                    writer.write("".join(a + "\r\n" for a in self.answers).encode())
                    if not self.answers[2].startswith("354"):
                        continue
                    await writer.drain()
                    if self.delay_data:  # not reading: the client's socket and buffer fill up
                        await asyncio.sleep(self.delay_data)
                    if self.close_in_data:
                        await reader.read(65536)
                        break
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.received.append((commands, data[:-3]))
                    writer.write(self.final.encode() + b"\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()


async def _pipelining(**answers: Any) -> PipeliningSmarthost:
    server = PipeliningSmarthost(**answers)
    await server.start()
    return server


async def test_pipelined_commands_go_out_together_and_the_message_arrives(tmp_path: Path) -> None:
    server = await _pipelining()
    transport = _transport(tmp_path, server.port)
    message = b"Subject: p\r\n\r\n.dot line\r\nbody\r\n"
    try:
        assert await transport.send("from@relay.example", "to@buyer.example", message) == "2.0.0 queued"
        assert await transport.send("from@relay.example", "to@buyer.example", b"Subject: q\r\n\r\nx\r\n")
    finally:
        await transport.close()
        await server.stop()
    (commands, data), (_, second) = server.received
    assert commands == [b"MAIL FROM:<from@relay.example> SIZE=%d" % len(message), b"RCPT TO:<to@buyer.example>",
                        b"DATA"]
    assert data == b"Subject: p\r\n\r\n..dot line\r\nbody\r\n" and second == b"Subject: q\r\n\r\nx\r\n"
    assert server.connections == 1  # the connection went back to aiosmtplib and was kept


@pytest.mark.parametrize(("answers", "permanent", "code"), [
    ({"mail": "451 4.3.0 try later", "rcpt": "503 no sender", "data": "503 no valid recipients"}, False, 451),
    ({"rcpt": "550 5.1.1 no such user", "data": "554 no valid recipients"}, True, 550),
    ({"rcpt": "452 4.2.2 over quota", "data": "554 no valid recipients"}, False, 452),
    ({"data": "554 5.7.1 not now"}, True, 554),
    ({"final": "552 5.3.4 too big"}, True, 552),
    ({"rcpt": "550 5.1.1 no such user"}, True, 550),  # 354 after a refused RCPT: the message is not sent
])
async def test_pipelined_answers_map_to_temporary_or_permanent(tmp_path: Path, answers: dict[str, str],
                                                               permanent: bool, code: int) -> None:
    server = await _pipelining(**answers)
    transport = _transport(tmp_path, server.port)
    try:
        with pytest.raises(DeliveryError) as info:
            await transport.send("from@relay.example", "to@buyer.example", b"Subject: a\r\n\r\nx\r\n")
        assert (info.value.permanent, info.value.code) == (permanent, code)
    finally:
        await transport.close()
        await server.stop()
    if "final" not in answers:
        assert server.received == []


async def test_a_smarthost_that_drops_the_pipelined_transaction_is_a_temporary_failure(tmp_path: Path) -> None:
    server = await _pipelining(close_after_commands=True)
    transport = _transport(tmp_path, server.port)
    try:
        with pytest.raises(DeliveryError) as info:
            await transport.send("from@relay.example", "to@buyer.example", b"Subject: a\r\n\r\nx\r\n")
        assert info.value.permanent is False
    finally:
        await transport.close()
        await server.stop()


async def test_the_pool_recovers_when_the_smarthost_drops_its_connections(tmp_path: Path) -> None:
    """Kept-alive connections the smarthost has cut are replaced by fresh ones: every message after
    the cut goes through at once, none comes back as a failure to be retried minutes later."""
    server = await _pipelining()
    transport = _transport(tmp_path, server.port)

    async def wave(tag: bytes) -> list[str]:
        return list(await asyncio.gather(*(transport.send("from@relay.example", "to@buyer.example",
                                                          b"Subject: %s %d\r\n\r\nx\r\n" % (tag, i))
                                           for i in range(4))))

    try:
        assert await wave(b"before") == ["2.0.0 queued"] * 4
        pooled = len(transport._idle)
        assert pooled == 4 and server.connections == 4
        # cut while the pool still believes in them: the next sends find out only when they use them
        assert server.drop_all() == 4
        assert await wave(b"after") == ["2.0.0 queued"] * 4
        assert server.connections == 8  # each dead one was replaced once, not retried on a dead socket
        assert server.drop_all() == 4
        await asyncio.sleep(0.1)  # this time the pool sees them closed before it hands them out
        assert await wave(b"later") == ["2.0.0 queued"] * 4
        assert server.connections == 12
    finally:
        await transport.close()
        await server.stop()
    subjects = sorted(data.split(b"\r\n", 1)[0] for _, data in server.received)
    assert subjects == sorted(b"Subject: %s %d" % (tag, i) for tag in (b"before", b"after", b"later")
                              for i in range(4))


async def test_postfix_smtp_sink_takes_pipelined_mail(tmp_path: Path) -> None:
    """The real thing: Postfix's smtp-sink offers PIPELINING; messages go through and the
    connection is kept for the next one."""
    from bench.e2e import free_port
    from bench.sink import CountingSink, smtp_sink_path

    if smtp_sink_path() is None:
        pytest.skip("smtp-sink (postfix) is not installed; .ci/run installs it")
    sink = CountingSink(free_port())
    await sink.start()
    transport = _transport(tmp_path, sink.port)
    try:
        client, _ = await transport._acquire()
        await client.ehlo()
        assert client.supports_extension("pipelining")
        transport._release(client)
        for i in range(5):
            assert await transport.send("from@relay.example", "to@buyer.example", b"Subject: %d\r\n\r\n.x\r\n" % i)
        assert len(transport._idle) == 1
    finally:
        await transport.close()
        await sink.stop()
    assert sink.count == 5


async def test_a_large_message_is_sent_in_pieces_as_the_smarthost_reads(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport's flow control: the message goes out a piece at a time, each once the last is
    sent, and arrives whole even when the smarthost stops reading for a while."""
    from relay.delivery import smtp as delivery_smtp

    pauses: list[int] = []
    original = delivery_smtp._Replies.pause_writing

    def counting(self: Any) -> None:
        pauses.append(1)
        original(self)

    monkeypatch.setattr(delivery_smtp._Replies, "pause_writing", counting)
    server = await _pipelining(delay_data=0.5, limit=64 * 1024 * 1024)  # reads the message in one piece
    transport = _transport(tmp_path, server.port)
    body = b"".join(b"%07d line of a large message, with a .dot and more text to fill it up\r\n" % i
                    for i in range(120_000))
    message = b"Subject: big\r\n\r\n" + body
    try:
        assert await transport.send("from@relay.example", "to@buyer.example", message) == "2.0.0 queued"
    finally:
        await transport.close()
        await server.stop()
    [(_, data)] = server.received
    assert data == message and len(message) > 8_000_000
    assert pauses  # the smarthost did fall behind: the pieces waited for the transport


class _Writes(asyncio.WriteTransport):
    """A transport that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize(("size", "writes"), [
    (5_000, 1), (_Replies.JOIN, 1),           # the message and its "." in one segment
    (_Replies.JOIN + 1, 2), (3 * _Replies.PIECE, 4),  # pieces, then the "."
])
async def test_a_small_message_and_its_final_dot_go_out_in_one_write(size: int, writes: int) -> None:
    reader, transport = _Replies(asyncio.Protocol(), 5.0), _Writes()
    payload = b"x" * (size - 2) + b"\r\n"
    await reader.send(transport, payload)
    assert len(transport.writes) == writes
    assert b"".join(transport.writes) == payload + b".\r\n"


async def test_a_smarthost_that_drops_the_connection_during_the_message_is_a_temporary_failure(
        tmp_path: Path) -> None:
    server = await _pipelining(close_in_data=True)
    transport = _transport(tmp_path, server.port)
    message = b"Subject: big\r\n\r\n" + b"x" * 76 * 100_000 + b"\r\n"
    try:
        with pytest.raises(DeliveryError) as info:
            await transport.send("from@relay.example", "to@buyer.example", message)
    finally:
        await transport.close()
        await server.stop()
    assert not info.value.permanent
