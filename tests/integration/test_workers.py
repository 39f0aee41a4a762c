"""smtp.workers = 2: two processes share the port and the store; nothing is lost or sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from relay.config import load
from relay.store import queue as queue_repo
from relay.store.db import connect_sync
from relay.store.migrate import migrate
from tests.support import Sink, message, provision, send


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


async def test_two_workers_share_port_and_queue(tmp_path: Path, sink: Sink, dkim_key: Path) -> None:
    port = free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(
        f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\n'
        f'[delivery]\ntransport = "smtp"\nsmarthost = "127.0.0.1:{sink.port}"\ntls = "off"\n'
        f'[dkim]\nselector = "test"\nprivate_key = "{dkim_key}"\n[logging]\nformat = "json"\n'
        '[trust]\nauthenticate = "off"\n[http]\nlisten = "127.0.0.1:0"\n')
    settings = load(cfg)
    world = provision(settings)
    log = open(tmp_path / "relay.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"],
                            stderr=log, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if len(children(proc.pid)) == 2:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    pass
            await asyncio.sleep(0.05)
        workers = children(proc.pid)
        assert len(workers) == 2

        async def one(i: int) -> None:
            await send(port, world.buyer_email, [world.seller_alias],
                       message(world.buyer_email, world.seller_alias, f"n{i}", f"body {i}\r\n"))

        await asyncio.gather(*(one(i) for i in range(40)))
        got = await sink.wait_for(40, timeout=30)
        subjects = sorted(r.message["Subject"] for r in got)
        assert subjects == sorted(f"n{i}" for i in range(40))  # each exactly once

        # a worker that dies is replaced; the port keeps answering
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = children(proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            await asyncio.sleep(0.1)
        assert len(children(proc.pid)) == 2 and workers[0] not in children(proc.pid)
        await one(99)
        await sink.wait_for(41, timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)  # the sink lives in this loop: keep it answering
        log.close()
        assert code == 0, (tmp_path / "relay.log").read_text()[-2000:]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, dkim_key: Path) -> None:
    """SIGKILL leaves the supervisor no chance to pass anything on: the kernel's parent-death
    signal stops the workers, which would otherwise keep the port and the store to themselves."""
    port = free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(
        f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\n[delivery]\ntransport = "maildir"\n'
        f'[dkim]\nselector = "test"\nprivate_key = "{dkim_key}"\n[http]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"],
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        for _ in range(300):
            if len(children(proc.pid)) == 2:
                break
            await asyncio.sleep(0.05)
        workers = children(proc.pid)
        assert len(workers) == 2 and all(alive(w) for w in workers)
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        deadline = time.monotonic() + 20
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not any(alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)


def test_recover_returns_only_the_dead_workers_rows(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.execute("INSERT INTO blobs (sha256, size, data) VALUES ('h', 1, x'00')")
    conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias) VALUES (1, 'queued', 0, 'a', 'b')")
    for qid, owner in ((1, "111"), (2, "222")):
        conn.execute("INSERT INTO queue (id, message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                     " next_attempt_at, expires_at, claimed_by) VALUES (?, 1, 'r', 'f', 'h', 'sending', 0, 0, 9e9, ?)",
                     (qid, owner))
    conn.execute("BEGIN IMMEDIATE")
    assert queue_repo.recover(conn, 1.0, "111") == 1
    conn.execute("COMMIT")
    states = dict(conn.execute("SELECT id, state FROM queue"))
    assert states == {1: "queued", 2: "sending"}


def owner_of(relay_port: int, client_port: int, pids: list[int]) -> int | None:
    """The process holding the relay's end of the connection from `client_port` (/proc, Linux)."""
    inode = None
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1].split(":"), fields[2].split(":")
            if int(local[1], 16) == relay_port and int(remote[1], 16) == client_port:
                inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


async def test_workers_take_turns_and_a_stuck_worker_holds_nothing_back(tmp_path: Path, dkim_key: Path) -> None:
    """The listening socket is shared: a connection goes to the worker with fewer sessions (with
    SO_REUSEPORT the kernel hashed them, 30 to one worker and 20 to the other for 50 at once), a
    worker that stops turning its loop is passed over, and after SIGTERM the port refuses."""
    port = free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(  # 26 sessions from 127.0.0.1 at once: over the default per-address limit of the relay
        f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\nmax_connections_per_ip = 100\n'
        f'[delivery]\ntransport = "maildir"\n'
        f'[dkim]\nselector = "test"\nprivate_key = "{dkim_key}"\n[http]\nenabled = false\n'
        '[logging]\nformat = "json"\n')
    log_path = tmp_path / "relay.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"],
                            stderr=log, stdout=subprocess.DEVNULL)
    open_writers: list[asyncio.StreamWriter] = []

    async def greeted() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        open_writers.append(writer)
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line.startswith(b"220 "), line
        return int(writer.get_extra_info("sockname")[1])

    try:
        for _ in range(300):  # both workers serving
            if log_path.read_text().count("relay started") == 2:
                break
            await asyncio.sleep(0.05)
        workers = children(proc.pid)
        assert len(workers) == 2

        ports = await asyncio.gather(*(greeted() for _ in range(20)))
        owners = [owner_of(port, p, workers) for p in ports]
        counts = sorted(owners.count(w) for w in workers)
        assert sum(counts) == 20 and counts[0] >= 7, counts

        # One worker stops (as if stuck in one long step): the other takes every new connection.
        os.kill(workers[0], signal.SIGSTOP)
        try:
            more = await asyncio.gather(*(greeted() for _ in range(6)))
            assert {owner_of(port, p, workers) for p in more} == {workers[1]}
        finally:
            os.kill(workers[0], signal.SIGCONT)
        for writer in open_writers:
            writer.close()

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log_path.read_text()[-2000:]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert refused  # not queued for nobody
    finally:
        for writer in open_writers:
            writer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
