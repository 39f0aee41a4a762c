"""relay retention run: clear message contents older than audit.retention (the daemon also does it daily).

Reads: audit.retention. Keeps every audit event and every content's sha256 and size, so the
chain and the references still verify. Audit: retention.cleared.
"""

from __future__ import annotations

import argparse
import functools
import time

from relay.cli.common import add_json, emit, group, settings, store, write


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rsub = group(sub, "retention", "message content retention")
    run = rsub.add_parser("run", help="clear message contents older than audit.retention now")
    add_json(run)
    run.set_defaults(handler=retention_run)


def retention_run(args: argparse.Namespace) -> int:
    from relay.store import blobfiles, retention

    window = settings(args).audit.retention
    now = time.time()
    cutoff = now - window
    blobs = size = 0
    with store(args) as conn:
        where = blobfiles.directory(conn)
        while True:  # small batches: found by a read, cleared in a short transaction, files wiped after it
            batch = retention.expired(conn, cutoff)
            n, b = write(conn, functools.partial(retention.clear_expired, cutoff=cutoff, now=now, candidates=batch))
            blobfiles.wipe_cleared(where)
            blobs, size = blobs + n, size + b
            if n == 0:
                break
    out = {"retention_seconds": window, "cutoff": cutoff, "blobs_cleared": blobs, "bytes_cleared": size}
    emit(args, out, f"cleared {blobs} message contents ({size} bytes) received before"
                    f" {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(cutoff))}")
    return 0
