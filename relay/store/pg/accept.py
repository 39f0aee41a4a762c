"""The DATA unit on PostgreSQL: relay/store/accept.py's hooks (RecordFacts, VacationReply,
AdmitSeller) run in the transaction that records the message rows, so that they commit together
or not at all.

Locks, in one order for every unit (so two units never wait for each other in a cycle): first the
rows the hooks read and then act on — every AdmitSeller's thread (pg/seller_rules.lock_thread) and
every VacationReply's vacation row, each kind by ascending id — then the rows are written, and the
audit chain's lock comes last (the events are held back in a Deferred and appended at the end).
Under the vacation row's lock a second unit waiting for it reads, once granted, the reply the first
one committed, and queues none (one reply per vacation and thread).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from relay.store.accept import AcceptHook, AdmitSeller, RecordFacts, VacationReply
from relay.store.messages import Accepted
from relay.store.pg import audit, messages, rules, seller_rules
from relay.store.seller_rules import Refused


async def _lock(conn: asyncpg.Connection, hooks: Sequence[Sequence[AcceptHook]]) -> None:
    flat = [h for own in hooks for h in own]
    for thread_id in sorted({h.msg.thread_id for h in flat if isinstance(h, AdmitSeller)}):
        await seller_rules.lock_thread(conn, thread_id)
    vacations = sorted({h.vacation_id for h in flat if isinstance(h, VacationReply)})
    if vacations:
        await conn.execute("SELECT id FROM vacations WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE",
                           vacations)


async def run_hook(conn: asyncpg.Connection, hook: AcceptHook, message_id: int, later: audit.Deferred) -> None:
    if isinstance(hook, RecordFacts):
        await rules.record_facts(conn, message_id, hook.facts)
    elif isinstance(hook, VacationReply):
        if await rules.has_vacation_reply(conn, hook.vacation_id, hook.thread_id):
            return  # a message committed just before this one got the reply
        reply_id, _ = await messages.record_accepted(conn, hook.reply, later)
        await rules.claim_vacation_reply(conn, hook.vacation_id, hook.thread_id, reply_id)
        await rules.record_facts(conn, reply_id, hook.facts)
    else:
        msg = hook.msg
        try:
            decision = await seller_rules.admit(conn, msg, hook.limits, message_id)
        except Refused as refused:
            raise hook.refused(refused.decision) from None
        if decision.kind != hook.early:
            later.append("stage.rules", reason=decision.reason, thread_id=msg.thread_id, message_id=message_id,
                         party_id=msg.seller_id, ts=msg.received_at,
                         detail={**hook.detail, **decision.detail, "at": "commit"})


async def accept(conn: asyncpg.Connection, rows: Sequence[Accepted],
                 hooks: Sequence[Sequence[AcceptHook]]) -> list[tuple[int, int]]:
    """Record every row with its hooks inside the caller's transaction; return the (message id,
    queue id) pairs. Any exception (a hook's refusal included) leaves nothing once it rolls back."""
    if len(rows) != len(hooks):
        raise ValueError("one list of hooks per row")
    await _lock(conn, hooks)
    later = audit.Deferred()
    ids = []
    for row, own in zip(rows, hooks, strict=True):
        message_id, queue_id = await messages.record_accepted(conn, row, later)
        for hook in own:
            await run_hook(conn, hook, message_id, later)
        ids.append((message_id, queue_id))
    await later.flush(conn)
    return ids
