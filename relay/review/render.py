"""Render a transcript (transcript.build) as terminal text or as an mboxrd mailbox.

Text: every message with both versions, verdicts, delivery; control characters that could
drive the terminal are shown as U+FFFD. Mbox: mboxrd ("From " lines quoted with '>'), LF line
ends, each version preceded by an X-Relay-Transcript header; Thunderbird opens it.
"""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import orjson

from relay.review.transcript import DIRECTION

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: Any) -> str:
    return _CONTROL.sub("\ufffd", str(text))


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for k, v in detail.items():
        s = v if isinstance(v, str) else orjson.dumps(v).decode()
        parts.append(f"{k}={s if len(s) <= 120 else s[:117] + '...'}")
    return safe(" ".join(parts))


def _event_line(ev: dict[str, Any]) -> str:
    return f"{ev['time']} #{ev['seq']} {ev['event']} {ev['reason']} {_detail(ev['detail'])}".rstrip()


def _who(p: dict[str, Any]) -> str:
    return f"{safe(p['name'])} <{', '.join(p['emails'])}> (party {p['party']}, {p['status']})"


def _version(label: str, v: dict[str, Any] | None, same_text_as: str | None = None) -> list[str]:
    if v is None:
        return [f"  -- {label}: none --"]
    if not v.get("stored"):
        c = v.get("cleared") or {}
        when = f" on {c['at']}" if c.get("at") else ""
        size = f", sha256 {v['sha256']}, {v['size']} bytes" if v.get("sha256") else ""
        return [f"  -- {label}: content no longer stored ({c.get('reason')}{when}){size} --"]
    lines = [f"  -- {label} (sha256 {v['sha256']}, {v['size']} bytes) --"]
    lines += [f"  {k}: {safe(val)}" for k, val in v["headers"].items()]
    if same_text_as is not None and v["text"] == same_text_as:
        lines.append("  (text identical to the version received)")
    else:
        lines.append("")
        lines += [f"  | {safe(line)}" for line in v["text"].rstrip("\n").split("\n")]
    for a in v["attachments"]:
        lines.append(f"  [attachment] {safe(a['filename'] or '(no name)')} {a['content_type']}, {a['size']} bytes")
    return lines


def _message(m: dict[str, Any]) -> list[str]:
    if m["refused"]:
        status = f"REFUSED {m['refused']['reply'] or ''} ({m['refused']['reason']})"
    else:
        status = m["state"].upper() + (f" ({m['reason']})" if m["reason"] != "ok" else "")
    direction = DIRECTION.get(m["direction"] or "", m["direction"] or "unknown sender")
    s, r = m["sender"], m["recipient"]
    lines = ["", f"══ Message {m['message']} · {m['time']} · {direction} · {status} ══",
             f"  Sender:    {safe(s['name'] or '?')} <{safe(s['address'] or '')}> (party {s['party']})",
             f"  Recipient: {safe(r['name'] or '?')} <{safe(r['address'] or '')}> (party {r['party']})"
             f" via alias {r['alias']}",
             f"  Subject:   {safe(m['subject'] or '')}"]
    received = m["received"]
    lines += _version("as received", received)
    if not m["refused"]:
        lines += _version("as delivered", m["delivered"], received.get("text") if received.get("stored") else None)
    lines.append("  -- verdicts and events --")
    lines += [f"  {_event_line(ev)}" for ev in m["events"]] or ["  (none)"]
    if m["deliveries"]:
        lines.append("  -- delivery --")
        for q in m["deliveries"]:
            err = f"; last error: {safe(q['last_error'])}" if q["last_error"] else ""
            lines.append(f"  queue {q['queue']} ({q['kind']}) to {safe(q['recipient'])}: {q['state']} after"
                         f" {q['attempts']} attempt(s), last {q['last_attempt'] or '-'}{err}")
    return lines


def text(t: dict[str, Any]) -> str:
    lines = [f"Thread {t['thread']} — transcript (operator view: contains real addresses)",
             f"Generated {t['generated']}; audit head #{t['audit_head']['seq']} {t['audit_head']['hash']}",
             f"Opened {t['created']}",
             f"Buyer:  {_who(t['buyer'])}", f"Seller: {_who(t['seller'])}"]
    for a in t["aliases"]:
        role = "buyer" if a["stands_for"] == t["buyer"]["party"] else "seller"
        revoked = f", revoked {a['revoked']}" if a["revoked"] else ""
        lines.append(f"Alias:  {a['alias']} stands for the {role} (created {a['created']}{revoked})")
    if t["orders"]:
        lines.append("Orders: " + ", ".join(f"{safe(o['ref'])} ({o['placed']})" for o in t["orders"]))
    timeline: list[tuple[float, int, list[str]]] = []
    for ev in t["events"]:
        timeline.append((ev["ts"], ev["seq"], [_event_line(ev)]))
    for m in t["messages"]:
        first = min((ev["seq"] for ev in m["events"]), default=0)
        timeline.append((m["ts"], first, _message(m)))
    lines += ["", "Timeline (UTC):"]
    for _, _, block in sorted(timeline, key=lambda x: (x[0], x[1])):
        lines += block
    return "\n".join(lines) + "\n"


def _from_line(sender: str, ts: float) -> bytes:
    who = re.sub(r"\s", "", sender) or "MAILER-DAEMON"
    return f"From {who} {time.asctime(time.gmtime(ts))}\n".encode()


def _quote(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    out = [b">" + ln if re.match(rb">*From ", ln) else ln for ln in lines]
    body = b"\n".join(out)
    return body if body.endswith(b"\n") else body + b"\n"


def _stub(m: dict[str, Any], label: str, why: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = m["sender"]["address"] or "unknown@invalid"
    msg["To"] = m["recipient"]["alias"]
    msg["Subject"] = f"[{label}] {m['subject'] or ''}"
    msg.set_content(f"Message {m['message']} ({label}): {why}\n")
    return msg.as_bytes()


def mbox(t: dict[str, Any], originals: dict[tuple[int, str], bytes]) -> bytes:
    """originals maps (message id, "received"|"delivered") to the stored bytes."""
    out: list[bytes] = []
    for m in t["messages"]:
        versions = [("received", m["received"])] + ([] if m["refused"] else [("delivered", m["delivered"])])
        for label, v in versions:
            if v is None:
                continue
            note = f"thread {t['thread']}, message {m['message']}, as {label}"
            if m["refused"]:
                note += f"; refused {m['refused']['reply'] or ''} {m['refused']['reason']}"
            data = originals.get((m["message"], label))
            if data is None:
                c = v.get("cleared") or {}
                data = _stub(m, f"as {label}", f"content no longer stored ({c.get('reason')})")
            out.append(_from_line(m["sender"]["address"] or "", m["ts"]))
            out.append(_quote(f"X-Relay-Transcript: {note}\r\n".encode() + data))
            out.append(b"\n")
    return b"".join(out)
