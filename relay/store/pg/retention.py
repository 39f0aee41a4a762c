"""Retention and erasure on PostgreSQL: relay/store/retention.py and relay/store/erasure.py, async.

Clearing a content sets blobs.data to NULL (with when and why) and deletes its blob_chunks pieces;
erasure rewrites every text column that names the party (found in information_schema, so tables
added later are covered). UPDATE and DELETE leave the old row versions in the table's heap until
VACUUM, and in the WAL, its archives and base backups: docs/postgresql.md ("Erasure and
retention") says what an operator has to run and keep short for the bytes to be gone.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from relay.store.erasure import SKIP_TABLES, placeholder
from relay.store.errors import Conflict
from relay.store.pg import audit, messages, parties
from relay.store.pg.db import PgRepo
from relay.store.retention import BATCH, BATCH_INLINE_BYTES

_EXPIRED = """
SELECT b.sha256, b.size, b.in_file FROM blobs b
WHERE b.data IS NOT NULL
  AND b.sha256 IN (SELECT original_sha256 FROM messages WHERE received_at < $1
                   UNION SELECT delivered_sha256 FROM messages WHERE received_at < $1
                   UNION SELECT blob_sha256 FROM queue WHERE created_at < $1)
  AND b.sha256 NOT IN (SELECT original_sha256 FROM messages
                       WHERE received_at >= $1 AND original_sha256 IS NOT NULL
                       UNION SELECT delivered_sha256 FROM messages
                       WHERE received_at >= $1 AND delivered_sha256 IS NOT NULL
                       UNION SELECT blob_sha256 FROM queue
                       WHERE created_at >= $1 OR state IN ('queued', 'sending', 'held'))
  AND NOT EXISTS (SELECT 1 FROM blobs d WHERE d.base = b.sha256 AND d.data IS NOT NULL)
"""


async def clear_blobs(conn: asyncpg.Connection, digests: list[str], now: float, reason: str) -> int:
    """Drop these contents (and those derived from them): data NULL, pieces deleted."""
    if not digests:
        return 0
    derived = [r[0] for r in await conn.fetch("SELECT sha256 FROM blobs WHERE base = ANY($1::text[])"
                                              " AND data IS NOT NULL", digests)]
    digests = list(dict.fromkeys([*digests, *derived]))
    cleared = [r[0] for r in await conn.fetch(
        "UPDATE blobs SET data = NULL, cleared_at = $1, cleared_reason = $2 WHERE sha256 = ANY($3::text[])"
        " AND data IS NOT NULL RETURNING sha256", now, reason, digests)]
    await conn.execute("DELETE FROM blob_chunks WHERE digest = ANY($1::text[])", digests)
    return len(cleared)


async def expired(conn: asyncpg.Connection, cutoff: float, limit: int = BATCH) -> list[str]:
    rows = await conn.fetch(_EXPIRED + " LIMIT $2", cutoff, limit)
    batch: list[str] = []
    inline = 0
    for digest, size, in_file in rows:
        if batch and not in_file and inline + size > BATCH_INLINE_BYTES:
            break
        batch.append(digest)
        inline += 0 if in_file else size
    return batch


async def clear_expired(conn: asyncpg.Connection, cutoff: float, now: float, limit: int = BATCH,
                        candidates: list[str] | None = None) -> tuple[int, int]:
    if candidates is None:
        rows = await conn.fetch(_EXPIRED + " LIMIT $2 FOR UPDATE OF b", cutoff, limit)
    elif not candidates:
        return 0, 0
    else:  # still expired? (a new message may have brought the same content meanwhile)
        rows = await conn.fetch(_EXPIRED + " AND b.sha256 = ANY($2::text[]) FOR UPDATE OF b", cutoff, candidates)
    cleared = await clear_blobs(conn, [r[0] for r in rows], now, "retention")
    size = sum(r[1] for r in rows)
    if cleared:
        await audit.append(conn, "retention.cleared", reason="retention.window", ts=now,
                           detail={"cutoff": cutoff, "blobs": cleared, "bytes": size})
    return cleared, size


class PgRetention(PgRepo):
    async def wipe_cleared(self) -> int:
        """No content files on PostgreSQL: clearing deleted the pieces in its own transaction."""
        return 0

    async def clear_blobs(self, digests: list[str], now: float, reason: str) -> int:
        async with self.db.transaction() as conn:
            return await clear_blobs(conn, digests, now, reason)

    async def expired(self, cutoff: float, limit: int = BATCH) -> list[str]:
        async with self.db.connection() as conn:
            return await expired(conn, cutoff, limit)

    async def clear_expired(self, cutoff: float, now: float, limit: int = BATCH,
                            candidates: list[str] | None = None) -> tuple[int, int]:
        async with self.db.transaction() as conn:
            return await clear_expired(conn, cutoff, now, limit, candidates)


# -- erasure ----------------------------------------------------------------------------------------
async def text_columns(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Every text column of the schema's tables but the chain's, the contents' and the versions'."""
    return [(r[0], r[1]) for r in await conn.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        " AND c.data_type IN ('text', 'character varying', 'character')"
        " ORDER BY c.table_name, c.ordinal_position") if r[0] not in SKIP_TABLES]


