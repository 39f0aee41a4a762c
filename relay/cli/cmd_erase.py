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
from typing import TYPE_CHECKING, Any

from relay.cli.common import add_json, emit, group, on_store

if TYPE_CHECKING:
    from relay.model import Party
    from relay.store.interface import Store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "party", "buyers and sellers")
    er = psub.add_parser("erase", help="erase a party's addresses and name (privacy request); revokes aliases")
    er.add_argument("party", help="party id, ref or address")
    add_json(er)
    er.set_defaults(handler=party_erase)


def party_erase(args: argparse.Namespace) -> int:
    async def work(st: Store) -> tuple[Party, dict[str, Any]]:
        party = await st.parties.find(args.party)
        now = time.time()
        if party.status == "erased":  # again: only compact (the addresses are no longer known)
            summary: dict[str, Any] = {"party": party.id, "already_erased": True, "chained_traces": []}
        else:
            # contents quoting the party are read first, outside the write lock; the erasure itself
            # is one short transaction; the files it cleared are zeroed after it
            scanned = await st.erasure.quoting_contents(party.id)
            summary = await st.erasure.erase(party.id, now, scanned)
            await st.retention.wipe_cleared()
        # no old version of a rewritten page may survive (the WAL), compacted for real when asked again
        erased = party.status == "erased"
        checkpointed, traces = await st.erasure.compact([] if erased else list(party.emails), vacuum=erased)
        return party, summary | {"checkpointed": checkpointed, "traces": traces}

    party, summary = on_store(args, work)
    traces = summary["traces"]
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
