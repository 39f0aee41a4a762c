import asyncio
import itertools
import re
import sqlite3
from pathlib import Path

import pytest

from relay.model import Role
from relay.store import audit, parties, threads
from relay.store.db import Database, connect_sync
from relay.store.errors import Conflict
from relay.store.migrate import available, migrate


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    first = migrate(conn)
    assert [m.version for m in first] == sorted(m.version for m in available())
    assert migrate(conn) == []
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [m.version for m in first]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (tmp_path / "r.db").stat().st_mode & 0o777 == 0o600


async def test_group_commit_batches_and_isolates_failures(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.close()
    db = Database(tmp_path / "r.db")
    await db.open()
    try:
        def good(i: int):
            return lambda c: audit.append(c, "test.event", detail={"i": i}).seq

        def bad(c: sqlite3.Connection) -> None:
            audit.append(c, "test.doomed")
            raise ValueError("this unit fails")

        tasks = [db.write(good(i)) for i in range(200)]
        tasks.insert(50, db.write(bad))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[50], ValueError)
        seqs = [r for r in results if isinstance(r, int)]
        assert len(seqs) == 200 and sorted(seqs) == list(range(1, 201))
        assert db.transactions < 50  # many units per fsync
        events = await db.read(lambda c: list(audit.iter_all(c)))
        assert [e.event for e in events].count("test.doomed") == 0
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(events))
    finally:
        await db.close()


def test_aliases_are_random_lowercase_and_stable_per_pair(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.execute("BEGIN")
    s = parties.add(conn, Role.SELLER, "Shop", ["s@x.example"])
    b = parties.add(conn, Role.BUYER, "Bob", ["b@y.example"])
    t1, created1 = threads.open_thread(conn, b.id, s.id)
    t2, created2 = threads.open_thread(conn, b.id, s.id, order="O-2")
    conn.execute("COMMIT")
    assert created1 and not created2 and t1 == t2
    for alias in (t1.buyer_alias, t1.seller_alias):
        assert re.fullmatch(r"[a-z0-9]{16}", alias)
    assert threads.resolve_alias(conn, t1.buyer_alias.upper()).party_id == b.id
    with pytest.raises(Conflict):
        threads.open_thread(conn, s.id, b.id)  # roles swapped
    with pytest.raises(Conflict):
        parties.add(conn, Role.BUYER, "Dup", ["S@X.example".lower()])
