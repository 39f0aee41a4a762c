"""In-flight DATA memory: 10 concurrent 14 MB messages against a relay whose smtp.max_inflight_bytes
is small, while the relay process's RSS is sampled. Prints peak RSS, the bound and the replies.

Run: ``python bench/inflight_memory.py [--bound 256MiB] [--clients 10] [--size-mb 14] [--smarthost]``
(--smarthost: deliver over SMTP to a counting sink instead of the maildir).
The relay runs as its own process (`relay serve`), so the RSS measured is the daemon's alone.
Figures only, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cli(cfg: Path, *args: str) -> dict[str, object]:
    r = subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args, "--json"],
                       capture_output=True, text=True, check=True)
    out: dict[str, object] = json.loads(r.stdout)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def big_message(sender: str, to: str, size_mb: int) -> bytes:
    blob = base64.encodebytes(os.urandom(size_mb * 1024 * 1024 * 3 // 4)).replace(b"\n", b"\r\n")
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode()
    return head + blob + b"--b--\r\n"


def start_daemon(tmp: str, bound: str, sink_port: int | None, smtp_extra: str = "") -> tuple[subprocess.Popen[bytes], int, str]:
    """Provision a seller, a buyer and their thread, start `relay serve`; (process, port, seller alias)."""
    port = free_port()
    cfg = Path(tmp) / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp}/state"\n'
                   f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nmax_inflight_bytes = "{bound}"\n'
                   'max_message_size = "25MiB"\ncommand_timeout = "120s"\nmax_connections_per_ip = 1000\n' + smtp_extra
                   + '\n'
                   '[trust]\nauthenticate = "off"\n[http]\nlisten = "127.0.0.1:0"\n[logging]\nformat = "json"\nlevel = "warning"\n'
                   + (f'[delivery]\ntransport = "smtp"\nsmarthost = "127.0.0.1:{sink_port}"\ntls = "off"\n'
                      if sink_port else ''))
    cli(cfg, "party", "add", "--role", "seller", "--email", "shop@seller.example", "--name", "Shop")
    cli(cfg, "party", "add", "--role", "buyer", "--email", "alice@buyer.example", "--name", "Alice")
    thread = cli(cfg, "thread", "open", "--buyer", "alice@buyer.example", "--seller", "shop@seller.example")
    proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port, str(thread["seller_alias"])  # the buyer writes: no unsolicited-mail rule applies


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bound", default="256MiB")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--size-mb", type=int, default=14)
    ap.add_argument("--smarthost", action="store_true")
    ap.add_argument("--smtp", default="", help='more [smtp] lines, e.g. "spool_concurrency = 1"')
    ap.add_argument("--pdf", action="store_true", help="the bench's 10m message (a PDF attachment) instead")
    args = ap.parse_args()
    sink = None
    if args.smarthost:
        from bench.sink import CountingSink

        sink = CountingSink(free_port())
        await sink.start()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        proc, port, alias = await asyncio.to_thread(start_daemon, tmp, args.bound, sink.port if sink else None,
                                                    args.smtp)
        try:
            idle_rss, _ = rss_kib(proc.pid)
            data = big_message("alice@buyer.example", alias, args.size_mb)
            if args.pdf:
                from bench.messages import SCENARIOS, Message

                data = Message(SCENARIOS["10m"], "alice@buyer.example", [alias]).wire(0)
            peak = 0
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_kib(proc.pid)[0])
                    await asyncio.sleep(0.02)

            async def client(i: int) -> str:
                try:
                    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=300, start_tls=False)
                    async with smtp:
                        _errors, response = await smtp.sendmail("alice@buyer.example", [alias], data)
                    return response.split()[0] if response else "250"
                except aiosmtplib.SMTPResponseException as exc:
                    return f"{exc.code}"

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            results = await asyncio.gather(*(client(i) for i in range(args.clients)))
            elapsed = time.perf_counter() - started
            accepted = sum(r.startswith("2") for r in results)
            for _ in range(1200):  # deliveries are part of the memory picture too
                if sink is None or sink.count >= accepted:
                    break
                await asyncio.sleep(0.1)
            done.set()
            await sampler
            _, hwm = rss_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
            if sink is not None:
                await sink.stop()
    print(f"messages: {args.clients} x {len(data) / 1e6:.1f} MB, concurrent; smtp.max_inflight_bytes = {args.bound}")
    print(f"replies: {sorted(results)}  ({elapsed:.1f} s)")
    print(f"relay RSS: idle {idle_rss / 1024:.0f} MiB, peak sampled {peak / 1024:.0f} MiB, VmHWM {hwm / 1024:.0f} MiB")
    print(f"peak above idle: {(max(peak, hwm) - idle_rss) / 1024:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
