"""Retention: clear the contents of messages older than the window; keep sha256 and size.

A blob is cleared only when nothing newer and nothing still pending refers to it (the same
content can be shared by messages of different ages), and a base only once no content derived
from it is left (a delivered copy stored as its head on the original: messages.shared_tail);
clearing a base clears what derives from it. Audit: retention.cleared (counts, cutoff).
"""

from __future__ import annotations

import sqlite3

from relay.store import audit, blobfiles

_EXPIRED = """
SELECT b.sha256, b.size FROM blobs b
WHERE b.data IS NOT NULL
  AND b.sha256 IN (SELECT original_sha256 FROM messages WHERE received_at < :cutoff
                   UNION SELECT delivered_sha256 FROM messages WHERE received_at < :cutoff
                   UNION SELECT blob_sha256 FROM queue WHERE created_at < :cutoff)
  AND b.sha256 NOT IN (SELECT original_sha256 FROM messages
                       WHERE received_at >= :cutoff AND original_sha256 IS NOT NULL
                       UNION SELECT delivered_sha256 FROM messages
                       WHERE received_at >= :cutoff AND delivered_sha256 IS NOT NULL
                       UNION SELECT blob_sha256 FROM queue
                       WHERE created_at >= :cutoff OR state IN ('queued', 'sending', 'held'))
  AND NOT EXISTS (SELECT 1 FROM blobs d WHERE d.base = b.sha256 AND d.data IS NOT NULL)
LIMIT :limit
"""


def clear_blobs(conn: sqlite3.Connection, digests: list[str], now: float, reason: str) -> int:
    """Drop the data of these blobs (zeroed on disk: secure_delete; blob files set aside, to be
    overwritten and removed by blobfiles.wipe_cleared() once this transaction has committed),
    record when and why."""
    if not digests:
        return 0
    # what derives from a cleared content would read it back: cleared with it (one level: a base
    # is never derived itself, see messages.put_blob)
    marks = ",".join("?" * len(digests))
    derived = [r[0] for r in conn.execute(
        f"SELECT sha256 FROM blobs WHERE base IN ({marks}) AND data IS NOT NULL", digests)]
    digests = list(dict.fromkeys([*digests, *derived]))
    marks = ",".join("?" * len(digests))
    files = [r[0] for r in conn.execute(f"SELECT sha256 FROM blobs WHERE sha256 IN ({marks}) AND data IS NOT NULL"
                                        " AND in_file = 1", digests)]
    cur = conn.execute(f"UPDATE blobs SET data = NULL, cleared_at = ?, cleared_reason = ?"
                       f" WHERE sha256 IN ({marks}) AND data IS NOT NULL", (now, reason, *digests))
    where = blobfiles.directory(conn)
    if where is not None:
        for digest in files:
            blobfiles.set_aside(where, digest)  # zeroed and gone after the commit; the row says cleared
    return cur.rowcount


#: one clearing transaction: at most this many contents, and this many bytes zeroed inside the
#: database (secure_delete), so that the writer lock is held for milliseconds, not seconds
BATCH = 100
BATCH_INLINE_BYTES = 4 * 1024 * 1024


def expired(conn: sqlite3.Connection, cutoff: float, limit: int = BATCH) -> list[str]:
    """A read (no write lock): up to `limit` contents due for clearing, as a batch small enough
    for one short transaction. clear_expired() checks them again under the lock."""
    rows = conn.execute(_EXPIRED.replace("SELECT b.sha256, b.size", "SELECT b.sha256, b.size, b.in_file"),
                        {"cutoff": cutoff, "limit": limit}).fetchall()
    batch: list[str] = []
    inline = 0
    for digest, size, in_file in rows:
        if batch and not in_file and inline + size > BATCH_INLINE_BYTES:
            break
        batch.append(digest)
        inline += 0 if in_file else size
    return batch


def clear_expired(conn: sqlite3.Connection, cutoff: float, now: float, limit: int = BATCH,
                  candidates: list[str] | None = None) -> tuple[int, int]:
    """Clear up to `limit` expired blobs (of `candidates`, found by expired() beforehand, when
    given) in this transaction; return (blobs, bytes). Their files are wiped after the commit."""
    if candidates is None:
        rows = conn.execute(_EXPIRED, {"cutoff": cutoff, "limit": limit}).fetchall()
    elif not candidates:
        return 0, 0
    else:  # still expired? (a new message may have brought the same content meanwhile)
        names = ",".join(f":d{i}" for i in range(len(candidates)))
        params: dict[str, object] = {"cutoff": cutoff, **{f"d{i}": d for i, d in enumerate(candidates)}}
        rows = conn.execute(_EXPIRED.replace("LIMIT :limit", f"AND b.sha256 IN ({names})"), params).fetchall()
    # zero the freed bytes as they are freed (b-tree level, so it can be switched back right after)
    previous = conn.execute("PRAGMA secure_delete").fetchone()[0]
    conn.execute("PRAGMA secure_delete = ON")
    try:
        cleared = clear_blobs(conn, [r[0] for r in rows], now, "retention")
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(previous)}")
    size = sum(r[1] for r in rows)
    if cleared:
        audit.append(conn, "retention.cleared", reason="retention.window", ts=now,
                     detail={"cutoff": cutoff, "blobs": cleared, "bytes": size})
    return cleared, size
