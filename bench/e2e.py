"""End-to-end relay benchmark: client → relay → smarthost sink, 20 concurrent sessions.

Starts the relay as a subprocess (SQLite synchronous=FULL, DKIM on) with Postfix's smtp-sink as
the smarthost when installed (a Python sink otherwise), drives it with an asyncio SMTP client,
and prints messages/s end to end (until every message is delivered) and the p50/p95/p99 time
from the end of DATA to the 250. Figures only: nothing here passes or fails.

    python bench/e2e.py [--messages 2000] [--sessions 20] [--size 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_of(size: int, n: int) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog, order status update text.\r\n"
    text = (line * (size // len(line) + 1))[:size]
    return f"Message number {n}\r\n".encode() + text


def start_sink(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    sink = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)
    if sink:
        args = [sink]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        return subprocess.Popen([*args, f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    code = ("import asyncio\nfrom aiosmtpd.smtp import SMTP\n"
            "class H:\n    async def handle_DATA(self, s, se, e): return '250 OK'\n"
            "async def main():\n    loop = asyncio.get_running_loop()\n"
            f"    srv = await loop.create_server(lambda: SMTP(H(), data_size_limit=None), '127.0.0.1', {port})\n"
            "    await asyncio.Event().wait()\nasyncio.run(main())\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=workdir)


def provision(cfg: Path, sessions: int) -> list[tuple[str, str]]:
    """One buyer writing to one seller per session (buyer → seller mail is never 'unsolicited')."""
    from relay.config import load
    from relay.model import Role
    from relay.store import parties, threads
    from relay.store.db import connect_sync, run_in_transaction
    from relay.store.migrate import migrate

    settings = load(cfg)
    conn = connect_sync(settings.db_path)
    migrate(conn)
    pairs = []

    def unit(c: sqlite3.Connection) -> None:
        for i in range(sessions):
            s = parties.add(c, Role.SELLER, f"Shop {i}", [f"shop{i}@seller.example"])
            b = parties.add(c, Role.BUYER, f"Buyer {i}", [f"buyer{i}@buyer.example"])
            t, _ = threads.open_thread(c, b.id, s.id, order=f"ORD-{i}")
            pairs.append((f"buyer{i}@buyer.example", f"{t.seller_alias}@{settings.relay.domain}"))

    run_in_transaction(conn, [unit])
    conn.close()
    return pairs


async def session(port: int, sender: str, rcpt: str, count: int, size: int, start_n: int,
                  latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        line = await reader.readline()
        while line[3:4] == b"-":
            line = await reader.readline()
        return line

    await reply()
    writer.write(b"EHLO bench.example\r\n")
    await reply()
    ok = 0
    for n in range(start_n, start_n + count):
        writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        r1, r2, r3 = await reply(), await reply(), await reply()
        if not (r1.startswith(b"250") and r2.startswith(b"250") and r3.startswith(b"354")):
            raise RuntimeError(f"refused: {r1!r} {r2!r} {r3!r}")
        head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: bench {n}\r\n"
                f"Message-ID: <bench{n}@buyer.example>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n").encode()
        writer.write(head + body_of(size, n))
        await writer.drain()
        t0 = time.perf_counter()
        writer.write(b"\r\n.\r\n")
        answer = await reply()
        latencies.append(time.perf_counter() - t0)
        if answer.startswith(b"250"):
            ok += 1
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()
    return ok


def delivered(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM queue WHERE state = 'delivered'").fetchone()[0])
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and its live descendants (worker processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds_tree(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(messages: int, sessions: int, size: int, extra_config: str = "", workers: int = 1) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    relay_port, sink_port = free_port(), free_port()
    cfg = work / "relay.toml"
    cfg.write_text(
        f'[relay]\ndomain = "relay.example"\nstate_dir = "{work / "state"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{relay_port}"]\nmax_connections_per_ip = {sessions + 10}\n'
        f'max_messages_per_ip_per_minute = 1000000\nworkers = {workers}\n'
        f'[delivery]\ntransport = "smtp"\nsmarthost = "127.0.0.1:{sink_port}"\ntls = "off"\n'
        f'[logging]\nlevel = "warning"\nformat = "json"\n[trust]\nauthenticate = "off"\n'
        f'[http]\nlisten = "127.0.0.1:0"\n{extra_config}')
    pairs = provision(cfg, sessions)
    sink = start_sink(sink_port, work)
    relay = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"], cwd=ROOT,
                             stderr=open(work / "relay.log", "wb"))
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", relay_port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        latencies: list[float] = []
        per = messages // sessions
        cpu0 = cpu_seconds_tree(relay.pid)
        t0 = time.perf_counter()
        oks = await asyncio.gather(*(session(relay_port, s, r, per, size, i * per, latencies)
                                     for i, (s, r) in enumerate(pairs)))
        accepted_at = time.perf_counter()
        total = sum(oks)
        db = work / "state" / "relay.db"
        while delivered(db) < total and time.perf_counter() - accepted_at < 120:
            await asyncio.sleep(0.02)
        t1 = time.perf_counter()
        cpu = cpu_seconds_tree(relay.pid) - cpu0
        q = statistics.quantiles(latencies, n=100)
        return {"messages": total, "delivered": delivered(db), "seconds": t1 - t0,
                "msgs_per_s": total / (t1 - t0), "accept_msgs_per_s": total / (accepted_at - t0),
                "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000,
                "cpu_s_per_1000": cpu / max(total, 1) * 1000,
                "peak_rss_mib": sum(peak_rss_mib(p) for p in process_tree(relay.pid))}
    finally:
        relay.terminate()
        relay.wait(30)
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=1, help="smtp.workers of the relay")
    ap.add_argument("--policy-workers", type=int, default=0, help="policy.workers of the relay")
    args = ap.parse_args()
    extra = f"[policy]\nworkers = {args.policy_workers}\n"
    r = asyncio.run(run(args.messages, args.sessions, args.size, extra, workers=args.workers))
    print(f"relay end to end: {r['messages']} messages of {args.size} B over {args.sessions} sessions")
    print(f"  throughput        {r['msgs_per_s']:8.1f} msgs/s end to end "
          f"({r['accept_msgs_per_s']:.1f} msgs/s accepted)")
    print(f"  DATA→250 latency  p50 {r['p50_ms']:.2f} ms   p95 {r['p95_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms")
    print(f"  relay CPU         {r['cpu_s_per_1000']:.2f} s per 1000 messages; peak RSS {r['peak_rss_mib']:.0f} MiB")
    print(f"  delivered         {r['delivered']}/{r['messages']}   (client maxrss "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