async def _sweep(conn: asyncpg.Connection, mapping: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, col in await text_columns(conn):
        for address, new in mapping.items():
            pattern = re.compile(re.escape(address), re.I)
            values = [r[0] for r in await conn.fetch(
                f'SELECT DISTINCT "{col}" FROM "{table}" WHERE strpos(lower("{col}"), $1) > 0', address)]
            for old in values:
                status = await conn.execute(f'UPDATE "{table}" SET "{col}" = $1 WHERE "{col}" = $2',
                                            pattern.sub(new, old), old)
                counts[table] = counts.get(table, 0) + int(status.split()[-1])
    return counts


async def _quoting(conn: asyncpg.Connection, addresses: list[str], digests: set[str]) -> set[str]:
    needles = [a.encode() for a in addresses]
    found = set()
    for digest in digests:
        data = await messages.get_blob(conn, digest)
        if data is not None and any(n in data.lower() for n in needles):
            found.add(digest)
    return found


async def quoting_contents(conn: asyncpg.Connection, party_id: int) -> tuple[set[str], set[str]]:
    addresses = [a.lower() for a in (await parties.get(conn, party_id)).emails]
    seen = {r[0] for r in await conn.fetch("SELECT sha256 FROM blobs WHERE data IS NOT NULL")}
    return await _quoting(conn, addresses, seen), seen


async def erase(conn: asyncpg.Connection, party_id: int, now: float,
                scanned: tuple[set[str], set[str]] | None = None) -> dict[str, Any]:
    """relay/store/erasure.py's erase in this transaction; the party's row is locked first (two
    operators erasing at once: the second finds it erased)."""
    await conn.execute("SELECT id FROM parties WHERE id = $1 FOR UPDATE", party_id)
    party = await parties.get(conn, party_id)
    if party.status == "erased":
        raise Conflict(f"party {party_id} is already erased")
    addresses = [a.lower() for a in party.emails]
    mapping = {a: placeholder(party_id, i) for i, a in enumerate(addresses)}
    pii_seqs = {r[0] for a in addresses for r in await conn.fetch(
        "SELECT seq FROM audit_pii WHERE salt IS NOT NULL AND strpos(lower(data), $1) > 0", a)}
    pii_seqs |= {r[0] for r in await conn.fetch(
        "SELECT p.seq FROM audit_pii p JOIN audit_events e ON e.seq = p.seq"
        " WHERE p.salt IS NOT NULL AND e.party_id = $1", party_id)}
    thread_ids = [r[0] for r in await conn.fetch(
        "SELECT id FROM threads WHERE buyer_id = $1 OR seller_id = $1 ORDER BY id", party_id)]
    message_ids = [r[0] for r in await conn.fetch(
        "SELECT id FROM messages WHERE thread_id = ANY($1::bigint[]) OR sender_id = $2 OR recipient_id = $2"
        " ORDER BY id", thread_ids, party_id)]
    digests = {r[0] for r in await conn.fetch(
        "SELECT original_sha256 FROM messages WHERE id = ANY($1::bigint[]) AND original_sha256 IS NOT NULL"
        " UNION SELECT delivered_sha256 FROM messages WHERE id = ANY($1::bigint[]) AND delivered_sha256 IS NOT NULL"
        " UNION SELECT blob_sha256 FROM queue WHERE message_id = ANY($1::bigint[])", message_ids)}
    found, seen = scanned if scanned is not None else (set(), set())
    digests |= found
    current = {r[0] for r in await conn.fetch("SELECT sha256 FROM blobs WHERE data IS NOT NULL")}
    digests |= await _quoting(conn, addresses, current - seen)
    status = await conn.execute("UPDATE queue SET state = 'dropped', last_error = 'party erased'"
                                " WHERE message_id = ANY($1::bigint[]) AND state IN ('queued', 'held')", message_ids)
    dropped = int(status.split()[-1])
    await conn.execute("UPDATE messages SET subject = '[erased]' WHERE id = ANY($1::bigint[])", message_ids)
    cleared = await clear_blobs(conn, sorted(digests), now, "erasure")
    swept = await _sweep(conn, mapping)
    await conn.execute("UPDATE parties SET name = $1, status = 'erased' WHERE id = $2",
                       f"[erased party {party_id}]", party_id)
    live = await conn.fetch("SELECT local, thread_id FROM aliases WHERE party_id = $1 AND revoked_at IS NULL"
                            " ORDER BY local", party_id)
    revoked = [r[0] for r in live]
    for local, tid in live:
        await conn.execute("UPDATE aliases SET revoked_at = $1 WHERE local = $2", now, local)
        await audit.append(conn, "alias.revoked", reason="party.erased", thread_id=tid, party_id=party_id,
                           detail={"alias": local}, ts=now)
    await conn.execute("UPDATE audit_pii SET salt = NULL, erased_at = $1 WHERE seq = ANY($2::bigint[])",
                       now, sorted(pii_seqs))
    chained = [r[0] for a in addresses for r in await conn.fetch(
        "SELECT seq FROM audit_events WHERE strpos(lower(detail || event || reason), $1) > 0", a)]
    summary = {"party": party_id, "addresses": len(addresses), "aliases_revoked": revoked,
               "threads": thread_ids, "messages": len(message_ids), "contents_cleared": cleared,
               "queue_dropped": dropped, "rows_rewritten": swept, "pii_events": sorted(pii_seqs),
               "chained_traces": sorted(set(chained))}
    await audit.append(conn, "party.erased", reason="cli.party_erase", party_id=party_id, ts=now,
                       detail={k: v for k, v in summary.items() if k not in ("party", "chained_traces")})
    return summary


class PgErasure(PgRepo):
    async def quoting_contents(self, party_id: int) -> tuple[set[str], set[str]]:
        async with self.db.snapshot() as conn:
            return await quoting_contents(conn, party_id)

    async def erase(self, party_id: int, now: float,
                    scanned: tuple[set[str], set[str]] | None = None) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            return await erase(conn, party_id, now, scanned)

    async def compact(self, addresses: list[str], *, vacuum: bool = False) -> tuple[bool, list[str]]:
        """Nothing to do here: (True, []). On PostgreSQL the old row versions that erase() left stay
        in the tables' files (and in the WAL, archives and backups) until `VACUUM (FULL)` or
        pg_repack rewrites them, which takes an exclusive lock on a shared database: that is the
        operator's step after an erasure request (docs/postgresql.md, "Erasure and retention"),
        not a node's. `addresses` and `vacuum` are not looked at."""
        return True, []
