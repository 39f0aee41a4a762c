"""smtp.workers = 2 behaves like one relay: limits, rates and /metrics are the whole relay's, and the
unsubscribe key is made once, before the workers start. Real daemons, real sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from relay.config import EX_CONFIG, settings_from_dict
from relay.rules import tokens
from tests.daemon import ROOT, Daemon, daemon_config, free_port
from tests.integration.test_workers import children, owner_of
from tests.support import World, message, provision


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.close()


def setup(tmp_path: Path, dkim_key: Path, daemons: list[Daemon], **kw: Any) -> tuple[Daemon, World]:
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), **kw)
    cfg["smtp"]["workers"] = kw.get("smtp", {}).get("workers", 2)
    world = provision(settings_from_dict(cfg))
    d = Daemon(tmp_path, cfg)
    daemons.append(d)
    return d, world


async def start_workers(d: Daemon, workers: int = 2, timeout: float = 30.0) -> None:
    """Start the daemon and wait until every worker serves."""
    await d.start_ready()
    deadline = time.monotonic() + timeout
    while d.log_path.read_text(errors="replace").count('"relay started"') < workers:
        assert time.monotonic() < deadline, d.log_tail()
        await asyncio.sleep(0.05)


class Session:
    """A raw SMTP client on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.local_port = int(writer.get_extra_info("sockname")[1])

    @classmethod
    async def open(cls, port: int, first: bytes = b"") -> Session:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if first:
            writer.write(first)
        return cls(reader, writer)

    async def reply(self, timeout: float = 10) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        while line[3:4] == b"-":
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line

    async def cmd(self, text: str, timeout: float = 10) -> bytes:
        self.writer.write(text.encode() + b"\r\n")
        return await self.reply(timeout)

    async def mail(self, world: World, subject: str) -> bytes:
        """One seller → buyer transaction (after EHLO); the reply to MAIL if not 250, else to DATA."""
        reply = await self.cmd(f"MAIL FROM:<{world.seller_email}>")
        if not reply.startswith(b"250"):
            return reply
        assert (await self.cmd(f"RCPT TO:<{world.buyer_alias}>")).startswith(b"250")
        assert (await self.cmd("DATA")).startswith(b"354")
        self.writer.write(message(world.seller_email, world.buyer_alias, subject) + b".\r\n")
        return await self.reply()

    def close(self) -> None:
        self.writer.close()


async def one_session_per_worker(d: Daemon) -> tuple[dict[int, Session], list[Session]]:
    """Open greeted sessions until both workers hold one: ({worker pid: its session}, all opened)."""
    assert d.proc is not None
    pids = children(d.proc.pid)
    assert len(pids) == 2
    mine: dict[int, Session] = {}
    opened: list[Session] = []
    while len(mine) < 2:
        assert len(opened) < 20
        s = await Session.open(d.smtp_port)
        opened.append(s)
        assert (await s.reply()).startswith(b"220")
        owner = owner_of(d.smtp_port, s.local_port, pids)
        if owner is not None:
            mine.setdefault(owner, s)
    return mine, opened


def maildir(world: World) -> list[bytes]:
    new = world.settings.maildir_path / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []


# -- the unsubscribe key -------------------------------------------------------------------------

@pytest.mark.parametrize("key", [b"", b"x" * 31])
def test_a_short_unsubscribe_key_stops_the_start(tmp_path: Path, dkim_key: Path, key: bytes) -> None:
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), smtp={"workers": 2})
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / tokens.SECRET_FILE).write_bytes(key)
    d = Daemon(tmp_path, cfg)
    try:
        proc = subprocess.run([sys.executable, "-m", "relay", "--config", str(d.config_path), "serve"],
                              cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                              capture_output=True, timeout=60)
    finally:
        d.close()
    assert proc.returncode == EX_CONFIG, proc.stderr.decode()[-2000:]
    assert f"unsubscribe key is {len(key)} bytes" in proc.stderr.decode()


async def test_two_fresh_workers_share_one_unsubscribe_key(tmp_path: Path, dkim_key: Path,
                                                           daemons: list[Daemon]) -> None:
    """Seller mail through both workers carries the same List-Unsubscribe token, valid under the key
    file the supervisor wrote (full length, owner-only) before either worker started."""
    d, world = setup(tmp_path, dkim_key, daemons)
    await start_workers(d)
    key_file = world.settings.relay.state_dir / tokens.SECRET_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    secret = key_file.read_bytes()
    assert len(secret) >= tokens.MIN_SECRET_BYTES

    mine, opened = await one_session_per_worker(d)
    for i, s in enumerate(mine.values()):  # one message through each worker
        assert (await s.cmd("EHLO client.test")).startswith(b"250")
        assert (await s.mail(world, f"n{i}")).startswith(b"250")
    for s in opened:
        s.close()
    deadline = time.monotonic() + 20
    while len(maildir(world)) < 2:
        assert time.monotonic() < deadline, d.log_tail()
        await asyncio.sleep(0.1)
    found = set()
    for raw in maildir(world):
        header = str(message_from_bytes(raw)["List-Unsubscribe"])
        local = header.split("mailto:", 1)[1].split("@", 1)[0]
        found.add(tokens.token_of_local(local))
    (token,) = found
    assert token is not None and tokens.token_valid(secret, token, world.thread_id, world.buyer_id, world.seller_id)


