"""enqueue: the last step — commit message, queue rows and audit events, then (only then) 250.

All recipients of one DATA are written in one unit of the group commit, so they are
durable together or not at all. Replies: 250 2.0.0 after commit; 451 4.3.0 / 452 4.3.1 when
the store cannot take the write (nothing is lost: the client still has the message). A check
that must hold at commit (Transit.on_accept, e.g. the rules' limits) may refuse instead: the unit
is rolled back and accept() raises CommitRefused for the session to answer its 5xx.
Audit: message.accepted, message.queued|held, message.rejected (with the refusing reason).
"""

from __future__ import annotations

import errno

import structlog

from relay.model import Reply, Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit
from relay.smtp import replies
from relay.store import blobfiles, messages

log = structlog.get_logger("relay.enqueue")


def _accepted(ctx: Context, tx: Transit, digests: dict[int, str], tail: int | None) -> messages.Accepted:
    assert tx.thread and tx.sender and tx.recipient
    return messages.Accepted(
        thread_id=tx.thread.id, direction=tx.direction.value, sender_id=tx.sender.id,
        recipient_id=tx.recipient.id, received_at=tx.received_at, envelope_from=tx.envelope_from,
        rcpt_alias=tx.target.alias, subject=tx.subject[:998], original=tx.raw, delivered=tx.message,
        orig_message_id=tx.orig_message_id, relay_message_id=tx.relay_message_id,
        out_envelope_from=ctx.alias_address(_sender_alias(tx)), out_recipient=tx.recipient.emails[0],
        expires_at=tx.received_at + ctx.settings.delivery.lifetime, held=tx.held, events=tuple(tx.events),
        digests=digests, delivered_from=tail,
    )


def _sender_alias(tx: Transit) -> str:
    assert tx.thread and tx.sender
    return tx.thread.seller_alias if tx.sender.id == tx.thread.seller_id else tx.thread.buyer_alias


def _store_failure_reply(exc: Exception) -> Reply:
    text = str(exc).lower()
    if "full" in text or any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
                             for e in (exc, exc.__cause__)):
        return replies.STORAGE_FULL
    return replies.STORE_UNAVAILABLE


async def accept(ctx: Context, transits: list[Transit]) -> tuple[Reply, list[tuple[int, int]]]:
    """Commit every transit; return the reply and the (message id, queue id) pairs.

    Raises CommitRefused when a hook refuses a transit: nothing of this DATA was written."""
    digests: dict[int, str] = {}
    # a delivered copy that changed only the head is stored as that head on its original
    tails = [messages.shared_tail(tx.raw, tx.message) for tx in transits]
    large = [c for tx in transits for c in (tx.raw, tx.message) if len(c) >= blobfiles.FILE_BYTES]
    files = {id(tx.raw): tx.raw_file for tx in transits if tx.raw_file is not None}
    derived = {id(tx.message) for tx, tail in zip(transits, tails, strict=True) if tail is not None}
    if large:  # their files are written (and fsynced) here, not under the store's write lock
        try:
            digests = await ctx.store.messages.write_large(large, files, derived)
        except OSError as exc:
            log.error("cannot write a content file", error=str(exc))
            return _store_failure_reply(exc), []
    rows = [_accepted(ctx, tx, digests, tail) for tx, tail in zip(transits, tails, strict=True)]

    failures: tuple[type[Exception], ...] = (*ctx.store.failures, OSError)
    try:
        ids = await ctx.store.messages.accept(rows, [tx.on_accept for tx in transits])
    except failures as exc:
        log.error("commit failed", error=str(exc))
        return _store_failure_reply(exc), []
    held = all(tx.held for tx in transits)
    return (replies.HELD if held else replies.QUEUED), ids


async def refuse(ctx: Context, tx: Transit, verdict: Verdict) -> None:
    """Audit a refused message; keep its original when the sender is a party of the thread."""
    reply = verdict.reply or replies.INTERNAL_ERROR
    is_party = tx.sender is not None and tx.envelope_from.lower() in tx.sender.emails
    row = messages.Refused(
        thread_id=tx.thread.id if tx.thread else tx.target.thread_id,
        direction=tx.direction.value if tx.sender else None,
        sender_id=tx.sender.id if is_party and tx.sender else None,
        recipient_id=tx.recipient.id if tx.recipient else tx.target.party_id,
        received_at=tx.received_at, envelope_from=tx.envelope_from, rcpt_alias=tx.target.alias,
        subject=tx.subject[:998], original=tx.raw if is_party else None, reason=verdict.reason,
        reply=f"{reply.code} {reply.status}", events=tuple(tx.events),
    )
    try:
        await ctx.store.messages.record_refused(row)
    except ctx.store.failures as exc:
        log.error("could not audit a refusal", error=str(exc), reason=verdict.reason)
