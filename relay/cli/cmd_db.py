"""relay db check [--json] — can this node reach its store, and is the store's schema current?
relay db copy --to postgresql://… [--from sqlite:///PATH] [--password-file F] [--json] — a SQLite
store, contents included, into an empty PostgreSQL database (relay/store/pg/copy.py).

Reads: store.url, store.password_file (SQLite at <relay.state_dir>/relay.db when absent). Changes
nothing (no migration, no file created). Prints the backend, where it is (never the password), the
schema version found and the one this relay expects, and how many deliveries are 'sending' under
a lease that has run out (a node that died mid-delivery; any node's sweeper takes them back).
Exit 0 when the store answers at the expected version, 1 otherwise, 78 for a bad store.url.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from relay.cli.common import CliError, add_json, emit, group, settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dsub = group(sub, "db", "the store")
    c = dsub.add_parser("check", help="connectivity, schema version and expired delivery leases of the store")
    add_json(c)
    c.set_defaults(handler=check)
    cp = dsub.add_parser("copy", help="copy a SQLite store, contents included, into an empty PostgreSQL database")
    cp.add_argument("--to", required=True, metavar="postgresql://USER@HOST:PORT/DB",
                    help="the target database (migrated, then filled in one transaction; must be empty)")
    cp.add_argument("--from", dest="source", metavar="sqlite:///PATH",
                    help="the SQLite store to copy (default: this node's store)")
    cp.add_argument("--password-file", type=Path, help="the target's password (else in --to, PGPASSWORD, ~/.pgpass)")
    add_json(cp)
    cp.set_defaults(handler=copy)


def check(args: argparse.Namespace) -> int:
    from relay.errors import EX_CONFIG
    from relay.store.url import SqliteTarget, StoreUrlError

    try:
        target = settings(args).store_target
    except StoreUrlError as exc:
        raise CliError(str(exc), EX_CONFIG) from None
    now = time.time()
    if isinstance(target, SqliteTarget):
        out = _check_sqlite(target.path, now)
    else:
        import asyncio

        out = asyncio.run(_check_pg(target, now))
    out = {"backend": target.backend, "store": target.safe_url(), **out}
    out["ok"] = out["connected"] and out["schema_version"] == out["expected_version"]
    if not out["connected"]:
        text = f"{out['store']}: cannot connect: {out['error']}"
    else:
        text = (f"{out['store']} ({target.backend}): schema {out['schema_version']}"
                f" (expected {out['expected_version']}), expired leases {out['expired_leases']}")
    if getattr(args, "json", False):
        emit(args, out)
    elif out["ok"]:
        print(text)
    if not out["ok"]:
        if not getattr(args, "json", False):
            print(f"relay: {text}", file=sys.stderr)
        return 1
    return 0


def _check_sqlite(path: Any, now: float) -> dict[str, Any]:
    import sqlite3

    from relay.store import queue
    from relay.store.migrate import available

    expected = max(m.version for m in available())
    if not path.exists():
        return {"connected": False, "error": "no database file yet (`relay serve` creates it)",
                "schema_version": None, "expected_version": expected, "expired_leases": None}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return {"connected": False, "error": str(exc), "schema_version": None, "expected_version": expected,
                "expired_leases": None}
    try:
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        leases = queue.expired_leases(conn, now) if version else None
    except sqlite3.Error as exc:
        return {"connected": False, "error": str(exc), "schema_version": None, "expected_version": expected,
                "expired_leases": None}
    finally:
        conn.close()
    return {"connected": True, "schema_version": version, "expected_version": expected, "expired_leases": leases}


async def _check_pg(target: Any, now: float) -> dict[str, Any]:
    from relay.store.db import StoreUnavailable
    from relay.store.migrate import available
    from relay.store.pg import queue
    from relay.store.pg.db import PgDatabase
    from relay.store.pg.migrate import PG_MIGRATIONS_DIR, current_version

    expected = max(m.version for m in available(PG_MIGRATIONS_DIR))
    db = PgDatabase(target, min_size=1, max_size=1, connect_timeout=10)
    try:
        await db.open()
    except StoreUnavailable as exc:
        return {"connected": False, "error": str(exc), "schema_version": None, "expected_version": expected,
                "expired_leases": None}
    try:
        async with db.connection() as conn:
            version = await current_version(conn)
            leases = await queue.expired_leases(conn, now) if version else None
            server = await conn.fetchval("SHOW server_version")
    finally:
        await db.close()
    return {"connected": True, "server_version": server, "schema_version": version, "expected_version": expected,
            "expired_leases": leases}


def copy(args: argparse.Namespace) -> int:
    """Exit 0: copied and the chain verified; 1: refused or failed (nothing written); 78: a bad URL."""
    import asyncio

    from relay.errors import EX_CONFIG
    from relay.store.url import PgTarget, SqliteTarget, StoreUrlError, parse

    try:
        target = parse(args.to, Path("."), args.password_file)
        source = parse(args.source, Path(".")) if args.source else settings(args).store_target
    except StoreUrlError as exc:
        raise CliError(str(exc).replace("store.url", "--to/--from"), EX_CONFIG) from None
    if not isinstance(target, PgTarget):
        raise CliError("--to: name a PostgreSQL database (postgresql://user@host:5432/dbname)", EX_CONFIG)
    if not isinstance(source, SqliteTarget):
        raise CliError("--from: the store to copy is not a SQLite store (name one with --from sqlite:///PATH)",
                       EX_CONFIG)
    out = asyncio.run(_copy(source.path, target))
    out = {"from": source.safe_url(), "to": target.safe_url(), **out}
    if getattr(args, "json", False):
        emit(args, out)
    else:
        print(f"copied {out['from']} to {out['to']} (schema {out['schema_version']}):"
              f" {out['contents']} contents ({out['content_files']} from files, {out['content_bytes']} bytes)")
        for table, n in out["tables"].items():
            print(f"  {table:<20} {n:>10}")
        audit = out["audit"]
        print(f"audit chain verified in PostgreSQL: {audit['count']} events, head {audit['head_seq']}")
    return 0


async def _copy(source: Path, target: Any) -> dict[str, Any]:
    import asyncpg

    from relay.store.db import StoreUnavailable
    from relay.store.pg.copy import CopyRefused, copy_sqlite_to_pg
    from relay.store.pg.db import CONNECTION_ERRORS, PgDatabase

    failures = (asyncpg.PostgresError, *[e for e in CONNECTION_ERRORS if issubclass(e, Exception)])
    db = PgDatabase(target, min_size=1, max_size=1, command_timeout=3600)
    try:
        await db.open()
    except StoreUnavailable as exc:
        raise CliError(str(exc)) from None
    try:
        report = await copy_sqlite_to_pg(source, db)
    except CopyRefused as exc:
        raise CliError(f"db copy refused: {exc}") from None
    except StoreUnavailable as exc:
        raise CliError(f"db copy failed, nothing was written: {exc}") from None
    except failures as exc:
        detail = str(exc).replace(target.password, "***") if target.password else str(exc)
        raise CliError(f"db copy failed, nothing was written: {type(exc).__name__}: {detail}") from None
    finally:
        await db.close()
    assert report.audit is not None
    return {"schema_version": report.schema_version, "tables": report.counts, "contents": report.contents,
            "content_files": report.files, "content_bytes": report.content_bytes, "audit": report.audit.as_dict()}
