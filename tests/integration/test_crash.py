"""Crash safety, proven: ≥500 messages into a relay subprocess that is SIGKILLed ≥10 times at random
moments and restarted, while the smarthost also goes away and comes back.

Afterwards: every message that got a 250 reached the sink; every one that did not is delivered
or absent; nothing arrives that was never sent. Duplicates are counted and reported; each must
come from a row that was 'sending' when the relay died (a delivery.recovered audit event), the
one window SMTP cannot close (the smarthost said 250, we were killed before recording it).

And the pointed case: the relay is killed the instant a 250 is read, with the smarthost away so that
the store holds the only copy.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import signal
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP
from prometheus_client.parser import text_string_to_metric_families

from relay.config import settings_from_dict
from tests.daemon import Daemon, daemon_config, free_port
from tests.support import Sink, _SinkHandler, message, open_data, provision

MESSAGES = 500
KILLS = 10
SENDERS = 8
CONCURRENCY = 8
ID = re.compile(rb"crash-id-(\d+)")


class KillableSink(Sink):
    """The recording sink, but stop() also cuts the connections it has (a smarthost going down)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: set[SMTP] = set()

    async def start(self) -> None:
        sink = self

        class Tracked(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sink.live.add(self)
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                sink.live.discard(self)
                super().connection_lost(exc)

        self._server = await asyncio.get_running_loop().create_server(
            lambda: Tracked(_SinkHandler(self), enable_SMTPUTF8=True, hostname="sink.test"),
            host="127.0.0.1", port=self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await super().stop()
        for proto in list(self.live):
            if proto.transport is not None:
                proto.transport.abort()

    @property
    def running(self) -> bool:
        return self._server is not None


def delivered(sink: Sink) -> collections.Counter[int]:
    return collections.Counter(int(m.group(1)) for r in sink.received for m in [ID.search(r.data)] if m)


async def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, dkim_key: Path) -> None:
    seed = int(os.environ.get("RELAY_CRASH_SEED", time.time_ns() % 100000))
    rng = random.Random(seed)
    sink = KillableSink()
    await sink.start()
    http_port = free_port()
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), smarthost=sink.port,
                        http_port=http_port, delivery={"concurrency": CONCURRENCY, "connect_timeout": "1s"})
    window = Window()
    world = provision(settings_from_dict(cfg))
    d = Daemon(tmp_path, cfg)
    acked: set[int] = set()
    unacked: set[int] = set()
    lock = threading.Lock()
    next_id = iter(range(MESSAGES))
    done = threading.Event()

    def sender() -> None:
        while True:
            with lock:
                n = next(next_id, None)
            if n is None:
                return
            data = message(world.seller_email, world.buyer_alias, subject=f"crash {n}", body=f"crash-id-{n}\r\n")
            while not done.is_set():
                try:
                    client = smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10)
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.02)  # not connected, nothing sent: trying again cannot duplicate
                    continue
                try:
                    client.sendmail(world.seller_email, [world.buyer_alias], data)
                    with lock:
                        acked.add(n)
                except (OSError, smtplib.SMTPException):
                    with lock:
                        unacked.add(n)  # the relay died mid-transaction: no 250, no retry
                finally:
                    try:
                        client.close()
                    except OSError:
                        pass
                break

    started = time.monotonic()
    try:
        await d.start_ready()
        threads = [asyncio.create_task(asyncio.to_thread(sender)) for _ in range(SENDERS)]
        kills = sink_restarts = 0
        while kills < KILLS or not all(t.done() for t in threads):
            assert time.monotonic() - started < 80, "crash test is taking too long"
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            await window.scrape(http_port)
            d.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            d.proc.wait()  # type: ignore[union-attr]
            kills += 1
            if sink.running and rng.random() < 0.35:
                await sink.stop()
                sink_restarts += 1
            elif not sink.running:
                await sink.start()
            await d.start_ready()
        done.set()
        await asyncio.gather(*threads)
        if not sink.running:
            await sink.start()

        deadline = time.monotonic() + 40
        while not acked <= set(delivered(sink)) or queue_busy(d):
            assert time.monotonic() < deadline, (sorted(acked - set(delivered(sink)))[:20], d.log_tail())
            await asyncio.sleep(0.1)
        await window.scrape(http_port)
        d.signal(signal.SIGTERM)
        assert await d.wait_exit() == 0
    finally:
        d.close()
        await sink.stop()

    got = delivered(sink)
    sent = acked | unacked
    duplicates = {n: c for n, c in got.items() if c > 1}
    recovered = recovered_ids(tmp_path / "state" / "relay.db")
    print(f"\ncrash test (seed {seed}): {len(sent)} sent, {len(acked)} got 250, {len(unacked)} cut off "
          f"({len(unacked & set(got))} of those delivered anyway), {kills} SIGKILLs, {sink_restarts} smarthost "
          f"outages, {len(duplicates)} duplicated ({sum(duplicates.values()) - len(duplicates)} extra copies), "
          f"{len(recovered)} rows recovered, {time.monotonic() - started:.1f}s; smarthost 250 → our record: "
          f"{window.describe()}")
    assert len(sent) == MESSAGES and kills >= KILLS
    assert acked <= set(got), "a message that got a 250 was lost"
    assert set(got) <= sent, "something was delivered that was never sent"
    assert len(acked) > MESSAGES // 2
    # each duplicate is a delivery that was in flight when the relay died, and they are rare
    assert set(duplicates) <= recovered
    assert len(duplicates) <= kills * CONCURRENCY  # at most what was in flight at each kill


