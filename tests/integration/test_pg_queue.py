"""The PostgreSQL queue and audit chain (relay/store/pg/) against a real throwaway server: the
semantics of relay/store/queue.py (tests/integration/test_leases.py), and what several nodes add:
concurrent claimers in separate processes, a claimer killed mid-lease, NOTIFY, one audit chain."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from relay.store import audit_verify
from relay.store.db import StoreUnavailable
from relay.store.migrate import migrate as sqlite_migrate
from relay.store.pg import audit as pg_audit
from relay.store.pg.audit import PgAudit
from relay.store.pg.db import PgDatabase
from relay.store.pg.queue import PgQueue
from relay.store.url import PgTarget, parse

NOTICE = b"Subject: notice\r\nFrom: n@relay.example\r\n\r\nhello\r\n"


def _target(url: str) -> PgTarget:
    t = parse(url, Path("."))
    assert isinstance(t, PgTarget)
    return t


async def _seed(db: PgDatabase, n: int, *, due: float = 0.0, sending: list[tuple[str, float | None]] | None = None
                ) -> list[int]:
    """One blob, one message, n queued rows (due at `due`), and rows already 'sending' (owner, lease_until)."""
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO blobs (sha256, size, data) VALUES ('h', 1, '\\x00') ON CONFLICT DO NOTHING")
        await conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias)"
                           " VALUES (1, 'queued', 0, 'a', 'b') ON CONFLICT DO NOTHING")
        ids = [r[0] for r in await conn.fetch(
            "INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at, next_attempt_at,"
            " expires_at) SELECT 1, 'r' || g, 'f', 'h', 'queued', 0, $1, 9e9 FROM generate_series(1, $2) g"
            " RETURNING id", due, n)]
        for owner, until in sending or []:
            ids.append(await conn.fetchval(
                "INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                " next_attempt_at, expires_at, claimed_by, lease_until) VALUES (1, 'r', 'f', 'h', 'sending', 0, 0,"
                " 9e9, $1, $2) RETURNING id", owner, until))
    return ids


@pytest.fixture
async def db(pg_store_url: str) -> Any:
    async with PgDatabase(_target(pg_store_url), max_size=4) as database:
        yield database


async def _states(db: PgDatabase) -> dict[int, str]:
    async with db.connection() as conn:
        return {r[0]: r[1] for r in await conn.fetch("SELECT id, state FROM queue ORDER BY id")}


async def _verify_chain(db: PgDatabase) -> audit_verify.Result:
    """The chain as relay/store/audit_verify.py sees it: copied into a SQLite store and verified there."""
    async with db.connection() as conn:
        events = await conn.fetch("SELECT seq, ts, event, reason, thread_id, party_id, message_id, detail, prev_hash,"
                                  " hash, pii_commit FROM audit_events ORDER BY seq")
        pii = await conn.fetch("SELECT seq, salt, data, erased_at FROM audit_pii ORDER BY seq")
    lite = sqlite3.connect(":memory:")
    sqlite_migrate(lite)
    lite.executemany("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [tuple(r) for r in events])
    lite.executemany("INSERT INTO audit_pii VALUES (?, ?, ?, ?)", [tuple(r) for r in pii])
    return audit_verify.verify(lite)


# --- relay/store/queue.py's semantics ---------------------------------------------------------------

async def test_claim_takes_due_rows_in_order_with_a_lease(db: PgDatabase) -> None:
    q = PgQueue(db)
    ids = await _seed(db, 3, due=5.0)
    async with db.transaction() as conn:
        await conn.execute("UPDATE queue SET next_attempt_at = 1 WHERE id = $1", ids[2])
        await conn.execute("UPDATE queue SET next_attempt_at = 50 WHERE id = $1", ids[0])
    items = await q.claim_due(now=10.0, limit=5, owner="n1:1:aa", lease=30.0)
    assert [i.id for i in items] == [ids[2], ids[1]]  # by next_attempt_at, then id; ids[0] not due
    assert all(i.state == "sending" and i.attempts == 1 and i.lease_token == 1 and i.last_attempt_at == 10.0
               for i in items)
    assert await q.get(ids[2]) == items[0]
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT claimed_by, lease_until FROM queue WHERE id = $1", ids[1])
    assert tuple(row) == ("n1:1:aa", 40.0)
    assert await q.claim_due(now=10.0, limit=5, owner="n2:1:bb") == []
    assert await q.next_due_at() == 50.0
    stats = await q.stats()
    assert stats.depth == {"queued": 1, "sending": 2, "held": 0} and stats.oldest_due_at == 50.0
    assert [i.id for i in await q.listing("sending")] == sorted([ids[1], ids[2]])
    assert len(await q.listing()) == 3


async def test_a_stale_token_writes_no_result(db: PgDatabase) -> None:
    """tests/integration/test_leases.py's test of the same name, on PostgreSQL."""
    q = PgQueue(db)
    await _seed(db, 1)
    (old,) = await q.claim_due(now=10.0, limit=1, owner="a:1:x", lease=5.0)
    assert await q.expired_leases(14.0) == 0 and await q.expired_leases(16.0) == 1
    assert await q.reclaim(16.0, "a", lambda pid: True) == 1  # the lease ran out: back to queued
    (new,) = await q.claim_due(now=16.0, limit=1, owner="b:2:y", lease=5.0)
    assert new.lease_token == old.lease_token + 1
    assert not await q.mark_delivered(old, 17.0, "250 late")
    assert not await q.defer(old, 17.0, 99.0, "451 late")
    assert await q.bounce(old, 17.0, "delivery.rejected", "550 late", None) is None
    assert await q.renew([(old.id, old.lease_token)], 30.0) == [old.id]
    async with db.connection() as conn:
        assert [tuple(r) for r in await conn.fetch("SELECT state, claimed_by FROM queue")] == [("sending", "b:2:y")]
    assert await q.renew([(new.id, new.lease_token)], 30.0) == []
    assert await q.mark_delivered(new, 18.0, "250 ok")
    assert list((await _states(db)).values()) == ["delivered"]
    events = [e.event for e in await PgAudit(db).events_after(0)]
    assert events == ["delivery.recovered", "delivery.delivered"]
    assert (await _verify_chain(db)).ok


