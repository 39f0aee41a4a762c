"""A seller's response times: each buyer message starts a 24-hour clock, the seller's next message stops it.

Pure: rows in, figures out (the CLI reads the rows and passes the clock). Rules (issue 4): the clock
runs on weekends too; automatic messages (RFC 3834) neither start nor stop a clock; a buyer message
marked "no response needed" starts none; messages about orders placed during the seller's vacation
are left out; a message still inside its 24 hours is "pending", not "unanswered".
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from relay.store.metrics import ThreadMessage

DEADLINE = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class SellerMetrics:
    buyer_messages: int  # written by a person, in the period, not excluded by a vacation
    no_response_needed: int
    answered_within_24h: int
    answered_late: int
    unanswered: int  # no answer and the 24 hours are over
    pending: int  # no answer yet, still inside the 24 hours
    percent_within_24h: float | None  # of answered + unanswered
    average_response_seconds: float | None
    median_response_seconds: float | None
    excluded_vacation: int
    automatic_ignored: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _on_vacation(t: float, vacations: Sequence[tuple[float, float | None]]) -> bool:
    return any(start <= t and (end is None or t < end) for start, end in vacations)


def seller_metrics(messages: Sequence[ThreadMessage], orders: Mapping[tuple[int, str], float],
                   vacations: Sequence[tuple[float, float | None]], *, since: float | None, now: float,
                   deadline: float = DEADLINE) -> SellerMetrics:
    msgs = sorted((m for m in messages if m.received_at <= now), key=lambda m: (m.received_at, m.id))
    answers: dict[int, list[ThreadMessage]] = {}
    for m in msgs:
        if m.direction == "seller_to_buyer" and m.automatic is None:
            answers.setdefault(m.thread_id, []).append(m)
    counted = nrn = within = late = unanswered = pending = excluded = automatic = 0
    times: list[float] = []
    for m in msgs:
        if m.direction != "buyer_to_seller" or (since is not None and m.received_at < since):
            continue
        if m.automatic is not None:
            automatic += 1
            continue
        placed = orders.get((m.thread_id, m.order_ref)) if m.order_ref else None
        if placed is not None and _on_vacation(placed, vacations):
            excluded += 1
            continue
        counted += 1
        if m.no_response_needed:
            nrn += 1
            continue
        key = (m.received_at, m.id)
        answer = next((a for a in answers.get(m.thread_id, ()) if (a.received_at, a.id) > key), None)
        if answer is None:
            if now - m.received_at > deadline:
                unanswered += 1
            else:
                pending += 1
            continue
        took = answer.received_at - m.received_at
        times.append(took)
        if took <= deadline:
            within += 1
        else:
            late += 1
    due = within + late + unanswered
    return SellerMetrics(
        buyer_messages=counted, no_response_needed=nrn, answered_within_24h=within, answered_late=late,
        unanswered=unanswered, pending=pending,
        percent_within_24h=round(100.0 * within / due, 1) if due else None,
        average_response_seconds=round(statistics.fmean(times), 1) if times else None,
        median_response_seconds=round(statistics.median(times), 1) if times else None,
        excluded_vacation=excluded, automatic_ignored=automatic)
