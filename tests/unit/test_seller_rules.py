"""relay/store/seller_rules on a real migrated database: what a reply is, and admit() inside the commit."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from relay.model import Role
from relay.store import messages, parties, seller_rules, threads
from relay.store import rules as rules_store
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate

NOW = 1_800_000_000.0
LIMITS = seller_rules.Limits(reply_window=14 * 86400.0, max_replies_per_buyer_message=2,
                             max_unsolicited_per_order=1, max_unsolicited_per_thread_per_day=2)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = connect_sync(tmp_path / "r.db")
    migrate(c)
    return c


def world(conn: sqlite3.Connection) -> tuple[int, int, int, int]:
    """(seller, buyer, thread, another thread of the seller)."""
    seller = parties.add(conn, Role.SELLER, "Shop", ["shop@seller.example"])
    buyer = parties.add(conn, Role.BUYER, "Alice", ["alice@buyer.example"])
    bob = parties.add(conn, Role.BUYER, "Bob", ["bob@buyer.example"])
    thread, _ = threads.open_thread(conn, buyer.id, seller.id, order="ORD-1", now=0.0)
    other, _ = threads.open_thread(conn, bob.id, seller.id, now=0.0)
    return seller.id, buyer.id, thread.id, other.id


def record(conn: sqlite3.Connection, thread: int, sender: int, recipient: int, direction: str, at: float,
           relay_id: str) -> int:
    mid, _ = messages.record_accepted(conn, messages.Accepted(
        thread_id=thread, direction=direction, sender_id=sender, recipient_id=recipient, received_at=at,
        envelope_from="x", rcpt_alias="a", subject="s", original=relay_id.encode(), delivered=relay_id.encode(),
        orig_message_id=None, relay_message_id=relay_id, out_envelope_from="a@relay.example", out_recipient="x@y",
        expires_at=at + 1))
    return mid


def seller_message(seller: int, buyer: int, thread: int, *quoted: str) -> seller_rules.SellerMessage:
    return seller_rules.SellerMessage(thread, buyer, seller, NOW, quoted, "ORD-1", None)


def test_a_reply_answers_a_recent_buyer_message_of_its_own_thread(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    seller, buyer, thread, other = world(conn)
    bob = threads.get(conn, other).buyer_id
    record(conn, thread, buyer, seller, "buyer_to_seller", NOW - 15 * 86400, "<old@r>")
    recent = record(conn, thread, buyer, seller, "buyer_to_seller", NOW - 3600, "<recent@r>")
    record(conn, other, bob, seller, "buyer_to_seller", NOW - 60, "<bob@r>")
    record(conn, thread, seller, buyer, "seller_to_buyer", NOW - 60, "<own@r>")
    for quoted in ("<old@r>", "<bob@r>", "<own@r>", "<nothing@r>"):
        assert seller_rules.decide(conn, seller_message(seller, buyer, thread, quoted), LIMITS).kind == "unsolicited"
    decision = seller_rules.decide(conn, seller_message(seller, buyer, thread, "<old@r>", "<recent@r>"), LIMITS)
    assert (decision.kind, decision.reply_to) == ("reply", recent)


def test_admit_counts_what_committed_before_it_in_the_same_transaction(conn: sqlite3.Connection) -> None:
    def setup(c: sqlite3.Connection) -> tuple[int, int, int, int]:
        seller, buyer, thread, _ = world(c)
        question = record(c, thread, buyer, seller, "buyer_to_seller", NOW - 60, "<q@r>")
        return seller, buyer, thread, question

    ((_, (seller, buyer, thread, question)),) = run_in_transaction(conn, [setup])

    numbers = itertools.count()

    def admit(*quoted: str) -> object:
        n = next(numbers)

        def unit(c: sqlite3.Connection) -> seller_rules.Decision:
            mid = record(c, thread, seller, buyer, "seller_to_buyer", NOW, f"<s{n}@r>")
            return seller_rules.admit(c, seller_message(seller, buyer, thread, *quoted), LIMITS, mid)
        return unit

    # one transaction (a group commit): two replies to the question, then it is unsolicited, then over the limit
    results = run_in_transaction(conn, [admit("<q@r>"), admit("<q@r>", "x"), admit("<q@r>", "x", "y"), admit()])
    kinds = [value.kind if ok else value.decision.reason for ok, value in results]  # type: ignore[attr-defined]
    assert kinds == ["reply", "reply", "unsolicited", "rules.order_limit"]
    rows = conn.execute("SELECT kind, reply_to FROM message_rules WHERE direction = 'seller_to_buyer'"
                        " ORDER BY message_id").fetchall()
    assert rows == [("reply", question), ("reply", question), ("unsolicited", None)]
    # the refused unit left nothing: its message, queue row and facts were rolled back with its savepoint
    assert conn.execute("SELECT COUNT(*) FROM messages WHERE direction = 'seller_to_buyer'").fetchone()[0] == 3
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM message_rules WHERE reply_to = ?", (question,)))
    assert "message_rules_reply_to" in plan


def test_admit_refuses_outside_the_write_transaction(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    seller, buyer, thread, _ = world(conn)
    conn.execute("COMMIT")
    with pytest.raises(RuntimeError, match="inside the write transaction"):
        seller_rules.admit(conn, seller_message(seller, buyer, thread), LIMITS, 1)
    assert rules_store.optout_scope(conn, buyer, seller) is None