async def test_reclaim_takes_a_gone_local_process_rows_but_not_a_live_ones(db: PgDatabase) -> None:
    q = PgQueue(db)
    ids = await _seed(db, 0, sending=[("here:111:aa", 100.0), ("here:222:bb", 100.0), ("there:111:cc", 100.0)])
    assert await q.reclaim(50.0, "here", lambda pid: pid == 222) == 1
    assert await _states(db) == {ids[0]: "queued", ids[1]: "sending", ids[2]: "sending"}
    assert await q.recover(50.0, "here:222:", prefix=True) == 1
    assert await _states(db) == {ids[0]: "queued", ids[1]: "queued", ids[2]: "sending"}
    assert await q.recover(50.0, "there:111:cc") == 1
    reasons = [e.reason for e in await PgAudit(db).events_after(0)]
    assert reasons == ["delivery.owner_gone", "delivery.interrupted", "delivery.interrupted"]


async def test_defer_bounce_and_notice(db: PgDatabase) -> None:
    q = PgQueue(db)
    await _seed(db, 2)
    a, b = await q.claim_due(now=10.0, limit=2, owner="n:1:x")
    assert await q.defer(a, 11.0, 70.0, "451 try later", ambiguous=True)
    got = await q.get(a.id)
    assert (got.state, got.next_attempt_at, got.last_error, got.attempts) == ("queued", 70.0, "451 try later", 1)
    notice_id = await q.bounce(b, 12.0, "delivery.rejected", "550 no such user", ("s@example.com", "", NOTICE))
    assert notice_id is not None
    notice = await q.get(notice_id)
    assert (notice.kind, notice.state, notice.recipient, notice.next_attempt_at) == ("notice", "queued",
                                                                                    "s@example.com", 12.0)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT state || '/' || reason FROM messages WHERE id = 1") == \
            "bounced/delivery.rejected"
        assert await conn.fetchval("SELECT data FROM blobs WHERE sha256 = $1", notice.blob_sha256) == NOTICE
    events = await PgAudit(db).events_after(0)
    assert [e.event for e in events] == ["delivery.ambiguous", "delivery.bounced", "notice.queued"]
    assert events[2].detail == {"queue": notice_id, "notice_sha256": notice.blob_sha256}
    assert [e.seq for e in await PgAudit(db).events_after(0, event="DELIVERY")] == [1, 2]  # as SQLite's LIKE
    assert await PgAudit(db).head() == (3, events[2].hash)
    assert (await _verify_chain(db)).ok


