import asyncio
import itertools
import re
import sqlite3
from pathlib import Path

import pytest

from relay.model import Role
from relay.store import audit, parties, review, threads
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


def test_each_message_touches_only_the_indexes_its_lookups_need(tmp_path: Path) -> None:
    """Migrations 0011 and 0012: no index on the audit chain's random hashes, none on messages.state
    (a page rewritten on insert and again on delivery, read by no query)."""
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    indexes = {table: {r[1]: bool(r[2]) for r in conn.execute(f"PRAGMA index_list({table})")}
               for table in ("messages", "audit_events")}
    assert indexes["messages"] == {"messages_thread": False, "messages_received": False}
    assert indexes["audit_events"] == {"audit_thread": False, "audit_party": False, "audit_event_party": False}
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE thread_id = ? ORDER BY received_at, id", (1,)))
    assert "messages_thread" in plan
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + review.THREAD_EVENTS.format(marks="?,?"),
                                                 (1, 2, 3)))
    assert "audit_thread" in plan and "SCAN" not in plan  # a thread's review never reads the whole trail


async def test_commits_never_checkpoint_a_thread_beside_them_does(tmp_path: Path) -> None:
    """The writer's connection does not checkpoint (wal_autocheckpoint=0): 3,000 pages of commits
    stay in the WAL until the checkpoint thread copies them into the database file, and closing
    the store stops that thread."""
    path = tmp_path / "r.db"
    conn = connect_sync(path)
    migrate(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    db = Database(path, checkpoint_interval=3600)  # no checkpoint while the commits are written
    await db.open()
    try:
        assert db.checkpointer is not None
        size = path.stat().st_size
        for _ in range(30):  # each of ~100 pages of its own: far past the default 1,000-page mark
            await db.write(lambda c: [audit.append(c, "test.bulk", detail={"pad": "x" * 3500}) for _ in range(100)])
        assert path.stat().st_size == size  # nothing reached the database file: no commit checkpointed
        assert (tmp_path / "r.db-wal").stat().st_size > 3000 * 4096
        assert db.checkpointer.runs == 0
        db.checkpointer.interval = 0.01
        db.checkpointer.stop()  # wakes it from its hour-long wait: it stops without a checkpoint …
        db.checkpointer.start()  # … and starts again at the short interval
        for _ in range(500):
            if db.checkpointer.frames >= 3000:
                break
            await asyncio.sleep(0.01)
        assert db.checkpointer.frames >= 3000 and path.stat().st_size > size + 3000 * 4096
        thread = db.checkpointer._thread
    finally:
        await db.close()
    assert thread is not None and not thread.is_alive()


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
        # the units' savepoint sub-journals stay in memory, never a temporary file per transaction
        assert await db.write(lambda c: c.execute("PRAGMA temp_store").fetchone()[0]) == 2
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


async def test_short_reads_run_on_the_loop_read_only_and_fall_back_when_busy(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.close()
    db = Database(tmp_path / "r.db")
    await db.open()
    try:
        await db.write(lambda c: audit.append(c, "test.event"))
        # sees what was committed, without leaving the loop's thread
        import threading

        where: list[str] = []

        def count(c: sqlite3.Connection) -> int:
            where.append(threading.current_thread().name)
            return int(c.execute("SELECT count(*) FROM audit_events WHERE event = 'test.event'").fetchone()[0])

        assert await db.read(count) == 1
        assert where == [threading.current_thread().name]
        # a read that tries to write is refused, and nothing is written
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.read(lambda c: c.execute("DELETE FROM audit_events"))
        assert await db.read(count) == 1
        # a busy file sends the read to the reader thread, which answers
        calls: list[int] = []

        def busy_once(c: sqlite3.Connection) -> int:
            calls.append(1)
            if len(calls) == 1:
                raise sqlite3.OperationalError("database is locked")
            return count(c)

        assert await db.read(busy_once) == 1
        assert len(calls) == 2 and db.inline_fallbacks == 1
        assert where[-1] != threading.current_thread().name
        # any other error is the caller's
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.read(lambda c: c.execute("SELECT * FROM nothing_here"))
    finally:
        await db.close()


async def test_writers_of_one_store_take_turns_on_the_writer_lock(tmp_path: Path) -> None:
    """Two relay processes' writers (here two Database objects) queue on the file lock: a write
    waits while the lock is held elsewhere and commits once it is free; nothing is lost."""
    import fcntl
    import os

    conn = connect_sync(tmp_path / "r.db")
    migrate(conn)
    conn.close()
    first, second = Database(tmp_path / "r.db"), Database(tmp_path / "r.db")
    await first.open()
    await second.open()
    try:
        holder = os.open(f"{tmp_path / 'r.db'}-writer.lock", os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # another process is writing
        waiting = asyncio.ensure_future(first.write(lambda c: audit.append(c, "test.waited").seq))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
        assert await asyncio.wait_for(waiting, 5) >= 1
        writes = [db.write(lambda c, i=i: audit.append(c, "test.turns", detail={"i": i}).seq)
                  for i in range(100) for db in (first, second)]
        seqs = await asyncio.gather(*writes)
        assert len(set(seqs)) == 200
        count = await first.read(lambda c: c.execute("SELECT count(*) FROM audit_events WHERE event = 'test.turns'")
                                 .fetchone()[0])
        assert count == 200
    finally:
        await first.close()
        await second.close()
