"""relay party erase PARTY: a privacy request — addresses and name replaced everywhere, aliases revoked.

Then the WAL is checkpointed (freed cells and pages were zeroed by secure_delete) so that no WAL
frame still holds the old bytes, vacuumed only if bytes are still found or the party was already
erased, and the files are searched for the addresses (`traces` in the result; exit 1 if any).
Audit: party.erased, alias.revoked (reason party.erased).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from relay.cli.common import add_json, emit, group, read, settings, store, write


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "party", "buyers and sellers")
    er = psub.add_parser("erase", help="erase a party's addresses and name (privacy request); revokes aliases")
    er.add_argument("party", help="party id, ref or address")
    add_json(er)
    er.set_defaults(handler=party_erase)


def file_traces(db_path: Path, needles: list[str]) -> list[str]:
    """Which of the database's files still contain any needle (any ASCII case)."""
    found = []
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-journal")):
        if path.exists():
            data = path.read_bytes().lower()
            if any(n.lower().encode() in data for n in needles):
                found.append(path.name)
    return found


def party_erase(args: argparse.Namespace) -> int:
    from relay.store import blobfiles, erasure, parties

    db_path = settings(args).db_path
    with store(args) as conn:
        party = read(lambda: parties.find(conn, args.party))
        now = time.time()
        if party.status == "erased":  # again: only compact (the addresses are no longer known)
            summary: dict[str, Any] = {"party": party.id, "already_erased": True, "chained_traces": []}
        else:
            # contents quoting the party are read first, outside the write lock; the erasure itself
            # is one short transaction; the files it cleared are zeroed after it
            scanned = read(lambda: erasure.quoting_contents(conn, party.id))
            summary = write(conn, lambda c: erasure.erase(c, party.id, now, scanned))
            blobfiles.wipe_cleared(blobfiles.directory(conn))
        # Old versions of the rewritten pages live on in the WAL: fold it back and empty it. Freed
        # cells and pages were zeroed by secure_delete, so no VACUUM (an exclusive lock for the
        # whole rebuild: seconds of refused writes on a large store) unless bytes are still found.
        first = last = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        traces = file_traces(db_path, list(party.emails)) if party.status != "erased" else []
        if traces or party.status == "erased":  # asked again: compact for real
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("VACUUM")
            last = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            traces = file_traces(db_path, list(party.emails)) if party.status != "erased" else []
    summary |= {"checkpointed": first[0] == 0 and last[0] == 0, "traces": traces}
    if traces or summary["chained_traces"]:
        summary["error"] = (f"an address is still present in {', '.join(traces) or 'the audit chain'};"
                            " run `relay party erase` again when the relay is idle to compact the files")
    text = (f"party {party.id} erased: {summary.get('contents_cleared', 0)} contents cleared, aliases revoked:"
            f" {', '.join(summary.get('aliases_revoked', [])) or 'none'}; traces left in the database files:"
            f" {', '.join(traces) or 'none'}")
    emit(args, summary, text)
    if "error" in summary:
        print(f"relay: {summary['error']}", file=sys.stderr)
        return 1
    return 0
