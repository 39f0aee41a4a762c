"""Only relay/store/ holds connections or writes SQL: everything else calls the store's async
repositories (relay/store/interface.py), so that another backend can stand behind them.

The check reads the source (AST) of every module of relay/ outside relay/store/ and looks for: an
import of sqlite3, aiosqlite or relay.store.db / relay.store.migrate's connection helpers; a call of
`.execute(`, `.executemany(` or `.executescript(`; a closure handed to a Database (`….write(lambda …)`,
`….read(…)`, `….read_in_thread(…)` on anything named db); a parameter or value annotated
sqlite3.Connection. Exceptions are listed with their reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parents[2] / "relay"

#: Directories (relative to relay/) not checked, and why.
EXEMPT = {
    "store": "the store itself",
}
#: Files (relative to relay/) not checked, and why.
EXEMPT_FILES = {
    "cli/cmd_db.py": "`relay db check` asks whether either backend can be reached at all and which schema version"
                     " it holds, changing nothing (no migration, no file created): it opens a read-only connection"
                     " itself, where opening a Store would migrate and create",
}
FORBIDDEN_IMPORTS = {"sqlite3", "aiosqlite", "relay.store.db"}
SQL_CALLS = {"execute", "executemany", "executescript"}
DB_CALLS = {"write", "read", "read_in_thread"}


def _checked() -> list[Path]:
    return sorted(p for p in RELAY.rglob("*.py") if p.relative_to(RELAY).parts[0] not in EXEMPT
                  and p.relative_to(RELAY).as_posix() not in EXEMPT_FILES)


def _named_db(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "db") or (isinstance(node, ast.Attribute) and node.attr == "db")


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_IMPORTS
                      or a.name in FORBIDDEN_IMPORTS]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module in FORBIDDEN_IMPORTS or node.module.split(".")[0] in FORBIDDEN_IMPORTS:
                found.append(f"{where}: from {node.module} import …")
            elif node.module == "relay.store.migrate" and any(a.name != "migrate_file" for a in node.names):
                found.append(f"{where}: from relay.store.migrate import a connection's migrator")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SQL_CALLS:
                found.append(f"{where}: .{node.func.attr}(…)")
            elif node.func.attr in DB_CALLS and _named_db(node.func.value):
                found.append(f"{where}: db.{node.func.attr}(…)")
            elif node.func.attr in DB_CALLS and any(isinstance(a, ast.Lambda) and a.args.args
                                                    and a.args.args[0].arg in ("conn", "c") for a in node.args):
                found.append(f"{where}: .{node.func.attr}(lambda conn: …)")
        elif isinstance(node, ast.Attribute) and node.attr == "Connection" and isinstance(node.value, ast.Name) \
                and node.value.id == "sqlite3":
            found.append(f"{where}: sqlite3.Connection")
    return found


@pytest.mark.parametrize("path", _checked(), ids=lambda p: str(p.relative_to(RELAY)))
def test_no_connection_or_sql_outside_the_store(path: Path) -> None:
    assert violations(path.read_text()) == [], f"{path.relative_to(RELAY)} reaches past the store's interface"


@pytest.mark.parametrize(("source", "caught"), [
    ("import sqlite3", True),
    ("from relay.store.db import Database", True),
    ("from relay.store.db import StoreUnavailable", True),
    ("import aiosqlite", True),
    ("conn.execute('SELECT 1')", True),
    ("await ctx.db.write(lambda conn: f(conn))", True),
    ("await self.relay.db.read_in_thread(f)", True),
    ("await db.read(load)", True),
    ("await thing.write(lambda conn: audit.append(conn, 'x'))", True),
    ("def f(conn: 'sqlite3.Connection') -> None: ...\nx: sqlite3.Connection", True),
    ("from relay.store.migrate import migrate", True),
    ("from relay.store.migrate import migrate_file", False),
    ("await ctx.store.queue.claim_due(now, 1, 'me', 30.0)", False),
    ("await client.execute_command(b'DATA')", False),
    ("writer.write(b'x')", False),
    ("sorted(out, key=lambda c: (c.start, c.end))", False),
])
def test_the_check_sees_what_it_should(source: str, caught: bool) -> None:
    assert bool(violations(source)) is caught


def test_every_exemption_still_exists() -> None:
    for name in EXEMPT:
        assert (RELAY / name).is_dir(), name
    for name in EXEMPT_FILES:
        assert (RELAY / name).is_file(), name
