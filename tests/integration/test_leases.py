"""Delivery claims are leases: renewed while a slow delivery runs, fenced by a token, taken back
by any process's sweeper once they run out, and returned at shutdown only by their own process."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.config import load
from relay.delivery.worker import DeliveryWorker
from relay.store import queue as queue_repo
from relay.store.db import connect_sync
from relay.store.migrate import migrate
from tests.integration.test_workers import children, free_port
from tests.support import Sink, _SinkHandler, message, provision, send


class _SlowHandler(_SinkHandler):
    """Answers RCPT only after the delay set for that recipient: a delivery in flight that has
    not reached DATA, so a sender killed meanwhile leaves nothing at the sink."""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        delays: dict[str, float] = getattr(self.sink, "delays", {})
        await asyncio.sleep(delays.get(address.lower(), 0.0))
        return await super().handle_RCPT(server, session, envelope, address, options)


class SlowSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.delays: dict[str, float] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(_SlowHandler(self), enable_SMTPUTF8=True, hostname="slow.test"),
            host="127.0.0.1", port=0, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def count(self, subject: str) -> int:
        return sum(1 for r in self.received if r.message["Subject"] == subject)


@pytest.fixture
async def slow_sink() -> Any:
    s = SlowSink()
    await s.start()
    yield s
    await s.stop()


def _sending(db: Path) -> list[tuple[int, str, str]]:
    """(queue id, recipient, owner) of every row in 'sending'."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, recipient, claimed_by FROM queue WHERE state = 'sending'").fetchall()
    finally:
        conn.close()


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_renewed_lease_is_not_taken_by_a_sibling_sweeper(start_relay: Any, slow_sink: SlowSink) -> None:
    relay = await start_relay(smarthost=slow_sink.port, delivery={"lease_seconds": "1.5s"})
    world = provision(relay.settings)
    slow_sink.delays[world.seller_email] = 4.0  # more than two lease periods
    await send(relay.addresses[0][1], world.buyer_email, [world.seller_alias],
               message(world.buyer_email, world.seller_alias, "slow"))
    # a sibling process's sweeper, sharing the store (same host; another owner)
    sibling = DeliveryWorker(relay.settings, relay.store, relay.worker.transport)
    assert sibling.owner != relay.worker.owner
    await _until(lambda: _sending(relay.settings.db_path), 5, "the claim")
    for _ in range(7):
        assert await sibling.sweep() == 0  # renewed every 0.5 s: never expired
        await asyncio.sleep(0.5)
    await slow_sink.wait_for(1, timeout=10)
    await asyncio.sleep(0.5)
    assert slow_sink.count("slow") == 1
    conn = connect_sync(relay.settings.db_path)
    try:
        assert conn.execute("SELECT state FROM queue WHERE kind = 'message'").fetchall() == [("delivered",)]
        assert conn.execute("SELECT COUNT(*) FROM audit_events WHERE event = 'delivery.recovered'").fetchone()[0] == 0
    finally:
        conn.close()


async def test_the_sweeper_takes_back_a_lease_that_ran_out(start_relay: Any, slow_sink: SlowSink) -> None:
    """A row leased by a process that froze (here: another host's) is delivered once its lease runs
    out, by the sweeper of a relay that has been running all along (not only at start)."""
    relay = await start_relay(smarthost=slow_sink.port, delivery={"lease_seconds": "1.5s"})
    world = provision(relay.settings)
    now = time.time()

    def frozen_claim(conn: sqlite3.Connection) -> int:
        qid = queue_repo.enqueue_notice(conn, _a_message(conn), None, now, world.buyer_email, "",
                                        b"Subject: frozen\r\nFrom: n@relay.example\r\n\r\nhello\r\n")
        conn.execute("UPDATE queue SET state = 'sending', claimed_by = 'elsewhere:1:feed', lease_until = ?,"
                     " lease_token = 7 WHERE id = ?", (now + 1.0, qid))
        return qid

    qid = await relay.store.db.write(frozen_claim)  # a process that froze: its row, written as it would have
    assert _sending(relay.settings.db_path) == [(qid, world.buyer_email, "elsewhere:1:feed")]
    health = await relay.http.health()
    assert health["queue"]["expired_leases"] == 0
    await asyncio.sleep(1.1)
    got = await slow_sink.wait_for(1, timeout=5)
    assert [r.message["Subject"] for r in got] == ["frozen"]
    await asyncio.sleep(0.3)
    assert len(slow_sink.received) == 1


