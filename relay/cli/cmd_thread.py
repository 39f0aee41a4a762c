"""relay thread open | show | list | find; relay alias revoke.

`thread find --order ORDER` prints every thread the order was recorded on (normally one);
`--alias ALIAS` the thread of an alias, live or revoked. Nothing found: exit 1.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, plain, quoted, settings

if TYPE_CHECKING:
    from relay.store import threads
    from relay.store.interface import Store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tsub = group(sub, "thread", "buyer–seller conversations")
    op = tsub.add_parser("open", help="open (or return) the thread of a buyer and a seller")
    op.add_argument("--buyer", required=True, help="buyer party (id, ref or address)")
    op.add_argument("--seller", required=True, help="seller party (id, ref or address)")
    op.add_argument("--order", help="record this order reference on the thread")
    op.add_argument("--buyer-alias", help="import an existing alias local part for the buyer")
    op.add_argument("--seller-alias", help="import an existing alias local part for the seller")
    add_json(op)
    op.set_defaults(handler=thread_open)
    show = tsub.add_parser("show", help="show a thread")
    show.add_argument("thread", type=int)
    add_json(show)
    show.set_defaults(handler=thread_show)
    ls = tsub.add_parser("list", help="list threads (by id)")
    ls.add_argument("--party", help="only the threads of this party (id, ref or address)")
    add_json(ls)
    ls.set_defaults(handler=thread_list)
    fd = tsub.add_parser("find", help="the thread of an order reference or of an alias")
    by = fd.add_mutually_exclusive_group(required=True)
    by.add_argument("--order", help="an order reference recorded on the thread")
    by.add_argument("--alias", help="an alias address or its local part (live or revoked)")
    add_json(fd)
    fd.set_defaults(handler=thread_find)

    asub = group(sub, "alias", "aliases")
    rv = asub.add_parser("revoke", help="revoke an alias (mail to it is refused from now on)")
    rv.add_argument("alias", help="the alias address or its local part")
    add_json(rv)
    rv.set_defaults(handler=alias_revoke)


def _thread_dict(args: argparse.Namespace, thread: threads.Thread, orders: list[threads.Order]) -> dict[str, Any]:
    domain = settings(args).relay.domain
    return {"thread": thread.id, "buyer": thread.buyer_id, "seller": thread.seller_id,
            "buyer_alias": f"{thread.buyer_alias}@{domain}" if thread.buyer_alias else None,
            "seller_alias": f"{thread.seller_alias}@{domain}" if thread.seller_alias else None,
            "orders": [o.ref for o in orders]}


def _local(args: argparse.Namespace, value: str | None) -> str | None:
    if value is None:
        return None
    local, at, domain = value.partition("@")
    if at and domain.lower() != settings(args).relay.domain:
        raise CliError(f"alias {quoted(value)} is not at {settings(args).relay.domain}")
    return local


def thread_open(args: argparse.Namespace) -> int:
    async def work(st: Store) -> tuple[threads.Thread, bool, list[threads.Order]]:
        buyer = await st.parties.find(args.buyer)
        seller = await st.parties.find(args.seller)
        b_alias, s_alias = _local(args, args.buyer_alias), _local(args, args.seller_alias)
        thread, created = await st.threads.open_thread(buyer.id, seller.id, order=args.order, buyer_alias=b_alias,
                                                       seller_alias=s_alias)
        return thread, created, await st.threads.orders(thread.id)

    thread, created, orders = on_store(args, work)
    d = _thread_dict(args, thread, orders) | {"created": created}
    emit(args, d, f"thread {thread.id}: buyer alias {d['buyer_alias']}, seller alias {d['seller_alias']}")
    return 0


def thread_show(args: argparse.Namespace) -> int:
    async def work(st: Store) -> tuple[threads.Thread, list[threads.Order]]:
        thread = await st.threads.get(args.thread)
        return thread, await st.threads.orders(thread.id)

    emit(args, _thread_dict(args, *on_store(args, work)))
    return 0


#: threads read per call when listing
PAGE = 1000


def _listed(args: argparse.Namespace, found: list[tuple[threads.Thread, list[threads.Order]]],
            extra: dict[str, Any] | None = None, header: str | None = None) -> None:
    rows = [_thread_dict(args, t, orders) for t, orders in found]
    text = "\n".join(f"{r['thread']:>7} buyer={r['buyer']} seller={r['seller']} buyer_alias={plain(r['buyer_alias'])}"
                     f" seller_alias={plain(r['seller_alias'])} orders={plain(r['orders'])}" for r in rows)
    if header is not None:
        text = f"{header}\n{text}"
    emit(args, (extra or {}) | {"count": len(rows), "threads": rows}, text or "no threads")


def thread_list(args: argparse.Namespace) -> int:
    async def work(st: Store) -> list[tuple[threads.Thread, list[threads.Order]]]:
        party_id = (await st.parties.find(args.party)).id if args.party else None
        out: list[tuple[threads.Thread, list[threads.Order]]] = []
        while page := await st.threads.listing(party_id, after=out[-1][0].id if out else 0, limit=PAGE):
            out += page
        return out

    _listed(args, on_store(args, work))
    return 0


def thread_find(args: argparse.Namespace) -> int:
    if args.order is not None:
        found = on_store(args, lambda st: st.threads.find_by_order(args.order))
        if not found:
            raise CliError(f"no thread with order {quoted(args.order)}")
        _listed(args, found)
        return 0
    local = _local(args, args.alias) or ""
    hit = on_store(args, lambda st: st.threads.find_by_alias(local))
    if hit is None:
        raise CliError(f"no such alias: {quoted(local)}")
    thread, orders, target = hit
    alias = {"alias": f"{target.alias}@{settings(args).relay.domain}", "stands_for": target.party_id,
             "revoked": target.revoked}
    _listed(args, [(thread, orders)], alias, f"alias {alias['alias']} stands for party {target.party_id}"
                                             + (" (revoked)" if target.revoked else ""))
    return 0


def alias_revoke(args: argparse.Namespace) -> int:
    local = _local(args, args.alias) or ""
    target = on_store(args, lambda st: st.threads.revoke_alias(local))
    emit(args, {"alias": f"{target.alias}@{settings(args).relay.domain}", "thread": target.thread_id,
                "revoked": True}, f"revoked {target.alias}")
    return 0
