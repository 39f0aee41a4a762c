"""relay queue list|show|retry|hold|release|drop — the delivery queue, safe beside a running daemon.

Each command is one BEGIN IMMEDIATE transaction on the daemon's SQLite file, so it is
serialised with the worker's claims; the worker records a result only on a row that is
still 'sending' (store/queue.py), so a hold or drop made meanwhile is never overwritten.
Audit: queue.retried, queue.held, queue.released, queue.dropped (+ notice.queued).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, plain, settings

if TYPE_CHECKING:
    from relay.store import queue as queue_repo
    from relay.store.interface import Store
    from relay.store.messages import MessageRow

STATES = ("queued", "sending", "held", "delivered", "bounced", "dropped")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = group(sub, "queue", "the delivery queue")
    p = q.add_parser("list", help="list queue entries (oldest first)")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--limit", type=int, default=1000)
    add_json(p)
    p.set_defaults(handler=list_)
    for name, help_, handler in (("show", "one entry in full", show), ("hold", "keep a queued entry from delivery", hold),
                                 ("release", "return a held entry to the queue, due now", release),
                                 ("drop", "remove an entry for good; its sender gets a notice", drop)):
        p = q.add_parser(name, help=help_)
        p.add_argument("id", type=int)
        add_json(p)
        p.set_defaults(handler=handler)
    p = q.add_parser("retry", help="make a queued entry (or all) due now")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("id", type=int, nargs="?")
    target.add_argument("--all", action="store_true")
    add_json(p)
    p.set_defaults(handler=retry)


def _when(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if ts else None


def as_dict(item: queue_repo.QueueItem) -> dict[str, Any]:
    return {"id": item.id, "message": item.message_id, "thread": item.thread_id, "kind": item.kind,
            "state": item.state, "recipient": item.recipient, "envelope_from": item.envelope_from,
            "attempts": item.attempts, "created_at": _when(item.created_at),
            "next_attempt_at": _when(item.next_attempt_at) if item.state == "queued" else None,
            "last_attempt_at": _when(item.last_attempt_at), "expires_at": _when(item.expires_at),
            "last_error": item.last_error}


def list_(args: argparse.Namespace) -> int:
    items = on_store(args, lambda st: st.queue.listing(args.state, args.limit))
    rows = [as_dict(i) for i in items]
    text = "\n".join(f"{r['id']:>7} {r['state']:<9} {r['kind']:<7} tries={r['attempts']:<3} "
                     f"thread={plain(r['thread'])} next={r['next_attempt_at'] or '-'} {(r['last_error'] or '')[:60]}"
                     for r in rows) or "queue is empty"
    emit(args, {"count": len(rows), "entries": rows}, text)
    return 0


def show(args: argparse.Namespace) -> int:
    async def work(st: Store) -> tuple[queue_repo.QueueItem, MessageRow | None]:
        item = await st.queue.get(args.id)
        return item, await st.messages.get(item.message_id)

    item, msg = on_store(args, work)
    out = as_dict(item)
    if msg is not None:
        out.update(subject=msg.subject, direction=msg.direction, message_state=msg.state,
                   received_at=_when(msg.received_at), rcpt_alias=msg.rcpt_alias)
    emit(args, out)
    return 0


def hold(args: argparse.Namespace) -> int:
    return _set_held(args, True)


def release(args: argparse.Namespace) -> int:
    return _set_held(args, False)


def _set_held(args: argparse.Namespace, held: bool) -> int:
    now = time.time()
    item = on_store(args, lambda st: st.queue.set_held(args.id, held, now, reason="operator"))
    emit(args, as_dict(item), f"queue entry {item.id} is {item.state}")
    return 0


def retry(args: argparse.Namespace) -> int:
    now = time.time()
    ids = on_store(args, lambda st: st.queue.retry(None if args.all else args.id, now))
    emit(args, {"retried": ids, "count": len(ids)}, f"{len(ids)} queue entries due now")
    return 0


def drop(args: argparse.Namespace) -> int:
    from relay.app import signer_for
    from relay.delivery.worker import notice_from_row

    s = settings(args)
    now = time.time()

    async def work(st: Store) -> int | None:
        item = await st.queue.get(args.id)
        notice = None
        if item.kind == "message":
            try:
                signer = await signer_for(s, st)
            except (OSError, ValueError) as exc:
                raise CliError(f"cannot sign the sender's notice: {exc}") from None
            notice = notice_from_row(s, signer, await st.messages.get(item.message_id), "queue.dropped")
        return await st.queue.drop(args.id, now, notice)

    notice_id = on_store(args, work)
    emit(args, {"dropped": args.id, "notice_queue_id": notice_id},
         f"queue entry {args.id} dropped" + (f"; notice to the sender queued as {notice_id}" if notice_id else ""))
    return 0
