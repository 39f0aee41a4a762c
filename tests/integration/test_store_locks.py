"""Long store operations never hold the writer lock for seconds, and store.busy_timeout bounds
every wait for it, the relay processes' file lock (flock) included.

Figures (how long a batch holds the lock) belong in a bench; these tests assert the behaviour:
a message arriving during a retention pass over many large contents gets its 250 within a
generous bound, and a write that cannot get the lock fails with a clear error instead of hanging.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import smtplib
import time
from pathlib import Path
from typing import Any

from relay import retention
from relay.store import blobfiles
from relay.store.db import StoreUnavailable
from tests.support import message, provision, send

DAY = 86400.0
LARGE = 2 * 1024 * 1024
COUNT = 400  # 800 MB of old contents to zero (the old code zeroed 500 contents per transaction)


def _old_contents(db_path: Path, count: int) -> list[Path]:
    """`count` large contents of messages received 40 days ago, stored as files (as put_blob does),
    written without fsync: this is setup, not what is measured."""
    import sqlite3

    where = blobfiles.directory_of(db_path)
    assert where is not None
    conn = sqlite3.connect(db_path, isolation_level=None)
    paths = []
    seed = os.urandom(LARGE)
    try:
        conn.execute("BEGIN")
        for i in range(count):
            data = i.to_bytes(4, "big") + seed[4:]
            digest = hashlib.sha256(data).hexdigest()
            path = blobfiles.path_of(where, digest)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            paths.append(path)
            conn.execute("INSERT INTO blobs (sha256, size, data, in_file) VALUES (?, ?, x'', 1)", (digest, len(data)))
            conn.execute("INSERT INTO messages (state, received_at, envelope_from, rcpt_alias, original_sha256)"
                         " VALUES ('delivered', ?, 'a@b.example', 'x', ?)", (time.time() - 40 * DAY, digest))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return paths


async def test_a_message_is_accepted_while_retention_clears_many_large_contents(start_relay: Any) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    paths = _old_contents(relay.settings.db_path, COUNT)
    port = relay.addresses[0][1]
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "warm"))

    clearing = asyncio.create_task(retention.run_once(relay.store, 30 * DAY))
    await asyncio.sleep(0.2)  # well into the pass
    assert not clearing.done()
    started = time.monotonic()
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "during"))
    took = time.monotonic() - started
    blobs, size = await clearing
    assert (blobs, size) == (COUNT, COUNT * LARGE)
    print(f"accepted in {took:.3f} s during the retention pass")
    assert took < 2.0, f"a message waited {took:.2f} s for the store during a retention pass"
    assert not any(p.exists() for p in paths)
    where = blobfiles.directory_of(relay.settings.db_path)
    assert where is not None and not any((where / "cleared").iterdir())  # every file zeroed and gone


async def test_a_write_waits_for_the_file_lock_no_longer_than_busy_timeout(start_relay: Any) -> None:
    relay = await start_relay(store={"busy_timeout": "0.5s"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    # another relay process holding the write lock (a stuck one: it never lets go by itself)
    holder = os.open(f"{relay.settings.db_path}-writer.lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        try:
            await asyncio.wait_for(relay.store.touch(), 5)
        except StoreUnavailable as exc:
            assert "store.busy_timeout" in str(exc)
        else:
            raise AssertionError("the write went through a held lock")
        assert time.monotonic() - started < 2.0
        # a client is told to come back later (4xx), not left hanging
        try:
            await asyncio.wait_for(send(port, world.buyer_email, [world.seller_alias],
                                        message(world.buyer_email, world.seller_alias, "locked")), 10)
        except smtplib.SMTPDataError as exc:
            assert 400 <= exc.smtp_code < 500
        else:
            raise AssertionError("accepted while the store could not be written")
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    # the waits given up handed the lock back: writes go through again
    await asyncio.wait_for(relay.store.touch(), 5)
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "after"))
