"""Large messages over real sockets: spooled to disk while received, checked a few at a time,
relayed byte for byte and signed; their spool files are gone after every outcome."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import aiosmtplib
import pytest

from relay.smtp import handler as handler_module
from relay.smtp.spool import SpoolFile
from relay.store import blobfiles, messages
from relay.store.db import connect_sync
from tests.support import (
    Sink,
    dkim_ok,
    eventually,
    maildir_messages,
    message,
    open_data,
    provision,
    send,
    send_expect,
    send_raw,
)

SMALL_SPOOL = {"spool_threshold": "64KiB"}


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


def big_body(lines: int, tag: str = "") -> str:
    """Plain lines, many of them starting with a dot (stuffed on the wire, wherever reads split)."""
    return "".join(f"{'.' if i % 3 == 0 else ''}{tag}line {i:06d} of the parcel list, nothing to see here\r\n"
                   for i in range(lines))


def spool_files(relay: object) -> list[Path]:
    directory = relay.settings.spool_path  # type: ignore[attr-defined]
    return sorted(directory.iterdir()) if directory.exists() else []


async def test_a_spooled_message_is_relayed_byte_for_byte_and_signed(start_relay, sink: Sink,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    linked: list[bool] = []
    real_link = blobfiles.link_ahead

    def link_ahead(*args: object) -> bool:
        linked.append(real_link(*args))  # type: ignore[arg-type]
        return linked[-1]

    monkeypatch.setattr(blobfiles, "link_ahead", link_ahead)
    relay = await start_relay(smarthost=sink.port, smtp=SMALL_SPOOL)
    world = provision(relay.settings)
    data = message(world.buyer_email, world.seller_alias, subject="Big", body=big_body(6000))
    assert len(data) > 4 * 64 * 1024
    await send(relay.addresses[0][1], world.buyer_email, [world.seller_alias], data)
    got = (await sink.wait_for(1, timeout=30))[0]
    assert body_of(got.data) == body_of(data)
    assert dkim_ok(relay, got.data)
    assert spool_files(relay) == []
    assert relay.limits.inflight == 0
    # the original is stored as received: the spool file itself, linked in (not a copy of it)
    assert linked == [True]
    conn = connect_sync(relay.settings.db_path)
    try:
        digest, delivered = conn.execute("SELECT original_sha256, delivered_sha256 FROM messages").fetchone()
        assert messages.get_blob(conn, digest) == data
        where = blobfiles.directory(conn)
        assert where is not None and blobfiles.path_of(where, digest).stat().st_nlink == 1
        # the delivered copy changed only the head: that head is stored, on the original (no second file)
        assert conn.execute("SELECT base, length(data) < 4096 FROM blobs WHERE sha256 = ?",
                            (delivered,)).fetchone() == (digest, 1)
        assert messages.get_blob(conn, delivered) == got.data
        assert [f.name for f in where.rglob("*") if f.is_file()] == [digest]
    finally:
        conn.close()


async def test_without_size_the_message_is_spooled_once_it_outgrows_the_threshold(start_relay) -> None:
    relay = await start_relay(smtp=SMALL_SPOOL)
    world = provision(relay.settings)
    data = message(world.buyer_email, world.seller_alias, body=big_body(3000))
    # a hand-driven session sends no SIZE=: the message starts in memory, then moves to the spool
    answer = await send_raw(relay.addresses[0][1], world.buyer_email, world.seller_alias, data)
    assert answer.startswith(b"250"), answer
    delivered = await eventually(lambda: maildir_messages(relay.settings))
    # sent without dot-stuffing here, so the relay took one leading dot off those lines
    assert body_of(delivered[0]) == body_of(data.replace(b"\r\n.", b"\r\n"))
    assert spool_files(relay) == []


async def test_spool_files_are_gone_after_a_refusal(start_relay) -> None:
    relay = await start_relay(smtp=SMALL_SPOOL)
    world = provision(relay.settings)
    bare_lf = message(world.buyer_email, world.seller_alias, body=big_body(3000) + "a bare\nline feed\r\n")
    answer = await send_raw(relay.addresses[0][1], world.buyer_email, world.seller_alias, bare_lf)
    assert answer.startswith(b"550"), answer
    assert spool_files(relay) == []


async def test_spool_files_are_gone_after_too_big(start_relay) -> None:
    relay = await start_relay(smtp={**SMALL_SPOOL, "max_message_size": 200_000})
    world = provision(relay.settings)
    data = message(world.buyer_email, world.seller_alias, body=big_body(5000))
    answer = await send_raw(relay.addresses[0][1], world.buyer_email, world.seller_alias, data)
    assert answer.startswith(b"552"), answer
    assert spool_files(relay) == []
    assert relay.limits.inflight == 0


async def test_spool_files_are_gone_after_a_disconnect_mid_data(start_relay) -> None:
    relay = await start_relay(smtp=SMALL_SPOOL)
    world = provision(relay.settings)
    data = message(world.buyer_email, world.seller_alias, body=big_body(6000))
    _, writer, _ = await open_data(relay.addresses[0][1], world.buyer_email, world.seller_alias)
    writer.write(data[: len(data) // 2])
    await writer.drain()
    await eventually(lambda: spool_files(relay))  # the half received is on disk
    writer.close()
    await eventually(lambda: not spool_files(relay))
    await eventually(lambda: relay.limits.inflight == 0)
    assert maildir_messages(relay.settings) == []


async def test_spool_files_are_gone_after_a_handler_crash(start_relay, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = await start_relay(smtp=SMALL_SPOOL)
    world = provision(relay.settings)

    def crash(raw: bytes) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(handler_module, "has_bare_line_ending", crash)
    data = message(world.buyer_email, world.seller_alias, body=big_body(3000))
    code, _ = await send_expect(relay.addresses[0][1], world.buyer_email, [world.seller_alias], data)
    assert code == 451
    assert spool_files(relay) == []


async def test_a_spool_that_cannot_be_written_gets_452_after_the_whole_data(start_relay,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    relay = await start_relay(smtp=SMALL_SPOOL)
    world = provision(relay.settings)

    def disk_full(self: SpoolFile, part: memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SpoolFile, "_write", disk_full)
    data = message(world.buyer_email, world.seller_alias, body=big_body(6000))
    code, _ = await send_expect(relay.addresses[0][1], world.buyer_email, [world.seller_alias], data)
    assert code == 452
    assert spool_files(relay) == []
    assert relay.limits.inflight == 0
    monkeypatch.undo()  # the session is still in step: the next message goes through
    code, _ = await send_expect(relay.addresses[0][1], world.buyer_email, [world.seller_alias], data)
    assert code == 250


async def test_start_removes_leftover_spool_files(start_relay, tmp_path: Path) -> None:
    leftover = tmp_path / "state" / "spool" / "4242-0123456789abcdef"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a message from before a crash")
    relay = await start_relay()
    assert relay.settings.spool_path == leftover.parent
    assert not leftover.exists()


async def test_many_concurrent_large_messages_are_all_accepted_one_at_a_time(start_relay) -> None:
    # Eight 1.2 MB messages at once, one checked at a time, under an in-flight bound that could not
    # hold two of them in memory: all wait their turn (no 452), none is lost or mixed up.
    relay = await start_relay(smtp={"spool_threshold": "128KiB", "spool_concurrency": 1,
                                    "max_inflight_bytes": "8MiB"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    sent = [message(world.buyer_email, world.seller_alias, subject=f"Big {n}", body=big_body(20_000, f"m{n} "))
            for n in range(8)]
    assert all(len(d) > 1_000_000 for d in sent)

    async def send_async(data: bytes) -> str:
        # an asyncio client: eight smtplib clients in threads would take the loop's default executor,
        # which the relay in this same loop needs for its checks
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False) as client:
            _errors, response = await client.sendmail(world.buyer_email, [world.seller_alias], data)
        return response  # a 4xx or 5xx would have raised

    answers = await asyncio.gather(*(send_async(d) for d in sent))
    assert all(a.startswith("2.0.0") for a in answers), answers
    delivered = await eventually(lambda: len(maildir_messages(relay.settings)) == 8 and maildir_messages(relay.settings),
                                 timeout=60)
    assert sorted(body_of(d) for d in delivered) == sorted(body_of(d) for d in sent)
    assert spool_files(relay) == []
    assert relay.limits.inflight == 0
