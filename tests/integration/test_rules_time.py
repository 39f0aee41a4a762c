"""Vacation replies and response-time metrics end to end, with the relay's clock under the test's control."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relay.app import Relay
from relay.model import Role
from relay.store import audit, parties, threads
from relay.store import messages as messages_repo
from relay.store import rules as rules_store
from relay.store.db import connect_sync
from relay.store.migrate import migrate
from tests.integration.test_rules import cli
from tests.support import (
    DOMAIN,
    Sink,
    World,
    dkim_ok,
    make_settings,
    message,
    provision,
    send,
    send_expect,
    write,
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked_relay(tmp_path: Path, dkim_key: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Relay] = []

    async def _start(clock: Clock, **kwargs: Any) -> Relay:
        relay = Relay(make_settings(tmp_path / "state", dkim={"private_key": str(dkim_key)}, **kwargs), clock=clock)
        await relay.start()
        started.append(relay)
        return relay

    yield _start
    for relay in started:
        await relay.stop(grace=2)


def vacation_replies(world: World) -> list[int]:
    conn = world.conn()
    try:
        return [r[0] for r in conn.execute("SELECT message_id FROM message_rules WHERE kind = 'vacation_reply'")]
    finally:
        conn.close()


async def test_vacation_replies_once_per_thread_and_never_to_automatic_mail(start_relay, sink: Sink,
                                                                            tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    out = cli(relay.settings, tmp_path, "party", "vacation", world.seller_email, "on", "--until", "2099-01-10")
    assert out["until"] == "2099-01-10T00:00:00Z"
    assert cli(relay.settings, tmp_path, "party", "show", world.seller_email)["vacation"]["until"] == out["until"]

    first = message(world.buyer_email, world.seller_alias, "Where is my bowl?", message_id="<v1@buyer.example>")
    await send(port, world.buyer_email, [world.seller_alias], first)
    got = await sink.wait_for(2)
    reply = next(r for r in got if r.rcpt_tos == [world.buyer_email])
    msg = reply.message
    assert reply.mail_from in ("", "<>")
    assert msg["From"].addresses[0].addr_spec == world.seller_alias
    assert msg["From"].addresses[0].display_name == "Kyoto Crafts"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["In-Reply-To"] == "<v1@buyer.example>"
    assert "2099-01-10" in msg.get_content() and world.seller_email not in reply.data.decode()
    assert dkim_ok(relay, reply.data)
    assert len(vacation_replies(world)) == 1

    # the same thread gets no second reply
    await send(port, world.buyer_email, [world.seller_alias],
               message(world.buyer_email, world.seller_alias, "Hello again?"))
    assert len(vacation_replies(world)) == 1

    # another buyer's auto-reply is delivered but never answered by the responder
    conn = world.conn()
    try:
        bob = write(conn, lambda c: parties.add(c, Role.BUYER, "Bob", ["bob@buyer.example"]))
        thread, _ = write(conn, lambda c: threads.open_thread(c, bob.id, world.seller_id))
    finally:
        conn.close()
    bob_seller_alias = f"{thread.seller_alias}@{DOMAIN}"
    auto = message("bob@buyer.example", bob_seller_alias, "Out of Office", "I am away.\r\n",
                   headers={"Auto-Submitted": "auto-replied"})
    assert await send_expect(port, "bob@buyer.example", [bob_seller_alias], auto) == (250, "")
    assert len(vacation_replies(world)) == 1
    assert "rules.vacation_not_for_automatic" in [e.reason for e in _events(world)]

    # critical messages still flow to an opted-out buyer while the seller is away
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    critical = message(world.seller_email, world.buyer_alias, "[Important] delivery date",
                       "Can we schedule the delivery date?\r\n")
    assert await send_expect(port, world.seller_email, [world.buyer_alias], critical) == (250, "")
    assert cli(relay.settings, tmp_path, "party", "vacation", world.seller_email, "off")["vacation"] == "off"
    assert cli(relay.settings, tmp_path, "party", "show", world.seller_email)["vacation"] is None
    await sink.wait_for(5)


def _events(world: World) -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return list(audit.iter_all(conn))
    finally:
        conn.close()


async def test_metrics_across_weekend_vacation_and_no_response_needed(clocked_relay, tmp_path: Path) -> None:
    """Hand-computed: Thu 19 Nov 2026 … Mon 23 Nov 2026 (UTC); the seller is away Sat 00:00 – Mon 00:00."""
    clock = Clock(at("2026-11-18T08:00"))
    relay = await clocked_relay(clock)
    port = relay.addresses[0][1]
    conn = connect_sync(relay.settings.db_path)
    migrate(conn)
    try:
        seller = write(conn, lambda c: parties.add(c, Role.SELLER, "Kyoto Crafts", ["shop@seller.example"]))
        buyers = {n: write(conn, lambda c, n=n: parties.add(c, Role.BUYER, n, [f"{n}@buyer.example"]))
                  for n in "abcd"}
        opened = {}
        for n, order, placed in (("a", "ORD-A", "2026-11-18T10:00"), ("b", "ORD-B", "2026-11-19T09:00"),
                                 ("c", None, "2026-11-19T09:00"), ("d", None, "2026-11-19T09:00")):
            opened[n], _ = write(conn, lambda c, n=n, o=order, p=placed: threads.open_thread(
                c, buyers[n].id, seller.id, order=o, now=at(p)))
        write(conn, lambda c: rules_store.set_vacation(c, seller.id, True, until=at("2026-11-23T00:00"),
                                                       now=at("2026-11-21T00:00")))
        write(conn, lambda c: threads.add_order(c, opened["c"].id, "ORD-C", now=at("2026-11-21T12:00")))
    finally:
        conn.close()

    async def buyer(n: str, when: str, subject: str, **headers: str) -> None:
        clock.now = at(when)
        alias = f"{opened[n].seller_alias}@{DOMAIN}"
        data = message(f"{n}@buyer.example", alias, subject, headers=headers or None)
        assert await send_expect(port, f"{n}@buyer.example", [alias], data) == (250, ""), (n, when)

    async def answer(n: str, when: str, **headers: str) -> None:
        """The seller's mail program answers the buyer's latest message (In-Reply-To its relay Message-ID)."""
        clock.now = at(when)
        alias = f"{opened[n].buyer_alias}@{DOMAIN}"
        conn = connect_sync(relay.settings.db_path)
        try:
            latest = [m for m in messages_repo.of_thread(conn, opened[n].id) if m.direction == "buyer_to_seller"][-1]
        finally:
            conn.close()
        headers = {"In-Reply-To": latest.relay_message_id or "", **headers}
        data = message("shop@seller.example", alias, "Re: your message", headers=headers)
        assert await send_expect(port, "shop@seller.example", [alias], data) == (250, ""), (n, when)

    await buyer("a", "2026-11-19T12:00", "Q0")
    await answer("a", "2026-11-19T13:00")                               # 1 h
    await buyer("a", "2026-11-20T09:00", "Q1")
    await answer("a", "2026-11-20T11:30")                               # 2.5 h
    await buyer("a", "2026-11-20T18:00", "Q2")                          # Friday evening …
    await buyer("b", "2026-11-21T10:00", "Q3")                          # vacation reply; never answered
    await answer("b", "2026-11-21T10:05", **{"Auto-Submitted": "auto-replied"})  # does not stop the clock
    await buyer("c", "2026-11-21T13:00", "Q4")                          # ORD-C placed on vacation: excluded
    await buyer("a", "2026-11-22T08:00", "Thanks!")                     # marked "no response needed" below
    await buyer("d", "2026-11-22T09:00", "Automatic reply: away", **{"Auto-Submitted": "auto-replied"})
    await answer("a", "2026-11-23T09:00")                               # … answered Monday: 63 h, late
    await buyer("a", "2026-11-23T10:00", "Q7")                          # 2 h old at 12:00: pending
    assert len(vacation_replies(World(relay.settings))) == 3            # b, c, a — not d (automatic)

    conn = connect_sync(relay.settings.db_path)
    try:
        thanks = next(m.id for m in messages_repo.of_thread(conn, opened["a"].id) if m.subject == "Thanks!")
    finally:
        conn.close()
    assert cli(relay.settings, tmp_path, "message", "no-response-needed", str(thanks))["changed"] is True

    figures = cli(relay.settings, tmp_path, "metrics", "seller", "shop@seller.example",
                  "--since", "2026-11-20", "--at", "2026-11-23T12:00:00")
    assert {k: figures[k] for k in (
        "buyer_messages", "no_response_needed", "answered_within_24h", "answered_late", "unanswered", "pending",
        "percent_within_24h", "average_response_seconds", "median_response_seconds", "excluded_vacation",
        "automatic_ignored")} == {
        "buyer_messages": 5, "no_response_needed": 1, "answered_within_24h": 1, "answered_late": 1,
        "unanswered": 1, "pending": 1, "percent_within_24h": 33.3,
        "average_response_seconds": (9000 + 226800) / 2, "median_response_seconds": (9000 + 226800) / 2,
        "excluded_vacation": 1, "automatic_ignored": 1}
    whole = cli(relay.settings, tmp_path, "metrics", "seller", str(seller.id), "--at", "2026-11-23T12:00:00")
    assert (whole["buyer_messages"], whole["answered_within_24h"], whole["percent_within_24h"]) == (6, 2, 50.0)
    assert whole["average_response_seconds"] == (3600 + 9000 + 226800) / 3
    assert whole["median_response_seconds"] == 9000
    # a day later the pending message has become unanswered
    later = cli(relay.settings, tmp_path, "metrics", "seller", str(seller.id), "--at", "2026-11-24T12:00:00")
    assert (later["unanswered"], later["pending"]) == (2, 0)
