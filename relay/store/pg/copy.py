"""`relay db copy`: a SQLite store, contents included, into an empty PostgreSQL database (issue 23).

Reads no config (the caller names both ends). The target is migrated first (pg/migrate.py, under
its advisory lock); then ONE transaction on the target: every relay table is locked (SHARE ROW
EXCLUSIVE: nothing else writes meanwhile, readers go on), found empty — else CopyRefused and
nothing is written —, filled with the rows of every SQLite table in dependency order (foreign keys
first, from PRAGMA foreign_key_list; blobs before the blobs derived from them), its identity
sequences set past the copied ids, and the audit chain walked (audit_verify's walk over pg's
PgSource, as PgStore.audit.verify does, but on this transaction's connection): a broken chain
rolls everything back. All or nothing.

Contents: a blobs row is written as PgStore's put_blob writes it (pg/messages.py): below
CHUNK_BYTES inline in blobs.data; from CHUNK_BYTES on blobs.data = '' with in_file = 1 and the
bytes in blob_chunks, pieces of CHUNK_BYTES from seq 0 — whether SQLite kept them in a content file
beside the database (blobfiles) or inline (rows from before migration 0008); a head on a base
(base, base_from) and a cleared content (data NULL) are copied as they are. Every content read
is checked against its sha256 and size: a missing or changed content file stops the copy.

The SQLite file is read in one read transaction (one state of the store, its WAL included) on a
read-only connection; stop the relay first, as retention could remove a content file meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from relay.store import blobfiles
from relay.store.audit_verify import Result, verify_source
from relay.store.pg.audit_verify import PgSource
from relay.store.pg.db import PgDatabase
from relay.store.pg.messages import CHUNK_BYTES
from relay.store.pg.migrate import current_version

#: Tables that are not copied: each side has its own migration history.
NOT_COPIED = frozenset({"schema_version"})
#: Rows per COPY batch (contents: at most ~BATCH_BYTES of them at a time).
BATCH_ROWS = 2000
BATCH_BYTES = 16 * 1024 * 1024


class CopyRefused(Exception):
    """The copy was not made (nothing written); the text says why, never a password."""


@dataclass
class CopyReport:
    counts: dict[str, int] = field(default_factory=dict)  # table → rows in PostgreSQL after the copy
    contents: int = 0  # contents copied (not cleared)
    files: int = 0  # of them read from content files
    content_bytes: int = 0
    schema_version: int = 0
    audit: Result | None = None


def _sqlite_tables(src: sqlite3.Connection) -> list[str]:
    names = [r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return [n for n in names if n not in NOT_COPIED]


def dependency_order(src: sqlite3.Connection, tables: list[str]) -> list[str]:
    """`tables` with every table after those its foreign keys name (self-references aside)."""
    deps = {t: {r[2] for r in src.execute(f'PRAGMA foreign_key_list("{t}")')} - {t} for t in tables}
    out: list[str] = []
    pending = sorted(tables)
    while pending:
        ready = [t for t in pending if deps[t] <= set(out)]
        if not ready:
            raise CopyRefused(f"cyclic foreign keys among {', '.join(pending)}")
        out += ready
        pending = [t for t in pending if t not in ready]
    return out


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]


def _batches(cur: sqlite3.Cursor, rows: int = BATCH_ROWS) -> Iterator[list[tuple[Any, ...]]]:
    while batch := cur.fetchmany(rows):
        yield batch


async def _pg_tables(conn: asyncpg.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " ORDER BY table_name, ordinal_position"):
        out.setdefault(table, []).append(column)
    return out


class _Blobs:
    """The blobs table (and blob_chunks) written as PgStore writes them."""

    COLS = ("sha256", "size", "data", "cleared_at", "cleared_reason", "in_file", "wire", "base", "base_from")

    def __init__(self, src: sqlite3.Connection, where: Path | None, report: CopyReport) -> None:
        self.src, self.where, self.report = src, where, report

    def content(self, digest: str, size: int, in_file: int, data: bytes | None) -> bytes:
        if in_file:
            content = blobfiles.read(self.where, digest) if self.where is not None else None
            if content is None:
                raise CopyRefused(f"content {digest}: its file is missing from {self.where}")
            self.report.files += 1
        else:
            content = bytes(data or b"")
        if len(content) != size or hashlib.sha256(content).hexdigest() != digest:
            raise CopyRefused(f"content {digest}: the stored bytes do not match its sha256 and size"
                              f" ({'file' if in_file else 'row'})")
        return content

    def rows(self, where_sql: str, args: tuple[Any, ...] = ()) -> Iterator[tuple[list[tuple[Any, ...]],
                                                                                  list[tuple[str, int, bytes]]]]:
        """Batches of (blobs rows, blob_chunks rows) for the SQLite rows matching `where_sql`."""
        cur = self.src.execute(f"SELECT {', '.join(self.COLS)} FROM blobs WHERE {where_sql} ORDER BY sha256", args)
        rows: list[tuple[Any, ...]] = []
        chunks: list[tuple[str, int, bytes]] = []
        held = 0
        for digest, size, data, cleared_at, cleared_reason, in_file, wire, base, base_from in cur:
            if data is None or base is not None:  # cleared, or a head on its base: as it is
                row = (digest, size, data, cleared_at, cleared_reason, in_file if data is None else 0, wire, base,
                       base_from)
                held += len(data or b"")
            else:
                content = self.content(digest, size, in_file, data)
                self.report.contents += 1
                self.report.content_bytes += size
                held += size
                if size >= CHUNK_BYTES:
                    row = (digest, size, b"", cleared_at, cleared_reason, 1, wire, None, None)
                    view = memoryview(content)
                    chunks += [(digest, i, bytes(view[off:off + CHUNK_BYTES]))
                               for i, off in enumerate(range(0, size, CHUNK_BYTES))]
                else:
                    row = (digest, size, content, cleared_at, cleared_reason, 0, wire, None, None)
            if base is not None and data is not None:
                self.report.contents += 1
                self.report.content_bytes += size
            rows.append(row)
            if len(rows) >= BATCH_ROWS or held >= BATCH_BYTES:
                yield rows, chunks
                rows, chunks, held = [], [], 0
        if rows:
            yield rows, chunks


async def copy_sqlite_to_pg(source: Path, db: PgDatabase) -> CopyReport:
    """Copy the SQLite store at `source` into `db` (opened; migrated here). CopyRefused: nothing written."""
    if not await asyncio.to_thread(source.exists):
        raise CopyRefused(f"{source}: no such SQLite store")
    report = CopyReport()
    uri = f"{(await asyncio.to_thread(source.resolve)).as_uri()}?mode=ro"
    await db.migrate()
    try:
        src = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise CopyRefused(f"{source}: cannot open the SQLite store: {exc}") from None
    try:
        src.execute("BEGIN")  # one read transaction: one state of the store
        sqlite_version = src.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        async with db.transaction() as conn:
            pg_version = await current_version(conn)
            if sqlite_version != pg_version:
                raise CopyRefused(f"schema versions differ: SQLite store at {sqlite_version}, PostgreSQL at"
                                  f" {pg_version} (start the relay on the SQLite store once to migrate it)")
            report.schema_version = pg_version
            tables = _sqlite_tables(src)
            pg_tables = await _pg_tables(conn)
            missing = sorted(set(tables) ^ (set(pg_tables) - NOT_COPIED))
            if missing:
                raise CopyRefused(f"the schemas differ: tables {', '.join(missing)} are not in both stores")
            for t in tables:
                if _columns(src, t) != pg_tables[t]:
                    raise CopyRefused(f"the schemas differ: table {t} has other columns in PostgreSQL")
            order = dependency_order(src, tables)
            await conn.execute(f"LOCK TABLE {', '.join(order)} IN SHARE ROW EXCLUSIVE MODE")
            full = [t for t in order if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t})")]
            if full:
                raise CopyRefused(f"the PostgreSQL database is not empty (rows in {', '.join(full)}):"
                                  " `relay db copy` only fills an empty one")
            where = blobfiles.directory_of(source)
            for table in order:
                if table == "blob_chunks":
                    continue  # written with their blobs
                if table == "blobs":
                    await _copy_blobs(conn, src, where, report)
                else:
                    cols = _columns(src, table)
                    cur = src.execute(f"SELECT {', '.join(cols)} FROM {table}")
                    for batch in _batches(cur):
                        await conn.copy_records_to_table(table, columns=cols, records=batch)
            if src.execute("SELECT EXISTS (SELECT 1 FROM blob_chunks)").fetchone()[0]:
                raise CopyRefused("the SQLite store has rows in blob_chunks (SQLite never writes them)")
            await _set_identities(conn)
            for table in order:
                report.counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            loop = asyncio.get_running_loop()
            report.audit = await asyncio.to_thread(verify_source, PgSource(conn, loop), 5000)
            if not report.audit.ok:
                problem = report.audit.problem
                raise CopyRefused("the audit chain does not verify in PostgreSQL"
                                  f"{f': {problem.message}' if problem else ''} (nothing was written)")
    except sqlite3.Error as exc:
        raise CopyRefused(f"{source}: reading the SQLite store failed: {exc} (nothing was written)") from None
    finally:
        src.close()
    return report


async def _copy_blobs(conn: asyncpg.Connection, src: sqlite3.Connection, where: Path | None,
                      report: CopyReport) -> None:
    blobs = _Blobs(src, where, report)
    done: set[str] = set()

    async def write(where_sql: str, args: tuple[Any, ...] = ()) -> int:
        n = 0
        for rows, chunks in blobs.rows(where_sql, args):
            await conn.copy_records_to_table("blobs", columns=_Blobs.COLS, records=rows)
            if chunks:
                await conn.copy_records_to_table("blob_chunks", columns=("digest", "seq", "data"), records=chunks)
            done.update(r[0] for r in rows)
            n += len(rows)
        return n

    await write("base IS NULL")
    # heads on a base, once their base is there (a base is never derived itself: put_blob; looped anyway)
    pending = [r[0] for r in src.execute("SELECT sha256 FROM blobs WHERE base IS NOT NULL")]
    while pending:
        ready = [d for d in pending
                 if src.execute("SELECT base FROM blobs WHERE sha256 = ?", (d,)).fetchone()[0] in done]
        if not ready:
            raise CopyRefused("blobs whose base is missing: " + ", ".join(pending[:3]))
        for i in range(0, len(ready), 500):
            part = ready[i:i + 500]
            await write(f"sha256 IN ({', '.join('?' * len(part))})", tuple(part))
        pending = [d for d in pending if d not in done]


async def _set_identities(conn: asyncpg.Connection) -> None:
    """Every identity column's sequence past the largest copied value (the next row gets max + 1)."""
    for table, column in await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({column}), 1), MAX({column}) IS NOT NULL)"
            f" FROM {table}", table, column)
