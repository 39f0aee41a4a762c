"""Rows for a seller's response-time metrics: the messages of their threads, orders, vacations."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    id: int
    thread_id: int
    direction: str  # buyer_to_seller | seller_to_buyer
    received_at: float
    automatic: str | None  # why it is automatic, None when a person wrote it
    order_ref: str | None
    no_response_needed: bool


def thread_messages(conn: sqlite3.Connection, seller_id: int) -> list[ThreadMessage]:
    """Every live message between the seller and their buyers, oldest first (refused and dropped left out)."""
    return [ThreadMessage(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in conn.execute(
        "SELECT m.id, m.thread_id, m.direction, m.received_at, r.automatic, r.order_ref, n.message_id IS NOT NULL"
        " FROM messages m JOIN threads t ON t.id = m.thread_id"
        " LEFT JOIN message_rules r ON r.message_id = m.id"
        " LEFT JOIN no_response_needed n ON n.message_id = m.id"
        " WHERE t.seller_id = ? AND m.direction IN ('buyer_to_seller', 'seller_to_buyer')"
        " AND m.state NOT IN ('rejected', 'dropped') ORDER BY m.received_at, m.id", (seller_id,))]


def order_times(conn: sqlite3.Connection, seller_id: int) -> dict[tuple[int, str], float]:
    """(thread id, order ref) → when the order was placed, for the seller's threads."""
    return {(tid, ref): placed for tid, ref, placed in conn.execute(
        "SELECT o.thread_id, o.ref, o.placed_at FROM orders o JOIN threads t ON t.id = o.thread_id"
        " WHERE t.seller_id = ?", (seller_id,))}
