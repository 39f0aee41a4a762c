"""Walk the audit chain and name the first event that was changed, removed, inserted or reordered.

Every event must be intact (its hash recomputes from its fields and its prev_hash), linked (its
prev_hash is the hash of the event before it) and numbered without gaps. Personal fields kept
beside the chain must match their commitment, unless an erasure event declares them erased.

The walk reads the chain through a Source (four reads); SqliteSource is SQLite's, and the
PostgreSQL store hands its own (relay/store/pg/audit_verify.py) to the same checks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from relay.store.audit import GENESIS, canonical, chain_hash, dumps, pii_commitment


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: str  # changed | removed | inserted | reordered
    message: str


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    problem: Problem | None = None
    erased_pii: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "count": self.count, "head_seq": self.head_seq,
                               "head": self.head_hash, "erased_pii": self.erased_pii}
        if self.problem:
            out |= {"seq": self.problem.seq, "problem": self.problem.kind, "message": self.problem.message}
        return out


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    ts: float
    event: str
    reason: str
    thread_id: int | None
    party_id: int | None
    message_id: int | None
    detail: str
    prev_hash: str
    hash: str
    pii_commit: str | None
    salt: str | None
    data: str | None


_SQL = ("SELECT e.seq, e.ts, e.event, e.reason, e.thread_id, e.party_id, e.message_id, e.detail, e.prev_hash,"
        " e.hash, e.pii_commit, p.salt, p.data FROM audit_events e LEFT JOIN audit_pii p ON p.seq = e.seq")


class Source(Protocol):
    """What the walk reads from a backend, in one consistent state of the chain."""

    def rows(self, kind: str, args: tuple[Any, ...], limit: int) -> list[_Row]:
        """Events with their personal fields, by seq: kind "from" (seq >= args[0]), "after"
        (seq > args[0]) or "after_linking" (seq > args[0] and prev_hash = args[1])."""
        ...

    def erasure_details(self) -> Iterable[str]:
        """The detail texts of the party.erased events."""
        ...

    def link(self, seq: int) -> tuple[str, str] | None:
        """(hash, prev_hash) of the event at seq."""
        ...

    def hashes_among(self, hashes: list[str]) -> set[str]:
        """Those of `hashes` that are event hashes of the chain."""
        ...


_WHERE = {"from": "e.seq >= ?", "after": "e.seq > ?", "after_linking": "e.seq > ? AND e.prev_hash = ?"}


class SqliteSource:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, kind: str, args: tuple[Any, ...], limit: int) -> list[_Row]:
        return [_Row(*r) for r in self.conn.execute(f"{_SQL} WHERE {_WHERE[kind]} ORDER BY e.seq LIMIT ?",
                                                    (*args, limit))]

    def erasure_details(self) -> Iterable[str]:
        return [r[0] for r in self.conn.execute("SELECT detail FROM audit_events WHERE event = 'party.erased'")]

    def link(self, seq: int) -> tuple[str, str] | None:
        row = self.conn.execute("SELECT hash, prev_hash FROM audit_events WHERE seq = ?", (seq,)).fetchone()
        return (row[0], row[1]) if row else None

    def hashes_among(self, hashes: list[str]) -> set[str]:
        """The hashes are not indexed (migration 0011): SQLite scans the table once per 500."""
        found: set[str] = set()
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(r[0] for r in self.conn.execute(f"SELECT hash FROM audit_events WHERE hash IN ({marks})",
                                                         chunk))
        return found


def _intact(r: _Row, seq: int) -> bool:
    """Does the stored hash recompute from the row's fields, taking `seq` as its position?"""
    try:
        detail = orjson.loads(r.detail)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(detail, dict) or dumps(detail).decode() != r.detail:
        return False  # not the canonical text that was hashed: an edit
    try:
        body = canonical(seq, r.ts, r.event, r.reason, r.thread_id, r.party_id, r.message_id, detail, r.pii_commit)
    except TypeError:
        return False
    return chain_hash(r.prev_hash, body) == r.hash


def _declared_erasures(src: Source) -> set[int]:
    out: set[int] = set()
    for detail in src.erasure_details():
        try:
            out.update(int(s) for s in orjson.loads(detail).get("pii_events", []))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            continue
    return out