async def test_audit_personal_fields_beside_the_chain(db: PgDatabase) -> None:
    ev = await PgAudit(db).append("smtp.rejected", reason="rcpt.unknown",
                                  detail={"rcpt": "someone@example.com", "code": 550}, ts=5.0)
    assert ev.pii_keys == ("rcpt",) and ev.pii_commit
    (back,) = await PgAudit(db).events_after(0)
    assert back.detail == {"rcpt": "someone@example.com", "code": 550} and back.hash == ev.hash
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT detail FROM audit_events") == '{"code":550}'
    assert (await _verify_chain(db)).ok


async def test_unreachable_server_is_store_unavailable_without_the_password(pg_cluster: Any) -> None:
    from tests.pgcluster import free_port

    target = _target(f"postgresql://relay:Sup3rS3cret@127.0.0.1:{free_port()}/relay")
    with pytest.raises(StoreUnavailable) as exc:
        await PgDatabase(target, connect_timeout=3).open()
    assert "127.0.0.1" in str(exc.value) and "Sup3rS3cret" not in str(exc.value)
    assert "Sup3rS3cret" not in repr(exc.value.__cause__) and exc.value.__suppress_context__


# --- NOTIFY -----------------------------------------------------------------------------------------

async def test_notify_wakes_a_waiting_worker(db: PgDatabase, pg_store_url: str) -> None:
    await _seed(db, 0)
    waiter = PgQueue(db)
    assert await waiter.wait_for_work(0.2) is False
    async with PgDatabase(_target(pg_store_url), max_size=1) as other:  # another node
        for _ in range(2):
            t0 = time.monotonic()
            waiting = asyncio.create_task(waiter.wait_for_work(5.0))
            await asyncio.sleep(0.05)
            await PgQueue(other).enqueue_notice(1, None, time.time(), "x@example.com", "", NOTICE)
            assert await waiting is True
            assert time.monotonic() - t0 < 1.0
        # the listening connection is cut (a restarted server, a network failure): it comes back,
        # wakes the waiters once (a NOTIFY may have been missed), and hears the next ones
        listener = db._listener
        assert listener is not None and listener.connects == 1
        async with other.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
        assert await waiter.wait_for_work(5.0) is True
        assert listener.connects == 2
        waiting = asyncio.create_task(waiter.wait_for_work(5.0))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await PgQueue(other).enqueue_notice(1, None, time.time(), "y@example.com", "", NOTICE)
        assert await waiting is True and time.monotonic() - t0 < 1.0


# --- several processes --------------------------------------------------------------------------------

def _claimer(url: str, name: str, lease: float, deliver: bool, out: Any, start: Any) -> None:
    """A node's worker process: its own pool; claims until nothing is due; reports (id, token) pairs."""

    async def main() -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        async with PgDatabase(_target(url), max_size=2) as db:
            q = PgQueue(db)
            out.put(("ready", name))
            assert await asyncio.to_thread(start.wait, 60)  # all start together, however slow the spawns
            owner = f"{name}:{os.getpid()}:n"
            while items := await q.claim_due(time.time(), 10, owner, lease):
                got += [(i.id, i.lease_token) for i in items]
                for i in items:
                    if deliver:
                        assert await q.mark_delivered(i, time.time(), "250 ok")
        return got

    out.put((name, asyncio.run(main())))


def _await_results(procs: list[Any], out: Any, start: Any, timeout: float) -> dict[str, list[tuple[int, int]]]:
    results = {}
    deadline = time.monotonic() + timeout
    for _ in procs:
        assert out.get(timeout=max(0.1, deadline - time.monotonic()))[0] == "ready"
    start.set()
    for _ in procs:
        name, got = out.get(timeout=max(0.1, deadline - time.monotonic()))
        results[name] = got
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
        assert p.exitcode == 0
    return results


