"""The relay as a subprocess: sd_notify handshake, SIGTERM during a burst, SIGHUP with good and bad configs."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import smtplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.config import settings_from_dict
from tests.daemon import Daemon, daemon_config, free_port
from tests.support import Sink, World, eventually, message, provision, smtp_send

ID = re.compile(rb"burst-id-(\d+)")


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.close()


def setup(tmp_path: Path, dkim_key: Path, daemons: list[Daemon], **kw: Any) -> tuple[Daemon, World]:
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), **kw)
    world = provision(settings_from_dict(cfg))
    d = Daemon(tmp_path, cfg)
    daemons.append(d)
    return d, world


def delivered_ids(sink: Sink) -> list[int]:
    return [int(m.group(1)) for r in sink.received for m in [ID.search(r.data)] if m]


def log_events(d: Daemon) -> list[dict[str, Any]]:
    out = []
    for line in d.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def test_notify_ready_status_watchdog_stopping(tmp_path: Path, dkim_key: Path, daemons: list[Daemon]) -> None:
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port())
    d = Daemon(tmp_path, cfg, abstract=True)  # "@name": the abstract namespace
    daemons.append(d)
    d.start(env={"WATCHDOG_USEC": "300000"})  # pings every 0.15 s
    ready = await d.wait_notify("READY=1")
    lines = ready.split("\n")
    assert f"MAINPID={d.proc.pid}" in lines  # type: ignore[union-attr]
    assert any(ln.startswith("STATUS=accepting mail on 127.0.0.1:") for ln in lines)
    # the SMTP listener really is up when READY=1 arrives
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=5) as c:
        assert c.noop()[0] == 250
    await asyncio.sleep(0.6)
    d.drain_notify()
    assert sum(m == "WATCHDOG=1" for m in d.messages) >= 2
    before = d.messages.index(ready)
    assert any(m.startswith("STATUS=") for m in d.messages[:before])  # progress before READY
    d.signal(signal.SIGTERM)
    assert await d.wait_exit() == 0
    d.drain_notify()
    assert any("STOPPING=1" in m.split("\n") for m in d.messages)


async def test_sigterm_during_burst(tmp_path: Path, dkim_key: Path, daemons: list[Daemon], sink: Sink) -> None:
    d, world = setup(tmp_path, dkim_key, daemons, smarthost=sink.port)
    await d.start_ready()
    acked: set[int] = set()
    failed: set[int] = set()
    total, clients = 120, 6

    def client(first: int) -> None:
        for n in range(first, total, clients):
            data = message(world.seller_email, world.buyer_alias, subject=f"burst {n}", body=f"burst-id-{n}\r\n")
            try:
                smtp_send(d.smtp_port, world.seller_email, [world.buyer_alias], data)
                acked.add(n)
            except (smtplib.SMTPException, OSError):
                failed.add(n)

    senders = [asyncio.create_task(asyncio.to_thread(client, i)) for i in range(clients)]
    await eventually(lambda: len(acked) >= 20, timeout=30)
    d.signal(signal.SIGTERM)
    assert await d.wait_exit() == 0, d.log_tail()
    await asyncio.gather(*senders)
    assert acked and failed, "the SIGTERM should land in the middle of the burst"
    assert acked | failed == set(range(total))
    events = log_events(d)
    assert any(e.get("event") == "relay stopped" for e in events)
    conn = world.conn()
    try:  # a clean stop leaves nothing half-delivered for recover() to guess about
        assert conn.execute("SELECT COUNT(*) FROM queue WHERE state = 'sending'").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE state != 'rejected'").fetchone()[0] >= len(acked)
    finally:
        conn.close()
    # restart: whatever got a 250 is delivered, exactly what was sent and nothing else
    await d.start_ready()
    await eventually(lambda: acked <= set(delivered_ids(sink)), timeout=30)
    ids = delivered_ids(sink)
    assert set(ids) <= set(range(total))
    assert len(ids) == len(set(ids)), "a clean stop must not duplicate anything"
    d.signal(signal.SIGTERM)
    assert await d.wait_exit() == 0


async def test_sighup_reloads_limits_and_refuses_a_bad_config(tmp_path: Path, dkim_key: Path,
                                                             daemons: list[Daemon]) -> None:
    d, world = setup(tmp_path, dkim_key, daemons)
    await d.start_ready()
    held = smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=5)
    held.ehlo("held.test")

    def second_connection() -> int:
        try:
            with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=5) as c:
                return c.noop()[0]
        except smtplib.SMTPConnectError as exc:
            return exc.smtp_code
        except smtplib.SMTPServerDisconnected:
            return 421

    assert second_connection() == 250

    async def hup_and_wait(expect: str) -> dict[str, Any]:
        d.drain_notify()
        d.signal(signal.SIGHUP)
        msg = await d.wait_notify("READY=1")
        assert "RELOADING=1" in "\n".join(d.messages)
        assert expect in msg, msg
        found: Callable[[], Any] = lambda: [e for e in log_events(d) if e.get("event", "").startswith(  # noqa: E731
            "configuration reload")]
        return (await eventually(found))[-1]  # type: ignore[no-any-return]

    # a valid new config: one connection per IP, debug logging
    cfg = json.loads(json.dumps(d.config))
    cfg["smtp"]["max_connections_per_ip"] = 1
    cfg["logging"]["level"] = "debug"
    d.write_config(cfg)
    event = await hup_and_wait("STATUS=configuration reloaded")
    assert event["event"] == "configuration reloaded"
    assert held.noop()[0] == 250  # the open session survived the reload
    assert second_connection() == 421  # and the new limit is live

    # an invalid one: refused with an error naming the key, the old config stays
    bad = json.loads(json.dumps(cfg))
    bad["smtp"]["max_connections_per_ip"] = 50
    bad["smtp"]["no_such_key"] = 1
    d.write_config(bad)
    event = await hup_and_wait("STATUS=configuration reload refused; old one kept")
    assert event["level"] == "error" and "smtp.no_such_key" in event["error"]
    assert second_connection() == 421  # still the limit of the good config
    (tmp_path / "relay.toml").write_text("[smtp\nbroken")
    event = await hup_and_wait("reload refused")
    assert "not valid TOML" in event["error"]

    # the held session can still relay mail
    held.sendmail(world.seller_email, [world.buyer_alias], message(world.seller_email, world.buyer_alias))
    held.quit()
    assert d.proc is not None and d.proc.poll() is None
    d.signal(signal.SIGTERM)
    assert await d.wait_exit() == 0
