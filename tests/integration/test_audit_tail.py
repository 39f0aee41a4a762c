"""`relay audit tail -f` in a separate process sees exactly the events committed during a
concurrent burst of mail through the real server, each once, in chain order."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from relay.store import audit
from tests.support import DOMAIN, eventually, maildir_messages, message, provision, send_expect

SENDERS, PER_SENDER = 6, 8


def follow(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "audit", "tail", "-f", "--json",
                             "-n", "1", "--interval", "0.05", *args], stdout=subprocess.PIPE)


async def read_until(out: IO[bytes], done: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []

    async def _read() -> None:
        while not done(lines):
            line = await asyncio.to_thread(out.readline)
            assert line, "tail exited"
            lines.append(json.loads(line))

    await asyncio.wait_for(_read(), timeout)
    return lines


async def test_tail_follows_a_burst_exactly_once(start_relay) -> None:
    # many unsolicited seller messages in one thread: lift the over-messaging limits for the burst
    relay = await start_relay(rules={"max_unsolicited_per_order": 10_000, "max_unsolicited_per_thread_per_day": 10_000})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    state = relay.settings.relay.state_dir
    cfg = state.parent / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{state}"\n')
    # one delivery first, so that both tails print one line of history: then they are following
    assert (await send_expect(port, world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias)))[0] == 250
    await eventually(lambda: len(maildir_messages(relay.settings)) == 1)
    everything = follow(cfg)
    deliveries = follow(cfg, "--event", "delivery", "--thread", str(world.thread_id))
    procs = [everything, deliveries]
    try:
        assert everything.stdout is not None and deliveries.stdout is not None
        start = (await read_until(everything.stdout, lambda lines: len(lines) == 1))[0]["seq"]
        before = (await read_until(deliveries.stdout, lambda lines: len(lines) == 1))[0]
        assert before["event"] == "delivery.delivered" and before["seq"] == start

        async def burst(i: int) -> None:
            for j in range(PER_SENDER):
                if i % 2:
                    data = message(world.buyer_email, world.seller_alias, subject=f"b{i}-{j}")
                    code, _ = await send_expect(port, world.buyer_email, [world.seller_alias], data)
                else:
                    data = message(world.seller_email, world.buyer_alias, subject=f"s{i}-{j}")
                    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias], data)
                assert code == 250
                if j % 4 == 3:  # a refusal in between (audited, no message)
                    assert (await send_expect(port, "mallory@evil.example", [world.buyer_alias], data))[0] == 550

        await asyncio.gather(*(burst(i) for i in range(SENDERS)))
        await eventually(lambda: len(maildir_messages(relay.settings)) == SENDERS * PER_SENDER + 1, timeout=30)
        conn = world.conn()
        try:
            await eventually(lambda: conn.execute("SELECT count(*) FROM audit_events WHERE event ="
                                                  " 'delivery.delivered'").fetchone()[0] == SENDERS * PER_SENDER + 1)
            committed = [e for e in audit.iter_all(conn) if e.seq > start]
        finally:
            conn.close()
        head = committed[-1].seq
        seen = await read_until(everything.stdout, lambda lines: lines and lines[-1]["seq"] >= head)
        assert [e["seq"] for e in seen] == [e.seq for e in committed]
        assert [e["hash"] for e in seen] == [e.hash for e in committed]
        names = [e.event for e in committed]
        for name in ("message.accepted", "message.queued", "delivery.delivered"):
            assert names.count(name) == SENDERS * PER_SENDER, name
        assert names.count("rcpt.refused") == SENDERS * 2  # the refusals in between
        wanted = [e.seq for e in committed if e.event.startswith("delivery.") and e.thread_id == world.thread_id]
        got = await read_until(deliveries.stdout, lambda lines: len(lines) >= len(wanted))
        assert [e["seq"] for e in got] == wanted
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
            if p.stdout is not None:
                p.stdout.close()
