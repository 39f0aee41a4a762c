"""relay audit tail [-f] [--thread ID] [--party ID] [--event TYPE] [--since TIME] [--json]; verify; head.

`verify` walks the whole chain (exit 1 naming the first changed/removed/inserted/reordered event);
`head` prints the newest event's hash for anchoring elsewhere. Reads: relay.state_dir.
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, quoted

if TYPE_CHECKING:
    from relay.store import audit
    from relay.store.interface import Store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    asub = group(sub, "audit", "the audit trail")
    t = asub.add_parser("tail", help="print audit events; -f follows new ones")
    t.add_argument("-f", "--follow", action="store_true")
    t.add_argument("-n", "--lines", type=int, default=20, help="how many past events (default 20; 0 = all)")
    t.add_argument("--thread", type=int)
    t.add_argument("--party", type=int)
    t.add_argument("--event", help="event type or prefix, e.g. message or delivery.bounced")
    t.add_argument("--since", help="ISO time or a duration ago such as 2h")
    t.add_argument("--interval", type=float, default=0.2, help=argparse.SUPPRESS)
    add_json(t)
    t.set_defaults(handler=tail)
    v = asub.add_parser("verify", help="walk the hash chain; exit 1 naming the first tampered event")
    v.add_argument("--anchor", action="append", default=[], metavar="HASH",
                   help="a head hash recorded earlier; it must still be in the chain (repeatable)")
    v.add_argument("--bundle", type=Path, help="also check the audit events of a dispute bundle (.zip)")
    add_json(v)
    v.set_defaults(handler=verify)
    h = asub.add_parser("head", help="print the newest event's position and hash")
    add_json(h)
    h.set_defaults(handler=show_head)


def parse_since(value: str | None) -> float | None:
    from relay.config import parse_duration

    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--since: expected an ISO time or a duration such as 2h, got {quoted(value)}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def human(ev: audit.AuditEvent) -> str:
    when = datetime.fromtimestamp(ev.ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    ids = " ".join(f"{k}={v}" for k, v in (("thread", ev.thread_id), ("message", ev.message_id),
                                              ("party", ev.party_id)) if v is not None)
    detail = " ".join(f"{k}={_short(v)}" for k, v in ev.detail.items())
    return f"{when} #{ev.seq} {ev.event} {ev.reason} {ids} {detail}".rstrip()


def _short(v: Any) -> str:
    import orjson

    s = v if isinstance(v, str) else orjson.dumps(v).decode()
    return s if len(s) <= 80 else s[:77] + "..."


def tail(args: argparse.Namespace) -> int:
    import asyncio

    filters: dict[str, Any] = {"thread_id": args.thread, "party_id": args.party, "event": args.event,
                               "since": parse_since(args.since)}
    out = sys.stdout

    async def work(st: Store) -> int:
        # Fix the head first: the history is everything up to it, following starts after it,
        # so an event committed meanwhile is printed once, by the follow loop.
        last = (await st.audit.head())[0]
        if args.lines:
            events = await st.audit.last_events(args.lines, **filters)
        else:
            events = []
            while chunk := await st.audit.events_after(events[-1].seq if events else 0, limit=5000, **filters):
                events += chunk
        for ev in events:
            if ev.seq > last:
                continue
            _print(args, out, ev)
        out.flush()
        if not args.follow:
            return 0
        while True:
            new = await st.audit.events_after(last, limit=1000)
            for ev in new:
                last = ev.seq
                if _match(ev, filters):
                    _print(args, out, ev)
            if new:
                out.flush()
            else:
                await asyncio.sleep(args.interval)

    try:
        return on_store(args, work)
    except KeyboardInterrupt:
        return 0  # a closed pipe goes up to main(): exit 141, quietly


def _match(ev: audit.AuditEvent, f: dict[str, Any]) -> bool:
    if f["thread_id"] is not None and ev.thread_id != f["thread_id"]:
        return False
    if f["party_id"] is not None and ev.party_id != f["party_id"]:
        return False
    if f["event"] and not (ev.event == f["event"] or ev.event.startswith(f["event"] + ".")):
        return False
    return not (f["since"] is not None and ev.ts < f["since"])


def _print(args: argparse.Namespace, out: Any, ev: audit.AuditEvent) -> None:
    import orjson

    out.write((orjson.dumps(ev.as_dict()).decode() if args.json else human(ev)) + "\n")


def verify(args: argparse.Namespace) -> int:
    async def work(st: Store) -> dict[str, Any]:
        result = await st.audit.verify()
        out = result.as_dict()
        if result.ok:
            missing = await st.audit.missing_anchors(list(args.anchor))
            if missing:
                out |= {"ok": False, "problem": "removed",
                        "message": f"anchored event {missing[0]} is not in the chain (truncated or rewritten)"}
            if args.bundle is not None:
                problems = await st.audit.check_events(_bundle_events(args.bundle))
                out["bundle_problems"] = problems
                if problems:
                    out |= {"ok": False, "problem": "bundle", "message": problems[0]}
        return out

    out = on_store(args, work)
    if out["ok"]:
        text = f"OK: {out['count']} events, head #{out['head_seq']} {out['head']}"
        if args.bundle is not None:
            text += f"\nbundle {args.bundle}: every audit event matches the chain"
    else:
        text = f"FAILED: {out['message']} ({out['count']} events verified before it)"
    emit(args, out, text)
    return 0 if out["ok"] else 1


def _bundle_events(path: Path) -> list[dict[str, Any]]:
    import orjson

    try:
        with zipfile.ZipFile(path) as z:
            lines = z.read("audit.jsonl").splitlines()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise CliError(f"cannot read the bundle {path}: {exc}") from None
    return [orjson.loads(line) for line in lines if line.strip()]


def show_head(args: argparse.Namespace) -> int:
    async def work(st: Store) -> tuple[int, str, float | None]:
        seq, digest = await st.audit.head()
        events = await st.audit.events_in([seq]) if seq else []
        return seq, digest, events[0].ts if events else None

    seq, digest, ts = on_store(args, work)
    emit(args, {"seq": seq, "hash": digest, "ts": ts}, f"{seq} {digest}")
    return 0
