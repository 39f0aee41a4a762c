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
