"""The enqueue stage's unit: every recipient of one DATA, and what must commit with each, at once.

Stages say what has to be written (or checked again) inside a message's own commit as values, the
hooks below, on Transit.on_accept; accept() runs them in the message's unit of the group commit, right
after its rows, so they are durable together with it or not at all. A backend interprets the same
values in its own transaction (relay/store/interface.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.store import audit, messages, seller_rules
from relay.store import rules as rules_store


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """The message's facts for the response clock and the limits (rules_store.record_facts)."""

    facts: rules_store.MessageFacts


@dataclass(frozen=True, slots=True)
class VacationReply:
    """Queue the seller's vacation reply to this buyer message, unless a message committed before
    it already got the thread's one reply for this vacation."""

    vacation_id: int
    thread_id: int
    reply: messages.Accepted
    facts: rules_store.MessageFacts


@dataclass(frozen=True, slots=True)
class AdmitSeller:
    """A seller message's limits checked again under the write lock (seller_rules.admit). Refused:
    `refused(decision)` builds the exception that rolls the whole unit back (the stage's
    CommitRefused); a decision of another kind than the stage's early one is audited."""

    msg: seller_rules.SellerMessage
    limits: seller_rules.Limits
    early: str  # the kind of the stage's early decision
    detail: Mapping[str, Any] = field(default_factory=dict)
    refused: Callable[[seller_rules.Decision], Exception] = seller_rules.Refused


AcceptHook = RecordFacts | VacationReply | AdmitSeller


def run_hook(conn: sqlite3.Connection, hook: AcceptHook, message_id: int) -> None:
    if isinstance(hook, RecordFacts):
        rules_store.record_facts(conn, message_id, hook.facts)
    elif isinstance(hook, VacationReply):
        if rules_store.has_vacation_reply(conn, hook.vacation_id, hook.thread_id):
            return  # a message committed just before this one got the reply
        reply_id, _ = messages.record_accepted(conn, hook.reply)
        rules_store.claim_vacation_reply(conn, hook.vacation_id, hook.thread_id, reply_id)
        rules_store.record_facts(conn, reply_id, hook.facts)
    else:
        msg = hook.msg
        try:
            decision = seller_rules.admit(conn, msg, hook.limits, message_id)
        except seller_rules.Refused as refused:
            raise hook.refused(refused.decision) from None
        if decision.kind != hook.early:  # e.g. the last reply to a buyer message went to another session
            audit.append(conn, "stage.rules", reason=decision.reason, thread_id=msg.thread_id,
                         message_id=message_id, party_id=msg.seller_id, ts=msg.received_at,
                         detail={**hook.detail, **decision.detail, "at": "commit"})


def accept(conn: sqlite3.Connection, rows: Sequence[messages.Accepted],
           hooks: Sequence[Sequence[AcceptHook]]) -> list[tuple[int, int]]:
    """Record every row with its hooks; return the (message id, queue id) pairs. Any exception (a hook's
    refusal included) leaves nothing of the unit written."""
    ids = []
    for row, own in zip(rows, hooks, strict=True):
        message_id, queue_id = messages.record_accepted(conn, row)
        for hook in own:
            run_hook(conn, hook, message_id)
        ids.append((message_id, queue_id))
    return ids