def _a_message(conn: sqlite3.Connection) -> int:
    """A messages row for a notice to hang off (queue.message_id is not null)."""
    conn.execute("INSERT INTO messages (state, received_at, envelope_from, rcpt_alias) VALUES ('queued', 0, '', 'x')")
    return int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])


def test_a_stale_token_writes_no_result(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.execute("INSERT INTO blobs (sha256, size, data) VALUES ('h', 1, x'00')")
    conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias) VALUES (1, 'queued', 0, 'a', 'b')")
    conn.execute("INSERT INTO queue (id, message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                 " next_attempt_at, expires_at) VALUES (1, 1, 'r', 'f', 'h', 'queued', 0, 0, 9e9)")
    (old,) = queue_repo.claim_due(conn, now=10.0, limit=1, owner="a:1:x", lease=5.0)
    assert queue_repo.expired_leases(conn, 14.0) == 0 and queue_repo.expired_leases(conn, 16.0) == 1
    assert queue_repo.reclaim(conn, 16.0, "a", lambda pid: True) == 1  # the lease ran out: back to queued
    (new,) = queue_repo.claim_due(conn, now=16.0, limit=1, owner="b:2:y", lease=5.0)
    assert new.lease_token == old.lease_token + 1
    # the stale process finishes late: none of its results is written, nor can it renew
    assert not queue_repo.mark_delivered(conn, old, 17.0, "250 late")
    assert not queue_repo.defer(conn, old, 17.0, 99.0, "451 late")
    assert queue_repo.bounce(conn, old, 17.0, "delivery.rejected", "550 late", None) is None
    assert queue_repo.renew(conn, [(old.id, old.lease_token)], 30.0) == [old.id]
    assert conn.execute("SELECT state, claimed_by FROM queue").fetchall() == [("sending", "b:2:y")]
    assert queue_repo.renew(conn, [(new.id, new.lease_token)], 30.0) == []
    assert queue_repo.mark_delivered(conn, new, 18.0, "250 ok")
    assert conn.execute("SELECT state FROM queue").fetchall() == [("delivered",)]


def test_reclaim_takes_a_gone_local_process_rows_but_not_a_live_ones(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.execute("INSERT INTO blobs (sha256, size, data) VALUES ('h', 1, x'00')")
    conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias) VALUES (1, 'queued', 0, 'a', 'b')")
    for qid, owner in ((1, "here:111:aa"), (2, "here:222:bb"), (3, "there:111:cc")):
        conn.execute("INSERT INTO queue (id, message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                     " next_attempt_at, expires_at, claimed_by, lease_until) VALUES (?, 1, 'r', 'f', 'h', 'sending',"
                     " 0, 0, 9e9, ?, 100)", (qid, owner))
    assert queue_repo.reclaim(conn, 50.0, "here", lambda pid: pid == 222) == 1
    assert dict(conn.execute("SELECT id, state FROM queue")) == {1: "queued", 2: "sending", 3: "sending"}
    assert queue_repo.recover(conn, 50.0, "here:222:", prefix=True) == 1  # the supervisor, for a dead worker
    assert dict(conn.execute("SELECT id, state FROM queue")) == {1: "queued", 2: "queued", 3: "sending"}


def test_a_claim_names_relay_node_and_only_its_own_node_s_dead_pids_are_swept(tmp_path: Path) -> None:
    """The owner is relay.node:pid:nonce (not the host name), and the sweeper asks whether a PID is
    alive only of owners with its own relay.node: a dead PID under another node's name (another
    host, or another relay.node on this one) keeps its lease until it runs out."""
    from relay.delivery import lease
    from relay.store.sqlite import SqliteStore
    from tests.support import make_settings

    settings = make_settings(tmp_path / "state", relay={"node": "mx-7"})
    assert lease.new_owner("mx-7").startswith(f"mx-7:{os.getpid()}:")
    assert lease.process_prefix("mx-7", 42) == "mx-7:42:"
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    dead = 2**22 + 12345  # above pid_max's default: no such process
    conn.execute("INSERT INTO blobs (sha256, size, data) VALUES ('h', 1, x'00')")
    conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias) VALUES (1, 'queued', 0, 'a', 'b')")
    for qid, owner in ((1, f"mx-7:{dead}:aa"), (2, f"mx-8:{dead}:bb"), (3, f"mx-7:{os.getpid()}:cc")):
        conn.execute("INSERT INTO queue (id, message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                     " next_attempt_at, expires_at, claimed_by, lease_until) VALUES (?, 1, 'r', 'f', 'h', 'sending',"
                     " 0, 0, 9e9, ?, 9e9)", (qid, owner))
    conn.commit()
    conn.close()

    async def run() -> None:
        store = SqliteStore.at(tmp_path / "r.db")
        await store.open()
        try:
            worker = DeliveryWorker(settings, store, transport=None)  # type: ignore[arg-type]
            assert worker.owner.startswith(f"mx-7:{os.getpid()}:")
            assert await worker.sweep() == 1
        finally:
            await store.close()

    asyncio.run(run())
    conn = connect_sync(tmp_path / "r.db")
    try:
        assert dict(conn.execute("SELECT id, state FROM queue")) == {1: "queued", 2: "sending", 3: "sending"}
    finally:
        conn.close()


