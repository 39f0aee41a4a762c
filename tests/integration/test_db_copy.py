"""`relay db copy` (relay/store/pg/copy.py): a SQLite store filled through the real daemon — an
exchange, a refusal, a held message, a large message whose content is a file beside the database,
an opt-out and their audit events — copied into a fresh PostgreSQL database reads back the same
through PgStore as through SqliteStore; a second copy into the now non-empty database is refused."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from relay.store import blobfiles
from relay.store.interface import Store
from relay.store.pg.messages import CHUNK_BYTES
from relay.store.pg.store import PgStore
from relay.store.sqlite import SqliteStore
from relay.store.url import PgTarget, parse
from tests.integration.test_policy_e2e import policy_with
from tests.support import NO_LIMITS, Sink, message, provision, send, send_expect

PASSWORD = "s3cret-Not-Shown"  # the test cluster trusts loopback: any password is accepted


def big_attachment(sender: str, to: str) -> bytes:
    pdf = b"%PDF-1.4\n% catalogue\n" + os.urandom(300 * 1024)
    import base64

    encoded = base64.encodebytes(pdf).decode().replace("\n", "\r\n")
    return (f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: Re: the catalogue\r\n"
            "Date: Sun, 22 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\nHere is the catalogue you asked for.\r\n--b1\r\n"
            'Content-Type: application/pdf; name="catalogue.pdf"\r\nContent-Disposition: attachment;'
            f' filename="catalogue.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}--b1--\r\n').encode()


def relay_cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = state.parent / "copy.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{state}"\n')
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=300)


def sqlite_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                             " AND name NOT LIKE 'sqlite_%' AND name != 'schema_version'")]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


async def pg_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                                 " AND tablename != 'schema_version'")]
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}
    finally:
        await conn.close()


async def review_data(store: Store, thread_ids: list[int]) -> dict[str, Any]:
    """What a reviewer reads of each thread: its parties, messages, aliases, contents, deliveries, events."""
    out: dict[str, Any] = {}
    for tid in thread_ids:
        thread = await store.threads.get(tid)
        assert thread is not None
        rows = await store.messages.of_thread(tid)
        digests = sorted({d for m in rows for d in (m.original_sha256, m.delivered_sha256) if d})
        out[str(tid)] = {
            "thread": thread,
            "messages": rows,
            "aliases": await store.review.aliases(tid),
            "blobs": [await store.review.blob(d) for d in digests],
            "queue": [await store.review.queue_rows(m.id) for m in rows],
            "events": await store.review.thread_events(tid, (thread.buyer_id, thread.seller_id)),
        }
    return out


async def test_db_copy_sqlite_to_postgresql(start_relay: Any, sink: Sink, tmp_path: Path, pg_url: str) -> None:
    relay = await start_relay(smarthost=sink.port, rules=NO_LIMITS,
                              policy={"path": str(policy_with(tmp_path, "review", "hold"))})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    # an exchange: the seller writes, the buyer answers with a large attachment (a content file)
    assert (await send_expect(port, world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias, "Your order ORD-1",
                                      "It ships tomorrow.\r\n", message_id="<s1@seller.example>")))[0] == 250
    relay_id = (await sink.wait_for(1))[0].message["Message-ID"]
    big = big_attachment(world.buyer_email, world.seller_alias)
    big = big.replace(b"Subject: Re: the catalogue\r\n", f"Subject: Re: the catalogue\r\nIn-Reply-To: {relay_id}\r\n"
                      .encode())
    await send(port, world.buyer_email, [world.seller_alias], big)
    await sink.wait_for(2)
    # a refusal (a forged From), a held message (a review request)
    forged = message("stranger@elsewhere.example", world.buyer_alias, subject="Pay here instead")
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], forged))[0] == 550
    assert (await send_expect(port, world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias, "Thanks",
                                      "If you are happy, please leave us a 5-star review!\r\n")))[0] == 250
    # an opt-out, then an unsolicited message it refuses
    r = relay_cli(relay.settings.relay.state_dir, "party", "optout", world.buyer_email, "on")
    assert r.returncode == 0, r.stderr
    assert (await send_expect(port, world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias, "New items in our shop!")))[0] == 550
    db_path = relay.settings.db_path
    for _ in range(200):
        conn = sqlite3.connect(db_path)
        states = [r[0] for r in conn.execute("SELECT state FROM messages ORDER BY id")]
        conn.close()
        if states.count("delivered") == 2 and "held" in states:
            break
        await asyncio.sleep(0.05)
    await relay.stop(grace=2)

    conn = sqlite3.connect(db_path)
    files = conn.execute("SELECT sha256, size FROM blobs WHERE in_file = 1 AND data IS NOT NULL").fetchall()
    assert files and all(size >= 300 * 1024 for _, size in files)
    where = blobfiles.directory_of(db_path)
    assert where is not None and all(blobfiles.path_of(where, d).exists() for d, _ in files)
    thread_ids = [r[0] for r in conn.execute("SELECT id FROM threads ORDER BY id")]
    message_ids = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
    conn.close()
    before = sqlite_counts(db_path)
    assert before["optouts"] == 1 and before["audit_events"] >= 10

    target = parse(pg_url, tmp_path)
    assert isinstance(target, PgTarget)
    with_password = pg_url.replace("relay@", f"relay:{PASSWORD}@")
    r = relay_cli(relay.settings.relay.state_dir, "db", "copy", "--to", with_password)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert "audit chain verified" in r.stdout and "blob_chunks" in r.stdout

    after = await pg_counts(pg_url)
    chunks = after.pop("blob_chunks")
    assert chunks == sum(math.ceil(size / CHUNK_BYTES) for _, size in files)
    before.pop("blob_chunks")
    assert after == before

    sq = SqliteStore.at(db_path)
    pg = PgStore.at(target, migrate=False)
    await sq.open()
    await pg.open()
    try:
        for mid in message_ids:
            row_sq, row_pg = await sq.messages.get(mid), await pg.messages.get(mid)
            assert row_sq == row_pg
            assert row_sq is not None
            for digest in (row_sq.original_sha256, row_sq.delivered_sha256):
                if digest is None:
                    continue
                a, b = await sq.messages.get_blob(digest), await pg.messages.get_blob(digest)
                assert a is not None and a == b and hashlib.sha256(a).hexdigest() == digest
        assert {m.state for m in await pg.messages.of_thread(world.thread_id)} >= {"delivered", "held", "rejected"}
        assert await review_data(sq, thread_ids) == await review_data(pg, thread_ids)
        verified_sq, verified_pg = await sq.audit.verify(), await pg.audit.verify()
        assert verified_pg.ok and verified_pg.count == verified_sq.count == before["audit_events"]
        assert verified_pg.head_hash == verified_sq.head_hash
        # the sequences were set past the copied ids: the next party gets a new id
        from relay.model import Role

        party = await pg.parties.add(Role.BUYER, "Bob", ["bob@buyer.example"])
        assert party.id > max(world.buyer_id, world.seller_id)
    finally:
        await sq.close()
        await pg.close()

    # a second copy into the now non-empty database is refused, and writes nothing
    r = relay_cli(relay.settings.relay.state_dir, "db", "copy", "--to", with_password)
    assert r.returncode == 1 and "not empty" in r.stderr, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    again = await pg_counts(pg_url)
    assert again["parties"] == before["parties"] + 1 and again["messages"] == before["messages"]


def test_db_copy_is_all_or_nothing(tmp_path: Path, pg_url: str) -> None:
    """A content file gone missing stops the copy after other tables were written: nothing stays."""
    from relay.store.migrate import migrate_file

    state = tmp_path / "state"
    state.mkdir()
    db = state / "relay.db"
    migrate_file(db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO parties (role, name, created_at) VALUES ('buyer', 'Alice', 1.0)")
    conn.execute("INSERT INTO blobs (sha256, size, data, in_file) VALUES (?, ?, x'', 1)", ("ab" * 32, 400_000))
    conn.commit()
    conn.close()
    r = relay_cli(state, "db", "copy", "--to", pg_url, "--from", f"sqlite://{db}")
    assert r.returncode == 1 and "file is missing" in r.stderr, r.stderr
    counts = asyncio.run(pg_counts(pg_url))
    assert counts and not any(counts.values())
    r = relay_cli(state, "db", "copy", "--to", f"sqlite://{db}")
    assert r.returncode == 78 and "PostgreSQL" in r.stderr
