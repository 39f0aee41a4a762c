"""relay thread open | show; relay alias revoke."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, quoted, read, settings, store

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
    from relay.store import threads

    with store(args) as conn:
        thread = read(lambda: threads.get(conn, args.thread))
        d = _thread_dict(args, thread, threads.orders(conn, thread.id))
    emit(args, d)
    return 0


def alias_revoke(args: argparse.Namespace) -> int:
    local = _local(args, args.alias) or ""
    target = on_store(args, lambda st: st.threads.revoke_alias(local))
    emit(args, {"alias": f"{target.alias}@{settings(args).relay.domain}", "thread": target.thread_id,
                "revoked": True}, f"revoked {target.alias}")
    return 0
