"""relay retention run: clear message contents older than audit.retention (the daemon also does it daily).

Reads: audit.retention. Keeps every audit event and every content's sha256 and size, so the
chain and the references still verify. Audit: retention.cleared.
"""

from __future__ import annotations

import argparse
import time

from relay.cli.common import add_json, emit, group, on_store, settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rsub = group(sub, "retention", "message content retention")
    run = rsub.add_parser("run", help="clear message contents older than audit.retention now")
    add_json(run)
    run.set_defaults(handler=retention_run)


def retention_run(args: argparse.Namespace) -> int:
    from relay.retention import run_once

    window = settings(args).audit.retention
    now = time.time()
    cutoff = now - window
    # the daemon's own pass: small batches, found by a read, cleared in a short transaction, files wiped after it
    blobs, size = on_store(args, lambda st: run_once(st, window, clock=lambda: now))
    out = {"retention_seconds": window, "cutoff": cutoff, "blobs_cleared": blobs, "bytes_cleared": size}
    emit(args, out, f"cleared {blobs} message contents ({size} bytes) received before"
                    f" {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(cutoff))}")
    return 0
