"""An alias named several times in one transaction is one recipient: one pipeline run, one copy."""

from __future__ import annotations

from tests.support import Sink, eventually, message, provision, send


async def test_repeated_alias_in_any_case_is_delivered_once(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    local, _, domain = world.buyer_alias.partition("@")
    rcpts = [world.buyer_alias, f"{local.upper()}@{domain.upper()}", world.buyer_alias]
    refused = await send(relay.addresses[0][1], world.seller_email, rcpts,
                         message(world.seller_email, world.buyer_alias, "Once", "One copy, please.\r\n"))
    assert refused == {}  # every RCPT answered 250, as Postfix does for a repeat

    def settled() -> list[tuple[str, int]]:
        conn = world.conn()
        try:
            rows = conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall()
        finally:
            conn.close()
        return rows if rows and all(state == "delivered" for state, _ in rows) else []

    assert await eventually(settled) == [("delivered", 1)]
    assert len(sink.received) == 1 and sink.received[0].rcpt_tos == [world.buyer_email]