# -- limits across workers -----------------------------------------------------------------------

async def test_two_workers_enforce_one_per_ip_connection_limit(tmp_path: Path, dkim_key: Path,
                                                               daemons: list[Daemon]) -> None:
    """max_connections_per_ip = 3 with 2 workers: three sessions open (on both workers: each alone
    holds fewer than 3), then every further one gets 421 4.7.0, whichever worker accepted it."""
    d, _ = setup(tmp_path, dkim_key, daemons, smtp={"max_connections_per_ip": 3})
    await start_workers(d)
    assert d.proc is not None
    pids = children(d.proc.pid)
    held = []
    for _ in range(3):
        s = await Session.open(d.smtp_port)
        held.append(s)
        assert (await s.reply()).startswith(b"220")
    owners = [owner_of(d.smtp_port, s.local_port, pids) for s in held]
    assert set(owners) == set(pids), owners  # the three are spread over both workers
    for _ in range(4):
        extra = await Session.open(d.smtp_port)
        assert (await extra.reply()).startswith(b"421 4.7.0")
        extra.close()
    held.pop().close()  # one ends: room for one again, in whichever worker
    deadline = time.monotonic() + 10
    while True:
        again = await Session.open(d.smtp_port)
        reply = await again.reply()
        if reply.startswith(b"220"):
            break
        again.close()
        assert time.monotonic() < deadline, reply
        await asyncio.sleep(0.05)
    for s in [*held, again]:
        s.close()


async def test_two_workers_enforce_one_message_rate(tmp_path: Path, dkim_key: Path, daemons: list[Daemon]) -> None:
    """max_messages_per_ip_per_minute = 3 with 2 workers: two messages through one worker and one
    through the other use it up; the next MAIL gets 451 4.7.1 in either."""
    d, world = setup(tmp_path, dkim_key, daemons, smtp={"max_messages_per_ip_per_minute": 3})
    await start_workers(d)
    mine, opened = await one_session_per_worker(d)
    a, b = mine.values()
    for s in (a, b):
        assert (await s.cmd("EHLO client.test")).startswith(b"250")
    assert (await a.mail(world, "1")).startswith(b"250")
    assert (await a.mail(world, "2")).startswith(b"250")
    assert (await b.mail(world, "3")).startswith(b"250")
    assert (await b.mail(world, "4")).startswith(b"451 4.7.1")
    assert (await a.mail(world, "5")).startswith(b"451 4.7.1")
    for s in opened:
        s.close()


# -- /metrics of the whole relay -----------------------------------------------------------------

async def scrape(port: int, pids: list[int]) -> tuple[int | None, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """GET /metrics: (the worker that answered, {(sample name, labels): value})."""
    from prometheus_client.parser import text_string_to_metric_families

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # the head is not complete yet: the answer waits
    await writer.drain()
    local = int(writer.get_extra_info("sockname")[1])
    owner = None
    for _ in range(100):  # accepted by one of the workers (the kernel's choice)
        owner = owner_of(port, local, pids)
        if owner is not None:
            break
        await asyncio.sleep(0.01)
    writer.write(b"Host: x\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode()) for s in family.samples}
    return owner, samples


async def test_metrics_are_the_whole_relays_whichever_worker_answers(tmp_path: Path, dkim_key: Path,
                                                                     daemons: list[Daemon]) -> None:
    """K messages through a 2-worker relay (both workers take some): every scrape, answered by
    either worker, counts K accepted messages, K SMTP sessions, K observations per stage."""
    http_port = free_port()
    d, world = setup(tmp_path, dkim_key, daemons, http_port=http_port)
    await start_workers(d)
    assert d.proc is not None
    pids = children(d.proc.pid)
    k = 0
    mine, opened = await one_session_per_worker(d)
    for s in mine.values():  # three messages through each worker, on the sessions they hold
        assert (await s.cmd("EHLO client.test")).startswith(b"250")
        for _ in range(3):
            assert (await s.mail(world, f"m{k}")).startswith(b"250")
            k += 1
    for s in opened:
        s.close()
    sessions = len(opened)
    ok = ("relay_messages_total", (("direction", "seller_to_buyer"), ("reason", "ok")))
    accepted = ("relay_smtp_sessions_total", (("result", "accepted"),))
    stage = ("relay_stage_seconds_count", (("stage", "resolve"),))
    answered_by = set()
    for _ in range(400):  # the kernel picks the worker: one may win dozens of scrapes in a row
        owner, samples = await scrape(http_port, pids)
        answered_by.add(owner)
        assert samples[ok] == k, samples.get(ok)
        assert samples[accepted] == sessions
        assert samples[stage] == k
        if len(answered_by) == 2 and len([o for o in answered_by if o]) == 2:
            break
    assert answered_by == set(pids), answered_by  # both workers answered, with the same totals
