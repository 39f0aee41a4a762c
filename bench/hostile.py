"""Hostile messages against a real relay: the CPU each costs its worker, and the longest /healthz wait
meanwhile; and what the process hop costs a 5 KB message against checking it in the loop.

    python -m bench.hostile [--max-cpu 10] [--only comments,unclosed_a,nested,huge_header]

Bounded: one message per kind, each at most policy.max_cpu_seconds of CPU (default 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from relay.app import Relay
from relay.policy import pool as policy_pool
from relay.policy.settings import load_policy
from tests.support import make_settings, message, provision

HEAD = ("From: shop@seller.example\r\nTo: {to}\r\nSubject: hostile\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n")


def _wrap(data: bytes) -> bytes:
    return b"\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))


def _html(to: str, body: bytes) -> bytes:
    return (HEAD.format(to=to) + "Content-Type: multipart/alternative; boundary=b1\r\n\r\n--b1\r\n"
            "Content-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: text/html\r\n\r\n").encode() \
        + _wrap(body) + b"\r\n--b1--\r\n"


HOSTILE: dict[str, Callable[[str], bytes]] = {
    "comments": lambda to: _html(to, b"<!--" * (300 * 1024 // 4)),
    "unclosed_a": lambda to: _html(to, b"<a " * (200 * 1024 // 3)),
    "nested": lambda to: HEAD.format(to=to).encode() + b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i) for i in range(60))
        + b"Content-Type: text/plain\r\n\r\nhi\r\n",
    "huge_header": lambda to: HEAD.format(to=to).encode() + b"X-Filler: " + _wrap(b"x " * 100_000).replace(
        b"\r\n", b"\r\n ") + b"\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
}


def _send(port: int, sender: str, rcpt: str, data: bytes) -> str:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
            client.sendmail(sender, [rcpt], data)
        return "250"
    except (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        return str(getattr(exc, "smtp_code", exc))


def _poll_health(port: int, done: threading.Event, waits: list[float]) -> None:
    while not done.is_set():
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=600) as response:
            response.read()
        waits.append(time.monotonic() - started)
        time.sleep(0.05)


async def hostile(max_cpu: float, kinds: list[str]) -> None:
    with tempfile.TemporaryDirectory() as state:
        settings = make_settings(Path(state), policy={"max_cpu_seconds": max_cpu},
                                 rules={"max_unsolicited_per_order": 1_000_000,
                                        "max_unsolicited_per_thread_per_day": 1_000_000})
        relay = Relay(settings)
        await relay.start()
        try:
            world = provision(settings)
            port, http = relay.addresses[0][1], relay.http.address[1] if relay.http else 0
            assert relay.ctx is not None
            print(f"policy.max_cpu_seconds = {max_cpu}")
            print(f"{'message':<12} {'bytes':>8} {'reply':>6} {'wall s':>7} {'worker cpu s':>12} {'max /healthz wait ms':>21}")
            for kind in kinds:
                data = HOSTILE[kind](world.buyer_alias)
                pool = relay.ctx.extras["policy_pool"]
                pool.worst_cpu = 0.0
                done, waits = threading.Event(), []  # type: ignore[var-annotated]
                poller = threading.Thread(target=_poll_health, args=(http, done, waits))
                poller.start()
                started = time.monotonic()
                reply = await asyncio.to_thread(_send, port, world.seller_email, world.buyer_alias, data)
                wall = time.monotonic() - started
                done.set()
                await asyncio.to_thread(poller.join)
                print(f"{kind:<12} {len(data):>8} {reply:>6} {wall:>7.2f} {pool.worst_cpu:>12.3f} "
                      f"{max(waits) * 1000:>21.1f}")
        finally:
            await relay.stop(grace=2)


async def hop(count: int = 200) -> None:
    """A 5 KB message checked in this process vs sent to a worker and back (the same check)."""
    path = Path(__file__).resolve().parents[1] / "config" / "policy.toml"
    policy = load_policy(path)
    body = "Thanks for the order; the engraving is done and the parcel ships on Monday.\r\n" * 66
    raw = message("shop@seller.example", "x@relay.example", "Your order", body)
    own = frozenset({"x@relay.example"})
    policy_pool.run(raw, policy, own)
    inline = []
    for _ in range(count):
        started = time.perf_counter()
        policy_pool.run(raw, policy, own)
        inline.append(time.perf_counter() - started)
    workers = policy_pool.WorkerPool(path, 1, 10.0)
    await workers.check_and_apply(raw, own)
    hopped = []
    for _ in range(count):
        started = time.perf_counter()
        await workers.check_and_apply(raw, own)
        hopped.append(time.perf_counter() - started)
    await workers.stop()
    med_in, med_hop = statistics.median(inline) * 1e3, statistics.median(hopped) * 1e3
    print(f"5 KB message ({len(raw)} bytes), median of {count}: inline {med_in:.3f} ms (all of it on the loop), "
          f"worker {med_hop:.3f} ms (hop {med_hop - med_in:+.3f} ms, off the loop but for pickling)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--max-cpu", type=float, default=10.0, help="policy.max_cpu_seconds of the relay")
    ap.add_argument("--only", default=",".join(HOSTILE), help="comma-separated kinds")
    args = ap.parse_args()
    asyncio.run(hop())
    asyncio.run(hostile(args.max_cpu, [k for k in args.only.split(",") if k]))


if __name__ == "__main__":  # the policy workers import this module again: only the CLI runs it
    main()
