"""Dispute bundle: one owner-only zip with the transcript, every .eml and the thread's audit events.

The audit events carry seq, prev_hash, hash and the canonical text that was hashed, so anyone can
recompute each hash (sha256(prev_hash + "\\n" + canonical)) and check them against the live chain
with `relay audit verify --bundle FILE.zip`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from relay.review import render, transcript
from relay.store import audit

if TYPE_CHECKING:
    from relay.store.interface import Store

README = """Dispute bundle for thread {thread} (generated {generated}).

transcript.txt      the thread as an operator reads it (real addresses included)
transcript.json     the same, machine-readable
messages/           NNNN-received.eml (as the sender sent it) and NNNN-delivered.eml
                    (as the relay delivered it); missing when no longer stored
                    (retention, erasure) or never kept (sender not a party)
transcript.mbox     every version in one mailbox (opens in Thunderbird)
audit.jsonl         the thread's audit events, one JSON object per line

Checking the audit events
-------------------------
Each event in audit.jsonl has "seq" (its position in the relay's chain), "prev_hash", "hash"
and "canonical", the exact text that was hashed. For every line:

    hash == sha256( prev_hash + "\\n" + canonical )      (hex, UTF-8)

e.g. python3 -c 'import hashlib,json,sys
for l in open("audit.jsonl"):
    e=json.loads(l); h=hashlib.sha256((e["prev_hash"]+"\\n"+e["canonical"]).encode()).hexdigest()
    print(e["seq"], "ok" if h==e["hash"] else "MISMATCH")'

Then, on the relay, check that the whole chain is intact and that these events are in it,
unchanged, at these positions:

    relay audit verify --bundle {name}

The chain head when this bundle was made was #{head_seq} {head_hash}; `relay audit head`
prints the current one (an operator may have recorded it elsewhere).
Personal fields (addresses) are kept beside the chain: "pii_commit" in canonical equals
sha256(pii_salt + "\\n" + pii) unless the party was erased since (then pii_salt is null).
"""


def _canonical(ev: dict[str, Any]) -> str:
    body = audit.canonical(ev["seq"], ev["ts"], ev["event"], ev["reason"], ev["thread"], ev["party"],
                           ev["message"], orjson.loads(ev["detail"]), ev["pii_commit"])
    return body.decode()


async def originals(store: Store, t: dict[str, Any]) -> dict[tuple[int, str], bytes]:
    out: dict[tuple[int, str], bytes] = {}
    for m in t["messages"]:
        for label in ("received", "delivered"):
            v = m.get(label)
            if v and v.get("stored"):
                data = await store.messages.get_blob(v["sha256"])
                if data is not None:
                    out[(m["message"], label)] = data
    return out


async def write(store: Store, thread_id: int, domain: str, out: Path) -> dict[str, Any]:
    t = await transcript.build(store, thread_id, domain)
    blobs = await originals(store, t)
    seqs = sorted({ev["seq"] for ev in t["events"]} | {ev["seq"] for m in t["messages"] for ev in m["events"]})
    events = await store.review.raw_events(seqs)
    for ev in events:
        ev["canonical"] = _canonical(ev)
    return _zip(t, blobs, events, thread_id, out)


def _zip(t: dict[str, Any], blobs: dict[tuple[int, str], bytes], events: list[dict[str, Any]], thread_id: int,
         out: Path) -> dict[str, Any]:
    """The bundle written to a temporary name beside `out`, fsynced, then renamed (owner-only)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("README.txt", README.format(thread=thread_id, generated=t["generated"], name=out.name,
                                                   head_seq=t["audit_head"]["seq"], head_hash=t["audit_head"]["hash"]))
            z.writestr("transcript.txt", render.text(t))
            z.writestr("transcript.json", orjson.dumps(t, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
            z.writestr("transcript.mbox", render.mbox(t, blobs))
            for (mid, label), data in sorted(blobs.items()):
                z.writestr(f"messages/{mid:04d}-{label}.eml", data)
            z.writestr("audit.jsonl", b"".join(orjson.dumps(ev) + b"\n" for ev in events))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"thread": thread_id, "out": str(out), "messages": len(t["messages"]), "eml": len(blobs),
            "events": len(events), "audit_head": t["audit_head"]}
