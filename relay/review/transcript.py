"""Assemble a thread's transcript: messages in order with both versions, verdicts, deliveries, events.

Reads the store only, through its review methods (operators' view: real addresses included); no
connection. The result is a plain dict,
the JSON format of `relay thread transcript`; text and mbox are rendered from it (render.py).
Each stored version is read through the message model (relay.message), as the recipient's
client reads it: headers decoded with the address-first parser, text parts in their charsets,
HTML as a browser displays it. Never raises on malformed mail.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relay.message import mime, parts
from relay.message.headers import decode_unstructured, parse_address_list, raw_to_str
from relay.message.html import HtmlTooComplex, read_html
from relay.model import Party
from relay.store import audit

if TYPE_CHECKING:
    from relay.store.interface import Store

HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to"})
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)  # (linear, as in relay.message.html)
_TAG = re.compile(r"<[^<>]*>")
_SPECIALS = frozenset('()<>[]:;@\\,."')

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


def read(data: bytes) -> dict[str, Any]:
    """Headers, readable text and the list of attachments of one message."""
    raw = mime.normalize_eol(data)
    root = parts.parse(raw)
    headers = {}
    for name in HEADERS:
        f = mime.first(root.fields, name.lower())
        if f is not None:
            headers[name] = _header_text(f.name, f.value)
    plain: list[str] = []
    htmls: list[str] = []
    attachments: list[dict[str, Any]] = []
    for leaf in root.leaves():
        ctype = leaf.content_type
        if leaf.is_attachment or not ctype.startswith(("text/", "multipart/")):
            attachments.append({"filename": leaf.filename, "content_type": ctype,
                                "size": len(parts.decode_body(raw, leaf))})
            continue
        text, _ = parts.decode_text(parts.decode_body(raw, leaf), leaf.charset)
        (htmls if ctype == "text/html" else plain).append(text)
    text = "\n".join(plain) if plain else "\n".join(_displayed(h) for h in htmls)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return {"headers": headers, "text": text, "attachments": attachments}


def _header_text(name: str, value: bytes) -> str:
    """A header as a mail client shows it: addresses parsed from the raw value, display names
    decoded afterwards; anything the address parser cannot fully read is shown decoded as is."""
    text = raw_to_str(mime.unfold(value))
    if name in _ADDRESS_HEADERS:
        parsed = parse_address_list(text)
        if parsed.mailboxes and not parsed.invalid and not parsed.groups:
            return ", ".join(_mailbox(mb.display_name, mb.addr_spec) for mb in parsed.mailboxes)
    return " ".join(decode_unstructured(text).split())


def _mailbox(name: str, addr: str) -> str:
    name = " ".join(name.split())
    if not name:
        return addr
    if any(c in _SPECIALS for c in name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>"


def _displayed(source: str) -> str:
    try:
        return read_html(source).text
    except HtmlTooComplex:  # markup no browser-like reading is affordable for: tags dropped, roughly
        return html.unescape(_TAG.sub("", _COMMENT.sub("", source)))


async def _version(store: Store, digest: str | None) -> dict[str, Any] | None:
    b = await store.review.blob(digest)
    if digest is None or b is None:
        return None
    out: dict[str, Any] = {"sha256": b.sha256, "size": b.size, "stored": b.data is not None}
    if b.data is None:
        out["cleared"] = {"reason": b.cleared_reason or "cleared", "at": iso(b.cleared_at)}
    else:
        out |= read(b.data)
    return out


async def build(store: Store, thread_id: int, domain: str) -> dict[str, Any]:
    thread = await store.threads.get(thread_id)
    buyer, seller = await store.parties.get(thread.buyer_id), await store.parties.get(thread.seller_id)
    by_id = {buyer.id: buyer, seller.id: seller}
    events = await store.review.thread_events(thread_id, (buyer.id, seller.id))
    by_message: dict[int, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for ev in events:
        (by_message.setdefault(ev.message_id, []) if ev.message_id is not None else loose).append(event_dict(ev))
    out_messages = []
    for m in await store.messages.of_thread(thread_id):
        sender = by_id.get(m.sender_id) if m.sender_id is not None else None
        recipient = by_id.get(m.recipient_id) if m.recipient_id is not None else None
        queue = await store.review.queue_rows(m.id)
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
            "received": await _version(store, m.original_sha256)
            or {"stored": False, "cleared": {"reason": "not kept (the sender is not a party of the thread)"
                                             if refused else "missing", "at": None}},
            "delivered": None if refused else await _version(store, m.delivered_sha256),
            "refused": {"reason": m.reason, "reply": refusal["detail"].get("reply") if refusal else None}
            if refused else None,
            "deliveries": [{"queue": q.id, "kind": q.kind, "recipient": q.recipient, "state": q.state,
                            "attempts": q.attempts, "last_attempt": iso(q.last_attempt_at),
                            "last_error": q.last_error} for q in queue],
            "events": msg_events,
        })
    head_seq, head_hash = await store.audit.head()
    return {
        "thread": thread.id, "created": iso(thread.created_at), "domain": domain,
        "buyer": _party(buyer), "seller": _party(seller),
        "aliases": [{"alias": f"{a.local}@{domain}", "stands_for": a.party_id, "created": iso(a.created_at),
                     "revoked": iso(a.revoked_at)} for a in await store.review.aliases(thread_id)],
        "orders": [{"ref": o.ref, "placed": iso(o.placed_at)} for o in await store.threads.orders(thread_id)],
        "messages": out_messages, "events": loose,
        "generated": iso(time.time()), "audit_head": {"seq": head_seq, "hash": head_hash},
    }
