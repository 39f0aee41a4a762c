"""The daemon served from PostgreSQL (store.url = postgresql://…, relay/store/open.py): a seller's
message and the buyer's reply go through the real SMTP listener, the pipeline and the delivery
worker to the recording smarthost, with everything recorded in the shared database."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from relay.model import Role
from relay.store.pg.store import PgStore
from relay.store.sqlite import SqliteStore
from tests.support import DOMAIN, Sink, dkim_ok, message, send


async def test_the_daemon_delivers_end_to_end_on_postgresql(start_relay: Any, sink: Sink, pg_store_url: str) -> None:
    relay = await start_relay(smarthost=sink.port, store={"url": pg_store_url})
    assert isinstance(relay.store, PgStore) and not isinstance(relay.store, SqliteStore)
    assert not relay.settings.db_path.exists()  # nothing went to a SQLite file beside it
    store = relay.store
    seller = await store.parties.add(Role.SELLER, "Kyoto Crafts", ["shop@seller.example"])
    buyer = await store.parties.add(Role.BUYER, "Alice", ["alice@buyer.example"])
    thread, _ = await store.threads.open_thread(buyer.id, seller.id, order="ORD-1")
    buyer_alias, seller_alias = f"{thread.buyer_alias}@{DOMAIN}", f"{thread.seller_alias}@{DOMAIN}"
    port = relay.addresses[0][1]

    await send(port, "shop@seller.example", [buyer_alias],
               message("Kyoto Crafts <shop@seller.example>", buyer_alias, "Your order ORD-1",
                       "It ships tomorrow; write to shop@seller.example.\r\n", message_id="<s1@seller.example>"))
    got = (await sink.wait_for(1))[0]
    assert got.rcpt_tos == ["alice@buyer.example"] and got.mail_from == seller_alias
    assert b"shop@seller.example" not in got.data.lower() and dkim_ok(relay, got.data)
    relay_id = got.message["Message-ID"]

    await send(port, "alice@buyer.example", [seller_alias],
               message("alice@buyer.example", seller_alias, "Re: Your order", "Thanks!\r\n",
                       headers={"In-Reply-To": relay_id}))
    got2 = (await sink.wait_for(2))[1]
    assert got2.rcpt_tos == ["shop@seller.example"] and got2.message["In-Reply-To"] == "<s1@seller.example>"

    for _ in range(200):  # the second delivery's result is recorded just after the sink's 250
        if [r.state for r in await store.messages.of_thread(thread.id)] == ["delivered", "delivered"]:
            break
        await asyncio.sleep(0.05)
    conn = await asyncpg.connect(pg_store_url)  # the shared database itself, as another node sees it
    try:
        assert [r[0] for r in await conn.fetch("SELECT state FROM queue ORDER BY id")] == ["delivered"] * 2
    finally:
        await conn.close()
    events = [e.event for e in await store.audit.events_after(0, limit=1000)]
    assert events.count("message.accepted") == 2 and events.count("delivery.delivered") == 2
    assert (await store.audit.verify()).ok