def test_four_processes_claim_every_row_exactly_once_and_chain_the_audit(pg_store_url: str) -> None:
    async def seed() -> list[int]:
        async with PgDatabase(_target(pg_store_url)) as db:
            return await _seed(db, 2000)

    ids = asyncio.run(seed())
    ctx = multiprocessing.get_context("spawn")
    out, start = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claimer, args=(pg_store_url, f"node{n}", 600.0, True, out, start))
             for n in range(4)]
    for p in procs:
        p.start()
    try:
        results = _await_results(procs, out, start, 120)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    claims = Counter(qid for got in results.values() for qid, _ in got)
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}, "a row was claimed twice or never"
    assert all(got for got in results.values()), f"a process claimed nothing: { {k: len(v) for k, v in results.items()} }"

    async def check() -> None:
        async with PgDatabase(_target(pg_store_url)) as db:
            assert set((await _states(db)).values()) == {"delivered"}
            result = await _verify_chain(db)
            assert result.ok and result.count == 2000, result.problem
            async with db.connection() as conn:
                assert await conn.fetchval("SELECT COUNT(DISTINCT seq) = MAX(seq) FROM audit_events")

    asyncio.run(check())


def _holder(url: str, out: Any) -> None:
    async def main() -> None:
        async with PgDatabase(_target(url), max_size=1) as db:
            items = await PgQueue(db).claim_due(time.time(), 100, f"deadnode:{os.getpid()}:z", 1.5)
            out.put([(i.id, i.lease_token) for i in items])
            await asyncio.sleep(3600)  # frozen mid-delivery, until SIGKILL

    asyncio.run(main())


def test_a_killed_claimer_rows_are_taken_over_after_its_lease_and_its_late_results_refused(pg_store_url: str) -> None:
    async def seed() -> list[int]:
        async with PgDatabase(_target(pg_store_url)) as db:
            return await _seed(db, 5)

    ids = asyncio.run(seed())
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_holder, args=(pg_store_url, out))
    proc.start()
    try:
        held = out.get(timeout=60)
        t_claimed = time.time()
    finally:
        proc.kill()  # SIGKILL: no cleanup, no recover() at stop
        proc.join(10)
    assert sorted(qid for qid, _ in held) == sorted(ids)

    async def take_over() -> None:
        async with PgDatabase(_target(pg_store_url)) as db:
            q = PgQueue(db)
            # while the lease lasts, another node neither claims nor reclaims the rows
            if time.time() < t_claimed + 1.0:
                assert await q.claim_due(time.time(), 100, "live:1:a", 60) == []
                assert await q.reclaim(time.time(), "live", lambda pid: False) == 0
            while time.time() < t_claimed + 1.6:
                await asyncio.sleep(0.1)
            assert await q.expired_leases(time.time()) == 5
            assert await q.reclaim(time.time(), "live", lambda pid: False) == 5
            taken = await q.claim_due(time.time(), 100, "live:1:a", 60)
            assert sorted(i.id for i in taken) == sorted(ids)
            assert all(i.lease_token == dict(held)[i.id] + 1 for i in taken)
            # the killed holder's late results (its stale tokens) are refused
            for qid, token in held:
                stale = dataclasses.replace(await q.get(qid), lease_token=token)
                assert not await q.mark_delivered(stale, time.time(), "250 late")
                assert not await q.defer(stale, time.time(), time.time(), "451 late")
            assert all([await q.mark_delivered(i, time.time(), "250 ok") for i in taken])
            assert set((await _states(db)).values()) == {"delivered"}
            assert (await _verify_chain(db)).ok

    asyncio.run(take_over())


async def test_audit_append_from_module_function_in_a_wider_transaction(db: PgDatabase) -> None:
    """Two appends in one transaction (a unit that records two events) chain to each other."""
    async with db.transaction() as conn:
        a = await pg_audit.append(conn, "one", ts=1.0)
        b = await pg_audit.append(conn, "two", ts=2.0)
    assert (a.seq, b.seq, b.prev_hash) == (1, 2, a.hash)
    with pytest.raises(asyncpg.PostgresError):
        async with db.transaction() as conn:
            await pg_audit.append(conn, "three", ts=3.0)
            await conn.execute("SELECT 1/0")
    assert await PgAudit(db).head() == (2, b.hash)  # rolled back with its transaction: no gap