def _open_and_send(port: int, sender: str, rcpt: str, data: bytes) -> smtplib.SMTP:
    """Send one message and keep the session open (the next session goes to the other worker)."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo("client.test")
    client.sendmail(sender, [rcpt], data)
    return client


async def test_a_worker_stopping_returns_only_its_own_rows(tmp_path: Path, slow_sink: SlowSink, dkim_key: Path) -> None:
    """smtp.workers = 2, a slow smarthost. Worker B stops (SIGTERM) while A's delivery is in flight:
    B returns only its own row (before, it returned A's too, which its replacement sent again). Then
    a worker is SIGKILLed in flight: its row is delivered once, by the others. Nothing twice."""
    port = free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(
        f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\nshutdown_timeout = "0.5s"\n'
        f'[delivery]\ntransport = "smtp"\nsmarthost = "127.0.0.1:{slow_sink.port}"\ntls = "off"\n'
        'lease_seconds = "3s"\nretry_base = "0.2s"\nretry_max = "1s"\n'
        f'[dkim]\nselector = "test"\nprivate_key = "{dkim_key}"\n[logging]\nformat = "json"\n'
        '[trust]\nauthenticate = "off"\n[http]\nenabled = false\n')
    settings = load(cfg)
    world = provision(settings)
    db = settings.db_path
    log = open(tmp_path / "relay.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"],
                            stderr=log, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    clients: list[smtplib.SMTP] = []
    try:
        await _until(lambda: len(children(proc.pid)) == 2, 20, "two workers")
        await asyncio.sleep(1.0)  # both accepting
        slow_sink.delays = {world.seller_email: 4.0, world.buyer_email: 4.0}
        subjects: list[str] = []
        owners: dict[int, str] = {}
        for n in range(8):  # sessions kept open, until both workers have a delivery in flight
            subjects.append(f"m{n}")
            clients.append(await asyncio.to_thread(_open_and_send, port, world.buyer_email, world.seller_alias,
                                                   message(world.buyer_email, world.seller_alias, f"m{n}")))
            rows = await _until(lambda: len(s := _sending(db)) == len(subjects) and s, 5, "the claims")
            owners = {int(claimed.split(":")[1]): claimed for _, _, claimed in rows}
            if len(owners) == 2:
                break
        assert len(owners) == 2, "every message went to one worker"
        b = max(owners)
        os.kill(b, signal.SIGTERM)  # B stops while A's deliveries are in flight
        slow_sink.delays[world.seller_email] = 0.0  # what is sent from now on is taken at once
        await slow_sink.wait_for(len(subjects), timeout=20)
        await asyncio.sleep(6.0)  # long enough for second copies to arrive, had B returned A's rows
        assert [slow_sink.count(s) for s in subjects] == [1] * len(subjects)

        # a worker killed in flight: its row goes to the others, once
        slow_sink.delays[world.seller_email] = 30.0
        await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "killed"))
        ((_, _, claimed),) = await _until(lambda: _sending(db), 10, "the claim of the last message")
        os.kill(int(claimed.split(":")[1]), signal.SIGKILL)
        slow_sink.delays[world.seller_email] = 0.0
        await slow_sink.wait_for(len(subjects) + 1, timeout=20)
        await asyncio.sleep(4.0)  # past the lease: a late second copy would be here by now
        assert [slow_sink.count(s) for s in [*subjects, "killed"]] == [1] * (len(subjects) + 1)
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        for pid in children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        log.close()