async def _up_to_the_dot(port: int, mail_from: str, rcpt: str, data: bytes
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A session that has sent everything of one message but the final "." line."""
    reader, writer, answer = await open_data(port, mail_from, rcpt)
    assert answer.startswith(b"354"), answer
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_sigkill_the_instant_a_250_arrives_loses_nothing(tmp_path: Path, dkim_key: Path) -> None:
    """Group commit answers 250 only once the transaction is durable. Four sessions send their final
    dots together and the relay is SIGKILLed the instant the first 250 is read; the smarthost is
    away, so the store holds the only copy. Every message that got a 250 (the first, and any
    other whose 250 was already on the wire) is queued after the restart and then delivered."""
    sink = KillableSink()
    await sink.start()
    await sink.stop()  # away: nothing leaves the relay until the end
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), smarthost=sink.port,
                        delivery={"connect_timeout": "1s"})
    world = provision(settings_from_dict(cfg))
    d = Daemon(tmp_path, cfg)
    acked: set[int] = set()
    try:
        for round_ in range(4):
            await d.start_ready()
            ids = [round_ * 4 + i for i in range(4)]
            sessions = [await _up_to_the_dot(d.smtp_port, world.seller_email, world.buyer_alias,
                                             message(world.seller_email, world.buyer_alias, subject=f"crash {n}",
                                                     body=f"crash-id-{n}\r\n")) for n in ids]
            for _, writer in sessions:
                writer.write(b".\r\n")
            replies = {asyncio.ensure_future(reader.readline()): n for n, (reader, _) in zip(ids, sessions, strict=True)}
            done, _ = await asyncio.wait(replies, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            d.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            assert done and all(t.result().startswith(b"250 ") for t in done), [t.result() for t in done]
            d.proc.wait()  # type: ignore[union-attr]
            for task, n in replies.items():  # a 250 already sent before the kill still counts
                try:
                    if (await task).startswith(b"250 "):
                        acked.add(n)
                except ConnectionError:  # reset by the dying relay: no 250 came
                    pass
            for _, writer in sessions:
                writer.close()
        with sqlite3.connect(tmp_path / "state" / "relay.db") as conn:
            queued = {int(s.split()[1]) for (s,) in conn.execute(
                "SELECT m.subject FROM messages m JOIN queue q ON q.message_id = m.id WHERE q.state IN"
                " ('queued', 'sending')")}
        assert len(acked) >= 4 and acked <= queued
        await sink.start()
        await d.start_ready()
        deadline = time.monotonic() + 30
        while not acked <= set(delivered(sink)):
            assert time.monotonic() < deadline, (sorted(acked - set(delivered(sink))), d.log_tail())
            await asyncio.sleep(0.1)
    finally:
        d.close()
        await sink.stop()
    assert set(delivered(sink)) <= set(range(16))


class Window:
    """relay_delivery_record_seconds summed over the relay's lifetimes (scraped before each kill)."""

    def __init__(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.buckets: collections.Counter[float] = collections.Counter()

    async def scrape(self, port: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        except (OSError, TimeoutError):
            return
        for family in text_string_to_metric_families(raw.partition(b"\r\n\r\n")[2].decode()):
            if family.name != "relay_delivery_record_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    self.count += sample.value
                elif sample.name.endswith("_sum"):
                    self.total += sample.value
                elif sample.name.endswith("_bucket"):
                    self.buckets[float(sample.labels["le"])] += sample.value

    def quantile(self, q: float) -> float:
        for le in sorted(self.buckets):
            if self.buckets[le] >= q * self.count:
                return le
        return float("inf")

    def describe(self) -> str:
        if not self.count:
            return "no samples"
        return (f"{int(self.count)} deliveries, mean {self.total / self.count * 1000:.1f} ms, "
                f"p50 ≤ {self.quantile(0.5) * 1000:g} ms, p99 ≤ {self.quantile(0.99) * 1000:g} ms")


def queue_busy(d: Daemon) -> bool:
    conn = sqlite3.connect(Path(d.config["relay"]["state_dir"]) / "relay.db")
    try:
        return bool(conn.execute("SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'sending')").fetchone()[0])
    finally:
        conn.close()


def recovered_ids(db: Path) -> set[int]:
    """Test ids (from the subject) of the messages whose delivery was in flight at a SIGKILL."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT m.subject FROM audit_events a JOIN messages m ON m.id = a.message_id"
                            " WHERE a.event = 'delivery.recovered'").fetchall()
    finally:
        conn.close()
    return {int(s.split()[1]) for (s,) in rows if s and s.startswith("crash ")}
