"""relay thread transcript THREAD [--format text|json|mbox]; relay thread export THREAD --out FILE.zip.

Operators' dispute review: real addresses are shown. Reads: relay.domain, relay.state_dir.
Exports are written owner-only (0600).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, settings

if TYPE_CHECKING:
    from relay.store.interface import Store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tsub = group(sub, "thread", "buyer–seller conversations")
    tr = tsub.add_parser("transcript", help="every message of a thread, as received and as delivered, with verdicts")
    tr.add_argument("thread", type=int)
    tr.add_argument("--format", choices=["text", "json", "mbox"], default="text")
    tr.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    tr.set_defaults(handler=thread_transcript)
    ex = tsub.add_parser("export", help="write a dispute bundle (.zip): transcript, .eml files, audit events")
    ex.add_argument("thread", type=int)
    ex.add_argument("--out", required=True, type=Path)
    add_json(ex)
    ex.set_defaults(handler=thread_export)


def thread_transcript(args: argparse.Namespace) -> int:
    import orjson

    from relay.review import bundle, render, transcript

    domain = settings(args).relay.domain

    async def work(st: Store) -> tuple[dict[str, Any], dict[tuple[int, str], bytes] | None]:
        t = await transcript.build(st, args.thread, domain)
        return t, await bundle.originals(st, t) if args.format == "mbox" else None

    t, originals = on_store(args, work)
    if originals is not None:
        sys.stdout.flush()
        sys.stdout.buffer.write(render.mbox(t, originals))
        sys.stdout.buffer.flush()
        return 0
    if args.format == "json":
        sys.stdout.write(orjson.dumps(t, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    else:
        sys.stdout.write(render.text(t))
    return 0


def thread_export(args: argparse.Namespace) -> int:
    from relay.review import bundle

    out: Path = args.out
    if out.suffix.lower() != ".zip":
        raise CliError("--out must name a .zip file")
    if not out.parent.is_dir():
        raise CliError(f"directory {out.parent} does not exist")
    domain = settings(args).relay.domain
    result = on_store(args, lambda st: bundle.write(st, args.thread, domain, out))
    emit(args, result, f"wrote {out}: {result['messages']} messages, {result['eml']} .eml files,"
                       f" {result['events']} audit events")
    return 0