def _pii_problem(r: _Row, declared: set[int]) -> Problem | None:
    if r.pii_commit is None:
        if r.data is not None:
            return Problem(r.seq, "changed", f"event #{r.seq} was changed: personal data added beside the chain")
        return None
    if r.data is None:
        return Problem(r.seq, "changed", f"event #{r.seq} was changed: its personal data was removed")
    if r.salt is None:
        if r.seq in declared:
            return None
        return Problem(r.seq, "changed", f"event #{r.seq} was changed: personal data erased without an erasure event")
    if pii_commitment(r.salt, r.data) != r.pii_commit:
        return Problem(r.seq, "changed", f"event #{r.seq} was changed: its personal data no longer matches")
    return None


def _diagnose(src: Source, r: _Row, e: int, p: str, pp: str | None) -> Problem | None:
    """r is the event at position e; p is the hash of the last good event, pp of the one before it."""
    if r.seq > e:
        last = r.seq - 1
        which = f"event #{e} was removed" if last == e else f"events #{e}–#{last} were removed"
        return Problem(e, "removed", f"{which} (the chain jumps from #{e - 1} to #{r.seq})")
    intact = _intact(r, e)
    if r.prev_hash == p:
        if intact:
            return None
        nxt = src.rows("after", (e,), 1)
        if nxt and nxt[0].prev_hash == p:
            return Problem(e, "inserted", f"event #{e} was inserted: the event after it links to #{e - 1}")
        return Problem(e, "changed", f"event #{e} was changed: its hash does not match its contents")
    if pp is not None and r.prev_hash == pp and (intact or _intact(r, e - 1)):
        return Problem(e - 1, "inserted", f"event #{e - 1} was inserted: #{e} links to the event before it")
    succ = src.rows("after_linking", (e, p), 1)
    if succ:
        s = succ[0]
        if r.prev_hash == s.hash or s.seq != e + 1:
            return Problem(e, "reordered", f"event #{e} is out of order: the event that belongs at #{e} is at #{s.seq}")
        return Problem(e, "inserted", f"event #{e} was inserted: the event after it links to #{e - 1}")
    if intact:
        return Problem(e - 1, "changed", f"event #{e - 1} was changed: its hash is not the one #{e} recorded")
    for k in range(1, 11):
        if _intact(r, e + k):
            return Problem(e, "removed", f"{k} event(s) were removed at #{e} and the later ones renumbered")
    return Problem(e, "changed", f"event #{e} was changed: it does not link to #{e - 1}")


def verify(conn: sqlite3.Connection, batch: int = 5000) -> Result:
    return verify_source(SqliteSource(conn), batch)


def verify_source(src: Source, batch: int = 5000) -> Result:
    declared = _declared_erasures(src)
    prev, pprev = GENESIS, None
    expected, count, erased = 1, 0, 0
    while True:
        rows = src.rows("from", (expected,), batch)
        if not rows:
            return Result(True, count, expected - 1, prev, None, erased)
        for r in rows:
            problem = _diagnose(src, r, expected, prev, pprev) or _pii_problem(r, declared)
            if problem is not None:
                return Result(False, count, expected - 1, prev, problem, erased)
            erased += r.pii_commit is not None and r.salt is None
            pprev, prev = prev, r.hash
            expected += 1
            count += 1


def check_events(conn: sqlite3.Connection, events: list[dict[str, Any]]) -> list[str]:
    return check_events_source(SqliteSource(conn), events)


def check_events_source(src: Source, events: list[dict[str, Any]]) -> list[str]:
    """Check exported events (seq, prev_hash, hash, canonical) against their own hashes and the chain."""
    problems = []
    for ev in events:
        seq = ev.get("seq")
        if chain_hash(str(ev.get("prev_hash")), str(ev.get("canonical", "")).encode()) != ev.get("hash"):
            problems.append(f"event #{seq}: its hash does not match its canonical text")
            continue
        key = int(seq) if isinstance(seq, int) or (isinstance(seq, str) and seq.isdigit()) else None
        row = src.link(key) if key is not None else None
        if row is None or row != (ev["hash"], ev["prev_hash"]):
            problems.append(f"event #{seq}: not the event at #{seq} in this chain")
    return problems


def missing_anchors(conn: sqlite3.Connection, anchors: list[str]) -> list[str]:
    return missing_anchors_source(SqliteSource(conn), anchors)


def missing_anchors_source(src: Source, anchors: list[str]) -> list[str]:
    """The anchors (event hashes noted earlier) that are not in the chain, in the order given."""
    found = src.hashes_among(list(dict.fromkeys(anchors)))
    return [a for a in anchors if a not in found]
