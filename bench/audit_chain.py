"""Audit chain figures: append rate (with and without personal fields) and `verify` speed.

Usage: python bench/audit_chain.py [EVENTS]   (default 100000; a temporary database)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from relay.store import audit
from relay.store.audit_verify import verify
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as d:
        conn = connect_sync(Path(d) / "relay.db")
        migrate(conn)
        for label, pii in (("plain", False), ("with personal fields", True)):
            def fill(c, pii=pii):  # type: ignore[no-untyped-def]
                for i in range(n // 2):
                    detail = {"queue": i, "attempt": 1, "response": "250 2.0.0 Ok"}
                    if pii:
                        detail["mail_from"] = f"user{i}@example.org"
                    audit.append(c, "delivery.delivered", reason="ok", thread_id=i % 100, message_id=i, detail=detail)
            t0 = time.perf_counter()
            run_in_transaction(conn, [fill])
            dt = time.perf_counter() - t0
            print(f"append ({label}): {n // 2} events in {dt:.2f} s = {n / 2 / dt:,.0f} events/s")
        t0 = time.perf_counter()
        result = verify(conn)
        dt = time.perf_counter() - t0
        assert result.ok, result
        print(f"verify: {result.count} events in {dt:.2f} s = {result.count / dt:,.0f} events/s")
        conn.close()


if __name__ == "__main__":
    main()
