"""/metrics and /healthz over HTTP; the database locked or the disk full during DATA → 451/452, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.store.db import StoreUnavailable
from tests.support import (
    NO_LIMITS,
    Sink,
    eventually,
    maildir_messages,
    make_settings,
    message,
    provision,
    send,
    send_expect,
)


async def http_get(address: tuple[str, int], path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert method == "HEAD" or int(headers["Content-Length"]) == len(body)
    return int(lines[0].split()[1]), headers, body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_and_health(start_relay: Any, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port, rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    for _ in range(3):
        await send(port, world.seller_email, [world.buyer_alias], message(world.seller_email, world.buyer_alias))
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias))
    code, _ = await send_expect(port, "mallory@evil.example", [world.buyer_alias],
                                message("mallory@evil.example", world.buyer_alias))
    assert code == 550
    await sink.wait_for(4)
    assert relay.http is not None
    await eventually(lambda: relay.worker and relay.worker.delivered == 4)

    status, headers, body = await http_get(relay.http.address, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    m = samples(body.decode())
    assert m[("relay_messages_total", (("direction", "seller_to_buyer"), ("reason", "ok")))] == 3
    assert m[("relay_messages_total", (("direction", "buyer_to_seller"), ("reason", "ok")))] == 1
    assert m[("relay_deliveries_total", (("kind", "message"), ("outcome", "delivered")))] == 4
    assert m[("relay_delivery_latency_seconds_count", ())] == 4
    assert m[("relay_queue_depth", (("state", "queued"),))] == 0
    assert m[("relay_queue_oldest_age_seconds", ())] == 0
    assert m[("relay_smtp_sessions_total", (("result", "accepted"),))] == 5
    assert m[("relay_stage_seconds_count", (("stage", "sign"),))] == 4  # DKIM time
    for stage in ("rules", "content"):  # policy time
        assert m[("relay_stage_seconds_count", (("stage", stage),))] == 4
    assert m[("relay_store_transactions", ())] > 0

    status, headers, body = await http_get(relay.http.address, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] is True, health
    assert set(health["checks"]) == {"store", "disk", "queue"}
    assert (await http_get(relay.http.address, "/nope"))[0] == 404
    assert (await http_get(relay.http.address, "/metrics", "POST"))[0] == 405
    assert (await http_get(relay.http.address, "/healthz", "HEAD"))[2] == b""

    # a queued message that nobody picks up: the queue is stalled
    assert relay.worker is not None
    await relay.worker.stop(1)
    await send(port, world.seller_email, [world.buyer_alias], message(world.seller_email, world.buyer_alias))
    status, _, body = await http_get(relay.http.address, "/healthz")
    health = json.loads(body)
    assert status == 503 and health["checks"]["queue"]["ok"] is False
    assert health["checks"]["queue"]["worker_running"] is False and health["checks"]["queue"]["queued"] == 1
    m = samples((await http_get(relay.http.address, "/metrics"))[2].decode())
    assert m[("relay_queue_depth", (("state", "queued"),))] == 1
    assert m[("relay_queue_oldest_age_seconds", ())] >= 0


def message_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


async def test_database_locked_during_data(start_relay: Any, tmp_path: Path) -> None:
    relay = await start_relay(store={"busy_timeout": "0.3s"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    data = message(world.seller_email, world.buyer_alias, body="locked-body\r\n")
    locker = sqlite3.connect(relay.settings.db_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        code, text = await send_expect(port, world.seller_email, [world.buyer_alias], data)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert code == 451 and text.startswith("4.3.0"), (code, text)
    assert message_count(relay.settings.db_path) == 0  # nothing half-written
    # the client retries, as SMTP clients do after a 4xx: accepted and delivered once
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], data))[0] == 250
    msgs = await eventually(lambda: maildir_messages(relay.settings))
    assert len(msgs) == 1 and b"locked-body" in msgs[0]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[bool]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


async def test_disk_full_during_data(start_relay: Any, tmp_path: Path, dkim_key: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "small"
    with small_tmpfs(state, "4m") as mounted:
        settings = make_settings(state, dkim={"private_key": str(dkim_key)},
                                 delivery={"maildir": str(tmp_path / "outbox")})
        relay = await start_relay(settings)
        world = provision(relay.settings)
        port = relay.addresses[0][1]
        big = message(world.seller_email, world.buyer_alias, body=("x" * 76 + "\r\n") * 13000 + "full-body\r\n")
        filler = state / "filler"
        if mounted:  # a real full file system: fill it to the last block
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for block in (65536, 512):
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * block)
            finally:
                os.close(fd)
        else:  # no tmpfs (not root, or no mount permission): a test double at the store boundary
            real_write = relay.store.db.write

            async def full(unit: Any) -> Any:
                raise StoreUnavailable("store write failed: database or disk is full") from OSError(errno.ENOSPC, "")

            monkeypatch.setattr(relay.store.db, "write", full)
        code, text = await send_expect(port, world.seller_email, [world.buyer_alias], big)
        assert code == 452 and text.startswith("4.3.1"), (code, text)
        if mounted:
            filler.unlink()
        else:
            monkeypatch.setattr(relay.store.db, "write", real_write)
        assert message_count(relay.settings.db_path) == 0
        assert (await send_expect(port, world.seller_email, [world.buyer_alias], big))[0] == 250
        msgs = await eventually(lambda: maildir_messages(relay.settings))
        assert len(msgs) == 1 and b"full-body" in msgs[0]
        await relay.stop(2)
