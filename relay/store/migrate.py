"""Plain SQL migrations: migrations/NNNN_name.sql, applied in order, recorded in schema_version.

Each file runs in its own transaction together with its schema_version row, so a
failed migration leaves the database at the previous version.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS_DIR = Path(os.environ.get("RELAY_MIGRATIONS", Path(__file__).resolve().parents[2] / "migrations"))
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for p in sorted(directory.glob("*.sql")):
        m = _NAME.match(p.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), p))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return found


def applied(conn: sqlite3.Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_version")}


def migrate(conn: sqlite3.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration; return the ones applied now."""
    done = applied(conn)
    new = []
    for mig in available(directory):
        if mig.version in done:
            continue
        sql = mig.path.read_text("utf-8")
        digest = hashlib.sha256(sql.encode()).hexdigest()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, name, sha256, applied_at) VALUES (?, ?, ?, ?)",
                (mig.version, mig.name, digest, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        new.append(mig)
    return new


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement knows quoting)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf)
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        raise ValueError("migration ends with an incomplete statement")
    return out


def migrate_file(path: Path | str) -> list[str]:
    """Bring the database file at `path` up to date (creating it); the migrations applied, as NNNN_name."""
    from relay.store.db import connect_sync  # db's own imports stay free of the migrator

    conn = connect_sync(path)
    try:
        return [f"{m.version:04d}_{m.name}" for m in migrate(conn)]
    finally:
        conn.close()
