"""Audit events: append-only rows chained by SHA-256, personal data kept outside the chain.

hash = SHA-256(prev_hash || "\\n" || canonical JSON of the event), where the canonical JSON has
sorted keys and covers seq, ts, event, reason, thread, party, message, detail (and "pii", the
salted commitment to the event's personal fields, when it has any). The first prev_hash is GENESIS.
Personal fields (addresses, names; see split_pii) go to audit_pii, so that erasure can replace them
without breaking the chain; secrets (keys, passwords) are never stored (redact). Appends happen
inside the writer's transaction, which holds SQLite's write lock, so the head read here is the head.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESIS = "0" * 64
_JSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

#: Detail keys that always hold personal data (real addresses, names, raw envelope values).
PII_KEYS = frozenset({"mail_from", "rcpt", "envelope_from", "recipient", "address", "addresses", "email",
                      "emails", "from", "to", "name", "display_name", "header_from", "peer", "helo"})
#: Detail keys whose values are secrets: never stored, not even outside the chain.
SECRET_KEYS = re.compile(r"pass(word|wd)?$|secret|private_key|^auth(_data)?$|^key_pem$", re.I)
#: Anything that looks like an e-mail address (also inside error texts a remote server wrote).
ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"'@]+@[^\s<>()\[\]\\,;:\"'@]+\.[^\s<>()\[\]\\,;:\"'@.]+")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    ts: float
    event: str
    reason: str
    thread_id: int | None
    party_id: int | None
    message_id: int | None
    detail: dict[str, Any]  # the operator's view: chained detail merged with the personal fields
    prev_hash: str
    hash: str
    pii_commit: str | None = None
    pii_keys: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "ts": self.ts, "event": self.event, "reason": self.reason,
            "thread": self.thread_id, "party": self.party_id, "message": self.message_id,
            "detail": self.detail, "prev_hash": self.prev_hash, "hash": self.hash,
        }


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_JSON_OPTS)


def canonical(seq: int, ts: float, event: str, reason: str, thread_id: int | None, party_id: int | None,
              message_id: int | None, detail: Mapping[str, Any], pii_commit: str | None = None) -> bytes:
    body: dict[str, Any] = {"seq": seq, "ts": ts, "event": event, "reason": reason, "thread": thread_id,
                            "party": party_id, "message": message_id, "detail": detail}
    if pii_commit is not None:
        body["pii"] = pii_commit
    return dumps(body)


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def pii_commitment(salt: str, data: str) -> str:
    return hashlib.sha256(salt.encode() + b"\n" + data.encode()).hexdigest()


def _has_address(value: Any) -> bool:
    if isinstance(value, str):
        return "@" in value and ADDRESS.search(value) is not None
    if isinstance(value, Mapping):
        return any(_has_address(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_address(v) for v in value)
    return False


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return "[redacted]" if "PRIVATE KEY" in value else value
    if isinstance(value, Mapping):
        return {k: "[redacted]" if SECRET_KEYS.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def split_pii(detail: Mapping[str, Any], pii: Mapping[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                                        dict[str, Any]]:
    """(chained detail, personal fields): PII_KEYS (unless a number) and any value with an address go aside."""
    detail = _redact(detail)
    personal = dict(_redact(pii or {}))
    chained: dict[str, Any] = {}
    for key, value in detail.items():
        if (key in PII_KEYS and isinstance(value, str | list | tuple | Mapping)) or _has_address(value):
            personal[key] = value
        else:
            chained[key] = value
    return chained, personal


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the newest event; (0, GENESIS) for an empty trail."""
    row = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def append(conn: sqlite3.Connection, event: str, *, reason: str = "", thread_id: int | None = None,
           party_id: int | None = None, message_id: int | None = None,
           detail: Mapping[str, Any] | None = None, ts: float | None = None,
           pii: Mapping[str, Any] | None = None) -> AuditEvent:
    """Append one event to the chain; must run inside a write transaction.

    Personal fields (`pii`, plus what split_pii finds in `detail`) are stored beside the chain.
    """
    last_seq, prev = head(conn)
    seq = last_seq + 1
    ts = time.time() if ts is None else ts
    chained, personal = split_pii(detail or {}, pii)
    commit = None
    if personal:
        salt = secrets.token_hex(16)
        data = dumps(personal).decode()
        commit = pii_commitment(salt, data)
    body = canonical(seq, ts, event, reason, thread_id, party_id, message_id, chained, commit)
    digest = chain_hash(prev, body)
    conn.execute(
        "INSERT INTO audit_events (seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash, hash,"
        " pii_commit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, event, reason, thread_id, party_id, message_id, dumps(chained).decode(), prev, digest, commit),
    )
    if commit is not None:
        conn.execute("INSERT INTO audit_pii (seq, salt, data) VALUES (?, ?, ?)", (seq, salt, data))
    return AuditEvent(seq, ts, event, reason, thread_id, party_id, message_id, chained | personal, prev, digest,
                      commit, tuple(personal))


_COLUMNS = ("e.seq, e.ts, e.event, e.reason, e.thread_id, e.party_id, e.message_id, e.detail, e.prev_hash, e.hash,"
            " e.pii_commit, p.data")
_FROM = "FROM audit_events e LEFT JOIN audit_pii p ON p.seq = e.seq"


def _row(row: tuple[Any, ...]) -> AuditEvent:
    detail = orjson.loads(row[7])
    personal = orjson.loads(row[11]) if row[11] else {}
    return AuditEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6], detail | personal, row[8], row[9],
                      row[10], tuple(personal))


def events_after(conn: sqlite3.Connection, after_seq: int = 0, *, limit: int = 1000,
                 thread_id: int | None = None, party_id: int | None = None, event: str | None = None,
                 since: float | None = None, message_id: int | None = None) -> list[AuditEvent]:
    where: list[str] = ["e.seq > ?"]
    args: list[Any] = [after_seq]
    if thread_id is not None:
        where.append("e.thread_id = ?")
        args.append(thread_id)
    if party_id is not None:
        where.append("e.party_id = ?")
        args.append(party_id)
    if message_id is not None:
        where.append("e.message_id = ?")
        args.append(message_id)
    if event is not None:
        where.append("(e.event = ? OR e.event LIKE ?)")
        args += [event, event + ".%"]
    if since is not None:
        where.append("e.ts >= ?")
        args.append(since)
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT ?"
    return [_row(r) for r in conn.execute(sql, (*args, limit))]


def last_events(conn: sqlite3.Connection, n: int, **filters: Any) -> list[AuditEvent]:
    """The newest n events matching the filters, oldest first."""
    rows: list[AuditEvent] = []
    after = 0
    while True:
        chunk = events_after(conn, after, limit=5000, **filters)
        if not chunk:
            break
        rows = (rows + chunk)[-n:] if n else []
        after = chunk[-1].seq
    return rows


def iter_all(conn: sqlite3.Connection, batch: int = 5000, **filters: Any) -> Iterator[AuditEvent]:
    after = 0
    while True:
        chunk = events_after(conn, after, limit=batch, **filters)
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq


def events_in(conn: sqlite3.Connection, seqs: list[int]) -> list[AuditEvent]:
    if not seqs:
        return []
    marks = ",".join("?" * len(seqs))
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE e.seq IN ({marks}) ORDER BY e.seq",
                                          seqs)]
