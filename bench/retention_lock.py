"""Retention against the writer lock: how long a small write waits while a retention pass clears
many large contents. A store with --count contents of --size-mb each, received 40 days ago, is
cleared by relay.retention.run_once while a probe commits a one-row write every 10 ms; printed:
the pass's duration, the probe's median and longest wait (what a message's commit would wait).

Run: ``python -m bench.retention_lock [--count 300] [--size-mb 2]``. Figures only, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from relay import retention
from relay.store import blobfiles
from relay.store.migrate import migrate
from relay.store.sqlite import SqliteStore

DAY = 86400.0


def fill(db_path: Path, count: int, size: int) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn)
    where = blobfiles.directory_of(db_path)
    assert where is not None
    seed = os.urandom(size)
    conn.execute("BEGIN")
    for i in range(count):
        data = i.to_bytes(4, "big") + seed[4:]
        digest = hashlib.sha256(data).hexdigest()
        path = blobfiles.path_of(where, digest)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(data)
        path.chmod(0o600)
        conn.execute("INSERT INTO blobs (sha256, size, data, in_file) VALUES (?, ?, x'', 1)", (digest, size))
        conn.execute("INSERT INTO messages (state, received_at, envelope_from, rcpt_alias, original_sha256)"
                     " VALUES ('delivered', ?, 'a@b.example', 'x', ?)", (time.time() - 40 * DAY, digest))
    conn.execute("COMMIT")
    conn.close()
    os.sync()  # the pass, not the setup's dirty pages, is what gets measured


async def measure(db_path: Path) -> dict[str, float]:
    store = SqliteStore.at(db_path)
    await store.open()
    waits: list[float] = []
    try:
        started = time.perf_counter()
        clearing = asyncio.create_task(retention.run_once(store, 30 * DAY))
        while not clearing.done():
            t = time.perf_counter()
            await store.touch()
            waits.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
        blobs, _ = await clearing
        took = time.perf_counter() - started
    finally:
        await store.close()
    return {"blobs": blobs, "pass_s": took, "probe_p50_ms": statistics.median(waits) * 1000,
            "probe_max_ms": max(waits) * 1000, "probes": len(waits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--size-mb", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-bench-retention-") as tmp:
        db_path = Path(tmp) / "relay.db"
        fill(db_path, args.count, int(args.size_mb * 1024 * 1024))
        r = asyncio.run(measure(db_path))
    print(f"retention of {r['blobs']:.0f} contents x {args.size_mb:g} MB: pass {r['pass_s']:.2f} s;"
          f" a small write waited p50 {r['probe_p50_ms']:.1f} ms, at most {r['probe_max_ms']:.1f} ms"
          f" ({r['probes']:.0f} probes)")


if __name__ == "__main__":
    main()
