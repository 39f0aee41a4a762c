"""`relay queue …` and `relay config check` as separate processes beside a running daemon (same SQLite file)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.config import settings_from_dict
from relay.store import audit
from tests.daemon import ROOT, Daemon, daemon_config, free_port, toml
from tests.support import Sink, eventually, message, provision, send

ID = re.compile(rb"queue-id-(\w)")


def relay_cli(config: Path, *args: str) -> tuple[int, Any]:
    result = subprocess.run([sys.executable, "-m", "relay", "--config", str(config), *args],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = result.stdout.strip()
    return result.returncode, json.loads(out) if out.startswith("{") else out + result.stderr


async def cli(config: Path, *args: str) -> tuple[int, Any]:
    return await asyncio.to_thread(relay_cli, config, *args)


@pytest.fixture
async def daemon(tmp_path: Path, dkim_key: Path, sink: Sink) -> AsyncIterator[tuple[Daemon, Any]]:
    # retry_base 1h: after the first (refused) attempt rows wait, so only the CLI moves them
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), smarthost=sink.port,
                        delivery={"retry_base": "1h", "retry_max": "1h"})
    world = provision(settings_from_dict(cfg))
    d = Daemon(tmp_path, cfg)
    await d.start_ready()
    yield d, world
    d.close()


def labels(sink: Sink) -> list[str]:
    return [m.group(1).decode() for r in sink.received for m in [ID.search(r.data)] if m]


async def test_queue_commands_on_a_live_queue(daemon: tuple[Daemon, Any], sink: Sink) -> None:
    d, world = daemon
    conf = d.config_path
    sink.replies = ["451 4.3.0 try later"] * 4
    for label in "ABCD":
        await send(d.smtp_port, world.seller_email, [world.buyer_alias],
                   message(world.seller_email, world.buyer_alias, subject=f"Order {label}",
                           body=f"queue-id-{label}\r\n"))

    def all_deferred() -> bool:  # polled on the file directly (a CLI process per poll is slow)
        conn = world.conn()
        try:
            return conn.execute("SELECT COUNT(*) FROM queue WHERE state = 'queued' AND attempts = 1"
                                " AND last_error IS NOT NULL").fetchone()[0] == 4
        finally:
            conn.close()

    await eventually(all_deferred, timeout=20)
    rc, out = await cli(conf, "queue", "list", "--json")
    a, b, c, dd = (e["id"] for e in out["entries"])
    assert "451" in out["entries"][0]["last_error"]

    rc, shown = await cli(conf, "queue", "show", str(c), "--json")
    assert rc == 0 and shown["subject"] == "Order C" and shown["state"] == "queued" and shown["attempts"] == 1

    rc, out = await cli(conf, "queue", "hold", str(a), "--json")
    assert rc == 0 and out["state"] == "held"
    rc, out = await cli(conf, "queue", "hold", str(a), "--json")
    assert rc == 1 and "not queued" in out["error"]

    rc, out = await cli(conf, "queue", "drop", str(c), "--json")
    assert rc == 0 and out["dropped"] == c and out["notice_queue_id"]
    # the sender's notice goes out at once: null sender, to the seller's registered address
    await sink.wait_for(1)
    notice = sink.received[0]
    assert notice.mail_from in ("", "<>") and notice.rcpt_tos == [world.seller_email]
    assert b"an operator removed it" in notice.data and b"Order C" in notice.data

    rc, out = await cli(conf, "queue", "retry", str(b), "--json")
    assert rc == 0 and out["retried"] == [b]
    await eventually(lambda: "B" in labels(sink), timeout=10)
    rc, out = await cli(conf, "queue", "retry", "--all", "--json")
    assert rc == 0 and out["retried"] == [dd]  # A is held, B delivered, C dropped
    await eventually(lambda: "D" in labels(sink), timeout=10)

    await asyncio.sleep(0.5)  # a held row stays held while the worker runs
    rc, out = await cli(conf, "queue", "show", str(a), "--json")
    assert out["state"] == "held"
    rc, out = await cli(conf, "queue", "release", str(a), "--json")
    assert rc == 0 and out["state"] == "queued"
    await eventually(lambda: "A" in labels(sink), timeout=10)
    assert sorted(labels(sink)) == ["A", "B", "D"]  # C never left

    rc, out = await cli(conf, "queue", "list", "--state", "dropped", "--json")
    assert [e["id"] for e in out["entries"]] == [c]
    rc, out = await cli(conf, "queue", "drop", str(b), "--json")
    assert rc == 1 and "delivered" in out["error"]
    rc, out = await cli(conf, "queue", "show", "99999", "--json")
    assert rc == 1 and "no such queue entry" in out["error"]
    rc, text = await cli(conf, "queue", "list")
    assert rc == 0 and "dropped" in text

    conn = world.conn()
    try:
        kinds = [(e.event, e.reason) for e in audit.iter_all(conn) if e.event.startswith(("queue.", "notice."))]
    finally:
        conn.close()
    assert ("queue.held", "operator") in kinds and ("queue.released", "operator") in kinds
    assert ("queue.dropped", "queue.dropped") in kinds and ("queue.retried", "operator") in kinds
    assert ("notice.queued", "notice") in kinds and ("notice.delivered", "ok") in kinds
    d.signal(signal.SIGTERM)
    assert await d.wait_exit() == 0


async def test_config_check(tmp_path: Path, dkim_key: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(toml(daemon_config(tmp_path / "state", dkim_key, smtp_port=2525)))
    rc, out = await cli(good, "config", "check", "--json")
    assert rc == 0 and out["ok"] is True and out["warnings"] == [], out
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisten = ["nonsense"]\nmax_connections = 0\n[http]\nlisten = "192.0.2.10:9325"\n')
    rc, out = await cli(good, "config", "check", str(bad), "--json")  # FILE wins over --config
    assert rc == 78 and out["ok"] is False
    assert any("smtp.listen" in e for e in out["errors"]) and any("smtp.max_connections" in e for e in out["errors"])
    rc, text = await cli(bad, "config", "check")
    assert rc == 78 and "smtp.max_connections" in text
    public = tmp_path / "public.toml"
    public.write_text('[http]\nlisten = "192.0.2.10:9325"\n')
    rc, out = await cli(public, "config", "check", "--json")
    assert rc == 0 and any("not a loopback address" in w for w in out["warnings"])
    rc, out = await cli(ROOT / "config" / "relay.production.toml", "config", "check", "--json")
    # the shipped example is valid; only the files it names that this machine lacks may be missing
    assert rc == 0 or all(": tls." in e or ": relay.state_dir" in e for e in out["errors"]), out
    rc, text = await cli(tmp_path / "missing.toml", "config", "check")
    assert rc == 78 and "file not found" in text
