"""The store's contract (relay/store/interface.py), run on both backends: SqliteStore on a
temporary state directory and PgStore on a fresh database of the tests' throwaway PostgreSQL
(tests/pgcluster.py). Every method of the interface is called at least once with its behaviour
checked; what only PostgreSQL adds (20 nodes' worth of concurrent accepts, contents in pieces) too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from relay.model import Role, Thread
from relay.store import seller_rules
from relay.store.errors import Conflict, NotFound
from relay.store.interface import AdmitSeller, RecordFacts, Store, VacationReply
from relay.store.messages import Accepted, PendingEvent, Refused
from relay.store.migrate import migrate_file
from relay.store.pg.store import PgStore
from relay.store.rules import MessageFacts
from relay.store.sqlite import SqliteStore
from relay.store.url import PgTarget, parse

BUYER, SELLER, STAFF = "b@buyer.example", "s@seller.example", "staff@seller.example"
BACKENDS = ["sqlite", "postgresql"]


@dataclass
class World:
    kind: str
    store: Store
    buyer: int
    seller: int
    thread: Thread
    where: str  # the SQLite file or the PostgreSQL URL

    async def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """A statement on the backend's own connection, beside the store (`?` placeholders)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.where, timeout=10)
            try:
                with conn:
                    return [tuple(r) for r in conn.execute(query, args)]
            finally:
                conn.close()
        n = iter(range(1, 1000))
        pg = await asyncpg.connect(self.where)
        try:
            return [tuple(r) for r in await pg.fetch(re.sub(r"\?", lambda _: f"${next(n)}", query), *args)]
        finally:
            await pg.close()

    async def text_values(self) -> list[tuple[str, str, str]]:
        """(table, column, value) of every text value of every table."""
        if self.kind == "sqlite":
            tables = [r[0] for r in await self.sql("SELECT name FROM sqlite_master WHERE type = 'table'"
                                                   " AND name NOT LIKE 'sqlite_%'")]
            cols = [(t, r[1]) for t in tables for r in await self.sql(f'PRAGMA table_info("{t}")')
                    if (r[2] or "TEXT").upper() in ("TEXT", "")]
        else:
            cols = [(r[0], r[1]) for r in await self.sql(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND data_type IN ('text', 'character varying', 'character')")]
        out = []
        for table, col in cols:
            out += [(table, col, r[0]) for r in await self.sql(f'SELECT "{col}" FROM "{table}"')
                    if isinstance(r[0], str)]
        return out


def _pg_target(url: str) -> PgTarget:
    target = parse(url, Path("."))
    assert isinstance(target, PgTarget)
    return target


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, where): a migrated SQLite file, or a fresh PostgreSQL database (pg_store_url, set up
    outside the test's event loop)."""
    if request.param == "sqlite":
        where = str(tmp_path / "state" / "relay.db")
        Path(where).parent.mkdir()
        migrate_file(where)
        return "sqlite", where
    return "postgresql", request.getfixturevalue("pg_store_url")


@pytest.fixture
async def world(backend: tuple[str, str]) -> AsyncIterator[World]:
    kind, where = backend
    store: Any = SqliteStore.at(where) if kind == "sqlite" else PgStore.at(_pg_target(where), max_size=24)
    await store.open()
    try:
        seller = await store.parties.add(Role.SELLER, "Shop", [SELLER, STAFF])
        buyer = await store.parties.add(Role.BUYER, "Bob", [BUYER], ref="buyer-1")
        thread, created = await store.threads.open_thread(buyer.id, seller.id, order="ORD-1", now=1.0)
        assert created
        await store.credentials.set_password(seller.id, "hash-of-seller")
        yield World(kind, store, buyer.id, seller.id, thread, where)
    finally:
        await store.close()


def _accepted(w: World, subject: str, *, now: float = 100.0, relay_id: str | None = None, to_seller: bool = True,
              body: bytes = b"body\r\n", held: bool = False) -> Accepted:
    sender, recipient = (w.buyer, w.seller) if to_seller else (w.seller, w.buyer)
    raw = f"Subject: {subject}\r\n\r\n".encode() + body
    return Accepted(thread_id=w.thread.id, direction="buyer_to_seller" if to_seller else "seller_to_buyer",
                    sender_id=sender, recipient_id=recipient, received_at=now, envelope_from=BUYER,
                    rcpt_alias=w.thread.seller_alias if to_seller else w.thread.buyer_alias, subject=subject,
                    original=raw, delivered=raw, orig_message_id=None,
                    relay_message_id=relay_id or f"<{subject}@relay.example>", out_envelope_from="x@relay.example",
                    out_recipient=SELLER if to_seller else BUYER, expires_at=now + 86400, held=held,
                    events=(PendingEvent("test.event", "test", {}),))


def _seller_msg(w: World, now: float) -> seller_rules.SellerMessage:
    return seller_rules.SellerMessage(w.thread.id, w.buyer, w.seller, now, (), None, None)


class Over(Exception):
    """A test's own refusal exception (AdmitSeller.refused)."""


def test_both_stores_are_stores() -> None:
    def check(store: Store) -> None: ...

    pg = PgStore.at(_pg_target("postgresql://u@localhost/x"))
    check(pg)
    assert {n for n in Store.__annotations__} <= set(vars(SqliteStore.at(":memory:")))
    assert {n for n in Store.__annotations__} <= set(vars(pg))
    assert {asyncpg.PostgresError, asyncpg.InterfaceError, OSError} <= set(pg.failures)


# -- parties ----------------------------------------------------------------------------------------
async def test_parties(world: World) -> None:
    p = world.store.parties
    seller = await p.get(world.seller)
    assert (seller.role, seller.name, seller.emails, seller.status) == (Role.SELLER, "Shop", (SELLER, STAFF), "active")
    assert (await p.find(str(world.buyer))).id == world.buyer
    assert (await p.find(STAFF.upper())).id == world.seller
    assert (await p.find("buyer-1")).id == world.buyer
    assert await p.by_address(STAFF) == world.seller and await p.by_address("no@x.example") is None
    assert await p.addresses_of([world.seller, world.buyer]) == {world.seller: (SELLER, STAFF),
                                                                world.buyer: (BUYER,)}
    with pytest.raises(NotFound):
        await p.get(9999)
    with pytest.raises(NotFound):
        await p.find("nobody@x.example")
    for emails, ref in (([BUYER], None), ([], None), (["a@x.example", "a@x.example"], None),
                        (["new@x.example"], "buyer-1")):
        with pytest.raises(Conflict):
            await p.add(Role.BUYER, "Dup", emails, ref)
    assert (await world.store.audit.last_events(1, event="party.added"))[0].party_id == world.buyer


@pytest.mark.parametrize(("address", "role"), [("", None), ("who@else.example", None), (STAFF, Role.SELLER),
                                               (BUYER, Role.BUYER)])
async def test_party_at(world: World, address: str, role: Role | None) -> None:
    party = await world.store.parties.party_at(address)
    assert (party.role if party is not None else None) == role


# -- threads ----------------------------------------------------------------------------------------
async def test_threads_open_orders_aliases_revoke(world: World) -> None:
    t = world.store.threads
    again, created = await t.open_thread(world.buyer, world.seller, order="ORD-2", now=2.0)
    assert not created and again == world.thread
    assert re.fullmatch(r"[a-z0-9]{16}", again.buyer_alias) and again.buyer_alias != again.seller_alias
    assert [o.ref for o in await t.orders(world.thread.id)] == ["ORD-1", "ORD-2"]
    assert await t.add_order(world.thread.id, "ORD-2") is False
    assert await t.add_order(world.thread.id, "ORD-3", now=3.0) is True
    with pytest.raises(Conflict):
        await t.open_thread(world.seller, world.buyer)  # roles swapped
    with pytest.raises(Conflict):
        await t.open_thread(world.buyer, world.seller, buyer_alias="someotheralias")
    other = await world.store.parties.add(Role.BUYER, "Ann", ["ann@buyer.example"])
    imported, created = await t.open_thread(other.id, world.seller, buyer_alias="importedbuyer1",
                                            seller_alias="importedseller1")
    assert created and (imported.buyer_alias, imported.seller_alias) == ("importedbuyer1", "importedseller1")
    with pytest.raises(Conflict):
        await t.open_thread(other.id, (await world.store.parties.add(Role.SELLER, "S2", ["s2@x.example"])).id,
                            buyer_alias="importedbuyer1")
    assert await t.get(imported.id) == imported
    assert await t.threads_of(world.seller) == [world.thread.id, imported.id]
    assert await t.alias_of(world.thread.id, world.buyer) == world.thread.buyer_alias
    target = await t.resolve_alias(world.thread.seller_alias.upper())
    assert target is not None and (target.party_id, target.role, target.revoked) == (world.seller, Role.SELLER, False)
    revoked = await t.revoke_alias(world.thread.seller_alias, now=5.0)
    assert revoked.thread_id == world.thread.id
    with pytest.raises(Conflict):
        await t.revoke_alias(world.thread.seller_alias)
    with pytest.raises(NotFound):
        await t.revoke_alias("nosuchalias")
    with pytest.raises(NotFound):
        await t.get(9999)
    assert await t.alias_of(world.thread.id, world.seller) is None
    assert (await t.get(world.thread.id)).seller_alias == ""


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
    store = world.store
    assert await store.threads.resolve_message("nosuchalias", []) is None
    first = dataclasses.replace(_accepted(world, "first", relay_id="<r1@relay.example>"),
                                orig_message_id="<own@buyer.example>")
    await store.messages.accept([first], [[]])
    found = await store.threads.resolve_message(world.thread.buyer_alias, ["<r1@relay.example>", "<unknown@x>"])
    assert found is not None
    thread, sender, recipient, ids = found
    assert (thread.id, sender.id, recipient.id) == (world.thread.id, world.seller, world.buyer)
    assert ids == {"<r1@relay.example>": "<own@buyer.example>"}  # the buyer wrote it: their own id back
    assert await store.messages.translate_ids(world.thread.id, world.seller, ["<own@buyer.example>"]) == {
        "<own@buyer.example>": "<r1@relay.example>"}
    plain = await store.threads.resolve_message(world.thread.buyer_alias, [])
    assert plain is not None and plain[3] == {}


# -- messages ---------------------------------------------------------------------------------------
async def test_record_get_set_state_and_contents(world: World) -> None:
    store = world.store
    msg = _accepted(world, "hello", body=b"x" * 5000 + b"\r\n")
    message_id, queue_id = await store.messages.record_accepted(msg)
    row = await store.messages.get(message_id)
    assert row is not None and (row.state, row.subject, row.thread_id) == ("queued", "hello", world.thread.id)
    digest = row.original_sha256
    assert digest is not None
    assert await store.messages.get_blob(digest) == msg.original
    assert await store.messages.small_blob(digest, 100) == (len(msg.original), None)
    assert await store.messages.small_blob(digest, 10**6) == (len(msg.original), msg.original)
    assert await store.messages.get_blob("0" * 64) is None
    assert await store.messages.small_blob("0" * 64, 10) == (None, None)
    await store.messages.set_state(message_id, "held", "test.reason")
    row = await store.messages.get(message_id)
    assert row is not None and (row.state, row.reason) == ("held", "test.reason")
    refused = Refused(world.thread.id, "buyer_to_seller", world.buyer, world.seller, 101.0, BUYER,
                      world.thread.seller_alias, "no", b"Subject: no\r\n\r\nno\r\n", "policy.test", "550 no",
                      (PendingEvent("policy.finding", "policy.test", {"category": "marketing"}),))
    refused_id = await store.messages.record_refused(refused)
    assert [(r.id, r.state) for r in await store.messages.of_thread(world.thread.id)] == [
        (message_id, "held"), (refused_id, "rejected")]
    assert await store.messages.get(9999) is None
    events = await store.audit.events_after(0, message_id=refused_id)
    assert [e.event for e in events] == ["policy.finding", "message.rejected"]
    assert (await store.queue.get(queue_id)).message_id == message_id


@pytest.mark.parametrize("size", [3 * 1024 * 1024, 256 * 1024, 256 * 1024 - 1])
async def test_large_contents_round_trip(world: World, size: int) -> None:
    """3 MiB goes through write_large and accept and comes back byte for byte; on PostgreSQL in
    pieces of 256 KiB (blob_chunks), below that in the row."""
    store = world.store
    body = bytes(range(256)) * (size // 256) + b"\r\n"
    msg = _accepted(world, "big", body=body)
    digests = await store.messages.write_large([msg.original, msg.delivered])
    ((message_id, _),) = await store.messages.accept([dataclasses.replace(msg, digests=digests)], [[]])
    row = await store.messages.get(message_id)
    assert row is not None and row.original_sha256 is not None
    assert await store.messages.get_blob(row.original_sha256) == msg.original
    assert await store.messages.small_blob(row.original_sha256, len(msg.original) + 1) == (len(msg.original),
                                                                                            msg.original)
    if world.kind == "postgresql":
        chunks = await world.sql("SELECT count(*), max(length(data)) FROM blob_chunks WHERE digest = ?",
                                 row.original_sha256)
        expect = -(-len(msg.original) // (256 * 1024)) if len(msg.original) >= 256 * 1024 else 0
        assert chunks[0][0] == expect
    cleared = await store.retention.clear_blobs([row.original_sha256], 500.0, "test")
    assert cleared == 1 and await store.messages.get_blob(row.original_sha256) is None
    await store.retention.wipe_cleared()
    if world.kind == "postgresql":
        assert (await world.sql("SELECT count(*) FROM blob_chunks"))[0][0] == 0


async def test_a_delivered_copy_sharing_the_body_is_stored_as_a_head(world: World) -> None:
    from relay.store.messages import shared_tail

    store = world.store
    body = b"y" * 10000 + b"\r\n"
    original = b"Subject: a\r\nReceived: somewhere\r\n\r\n" + body
    delivered = b"Subject: a\r\n\r\n" + body
    msg = dataclasses.replace(_accepted(world, "a"), original=original, delivered=delivered,
                              delivered_from=shared_tail(original, delivered))
    ((message_id, _),) = await store.messages.accept([msg], [[]])
    row = await store.messages.get(message_id)
    assert row is not None and row.delivered_sha256 is not None
    assert await store.messages.get_blob(row.delivered_sha256) == delivered
    review = await store.review.blob(row.delivered_sha256)
    assert review is not None and review.data == delivered and review.size == len(delivered)


async def test_accept_runs_each_hook_in_the_messages_unit(world: World) -> None:
    store = world.store
    facts = MessageFacts(world.thread.id, "buyer_to_seller", 100.0, "buyer", order_ref="ORD-1")
    ((mid, _),) = await store.messages.accept([_accepted(world, "with facts")], [[RecordFacts(facts)]])
    (tm,) = await store.metrics.thread_messages(world.seller)
    assert (tm.id, tm.order_ref, tm.automatic, tm.no_response_needed) == (mid, "ORD-1", None, False)
    limits = seller_rules.Limits(86400.0, 3, 5, 5)
    msg, _, _, _ = await store.seller_rules.first_decision(_seller_msg(world, 120.0), "ORD-1", limits,
                                                               abuse_since=0.0, abuse_limit=3)
    admit = AdmitSeller(msg, limits, "reply", {"order": "ORD-1"}, lambda d: Over(d.reason))
    ((sid, _),) = await store.messages.accept([_accepted(world, "seller", to_seller=False, now=120.0)], [[admit]])
    assert await store.seller_rules.unsolicited_count(world.thread.id, order_ref="ORD-1") == 1
    (ev,) = await store.audit.events_after(0, message_id=sid, event="stage.rules")
    assert (ev.reason, ev.detail["at"], ev.detail["order"]) == ("rules.unsolicited", "commit", "ORD-1")


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
    assert replied and await store.rules.has_vacation_reply(vacation.id, world.thread.id)
    rows = await store.messages.of_thread(world.thread.id)
    assert [r.subject for r in rows].count("auto") == 1  # one reply per vacation and thread
    # a new vacation, and 20 buyer messages at once from other sessions (other nodes on PostgreSQL)
    again = await store.rules.set_vacation(world.seller, True, until=None, now=60.0)
    assert again is not None
    reply2 = _accepted(world, "auto2", to_seller=False, relay_id="<auto2@relay.example>", now=70.0)
    hooks2: list[Any] = [VacationReply(again.id, world.thread.id, reply2, facts)]
    await asyncio.gather(*(store.messages.accept([_accepted(world, f"more{i}", now=70.0)], [hooks2])
                           for i in range(20)))
    rows = await store.messages.of_thread(world.thread.id)
    assert [r.subject for r in rows].count("auto2") == 1 and len(rows) == 3 + 20 + 1


async def test_a_refused_commit_leaves_nothing(world: World) -> None:
    store = world.store
    limits = seller_rules.Limits(86400.0, 3, 0, 5)  # no unsolicited message at all
    msg, _, _, early = await store.seller_rules.first_decision(_seller_msg(world, 60.0), "ORD-1", limits,
                                                               abuse_since=0.0, abuse_limit=3)
    assert early.refused
    before = (await store.audit.verify()).count, await store.queue.stats()
    unique = _accepted(world, "refused", to_seller=False, body=b"never stored anywhere\r\n")
    with pytest.raises(Over, match=r"rules\.order_limit"):
        await store.messages.accept([_accepted(world, "fine"), unique],
                                    [[], [AdmitSeller(msg, limits, "unsolicited", {}, lambda d: Over(d.reason))]])
    assert await store.messages.of_thread(world.thread.id) == []
    assert ((await store.audit.verify()).count, await store.queue.stats()) == before
    import hashlib

    assert await store.messages.get_blob(hashlib.sha256(unique.original).hexdigest()) is None


async def test_concurrent_accepts_never_exceed_a_per_order_limit(world: World) -> None:
    """20 sessions (on PostgreSQL: 20 connections, as many nodes would) send an unsolicited
    message for one order at once; the limit of 3 holds at commit."""
    store = world.store
    limits = seller_rules.Limits(86400.0, 3, 3, 100)
    msg, _, _, early = await store.seller_rules.first_decision(_seller_msg(world, 60.0), "ORD-1", limits,
                                                               abuse_since=0.0, abuse_limit=3)
    assert early.kind == "unsolicited"

    async def one(i: int) -> Any:
        hook = AdmitSeller(msg, limits, early.kind, {}, lambda d: Over(d.reason))
        return await store.messages.accept([_accepted(world, f"s{i}", to_seller=False, now=60.0)], [[hook]])

    results = await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)
    assert sum(isinstance(r, list) for r in results) == 3
    assert all(isinstance(r, Over) and str(r) == "rules.order_limit" for r in results if not isinstance(r, list))
    assert await store.seller_rules.unsolicited_count(world.thread.id, order_ref="ORD-1") == 3
    assert len(await store.messages.of_thread(world.thread.id)) == 3
    assert (await store.audit.verify()).ok


# -- seller rules -----------------------------------------------------------------------------------
async def test_seller_rules_reply_then_unsolicited(world: World) -> None:
    store = world.store
    limits = seller_rules.Limits(86400.0, 1, 1, 5)
    ((bid, _),) = await store.messages.accept([_accepted(world, "question", relay_id="<q@relay.example>")], [[]])
    msg = dataclasses.replace(_seller_msg(world, 150.0), quoted=("<q@relay.example>",))
    known, how, prior, decision = await store.seller_rules.first_decision(msg, "Re: question", limits,
                                                                          abuse_since=0.0, abuse_limit=3)
    assert (known.order_ref, how, prior) == ("ORD-1", "latest", 0)
    assert (decision.kind, decision.reply_to) == ("reply", bid)
    assert await store.seller_rules.answerable(known, limits.reply_window) == [(bid, 0)]
    ((sid, _),) = await store.messages.record_accepted(_accepted(world, "answer", to_seller=False, now=150.0)),
    assert (await store.seller_rules.admit(known, limits, sid)).kind == "reply"
    assert await store.seller_rules.answerable(known, limits.reply_window) == [(bid, 1)]
    second = await store.seller_rules.decide(known, limits)
    assert second.kind == "unsolicited" and second.detail["replies_used"] == [bid]
    assert await store.seller_rules.unsolicited_count(world.thread.id) == 0


async def test_first_decision_is_decide_on_the_known_message(world: World) -> None:
    limits = seller_rules.Limits(86400.0, 3, 1, 5)
    msg, how, prior, decision = await world.store.seller_rules.first_decision(
        _seller_msg(world, 60.0), "About ORD-1", limits, abuse_since=0.0, abuse_limit=3)
    assert (msg.order_ref, how, prior, msg.bypass) == ("ORD-1", "subject", 0, True)
    assert decision == await world.store.seller_rules.decide(msg, limits)
    assert decision.kind == "unsolicited"


# -- queue ------------------------------------------------------------------------------------------
async def test_queue_claim_renew_fence_defer_bounce(world: World) -> None:
    q = world.store.queue
    ((mid, qid),) = await world.store.messages.accept([_accepted(world, "q")], [[]])
    assert await q.next_due_at() == 100.0
    assert (await q.stats()).depth["queued"] == 1
    assert [i.id for i in await q.listing("queued")] == [qid]
    (item,) = await q.claim_due(200.0, 10, "node:1:a", lease=60.0)
    assert (item.id, item.state, item.attempts, item.lease_token) == (qid, "sending", 1, 1)
    assert await q.claim_due(200.0, 10, "node:2:b") == []  # claimed: nobody else gets it
    assert await q.renew([(qid, item.lease_token)], 400.0) == []
    assert await q.renew([(qid, 99)], 400.0) == [qid]
    assert await q.expired_leases(300.0) == 0 and await q.expired_leases(500.0) == 1
    stale = dataclasses.replace(item, lease_token=0)
    assert await q.mark_delivered(stale, 210.0, "250 ok") is False  # fenced
    assert await q.defer(item, 210.0, 220.0, "451 later") is True
    assert await q.defer(item, 210.0, 220.0, "451 again") is False  # no longer ours
    (again,) = await q.claim_due(230.0, 10, "node:1:a")
    assert again.lease_token == 2 and again.attempts == 2
    notice_id = await q.bounce(again, 240.0, "delivery.rejected", "550 no", ("b@buyer.example", "", b"Subject: n\r\n\r\nx"))
    assert notice_id is not None and (await q.get(notice_id)).kind == "notice"
    msg = await world.store.messages.get(mid)
    assert msg is not None and msg.state == "bounced"
    (notice,) = await q.claim_due(250.0, 10, "node:1:a")
    assert await q.mark_delivered(notice, 251.0, "250 ok") is True
    assert [e.event for e in await world.store.audit.events_after(0, message_id=mid)][-4:] == [
        "delivery.deferred", "delivery.bounced", "notice.queued", "notice.delivered"]
    with pytest.raises(NotFound):
        await q.get(9999)


async def test_queue_recover_reclaim_and_the_operators_calls(world: World) -> None:
    q = world.store.queue
    ids = await world.store.messages.accept([_accepted(world, "a"), _accepted(world, "b"), _accepted(world, "c")],
                                            [[], [], []])
    (m1, q1), (m2, q2), (m3, q3) = ids
    claimed = await q.claim_due(200.0, 2, "node:4242:x", lease=10.0)
    assert [i.id for i in claimed] == [q1, q2]
    assert await q.reclaim(205.0, "node", lambda pid: True) == 0
    assert await q.reclaim(205.0, "node", lambda pid: False) == 2  # the owner process is gone
    await q.claim_due(210.0, 1, "node:1:y")
    assert await q.recover(211.0, "node:1:", prefix=True) == 1
    assert await q.recover(212.0) == 0
    held = await q.set_held(q3, True, 213.0, "operator")
    assert held.state == "held"
    with pytest.raises(Conflict):
        await q.set_held(q3, True, 213.0, "operator")
    assert [r.id for r in await q.rows_of_message(m3)] == [q3]
    assert await q.release_message(m3, 214.0) == 1
    with pytest.raises(Conflict):
        await q.release_message(m3, 214.0)
    assert sorted(await q.retry(None, 215.0)) == sorted([q1, q2, q3])
    assert await q.retry(q1, 216.0) == [q1]
    assert await q.drop_message(m2, 217.0, "operator.drop", None) == 1
    with pytest.raises(Conflict):
        await q.retry(q2, 218.0)
    notice = await q.drop(q1, 219.0, ("b@buyer.example", "", b"Subject: dropped\r\n\r\nx"))
    assert notice is not None
    with pytest.raises(Conflict):
        await q.drop(q1, 219.0, None)
    m = await world.store.messages.get(m1)
    assert m is not None and m.state == "dropped"
    stats = await q.stats()
    assert stats.depth == {"queued": 2, "sending": 0, "held": 0}  # q3 and the notice


# -- audit ------------------------------------------------------------------------------------------
async def test_audit_append_read_and_verify_detects_an_edited_row(world: World) -> None:
    a = world.store.audit
    ev = await a.append("test.pii", reason="t", party_id=world.buyer, detail={"n": 1, "address": BUYER}, ts=7.0)
    assert ev.detail == {"n": 1, "address": BUYER} and ev.pii_keys == ("address",)
    assert (await a.events_in([ev.seq]))[0].hash == ev.hash
    assert [e.seq for e in await a.last_events(2)][-1] == ev.seq
    assert [e.event for e in await a.events_after(ev.seq - 1)] == ["test.pii"]
    assert [e.event for e in await a.events_after(0, event="test")] == ["test.pii"]  # a prefix
    result = await a.verify()
    assert result.ok and result.head_seq == ev.seq and result.head_hash == ev.hash
    raw = await world.store.review.raw_events([ev.seq])
    assert raw[0]["hash"] == ev.hash and raw[0]["pii"] is not None
    from relay.store.audit import canonical
    exported = [{"seq": ev.seq, "prev_hash": ev.prev_hash, "hash": ev.hash,
                 "canonical": canonical(ev.seq, ev.ts, ev.event, ev.reason, ev.thread_id, ev.party_id,
                                        ev.message_id, {"n": 1}, ev.pii_commit).decode()}]
    assert await a.check_events(exported) == []
    assert await a.check_events([{**exported[0], "hash": "0" * 64}]) != []
    assert await a.missing_anchors([ev.hash, "f" * 64]) == ["f" * 64]
    await world.sql("UPDATE audit_events SET reason = 'edited' WHERE seq = ?", 2)
    bad = await a.verify()
    assert not bad.ok and bad.problem is not None and (bad.problem.seq, bad.problem.kind) == (2, "changed")


# -- rules ------------------------------------------------------------------------------------------
async def test_optouts_and_vacations(world: World) -> None:
    r = world.store.rules
    assert await r.set_optout(world.buyer, world.seller, True, via="cli", now=1.0) is True
    assert await r.set_optout(world.buyer, world.seller, True, via="cli", now=1.0) is False
    assert await r.optout_scope(world.buyer, world.seller) == "seller"
    assert await r.set_optout(world.buyer, None, True, via="cli", now=2.0) is True
    assert await r.optout_scope(world.buyer, world.seller) == "all"
    assert await r.optouts_of(world.buyer) == [None, world.seller]
    assert await r.set_optout(world.buyer, None, False, via="cli", now=3.0) is True
    assert await r.optouts_of(world.buyer) == [] and await r.optout_scope(world.buyer, world.seller) is None
    v = await r.set_vacation(world.seller, True, until=100.0, now=10.0)
    assert v is not None and await r.vacation_at(world.seller, 50.0) == v
    assert await r.vacation_at(world.seller, 150.0) is None
    with pytest.raises(Conflict):
        await r.set_vacation(world.seller, True, until=5.0, now=20.0)
    assert await r.set_vacation(world.seller, False, until=None, now=30.0) is None
    (ended,) = await r.vacations_of(world.seller)
    assert ended.ended_at == 30.0
    ((mid, _),) = await world.store.messages.accept([_accepted(world, "x")], [[]])
    assert not await r.has_vacation_reply(v.id, world.thread.id)
    await r.claim_vacation_reply(v.id, world.thread.id, mid)
    assert await r.has_vacation_reply(v.id, world.thread.id)


async def test_facts_orders_and_no_response(world: World) -> None:
    r = world.store.rules
    ((mid, _),) = await world.store.messages.accept([_accepted(world, "q", relay_id="<q@relay.example>")], [[]])
    await r.record_facts(mid, MessageFacts(world.thread.id, "buyer_to_seller", 100.0, "buyer", order_ref="ORD-9"))
    assert await r.order_of(world.thread.id, "no tag", ["<q@relay.example>"], 200.0) == ("ORD-9", "reply_chain")
    assert await r.order_of(world.thread.id, "about ord-1!", [], 200.0) == ("ORD-1", "subject")
    assert await r.quoted_buyer_message(world.seller, ["<q@relay.example>"]) == (mid, world.thread.id)
    assert await r.quoted_buyer_message(world.seller, []) is None
    assert await r.mark_no_response_needed(mid, via="cli", now=5.0) is True
    assert await r.mark_no_response_needed(mid, via="cli", now=5.0) is False
    with pytest.raises(NotFound):
        await r.mark_no_response_needed(9999, via="cli", now=5.0)
    (tm,) = await world.store.metrics.thread_messages(world.seller)
    assert tm.no_response_needed and tm.order_ref == "ORD-9"
    assert await world.store.metrics.order_times(world.seller) == {(world.thread.id, "ORD-1"): 1.0}
    kept = await r.record_relay_message(world.thread.id, world.buyer, BUYER, "unsubscribe", "s", b"Subject: s\r\n\r\n",
                                        6.0)
    row = await world.store.messages.get(kept)
    assert row is not None and (row.direction, row.state) == ("buyer_to_relay", "delivered")
    await world.store.audit.append("important.unjustified", party_id=world.seller, ts=10.0)
    assert await r.unjustified_count(world.seller) == 1
    assert await r.unjustified_count(world.seller, 11.0) == 0


@pytest.mark.parametrize(("thread", "valid", "sender", "found", "party"), [
    ("none", True, BUYER, False, "buyer"),
    ("gone", True, BUYER, False, "buyer"),
    ("ours", False, BUYER, False, "buyer"),
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
    assert sum(after.values()) == sum(before.values()) + 1


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


# -- review, labels, credentials ---------------------------------------------------------------------
async def test_review_reads(world: World) -> None:
    store = world.store
    ((mid, qid),) = await store.messages.accept([_accepted(world, "r")], [[]])
    assert {a.local for a in await store.review.aliases(world.thread.id)} == {world.thread.buyer_alias,
                                                                              world.thread.seller_alias}
    (qr,) = await store.review.queue_rows(mid)
    assert (qr.id, qr.kind, qr.state) == (qid, "message", "queued")
    row = await store.messages.get(mid)
    assert row is not None
    blob = await store.review.blob(row.original_sha256)
    assert blob is not None and blob.data is not None and blob.data.startswith(b"Subject: r")
    assert await store.review.blob(None) is None and await store.review.blob("0" * 64) is None
    await store.audit.append("test.own", party_id=world.buyer)
    events = await store.review.thread_events(world.thread.id, (world.buyer, world.seller))
    names = [e.event for e in events]
    assert "thread.opened" in names and "message.accepted" in names and "test.own" in names
    assert "party.added" in names  # the participants' own events that name no thread


async def test_labels(world: World) -> None:
    store = world.store
    ((mid, _),) = await store.messages.accept([_accepted(world, "held", held=True)], [[]])
    await store.audit.append("policy.finding", reason="policy.marketing", message_id=mid,
                             detail={"category": "marketing", "rule": "promo", "action": "hold"})
    assert await store.labels.hold_findings(mid) == [("marketing", "promo", "hold")]
    assert await store.labels.held_by_policy(mid) is True
    assert not await store.labels.has_label(mid) and await store.labels.get(mid) is None
    label = await store.labels.record(mid, "released", ["marketing"], [], corrected=True, reason="fine", by="op",
                                      now=50.0)
    assert label.decision == "released" and label.thread_id == world.thread.id
    got = await store.labels.get(mid)
    assert got is not None and (got.held_for, got.categories, got.corrected, got.sender_id) == (
        ("marketing",), (), True, world.buyer)
    await store.labels.record(mid, "dropped", ["marketing"], ["marketing"], corrected=False, reason=None, by="op",
                              now=60.0)
    assert [(x.decision, x.decided_at) for x in await store.labels.listing()] == [("dropped", 60.0)]
    assert await store.labels.listing(61.0) == []
    assert await store.labels.has_label(mid)


@pytest.mark.parametrize(("address", "expect"), [
    ("", (None, None)), ("who@else.example", (None, None)), (SELLER, ("seller", "hash-of-seller")),
    (BUYER, ("buyer", None)),
])
async def test_password_of_address(world: World, address: str, expect: tuple[str | None, str | None]) -> None:
    ids = {"seller": world.seller, "buyer": world.buyer, None: None}
    got = await world.store.credentials.password_of_address(address)
    assert got == (ids[expect[0]], expect[1])


async def test_credentials(world: World) -> None:
    c = world.store.credentials
    assert await c.password_hash(world.buyer) is None
    await c.set_password(world.buyer, "h1", 1.0)
    await c.set_password(world.buyer, "h2")
    assert await c.password_hash(world.buyer) == "h2"


# -- retention and erasure -------------------------------------------------------------------------
async def test_retention_clears_old_contents_only(world: World) -> None:
    store = world.store
    ((old, _),) = await store.messages.accept([_accepted(world, "old", now=100.0, body=b"old\r\n")], [[]])
    ((new, _),) = await store.messages.accept([_accepted(world, "new", now=5000.0, body=b"new\r\n")], [[]])
    (item,) = await store.queue.claim_due(150.0, 1, "n:1:a")
    await store.queue.mark_delivered(item, 151.0, "250 ok")
    candidates = await store.retention.expired(1000.0)
    assert len(candidates) == 1
    assert await store.retention.clear_expired(1000.0, 2000.0, candidates=candidates) == (1, len(
        b"Subject: old\r\n\r\nold\r\n"))
    assert await store.retention.clear_expired(1000.0, 2000.0) == (0, 0)
    await store.retention.wipe_cleared()
    old_row, new_row = await store.messages.get(old), await store.messages.get(new)
    assert old_row is not None and new_row is not None
    assert await store.messages.get_blob(old_row.original_sha256 or "") is None
    cleared = await store.review.blob(old_row.original_sha256)
    assert cleared is not None and cleared.data is None and cleared.cleared_reason == "retention"
    assert await store.messages.get_blob(new_row.original_sha256 or "") is not None
    (ev,) = await store.audit.last_events(1, event="retention.cleared")
    assert ev.detail["blobs"] == 1


async def test_erasure_leaves_no_trace_of_the_address(world: World) -> None:
    store = world.store
    secret = BUYER.upper().encode()
    await store.messages.accept([_accepted(world, "mine", body=b"write to me at " + secret + b"\r\n")], [[]])
    other = await store.parties.add(Role.BUYER, "Ann", ["ann@buyer.example"])
    t2, _ = await store.threads.open_thread(other.id, world.seller)
    quoting = dataclasses.replace(_accepted(world, "quoting", body=b"> " + secret + b" said\r\n"),
                                  thread_id=t2.id, sender_id=other.id, envelope_from="ann@buyer.example")
    await store.messages.accept([quoting], [[]])
    await store.audit.append("test.pii", party_id=world.buyer, detail={"address": BUYER})
    scanned = await store.erasure.quoting_contents(world.buyer)
    assert len(scanned[0]) == 2
    summary = await store.erasure.erase(world.buyer, 900.0, scanned)
    assert summary["contents_cleared"] >= 2 and summary["aliases_revoked"] == [world.thread.buyer_alias]
    with pytest.raises(Conflict):
        await store.erasure.erase(world.buyer, 901.0)
    traces = [(t, c) for t, c, v in await world.text_values() if BUYER in v.lower()]
    assert traces == []
    for (digest,) in await world.sql("SELECT sha256 FROM blobs WHERE data IS NOT NULL"):
        content = await store.messages.get_blob(digest)
        assert content is None or BUYER.encode() not in content.lower()
    party = await store.parties.get(world.buyer)
    assert party.status == "erased" and party.emails == (f"erased-{world.buyer}@erased.invalid",)
    assert (await store.audit.verify()).ok  # erased personal fields are declared, the chain still verifies


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

async def test_ensure_twice_at_once_adds_one_party(world: World) -> None:
    """Two callers ensuring the same ref together (two nodes, two CLI runs) get one party."""
    results = await asyncio.gather(*(world.store.parties.ensure(Role.SELLER, "Race", ["race@seller.example"], "S-R")
                                     for _ in range(4)))
    assert len({p.id for p, _ in results}) == 1 and [c for _, c in results].count(True) == 1
    assert (await _events(world)).count("party.added") == 3  # the world's two, and this one


async def test_a_dropped_messages_notice_and_label_commit_together(world: World) -> None:
    from dataclasses import replace

    store = world.store
    msg = replace(_accepted(world, "held"), held=True, events=(PendingEvent("message.held", "test", {}),))
    ((message_id, _),) = await store.messages.accept([msg], [[]])
    before = await _events(world)
    n, label = await store.labels.drop_with_label(message_id, 200.0, (BUYER, "", b"Subject: dropped\r\n\r\nx\r\n"),
                                                  ["marketing"], ["marketing"], corrected=False, reason=None,
                                                  by="op")
    assert n == 1 and label is not None and label.decision == "dropped"
    assert (await _events(world))[len(before):] == ["message.dropped", "notice.queued", "message.labelled"]
    notices = [q for q in await store.queue.listing("queued") if q.kind == "notice"]
    assert [(q.message_id, q.recipient) for q in notices] == [(message_id, BUYER)]
    assert (await store.audit.verify()).ok


async def test_compact_after_erase_leaves_no_address_in_the_files(world: World) -> None:
    store = world.store
    await store.erasure.erase(world.buyer, 10.0)
    completed, traces = await store.erasure.compact([BUYER])
    assert completed and traces == []
    completed, traces = await store.erasure.compact([], vacuum=True)
    assert completed and traces == []


# -- lifecycle --------------------------------------------------------------------------------------
async def test_touch_counts_a_transaction(world: World) -> None:
    before = world.store.transactions, world.store.units
    await world.store.touch()
    assert world.store.transactions == before[0] + 1 and world.store.units == before[1] + 1
