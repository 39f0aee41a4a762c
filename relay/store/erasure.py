"""Erasure of a party (a privacy request): real addresses and name replaced everywhere, aliases revoked.

Every text column of every table is swept for the party's addresses (so tables other features add
are covered too); the contents of the party's messages, and any other content quoting an address,
are cleared. The chain never held them (personal fields live in audit_pii, see audit.py): those are
replaced and their salts dropped, and the erasure event lists them so the chain still verifies.
Runs with secure_delete; the caller then compacts (compact(): the WAL checkpointed and emptied,
vacuumed when bytes are still found, the files searched for the addresses).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from relay.store import audit, blobfiles, parties
from relay.store.errors import Conflict
from relay.store.retention import clear_blobs

SKIP_TABLES = {"audit_events", "blobs", "schema_version"}


def placeholder(party_id: int, index: int) -> str:
    return f"erased-{party_id}@erased.invalid" if index == 0 else f"erased-{party_id}-{index}@erased.invalid"


def _text_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    out = []
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                                  " AND name NOT LIKE 'sqlite_%'").fetchall():
        if name in SKIP_TABLES or (sql or "").upper().startswith("CREATE VIRTUAL"):
            continue
        for col in conn.execute(f'PRAGMA table_info("{name}")'):
            ctype = (col[2] or "").upper()
            if ctype == "" or any(t in ctype for t in ("TEXT", "CHAR", "CLOB")):
                out.append((name, col[1]))
    return out


def _sweep(conn: sqlite3.Connection, mapping: dict[str, str]) -> dict[str, int]:
    """Replace every occurrence (any case) of each address in every text column; count per table."""
    counts: dict[str, int] = {}
    for table, col in _text_columns(conn):
        for address, new in mapping.items():
            pattern = re.compile(re.escape(address), re.I)
            values = [r[0] for r in conn.execute(
                f'SELECT DISTINCT "{col}" FROM "{table}" WHERE instr(lower("{col}"), ?) > 0', (address,))]
            for old in values:
                if not isinstance(old, str):
                    continue
                cur = conn.execute(f'UPDATE "{table}" SET "{col}" = ? WHERE "{col}" = ?',
                                   (pattern.sub(new, old), old))
                counts[table] = counts.get(table, 0) + cur.rowcount
    return counts


def quoting_contents(conn: sqlite3.Connection, party_id: int) -> tuple[set[str], set[str]]:
    """A read, before erase() and outside its transaction (reading every content, files
    included, takes seconds on a large store): (contents quoting one of the party's addresses,
    every content looked at). Pass it to erase(), which then reads only what arrived since."""
    addresses = [a.lower() for a in parties.get(conn, party_id).emails]
    seen = {r[0] for r in conn.execute("SELECT sha256 FROM blobs WHERE data IS NOT NULL")}
    return _quoting(conn, addresses, seen), seen


def _quoting(conn: sqlite3.Connection, addresses: list[str], digests: set[str]) -> set[str]:
    needles = [a.encode() for a in addresses]
    where = blobfiles.directory(conn)
    found = set()
    for digest in digests:
        row = conn.execute("SELECT data, in_file FROM blobs WHERE sha256 = ? AND data IS NOT NULL",
                           (digest,)).fetchone()
        if row is None:
            continue
        data = row[0]
        if row[1]:
            data = (blobfiles.read(where, digest) if where is not None else None) or b""
        low = bytes(data).lower()
        if any(n in low for n in needles):
            found.add(digest)
    return found


def erase(conn: sqlite3.Connection, party_id: int, now: float,
          scanned: tuple[set[str], set[str]] | None = None) -> dict[str, Any]:
    """Erase in this transaction; `scanned` = quoting_contents() read beforehand (else every
    content is read here, under the write lock). Files of cleared contents are set aside: the
    caller wipes them after the commit (blobfiles.wipe_cleared)."""
    conn.execute("PRAGMA secure_delete = ON")
    party = parties.get(conn, party_id)
    if party.status == "erased":
        raise Conflict(f"party {party_id} is already erased")
    addresses = [a.lower() for a in party.emails]
    mapping = {a: placeholder(party_id, i) for i, a in enumerate(addresses)}
    # personal fields beside the chain that name the party: found before the sweep rewrites them
    pii_seqs = {r[0] for a in addresses for r in conn.execute(
        "SELECT seq FROM audit_pii WHERE salt IS NOT NULL AND instr(lower(data), ?) > 0", (a,))}
    pii_seqs |= {r[0] for r in conn.execute(
        "SELECT p.seq FROM audit_pii p JOIN audit_events e ON e.seq = p.seq"
        " WHERE p.salt IS NOT NULL AND e.party_id = ?", (party_id,))}
    thread_ids = [r[0] for r in conn.execute(
        "SELECT id FROM threads WHERE buyer_id = ? OR seller_id = ?", (party_id, party_id))]
    marks = ",".join("?" * len(thread_ids)) or "NULL"
    message_ids = [r[0] for r in conn.execute(
        f"SELECT id FROM messages WHERE thread_id IN ({marks}) OR sender_id = ? OR recipient_id = ?",
        (*thread_ids, party_id, party_id))]
    mmarks = ",".join("?" * len(message_ids)) or "NULL"
    digests = {r[0] for r in conn.execute(
        f"SELECT original_sha256 FROM messages WHERE id IN ({mmarks}) AND original_sha256 IS NOT NULL"
        f" UNION SELECT delivered_sha256 FROM messages WHERE id IN ({mmarks}) AND delivered_sha256 IS NOT NULL"
        f" UNION SELECT blob_sha256 FROM queue WHERE message_id IN ({mmarks})", (*message_ids,) * 3)}
    # any other stored content that quotes one of the addresses (read beforehand, outside the
    # write lock, by quoting_contents(); here only what was stored since)
    found, seen = scanned if scanned is not None else (set(), set())
    digests |= found
    current = {r[0] for r in conn.execute("SELECT sha256 FROM blobs WHERE data IS NOT NULL")}
    digests |= _quoting(conn, addresses, current - seen)
    dropped = conn.execute(
        f"UPDATE queue SET state = 'dropped', last_error = 'party erased' WHERE message_id IN ({mmarks})"
        " AND state IN ('queued', 'held')", message_ids).rowcount
    conn.execute(f"UPDATE messages SET subject = '[erased]' WHERE id IN ({mmarks})", message_ids)
    cleared = clear_blobs(conn, sorted(digests), now, "erasure")
    swept = _sweep(conn, mapping)
    conn.execute("UPDATE parties SET name = ?, status = 'erased' WHERE id = ?", (f"[erased party {party_id}]",
                                                                                 party_id))
    revoked = [r[0] for r in conn.execute(
        "SELECT local FROM aliases WHERE party_id = ? AND revoked_at IS NULL ORDER BY local", (party_id,))]
    for local, tid in conn.execute("SELECT local, thread_id FROM aliases WHERE party_id = ? AND revoked_at IS NULL"
                                   " ORDER BY local", (party_id,)).fetchall():
        conn.execute("UPDATE aliases SET revoked_at = ? WHERE local = ?", (now, local))
        audit.append(conn, "alias.revoked", reason="party.erased", thread_id=tid, party_id=party_id,
                     detail={"alias": local}, ts=now)
    conn.executemany("UPDATE audit_pii SET salt = NULL, erased_at = ? WHERE seq = ?", [(now, s) for s in pii_seqs])
    chained = [r[0] for a in addresses for r in conn.execute(
        "SELECT seq FROM audit_events WHERE instr(lower(detail || event || reason), ?) > 0", (a,))]
    summary = {"party": party_id, "addresses": len(addresses), "aliases_revoked": revoked,
               "threads": thread_ids, "messages": len(message_ids), "contents_cleared": cleared,
               "queue_dropped": dropped, "rows_rewritten": swept, "pii_events": sorted(pii_seqs),
               "chained_traces": sorted(set(chained))}
    audit.append(conn, "party.erased", reason="cli.party_erase", party_id=party_id, ts=now,
                 detail={k: v for k, v in summary.items() if k not in ("party", "chained_traces")})
    return summary


def file_traces(db_path: Path, needles: list[str]) -> list[str]:
    """Which of the database's files still contain any needle (any ASCII case)."""
    found = []
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-journal")):
        if path.exists():
            data = path.read_bytes().lower()
            if any(n.lower().encode() in data for n in needles):
                found.append(path.name)
    return found


def compact(conn: sqlite3.Connection, addresses: list[str], *, vacuum: bool = False) -> tuple[bool, list[str]]:
    """After erase() (on a connection outside any transaction): old versions of the rewritten pages
    live on in the WAL, so it is folded back and emptied. Freed cells and pages were zeroed by
    secure_delete, so no VACUUM (an exclusive lock for the whole rebuild: seconds of refused writes
    on a large store) unless one of `addresses` is still found in the files, or `vacuum` (asked
    again for an erased party: compact for real). Returns (every checkpoint completed, the files
    that still hold an address)."""
    db_path = next((Path(file) for _seq, name, file in conn.execute("PRAGMA database_list")
                    if name == "main" and file), None)
    first = last = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    traces = file_traces(db_path, addresses) if db_path is not None and addresses else []
    if traces or vacuum:
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("VACUUM")
        last = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        traces = file_traces(db_path, addresses) if db_path is not None and addresses else []
    return first[0] == 0 and last[0] == 0, traces
