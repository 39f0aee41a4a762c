"""The SQLite store's async repositories (relay/store/sqlite.py): the compound units the daemon's
callers used to write as closures, now named methods, give the same answers and commit as one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relay.model import Role, Thread
from relay.store import seller_rules
from relay.store.interface import AdmitSeller, RecordFacts, Store, VacationReply
from relay.store.messages import Accepted, PendingEvent
from relay.store.migrate import migrate_file
from relay.store.rules import MessageFacts
from relay.store.sqlite import SqliteStore

BUYER, SELLER, STAFF = "b@buyer.example", "s@seller.example", "staff@seller.example"


@dataclass
class World:
    store: SqliteStore
    buyer: int
    seller: int
    thread: Thread


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    migrate_file(tmp_path / "r.db")
    store = SqliteStore.at(tmp_path / "r.db")
    await store.open()
    try:
        seller = await store.parties.add(Role.SELLER, "Shop", [SELLER, STAFF])
        buyer = await store.parties.add(Role.BUYER, "Bob", [BUYER])
        thread, _ = await store.threads.open_thread(buyer.id, seller.id, order="ORD-1", now=1.0)
        await store.credentials.set_password(seller.id, "hash-of-seller")
        yield World(store, buyer.id, seller.id, thread)
    finally:
        await store.close()


def _accepted(w: World, subject: str, *, now: float = 100.0, relay_id: str | None = None,
              to_seller: bool = True) -> Accepted:
    sender, recipient = (w.buyer, w.seller) if to_seller else (w.seller, w.buyer)
    raw = f"Subject: {subject}\r\n\r\nbody\r\n".encode()
    return Accepted(thread_id=w.thread.id, direction="buyer_to_seller" if to_seller else "seller_to_buyer",
                    sender_id=sender, recipient_id=recipient, received_at=now, envelope_from=BUYER,
                    rcpt_alias=w.thread.seller_alias if to_seller else w.thread.buyer_alias, subject=subject,
                    original=raw, delivered=raw, orig_message_id=None,
                    relay_message_id=relay_id or f"<{subject}@relay.example>", out_envelope_from="x@relay.example",
                    out_recipient=SELLER if to_seller else BUYER, expires_at=now + 86400,
                    events=(PendingEvent("test.event", "test", {}),))


def test_the_sqlite_store_is_a_store() -> None:
    def check(store: Store) -> None: ...

    check(SqliteStore.at(":memory:"))  # mypy checks the protocol; this checks the names line up at run time
    assert {n for n in Store.__annotations__} <= set(vars(SqliteStore.at(":memory:")))


@pytest.mark.parametrize(("alias", "sender", "expect"), [
    ("nosuchalias", BUYER, "unknown"),
    ("seller", BUYER, "buyer writes to the seller"),
    ("seller", "", "null sender"),
    ("seller", "who@else.example", "stranger"),
    ("buyer", SELLER, "seller writes to the buyer"),
    ("buyer", STAFF, "seller's staff address"),
    ("buyer", BUYER, "own alias"),
])
async def test_resolve_recipient(world: World, alias: str, sender: str, expect: str) -> None:
    local = {"seller": world.thread.seller_alias, "buyer": world.thread.buyer_alias}.get(alias, alias)
    target, sender_party, other = await world.store.threads.resolve_recipient(local, sender)
    if expect == "unknown":
        assert (target, sender_party, other) == (None, None, None)
        return
    assert target is not None and not target.revoked
    recipient = world.seller if alias == "seller" else world.buyer
    assert target.party_id == recipient
    assert other == (world.buyer if alias == "seller" else world.seller)
    assert sender_party == {BUYER: world.buyer, SELLER: world.seller, STAFF: world.seller}.get(sender)


async def test_resolve_recipient_of_a_revoked_alias_looks_up_nothing_else(world: World) -> None:
    await world.store.threads.revoke_alias(world.thread.seller_alias, now=2.0)
    target, sender_party, other = await world.store.threads.resolve_recipient(world.thread.seller_alias, BUYER)
    assert target is not None and target.revoked and (sender_party, other) == (None, None)
    assert await world.store.threads.resolve_message(world.thread.seller_alias, []) is None


async def test_resolve_message_translates_quoted_ids_for_the_recipient(world: World) -> None:
    assert await world.store.threads.resolve_message("nosuchalias", []) is None
    await world.store.messages.accept([_accepted(world, "first", relay_id="<r1@relay.example>")], [[]])
    found = await world.store.threads.resolve_message(world.thread.buyer_alias, ["<r1@relay.example>"])
    assert found is not None
    thread, sender, recipient, ids = found
    assert (thread.id, sender.id, recipient.id) == (world.thread.id, world.seller, world.buyer)
    assert isinstance(ids, dict)
    plain = await world.store.threads.resolve_message(world.thread.buyer_alias, [])
    assert plain is not None and plain[3] == {}


@pytest.mark.parametrize(("address", "expect"), [
    ("", (None, None)), ("who@else.example", (None, None)), (SELLER, ("seller", "hash-of-seller")),
    (BUYER, ("buyer", None)),
])
async def test_password_of_address(world: World, address: str, expect: tuple[str | None, str | None]) -> None:
    ids = {"seller": world.seller, "buyer": world.buyer, None: None}
    got = await world.store.credentials.password_of_address(address)
    assert got == (ids[expect[0]], expect[1])


@pytest.mark.parametrize(("address", "role"), [("", None), ("who@else.example", None), (STAFF, Role.SELLER),
                                               (BUYER, Role.BUYER)])
async def test_party_at(world: World, address: str, role: Role | None) -> None:
    party = await world.store.parties.party_at(address)
    assert (party.role if party is not None else None) == role


@pytest.mark.parametrize(("thread", "valid", "sender", "found", "party"), [
    ("none", True, BUYER, False, "buyer"),       # not a token: no thread named
    ("gone", True, BUYER, False, "buyer"),       # a thread that does not exist
    ("ours", False, BUYER, False, "buyer"),      # a forged token
    ("ours", True, BUYER, True, "buyer"),
    ("ours", True, SELLER, True, "seller"),
    ("ours", True, "", True, None),
])
async def test_unsubscribe_request(world: World, thread: str, valid: bool, sender: str, found: bool,
                                   party: str | None) -> None:
    thread_id = {"none": None, "gone": 999, "ours": world.thread.id}[thread]
    got, sender_party = await world.store.rules.unsubscribe_request(thread_id, lambda t: valid, sender)
    assert (got is not None) == found
    if got is not None:
        assert (got[0].id, got[1].id, got[2].id) == (world.thread.id, world.buyer, world.seller)
    assert sender_party == {"buyer": world.buyer, "seller": world.seller, None: None}[party]


async def test_unsubscribe_by_token_and_by_mail(world: World) -> None:
    store = world.store
    assert await store.rules.unsubscribe_by_token(world.thread.id, lambda t: False, via="https", now=5.0) is None
    assert await store.rules.unsubscribe_by_token(None, lambda t: True, via="https", now=5.0) is None
    assert await store.rules.optout_scope(world.buyer, world.seller) is None
    assert await store.rules.unsubscribe_by_token(world.thread.id, lambda t: True, via="https", now=5.0) is True
    assert await store.rules.unsubscribe_by_token(world.thread.id, lambda t: True, via="https", now=6.0) is False
    before = (await store.queue.stats()).depth
    await store.rules.unsubscribe_by_mail(world.thread.id, world.buyer, world.seller, BUYER, "unsubscribe+x",
                                          "stop", b"Subject: stop\r\n\r\n", 7.0, automatic=None,
                                          notice=b"Subject: done\r\n\r\nok\r\n", lifetime=3600)
    events = await store.audit.last_events(5)
    assert [(e.reason, e.detail["confirmed"]) for e in events if e.event == "unsubscribe.received"] == [
        ("rules.unsubscribe_repeat", True)]
    after = (await store.queue.stats()).depth
    assert sum(after.values()) == sum(before.values()) + 1  # the confirmation is queued with it


async def test_no_response_by_mail(world: World) -> None:
    store = world.store
    marked = await store.rules.no_response_by_mail(world.seller, ["<nothing@relay.example>"], SELLER,
                                                   "no-response-needed", "x", b"Subject: x\r\n\r\n", 9.0, peer="p")
    assert marked is None
    (event,) = await store.audit.last_events(1)
    assert (event.event, event.reason, event.detail["quoted"]) == ("message.rejected", "no_response.nothing_quoted", 1)
    ((message_id, _),) = await store.messages.accept([_accepted(world, "q", relay_id="<q@relay.example>")], [[]])
    assert await store.rules.no_response_by_mail(world.seller, ["<q@relay.example>"], SELLER, "no-response-needed",
                                                 "x", b"Subject: x\r\n\r\n", 9.0, peer="p") == message_id


async def test_buyer_message_rules_and_the_vacation_reply_hook(world: World) -> None:
    store = world.store
    (order, how), vacation, replied = await store.rules.buyer_message_rules(world.thread.id, world.seller, "Hi",
                                                                           [], 50.0)
    assert (order, how, vacation, replied) == ("ORD-1", "latest", None, False)
    await store.rules.set_vacation(world.seller, True, until=None, now=10.0)
    _, vacation, replied = await store.rules.buyer_message_rules(world.thread.id, world.seller, "Hi", [], 50.0)
    assert vacation is not None and not replied
    reply = _accepted(world, "auto", to_seller=False, relay_id="<auto@relay.example>")
    facts = MessageFacts(world.thread.id, "seller_to_buyer", 50.0, "vacation_reply", automatic="vacation-reply")
    hooks: list[Any] = [RecordFacts(MessageFacts(world.thread.id, "buyer_to_seller", 50.0, "buyer")),
                        VacationReply(vacation.id, world.thread.id, reply, facts)]
    ids = await store.messages.accept([_accepted(world, "one"), _accepted(world, "two")], [hooks, hooks])
    assert len(ids) == 2
    _, _, replied = await store.rules.buyer_message_rules(world.thread.id, world.seller, "Hi", [], 50.0)
    assert replied
    rows = await store.messages.of_thread(world.thread.id)
    assert [r.subject for r in rows].count("auto") == 1  # one reply per vacation and thread, the second skipped


def _seller_msg(w: World, now: float) -> seller_rules.SellerMessage:
    return seller_rules.SellerMessage(w.thread.id, w.buyer, w.seller, now, (), None, None)


async def test_first_decision_is_decide_on_the_known_message(world: World) -> None:
    limits = seller_rules.Limits(86400.0, 3, 1, 5)
    msg, how, prior, decision = await world.store.seller_rules.first_decision(
        _seller_msg(world, 60.0), "About ORD-1", limits, abuse_since=0.0, abuse_limit=3)
    assert (msg.order_ref, how, prior, msg.bypass) == ("ORD-1", "subject", 0, True)
    assert decision == await world.store.seller_rules.decide(msg, limits)
    assert decision.kind == "unsolicited"


async def test_a_refused_unit_in_a_group_commit_spoils_none_of_its_neighbours(world: World) -> None:
    """One DATA's unit refused at commit (its limit already used by a neighbour of the same group
    commit) is rolled back whole, with the exception its hook built; the others commit."""
    store = world.store
    limits = seller_rules.Limits(86400.0, 3, 1, 5)  # one unsolicited message per order
    msg, _, _, early = await store.seller_rules.first_decision(_seller_msg(world, 60.0), "ORD-1", limits,
                                                               abuse_since=0.0, abuse_limit=3)

    class Refused(Exception):
        pass

    def admit() -> list[Any]:
        return [AdmitSeller(msg, limits, early.kind, {"order": msg.order_ref}, lambda d: Refused(d.reason))]

    transactions = store.transactions
    results = await asyncio.gather(
        store.messages.accept([_accepted(world, "first", to_seller=False)], [admit()]),
        store.messages.accept([_accepted(world, "second", to_seller=False)], [admit()]),
        store.messages.accept([_accepted(world, "buyer", relay_id="<b@relay.example>")], [[]]),
        store.audit.append("test.neighbour", reason="test"),
        return_exceptions=True)
    assert store.transactions == transactions + 1  # all four in one group commit
    assert isinstance(results[0], list) and isinstance(results[2], list)
    assert isinstance(results[1], Refused) and str(results[1]) == "rules.order_limit"
    subjects = [r.subject for r in await store.messages.of_thread(world.thread.id)]
    assert sorted(subjects) == ["buyer", "first"]  # nothing of the refused unit was written
    events = [e.event for e in await store.audit.last_events(20)]
    assert "test.neighbour" in events and events.count("message.accepted") == 2

