"""What only the SQLite store (relay/store/sqlite.py) does: its units share group commits. The
behaviour both backends share is tests/unit/test_store_contract.py's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relay.model import Role, Thread
from relay.store import seller_rules
from relay.store.interface import AdmitSeller, Store
from relay.store.messages import Accepted, PendingEvent
from relay.store.migrate import migrate_file
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


def _seller_msg(w: World, now: float) -> seller_rules.SellerMessage:
    return seller_rules.SellerMessage(w.thread.id, w.buyer, w.seller, now, (), None, None)


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



# -- what the CLI (and later the HTTP API) asks of the store: each one named method ------------------
async def _events(w: World) -> list[str]:
    return [e.event for e in await w.store.audit.last_events(100)]


R1, R2 = "r@ref.example", "r2@ref.example"


@pytest.mark.parametrize(("role", "name", "emails", "ref", "expect"), [
    (Role.SELLER, "Ref Shop", [R1, R2], "S-1", "same"),            # the same again: the party, no event
    (Role.SELLER, "Ref Shop", [R2, R1], "S-1", "other addresses"),  # order matters: the first is primary
    (Role.SELLER, "Other", [R1, R2], "S-1", "other name"),
    (Role.SELLER, "Other", [R1], "S-1", "other name and other addresses"),
    (Role.SELLER, "New", ["new@seller.example"], "S-2", "created"),
    (Role.BUYER, "Ref Shop", ["b2@buyer.example"], "S-1", "created"),  # a ref is per role
    (Role.SELLER, "New", [BUYER], "S-3", "already registered"),        # a new party: add's own checks
])
async def test_ensure_is_add_once_per_ref(world: World, role: Role, name: str, emails: list[str], ref: str,
                                          expect: str) -> None:
    from relay.store.errors import Conflict

    store = world.store
    first, created = await store.parties.ensure(Role.SELLER, "Ref Shop", [R1, R2], "S-1")
    assert created and first.ref == "S-1"
    before = await _events(world)
    if expect in ("same", "created"):
        party, created = await store.parties.ensure(role, name, emails, ref)
        assert created is (expect == "created")
        assert (party.name, list(party.emails), party.ref, party.role) == (name, emails, ref, role)
        if expect == "same":
            assert party.id == first.id and await _events(world) == before
        else:
            assert (await _events(world))[-1] == "party.added"
    else:
        with pytest.raises(Conflict, match=expect):
            await store.parties.ensure(role, name, emails, ref)
        assert await _events(world) == before


async def test_ensure_refuses_an_erased_ref(world: World) -> None:
    from relay.store.errors import Conflict

    party, _ = await world.store.parties.ensure(Role.BUYER, "Gone", ["gone@buyer.example"], "B-9")
    await world.store.erasure.erase(party.id, 10.0)
    with pytest.raises(Conflict, match="was erased"):
        await world.store.parties.ensure(Role.BUYER, "Gone", ["gone@buyer.example"], "B-9")


@pytest.mark.parametrize(("changes", "fields", "error"), [
    ({"name": "Shop"}, [], None),
    ({"name": "Shop Two"}, ["name"], None),
    ({"emails": [STAFF, SELLER]}, ["addresses"], None),                    # a new primary
    ({"emails": ["new@seller.example"]}, ["addresses"], None),
    ({"status": "suspended"}, ["status"], None),
    ({"name": "N", "emails": [SELLER], "status": "suspended"}, ["name", "addresses", "status"], None),
    ({"emails": [SELLER, BUYER]}, None, "already registered"),              # another party's address
    ({"emails": []}, None, "at least one"),
    ({"emails": [SELLER, SELLER]}, None, "twice"),
    ({"status": "erased"}, None, "status must be"),
    ({"name": ""}, None, "empty"),
])
async def test_update_changes_a_party_in_one_audited_transaction(world: World, changes: dict[str, Any],
                                                                 fields: list[str] | None, error: str | None) -> None:
    from relay.store.errors import Conflict

    store = world.store
    before = await _events(world)
    old = await store.parties.get(world.seller)
    if error is not None:
        with pytest.raises(Conflict, match=error):
            await store.parties.update(world.seller, **changes)
        assert await store.parties.get(world.seller) == old and await _events(world) == before
        return
    party, changed = await store.parties.update(world.seller, **changes)
    assert changed == fields and party == await store.parties.get(world.seller)
    if "emails" in changes:
        assert list(party.emails) == changes["emails"]
        assert await store.parties.by_address(changes["emails"][0]) == world.seller
        gone = set(old.emails) - set(changes["emails"])
        assert [await store.parties.by_address(a) for a in gone] == [None] * len(gone)
    events = await store.audit.last_events(1)
    if fields:
        assert events[0].event == "party.updated" and events[0].detail["fields"] == fields
        assert SELLER not in str(events[0].detail)  # values are personal: not in the chain
    else:
        assert await _events(world) == before


async def test_update_refuses_an_erased_party(world: World) -> None:
    from relay.store.errors import Conflict, NotFound

    await world.store.erasure.erase(world.buyer, 10.0)
    with pytest.raises(Conflict, match="erased"):
        await world.store.parties.update(world.buyer, name="Back")
    with pytest.raises(NotFound):
        await world.store.parties.update(999, name="Nobody")


@pytest.mark.parametrize(("role", "after", "limit", "expect"), [
    (None, 0, 1000, ["Shop", "Bob", "B2", "S2"]),
    (Role.SELLER, 0, 1000, ["Shop", "S2"]),
    (Role.BUYER, 0, 1000, ["Bob", "B2"]),
    (None, 0, 2, ["Shop", "Bob"]),
    (None, 2, 1000, ["B2", "S2"]),
    (Role.SELLER, 4, 1000, []),
])
async def test_party_listing_pages(world: World, role: Role | None, after: int, limit: int,
                                   expect: list[str]) -> None:
    await world.store.parties.add(Role.BUYER, "B2", ["b2@buyer.example"])
    await world.store.parties.add(Role.SELLER, "S2", ["s2@seller.example", "t2@seller.example"])
    listed = await world.store.parties.listing(role, after=after, limit=limit)
    assert [p.name for p in listed] == expect
    assert listed == [await world.store.parties.get(p.id) for p in listed]  # addresses in order too


@pytest.mark.parametrize(("party", "after", "expect"), [
    (None, 0, [1, 2]), ("buyer", 0, [1]), ("seller", 0, [1, 2]), ("buyer2", 0, [2]), (None, 1, [2]),
])
async def test_thread_listing(world: World, party: str | None, after: int, expect: list[int]) -> None:
    store = world.store
    b2 = await store.parties.add(Role.BUYER, "B2", ["b2@buyer.example"])
    await store.threads.open_thread(b2.id, world.seller, order="ORD-2", now=2.0)
    await store.threads.add_order(world.thread.id, "ORD-3", now=3.0)
    pid = {"buyer": world.buyer, "seller": world.seller, "buyer2": b2.id, None: None}[party]
    listed = await store.threads.listing(pid, after=after)
    assert [t.id for t, _ in listed] == expect
    for thread, orders in listed:
        assert thread == await store.threads.get(thread.id) and orders == await store.threads.orders(thread.id)


@pytest.mark.parametrize(("order", "expect"), [("ORD-1", [1]), ("ORD-2", [2]), ("SHARED", [1, 2]), ("ORD-9", [])])
async def test_find_by_order(world: World, order: str, expect: list[int]) -> None:
    store = world.store
    b2 = await store.parties.add(Role.BUYER, "B2", ["b2@buyer.example"])
    t2, _ = await store.threads.open_thread(b2.id, world.seller, order="ORD-2", now=2.0)
    for tid in (world.thread.id, t2.id):
        await store.threads.add_order(tid, "SHARED", now=5.0)
    found = await store.threads.find_by_order(order)
    assert [t.id for t, _ in found] == expect
    assert all(order in [o.ref for o in orders] for _, orders in found)


@pytest.mark.parametrize(("which", "revoke", "found"), [
    ("buyer", False, True), ("seller", False, True), ("buyer", True, True), ("nosuchalias1", False, False),
])
async def test_find_by_alias(world: World, which: str, revoke: bool, found: bool) -> None:
    store = world.store
    local = {"buyer": world.thread.buyer_alias, "seller": world.thread.seller_alias}.get(which, which)
    if revoke:
        await store.threads.revoke_alias(local)
    result = await store.threads.find_by_alias(local.upper())
    if not found:
        assert result is None
        return
    assert result is not None
    thread, orders, target = result
    assert thread.id == world.thread.id and [o.ref for o in orders] == ["ORD-1"]
    assert (target.alias, target.revoked) == (local, revoke)
    assert target.party_id == (world.buyer if which == "buyer" else world.seller)


async def test_change_password_is_the_hash_and_its_event_together(world: World) -> None:
    from relay.store.errors import NotFound

    store = world.store
    await store.credentials.change_password(world.buyer, "hash-of-buyer", now=50.0)
    assert await store.credentials.password_hash(world.buyer) == "hash-of-buyer"
    ev = (await store.audit.last_events(1))[0]
    assert (ev.event, ev.reason, ev.party_id, ev.ts) == ("party.password_set", "cli", world.buyer, 50.0)
    before = await _events(world)
    with pytest.raises(NotFound):
        await store.credentials.change_password(999, "hash")
    assert await _events(world) == before


async def test_head_is_the_newest_event(world: World) -> None:
    ev = await world.store.audit.append("test.head", reason="test")
    assert await world.store.audit.head() == (ev.seq, ev.hash)


@pytest.mark.parametrize(("decision", "hold", "labelled_before", "label", "expect_label"), [
    ("release", "policy", False, None, ("released", ["marketing"], False)),
    ("release", "policy", False, ["contact"], ("released", ["contact"], True)),
    ("release", "operator", False, None, None),   # `relay queue hold` is no judgement of the content
    ("drop", "policy", False, None, ("dropped", ["marketing"], False)),
    ("drop", "policy", False, [], ("dropped", [], True)),
    ("drop", None, True, None, ("dropped", ["marketing"], False)),  # released, dropped before it left
    ("drop", None, False, None, None),
    ("drop", "operator", False, None, None),
])
async def test_an_operators_decision_and_its_label_commit_together(
        world: World, decision: str, hold: str | None, labelled_before: bool, label: list[str] | None,
        expect_label: tuple[str, list[str], bool] | None) -> None:
    from dataclasses import replace

    store = world.store
    msg = replace(_accepted(world, "hold me"), held=hold == "policy",
                  events=(PendingEvent("message.held" if hold == "policy" else "test.event", "test", {}),))
    ((message_id, queue_id),) = await store.messages.accept([msg], [[]])
    if hold == "operator":
        await store.queue.set_held(queue_id, True, 150.0, reason="operator")
    held_for = ["marketing"]
    categories = held_for if label is None else label
    corrected = label is not None and label != held_for
    if labelled_before:
        await store.labels.record(message_id, "released", held_for, held_for, corrected=False, reason=None,
                                  by="op", now=99.0)
    before = await _events(world)
    if decision == "release":
        n, got = await store.labels.release_with_label(message_id, 200.0, held_for, categories,
                                                       corrected=corrected, reason="note", by="op")
    else:
        n, got = await store.labels.drop_with_label(message_id, 200.0, None, held_for, categories,
                                                    corrected=corrected, reason="note", by="op")
    assert n == 1
    assert {q.state for q in await store.queue.rows_of_message(message_id)} == (
        {"queued"} if decision == "release" else {"dropped"})
    new = (await _events(world))[len(before):]
    if expect_label is None:
        assert got is None and "message.labelled" not in new
        assert await store.labels.get(message_id) is None
    else:
        assert got is not None and (got.decision, list(got.categories), got.corrected) == expect_label
        stored = await store.labels.get(message_id)
        assert stored is not None and (stored.decision, stored.categories, stored.reason, stored.decided_at) == (
            got.decision, got.categories, "note", 200.0)
        assert new[-1] == "message.labelled"


async def test_a_refused_decision_leaves_no_label(world: World) -> None:
    from relay.store.errors import Conflict

    ((message_id, _),) = await world.store.messages.accept([_accepted(world, "queued")], [[]])
    before = await _events(world)
    with pytest.raises(Conflict, match="not held"):
        await world.store.labels.release_with_label(message_id, 200.0, [], [], corrected=False, reason=None,
                                                    by="op")
    assert await _events(world) == before and await world.store.labels.get(message_id) is None


async def test_compact_after_erase_leaves_no_address_in_the_files(world: World) -> None:
    store = world.store
    await store.erasure.erase(world.buyer, 10.0)
    completed, traces = await store.erasure.compact([BUYER])
    assert completed and traces == []
    completed, traces = await store.erasure.compact([], vacuum=True)
    assert completed and traces == []
