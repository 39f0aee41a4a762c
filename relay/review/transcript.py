"""Assemble a thread's transcript: messages in order with both versions, verdicts, deliveries, events.

Reads the store only (operators' view: real addresses included). The result is a plain dict,
the JSON format of `relay thread transcript`; text and mbox are rendered from it (render.py).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from relay.model import Party
from relay.review import mime
from relay.store import audit, messages, parties, review, threads

DIRECTION = {"seller_to_buyer": "seller → buyer", "buyer_to_seller": "buyer → seller"}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def event_dict(ev: audit.AuditEvent) -> dict[str, Any]:
    return {"seq": ev.seq, "time": iso(ev.ts), "ts": ev.ts, "event": ev.event, "reason": ev.reason,
            "party": ev.party_id, "message": ev.message_id, "detail": ev.detail, "hash": ev.hash}


def _party(p: Party) -> dict[str, Any]:
    return {"party": p.id, "role": p.role.value, "name": p.name, "emails": list(p.emails), "status": p.status}


def _version(conn: sqlite3.Connection, digest: str | None) -> dict[str, Any] | None:
    b = review.blob(conn, digest)
    if digest is None or b is None:
        return None
    out: dict[str, Any] = {"sha256": b.sha256, "size": b.size, "stored": b.data is not None}
    if b.data is None:
        out["cleared"] = {"reason": b.cleared_reason or "cleared", "at": iso(b.cleared_at)}
    else:
        out |= mime.read(b.data)
    return out


def build(conn: sqlite3.Connection, thread_id: int, domain: str) -> dict[str, Any]:
    thread = threads.get(conn, thread_id)
    buyer, seller = parties.get(conn, thread.buyer_id), parties.get(conn, thread.seller_id)
    by_id = {buyer.id: buyer, seller.id: seller}
    events = review.thread_events(conn, thread_id, (buyer.id, seller.id))
    by_message: dict[int, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for ev in events:
        (by_message.setdefault(ev.message_id, []) if ev.message_id is not None else loose).append(event_dict(ev))
    out_messages = []
    for m in messages.of_thread(conn, thread_id):
        sender = by_id.get(m.sender_id) if m.sender_id is not None else None
        recipient = by_id.get(m.recipient_id) if m.recipient_id is not None else None
        queue = review.queue_rows(conn, m.id)
        main = next((q for q in queue if q.kind == "message"), None)
        refused = m.state == "rejected"
        msg_events = by_message.get(m.id, [])
        refusal = next((e for e in msg_events if e["event"] == "message.rejected"), None)
        out_messages.append({
            "message": m.id, "time": iso(m.received_at), "ts": m.received_at, "direction": m.direction,
            "state": m.state, "reason": m.reason,
            "sender": {"party": m.sender_id, "name": sender.name if sender else None, "address": m.envelope_from},
            "recipient": {"party": m.recipient_id, "name": recipient.name if recipient else None,
                          "address": main.recipient if main else (recipient.emails[0] if recipient and
                                                                  recipient.emails else None),
                          "alias": f"{m.rcpt_alias}@{domain}"},
            "subject": m.subject,
            "received": _version(conn, m.original_sha256)
            or {"stored": False, "cleared": {"reason": "not kept (the sender is not a party of the thread)"
                                             if refused else "missing", "at": None}},
            "delivered": None if refused else _version(conn, m.delivered_sha256),
            "refused": {"reason": m.reason, "reply": refusal["detail"].get("reply") if refusal else None}
            if refused else None,
            "deliveries": [{"queue": q.id, "kind": q.kind, "recipient": q.recipient, "state": q.state,
                            "attempts": q.attempts, "last_attempt": iso(q.last_attempt_at),
                            "last_error": q.last_error} for q in queue],
            "events": msg_events,
        })
    head_seq, head_hash = audit.head(conn)
    return {
        "thread": thread.id, "created": iso(thread.created_at), "domain": domain,
        "buyer": _party(buyer), "seller": _party(seller),
        "aliases": [{"alias": f"{a.local}@{domain}", "stands_for": a.party_id, "created": iso(a.created_at),
                     "revoked": iso(a.revoked_at)} for a in review.aliases(conn, thread_id)],
        "orders": [{"ref": o.ref, "placed": iso(o.placed_at)} for o in threads.orders(conn, thread_id)],
        "messages": out_messages, "events": loose,
        "generated": iso(time.time()), "audit_head": {"seq": head_seq, "hash": head_hash},
    }
