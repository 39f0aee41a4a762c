"""PostgreSQL migrations: migrations/postgresql/NNNN_name.sql, applied in order, recorded in
schema_version (the same table as SQLite's, relay/store/migrate.py).

The numbers are SQLite's: 0015_baseline.sql gives at once the schema SQLite's 0001–0015 build step
by step, and a later change is NNNN in both directories. Every node runs this at start; a
session-level advisory lock makes a second node wait for the first and then find nothing to do.
Each file runs in its own transaction with its schema_version row (PostgreSQL's DDL is
transactional), so a failed migration leaves the previous version.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from relay.store.migrate import MIGRATIONS_DIR, Migration, available

PG_MIGRATIONS_DIR = MIGRATIONS_DIR / "postgresql"
#: pg_advisory_lock key of the migrator ("relaymig" as a 64-bit number)
LOCK_KEY = int.from_bytes(b"relaymig", "big") - (1 << 63)

_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, name TEXT NOT NULL,"
                  " sha256 TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")


async def applied(conn: Any) -> set[int]:
    """The versions recorded (none when schema_version does not exist yet); creates nothing."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return set()
    return {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_version")}


async def current_version(conn: Any) -> int:
    """The highest version applied (0: none)."""
    return max(await applied(conn), default=0)


async def migrate(conn: Any, directory: Path = PG_MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration on `conn` (an asyncpg connection, not in a transaction);
    return the ones applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_VERSION_TABLE)
        done = await applied(conn)
        new = []
        for mig in available(directory):
            if mig.version in done:
                continue
            sql = mig.path.read_text("utf-8")
            digest = hashlib.sha256(sql.encode()).hexdigest()
            async with conn.transaction():
                await conn.execute(sql)  # no arguments: the simple protocol runs the whole script
                await conn.execute("INSERT INTO schema_version (version, name, sha256, applied_at)"
                                   " VALUES ($1, $2, $3, $4)", mig.version, mig.name, digest, time.time())
            new.append(mig)
        return new
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
