"""Retention clears only contents nothing newer or pending refers to, and keeps hash and size."""

from __future__ import annotations

from pathlib import Path

from relay.store import messages, retention
from relay.store.audit_verify import verify
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate

NOW = 1_800_000_000.0
DAY = 86400.0


def test_shared_and_pending_contents_are_kept(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "relay.db")
    migrate(conn)

    def setup(c):  # type: ignore[no-untyped-def]
        old, shared, pending, new = (messages.put_blob(c, b) for b in (b"old", b"shared", b"pending", b"new"))
        rows = [(NOW - 40 * DAY, old, shared), (NOW - 1 * DAY, new, shared), (NOW - 50 * DAY, pending, pending)]
        for i, (ts, orig, out) in enumerate(rows, 1):
            c.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias, original_sha256,"
                      " delivered_sha256) VALUES (?, 'delivered', ?, 'a@b.example', 'x', ?, ?)", (i, ts, orig, out))
        c.execute("INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                  " next_attempt_at, expires_at) VALUES (3, 'r@x.example', '', ?, 'queued', ?, ?, ?)",
                  (pending, NOW - 50 * DAY, NOW, NOW + DAY))
        return old, shared, pending, new

    ((_, (old, shared, pending, new)),) = run_in_transaction(conn, [setup])
    before = conn.execute("PRAGMA secure_delete").fetchone()[0]
    ((ok, result),) = run_in_transaction(conn, [lambda c: retention.clear_expired(c, NOW - 30 * DAY, NOW)])
    assert ok and result == (1, 3)
    rows = {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT sha256, data IS NULL, size, cleared_reason"
                                                           " FROM blobs")}
    assert rows[old] == (1, 3, "retention")
    assert rows[shared][0] == 0 and rows[pending][0] == 0 and rows[new][0] == 0
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == before  # restored after the clearing
    assert verify(conn).ok
    conn.close()
