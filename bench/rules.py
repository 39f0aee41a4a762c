"""Rules stage cost: µs per message for a buyer message, a seller reply, a marked seller message (5 KB
text and 50 KB HTML classified), on a store seeded with many threads; and the time of
`relay metrics seller` for a seller with many messages.

Run: ``PYTHONPATH=. python bench/rules.py [threads] [messages per thread]``. Prints figures only (never pass/fail).
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from relay.model import AliasTarget, Role, Thread
from relay.pipeline.context import Context
from relay.pipeline.stages.resolve import Resolve
from relay.pipeline.stages.rules import Rules
from relay.pipeline.transit import Transit
from relay.rules.metrics import seller_metrics
from relay.store import messages, parties, threads
from relay.store import rules as rules_store
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate
from relay.store.sqlite import SqliteStore
from tests.support import make_settings, message

TEXT = ("Dear customer, thank you for your order. " * 120)[:5000]
#: The stage's clock: within rules.reply_window of the seeded buyer messages, so a reply is one.
NOW = 200_000.0
HTML = "<html><body>" + "<p>Our <b>new</b> collection is here, see the pictures.</p>" * 900 + "</body></html>"


def seed(path: Path, n_threads: int, per_thread: int) -> tuple[int, list[Thread]]:
    conn = connect_sync(path)
    migrate(conn)

    def unit(c: sqlite3.Connection) -> tuple[int, list[Thread]]:
        seller = parties.add(c, Role.SELLER, "Kyoto Crafts", ["shop@seller.example"])
        made = []
        for i in range(n_threads):
            buyer = parties.add(c, Role.BUYER, f"B{i}", [f"b{i}@buyer.example"])
            thread, _ = threads.open_thread(c, buyer.id, seller.id, order=f"ORD-{i}", now=0.0)
            made.append(thread)
            for k in range(per_thread):
                buyer_turn = k % 2 == 0
                t = 1000.0 + k * 3600.0
                row = messages.Accepted(
                    thread_id=thread.id, direction="buyer_to_seller" if buyer_turn else "seller_to_buyer",
                    sender_id=buyer.id if buyer_turn else seller.id, recipient_id=seller.id if buyer_turn else buyer.id,
                    received_at=t, envelope_from="x", rcpt_alias="a", subject="s", original=b"o%d" % k,
                    delivered=b"d%d" % k, orig_message_id=f"<o{i}.{k}@x>", relay_message_id=f"<r{i}.{k}@relay.example>",
                    out_envelope_from="a@relay.example", out_recipient="x@y", expires_at=t + 1)
                mid, _ = messages.record_accepted(c, row)
                rules_store.record_facts(c, mid, rules_store.MessageFacts(
                    thread.id, row.direction, t, "buyer" if buyer_turn else "reply", None, f"ORD-{i}"))
        return seller.id, made

    ((ok, value),) = run_in_transaction(conn, [unit])
    conn.close()
    if not ok:
        raise value
    return value


async def time_stage(ctx: Context, thread: Thread, seller_id: int, data: bytes, to_seller: bool,
                     rounds: int) -> float:
    resolve, rules = Resolve(ctx), Rules(ctx)
    target = AliasTarget(thread.seller_alias if to_seller else thread.buyer_alias, thread.id,
                         seller_id if to_seller else thread.buyer_id, Role.SELLER if to_seller else Role.BUYER)
    took = []
    for _ in range(rounds):
        tx = Transit(peer="127.0.0.1", helo="h", envelope_from="x", rcpt="r", target=target, raw=data,
                     received_at=NOW)
        await resolve.run(tx)
        start = time.perf_counter()
        await rules.run(tx)
        took.append(time.perf_counter() - start)
    return statistics.median(took) * 1e6


async def main(n_threads: int, per_thread: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp) / "state")
        t0 = time.perf_counter()
        seller_id, made = seed(settings.db_path, n_threads, per_thread)
        print(f"seeded {n_threads} threads x {per_thread} messages in {time.perf_counter() - t0:.1f} s")
        store = SqliteStore.at(settings.db_path)
        await store.open()
        try:
            ctx = Context(settings=settings, store=store)
            thread = made[len(made) // 2]
            buyer_addr = f"b{len(made) // 2}@buyer.example"
            cases = {
                "buyer message": (message(buyer_addr, "a@relay.example", "Question", TEXT), True),
                "seller reply (In-Reply-To)": (message("shop@seller.example", "a@relay.example", "Re", TEXT,
                                                       headers={"In-Reply-To": f"<r{len(made) // 2}.0@relay.example>"}),
                                               False),
                "[Important] 5 KB text": (message("shop@seller.example", "a@relay.example", "[Important] news", TEXT),
                                          False),
                "[Important] 50 KB HTML": (message("shop@seller.example", "a@relay.example", "[Important] news", HTML,
                                                   headers={"Content-Type": "text/html; charset=utf-8"}), False),
            }
            for name, (data, to_seller) in cases.items():
                us = await time_stage(ctx, thread, seller_id, data, to_seller, 200)
                print(f"rules stage, {name:28s} median {us:8.0f} µs")
            t0 = time.perf_counter()
            rows = await store.metrics.thread_messages(seller_id)
            orders = await store.metrics.order_times(seller_id)
            figures = seller_metrics(rows, orders, [], since=None, now=10_000_000.0)
            print(f"metrics seller over {len(rows)} messages: {(time.perf_counter() - t0) * 1000:.0f} ms"
                  f" ({figures.answered_within_24h} answered within 24 h)")
        finally:
            await store.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args or [500, 20])))
