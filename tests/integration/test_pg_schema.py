"""The PostgreSQL schema (migrations/postgresql/) is SQLite's (migrations/): same tables, columns,
types, defaults, keys, indexes and checks; and its migrator (relay/store/pg/migrate.py)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from relay.store.db import connect_sync
from relay.store.migrate import MIGRATIONS_DIR, available
from relay.store.migrate import migrate as sqlite_migrate
from relay.store.pg.migrate import PG_MIGRATIONS_DIR, current_version, migrate

TYPES = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text", "BLOB": "bytea"}
BASELINE = 15
#: The newest migration (the same number in both dialects: test_migration_numbers_run_on_together)
LATEST = max(m.version for m in available(PG_MIGRATIONS_DIR))


def _sqlite_schema(path: Path) -> dict[str, Any]:
    conn = connect_sync(path)
    sqlite_migrate(conn)
    out: dict[str, Any] = {}
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                         " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for t in tables:
        cols = []
        for _, name, typ, notnull, dflt, pk in conn.execute(f"PRAGMA table_info({t})"):
            cols.append((name, TYPES[typ], bool(notnull or pk), dflt))
        pk = tuple(r[1] for r in sorted((r for r in conn.execute(f"PRAGMA table_info({t})") if r[5]),
                                        key=lambda r: r[5]))
        indexes, uniques = {}, set()
        for _, iname, unique, origin, partial in conn.execute(f"PRAGMA index_list({t})"):
            icols = tuple(r[2] or "<expr>" for r in conn.execute(f"PRAGMA index_info({iname})"))
            if origin == "c":
                indexes[iname] = (bool(unique), bool(partial), icols)
            elif origin == "u":
                uniques.add(icols)
        fks = {(r[3], r[2], r[4]) for r in conn.execute(f"PRAGMA foreign_key_list({t})")}
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0]
        out[t] = {"columns": cols, "pk": pk, "indexes": indexes, "uniques": uniques, "fks": fks,
                  "checks": len(re.findall(r"\bCHECK\s*\(", sql))}
    conn.close()
    return out


async def _pg_schema(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, Any] = {}
        tables = [r[0] for r in await conn.fetch("SELECT table_name FROM information_schema.tables"
                                                 " WHERE table_schema = 'public' ORDER BY table_name")]
        for t in tables:
            cols = []
            for r in await conn.fetch("SELECT column_name, data_type, is_nullable, column_default"
                                      " FROM information_schema.columns WHERE table_schema = 'public'"
                                      " AND table_name = $1 ORDER BY ordinal_position", t):
                dflt = re.sub(r"::[a-z ]+$", "", r["column_default"]) if r["column_default"] else None
                cols.append((r["column_name"], r["data_type"], r["is_nullable"] == "NO", dflt))
            cons: dict[str, list[Any]] = {"p": [], "u": [], "f": [], "c": []}
            for r in await conn.fetch(
                    "SELECT c.contype::text AS contype, (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.conkey)"
                    " WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.conrelid"
                    " AND a.attnum = k.attnum) AS cols, f.relname AS ref,"
                    " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY"
                    " k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)"
                    " AS refcols FROM pg_constraint c LEFT JOIN pg_class f ON f.oid = c.confrelid"
                    " WHERE c.conrelid = $1::regclass", t):
                if r["contype"] in cons:
                    cons[r["contype"]].append(r)
            indexes = {}
            for r in await conn.fetch(
                    "SELECT i.relname, x.indisunique, x.indpred IS NOT NULL AS partial, x.indnkeyatts,"
                    " x.indexrelid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                    " WHERE x.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
                    " WHERE c.conindid = x.indexrelid)", t):
                icols = []
                for k in range(1, r["indnkeyatts"] + 1):
                    d = await conn.fetchval("SELECT pg_get_indexdef($1, $2, true)", r["indexrelid"], k)
                    icols.append(d if re.fullmatch(r"[a-z_][a-z0-9_]*", d) else "<expr>")
                indexes[r["relname"]] = (r["indisunique"], r["partial"], tuple(icols))
            out[t] = {"columns": cols, "pk": tuple(cons["p"][0]["cols"]) if cons["p"] else (),
                      "indexes": indexes, "uniques": {tuple(r["cols"]) for r in cons["u"]},
                      "fks": {(r["cols"][0], r["ref"], r["refcols"][0]) for r in cons["f"]},
                      "checks": len(cons["c"])}
        return out
    finally:
        await conn.close()


def test_postgresql_schema_is_sqlite_schema(tmp_path: Path, pg_store_url: str) -> None:
    lite = _sqlite_schema(tmp_path / "relay.db")
    pg = asyncio.run(_pg_schema(pg_store_url))
    assert sorted(pg) == sorted(lite), "the two schemas have different tables"
    for table in lite:
        for key in ("columns", "pk", "indexes", "uniques", "fks", "checks"):
            assert pg[table][key] == lite[table][key], f"{table}: {key} differ"


def test_migration_numbers_run_on_together() -> None:
    """After the baseline, every migration exists in both dialects under the same number and name."""
    lite = {m.version: m.name for m in available(MIGRATIONS_DIR)}
    pg = {m.version: m.name for m in available(PG_MIGRATIONS_DIR)}
    assert min(pg) == BASELINE and BASELINE in lite
    assert {v: n for v, n in lite.items() if v > BASELINE} == {v: n for v, n in pg.items() if v > BASELINE}


async def test_migrate_once_and_concurrently(pg_url: str) -> None:
    conns = [await asyncpg.connect(pg_url) for _ in range(3)]
    try:
        assert await current_version(conns[0]) == 0
        results = await asyncio.gather(*(migrate(c) for c in conns))
        pending = len(available(PG_MIGRATIONS_DIR))
        assert sorted(len(r) for r in results) == [0, 0, pending]  # one node applied them, the others waited
        assert await current_version(conns[0]) == LATEST
        assert await migrate(conns[0]) == []
        row = await conns[0].fetchrow("SELECT name, sha256 FROM schema_version WHERE version = $1", BASELINE)
        assert row["name"] == "baseline" and len(row["sha256"]) == 64
    finally:
        for c in conns:
            await c.close()


async def test_failed_migration_leaves_previous_version(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "0015_baseline.sql").write_text((PG_MIGRATIONS_DIR / "0015_baseline.sql").read_text())
    (tmp_path / "0016_broken.sql").write_text("CREATE TABLE half (x int);\nSELECT no_such_function();\n")
    conn = await asyncpg.connect(pg_url)
    try:
        try:
            await migrate(conn, tmp_path)
        except asyncpg.PostgresError:
            pass
        else:
            raise AssertionError("the broken migration was applied")
        assert await current_version(conn) == BASELINE
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        # the advisory lock was given back: another migrator is not blocked
        other = await asyncpg.connect(pg_url)
        try:
            done = await asyncio.wait_for(migrate(other), 5)  # the real ones after the baseline
            assert [m.version for m in done] == [m.version for m in available(PG_MIGRATIONS_DIR)][1:]
        finally:
            await other.close()
    finally:
        await conn.close()


def test_sqlite_store_unaffected_by_postgresql_directory(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    assert max(m.version for m in sqlite_migrate(conn)) == LATEST
