"""Relayed messages: contents (by hash), rows, the two-way Message-ID map, and their queue rows."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.scan import known_clean, remember_clean
from relay.store import audit, blobfiles

#: A content this big still inside the database (stored before migration 0008) is read in one
#: piece with incremental blob I/O: selecting it would make SQLite copy it once more.
PIECE = 1024 * 1024


#: Stores a content once; a row that retention or erasure cleared is filled again (a message that
#: arrives later with the same bytes needs them: it would otherwise point at a cleared content).
_PUT = ("INSERT INTO blobs (sha256, size, data, in_file, wire, base, base_from) VALUES (?, ?, {value}, ?, ?, ?, ?)"
        " ON CONFLICT (sha256) DO UPDATE SET data = excluded.data, in_file = excluded.in_file, wire = excluded.wire,"
        " base = excluded.base, base_from = excluded.base_from, cleared_at = NULL, cleared_reason = NULL"
        " WHERE blobs.data IS NULL RETURNING rowid")

#: A body shorter than this is stored again rather than referred to (a row read to save a page).
SHARED_BYTES = 4096


def shared_tail(original: bytes, delivered: bytes) -> int | None:
    """Where the original's body starts, when the delivered copy ends with that very body (the
    stages changed only the head: the common case) and it is worth referring to; else None."""
    if delivered is original or (len(delivered) == len(original) and delivered == original):
        return None  # one content: stored once anyway
    end = original.find(b"\r\n\r\n")
    if end < 0 or len(original) - end - 4 < SHARED_BYTES:
        return None
    start = end + 4
    return start if delivered.endswith(memoryview(original)[start:]) else None


def put_blob(conn: sqlite3.Connection, data: bytes, digest: str | None = None, *,
             base: tuple[str, int] | None = None) -> str:
    """Store a content (once: content-addressed); `digest`: its sha256, when already known.
    `base` = (sha256 of a stored content, offset): `data` ends with that content from the offset
    on (shared_tail), so only its head is stored — unless the base is gone or derived itself."""
    digest = digest or hashlib.sha256(data).hexdigest()
    size = len(data)
    wire = int(known_clean(data))  # remembered by the stages that made it; never scanned here
    if base is not None:
        row = conn.execute("SELECT size FROM blobs WHERE sha256 = ? AND data IS NOT NULL AND base IS NULL",
                           (base[0],)).fetchone()
        head = size - (row[0] - base[1]) if row is not None else -1
        if 0 <= head < blobfiles.FILE_BYTES:
            conn.execute(_PUT.format(value="?"), (digest, size, data[:head], 0, wire, base[0], base[1])).fetchall()
            return digest
    where = blobfiles.directory(conn) if size >= blobfiles.FILE_BYTES else None
    if where is not None:  # a file beside the database, durable before this transaction commits
        row = conn.execute(_PUT.format(value="x''"), (digest, size, 1, wire, None, None)).fetchone()
        if row is not None and not blobfiles.written_ahead(where, digest):
            blobfiles.write(where, digest, data)
    else:
        conn.execute(_PUT.format(value="?"), (digest, size, data, 0, wire, None, None)).fetchall()
    return digest


def write_large(db_path: Path | str, contents: Sequence[bytes],
                files: Mapping[int, Path] | None = None, derived: Collection[int] = ()) -> dict[int, str]:
    """Hash the contents and write the large ones to their files ahead of the transaction (see
    blobfiles); returns id(content) → sha256 for Accepted.digests. Off the event loop: ~2 x 10 MB
    of hashing and writing, fsyncs included. `files`: id(content) → a file that holds exactly that
    content (a spool file), linked in instead of written again. `derived`: ids of contents stored
    as a head on a base (shared_tail): hashed here, never written."""
    where = blobfiles.directory_of(db_path)
    out: dict[int, str] = {}
    for data in contents:
        if id(data) in out or len(data) < blobfiles.FILE_BYTES or where is None:
            continue
        digest = out[id(data)] = hashlib.sha256(data).hexdigest()
        if id(data) in derived:
            continue
        source = (files or {}).get(id(data))
        if source is None or not blobfiles.link_ahead(where, digest, source, len(data)):
            blobfiles.write_ahead(where, digest, data)
    return out


_ROW = ("SELECT rowid, in_file, size, length(data), CASE WHEN in_file = 0 AND length(data) < ? THEN data END,"
        " wire, base, base_from FROM blobs WHERE sha256 = ?")


def get_blob(conn: sqlite3.Connection, digest: str) -> bytes | None:
    row = conn.execute(_ROW, (PIECE, digest)).fetchone()
    if row is None or row[3] is None:  # never stored, or cleared
        return None
    rowid, in_file, _size, _length, data, wire, base, base_from = row
    if base is not None:  # its head here, the rest in the base (cleared together: see retention)
        rest = get_blob(conn, base)
        content = None if rest is None else bytes(data) + memoryview(rest)[base_from:]
    elif in_file:
        content = _read_file(conn, digest)
    elif data is not None:
        content = bytes(data)
    else:  # a big one is read once, straight into one bytes object
        with conn.blobopen("blobs", "data", rowid, readonly=True) as blob:
            content = blob.read()
    if wire and content is not None:
        remember_clean(content)
    return content


def small_blob(conn: sqlite3.Connection, digest: str, below: int) -> tuple[int | None, bytes | None]:
    """(size, content) of a stored content, the content only when it is smaller than `below`;
    (None, None) when it is gone (never stored, or cleared by retention). length() does not load it."""
    row = conn.execute(_ROW, (below, digest)).fetchone()
    if row is None or row[3] is None:
        return None, None
    _rowid, in_file, size, length, data, _wire, base, _base_from = row
    if not in_file and base is None:
        return int(length), (bytes(data) if data is not None else None)
    if size >= below:
        return int(size), None
    content = get_blob(conn, digest) if base is not None else _read_file(conn, digest)
    return (int(size), content) if content is not None else (None, None)


def _read_file(conn: sqlite3.Connection, digest: str) -> bytes | None:
    where = blobfiles.directory(conn)
    return blobfiles.read(where, digest) if where is not None else None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    event: str
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Accepted:
    """Everything one accepted message (for one recipient) writes in the DATA transaction."""

    thread_id: int
    direction: str
    sender_id: int
    recipient_id: int
    received_at: float
    envelope_from: str
    rcpt_alias: str
    subject: str
    original: bytes
    delivered: bytes
    orig_message_id: str | None
    relay_message_id: str
    out_envelope_from: str
    out_recipient: str
    expires_at: float
    held: bool = False
    events: Sequence[PendingEvent] = ()
    #: id(content) → sha256 of the contents already hashed (and written ahead: write_large)
    digests: Mapping[int, str] = field(default_factory=dict)
    #: shared_tail(original, delivered): the delivered copy is stored as its head on the original
    delivered_from: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A message refused at DATA time: audited, and its original kept when the sender is a party."""

    thread_id: int | None
    direction: str | None
    sender_id: int | None
    recipient_id: int | None
    received_at: float
    envelope_from: str
    rcpt_alias: str
    subject: str
    original: bytes | None
    reason: str
    reply: str
    events: Sequence[PendingEvent] = ()


def record_accepted(conn: sqlite3.Connection, msg: Accepted) -> tuple[int, int]:
    """Insert message, blobs, id map, queue row and audit events; return (message id, queue id)."""
    orig = put_blob(conn, msg.original, msg.digests.get(id(msg.original)))
    out = put_blob(conn, msg.delivered, msg.digests.get(id(msg.delivered)),
                   base=None if msg.delivered_from is None else (orig, msg.delivered_from))
    state = "held" if msg.held else "queued"
    cur = conn.execute(
        "INSERT INTO messages (thread_id, direction, sender_id, recipient_id, state, reason, received_at,"
        " envelope_from, rcpt_alias, subject, original_sha256, delivered_sha256, orig_message_id, relay_message_id)"
        " VALUES (?, ?, ?, ?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?, ?)",
        (msg.thread_id, msg.direction, msg.sender_id, msg.recipient_id, state, msg.received_at, msg.envelope_from,
         msg.rcpt_alias, msg.subject, orig, out, msg.orig_message_id, msg.relay_message_id),
    )
    message_id = int(cur.lastrowid or 0)
    conn.execute(
        "INSERT OR IGNORE INTO message_ids (relay_id, orig_id, thread_id, sender_id, message_id) VALUES (?, ?, ?, ?, ?)",
        (msg.relay_message_id, msg.orig_message_id or msg.relay_message_id, msg.thread_id, msg.sender_id, message_id),
    )
    cur = conn.execute(
        "INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at, next_attempt_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (message_id, msg.out_recipient, msg.out_envelope_from, out, state, msg.received_at, msg.received_at,
         msg.expires_at),
    )
    queue_id = int(cur.lastrowid or 0)
    common: dict[str, Any] = {"thread_id": msg.thread_id, "message_id": message_id, "ts": msg.received_at}
    audit.append(conn, "message.accepted", reason="ok", party_id=msg.sender_id,
                 detail={"direction": msg.direction, "alias": msg.rcpt_alias, "size": len(msg.original),
                         "original_sha256": orig, "delivered_sha256": out}, **common)
    for ev in msg.events:
        audit.append(conn, ev.event, reason=ev.reason, party_id=msg.sender_id, detail=ev.detail, **common)
    audit.append(conn, "message.held" if msg.held else "message.queued", reason="ok",
                 party_id=msg.recipient_id, detail={"queue": queue_id}, **common)
    return message_id, queue_id


def record_refused(conn: sqlite3.Connection, msg: Refused) -> int:
    orig = put_blob(conn, msg.original) if msg.original is not None else None
    cur = conn.execute(
        "INSERT INTO messages (thread_id, direction, sender_id, recipient_id, state, reason, received_at,"
        " envelope_from, rcpt_alias, subject, original_sha256) VALUES (?, ?, ?, ?, 'rejected', ?, ?, ?, ?, ?, ?)",
        (msg.thread_id, msg.direction, msg.sender_id, msg.recipient_id, msg.reason, msg.received_at,
         msg.envelope_from, msg.rcpt_alias, msg.subject, orig),
    )
    message_id = int(cur.lastrowid or 0)
    for ev in msg.events:
        audit.append(conn, ev.event, reason=ev.reason, thread_id=msg.thread_id, party_id=msg.sender_id,
                     message_id=message_id, detail=ev.detail, ts=msg.received_at)
    audit.append(conn, "message.rejected", reason=msg.reason, thread_id=msg.thread_id, party_id=msg.sender_id,
                 message_id=message_id, detail={"reply": msg.reply, "alias": msg.rcpt_alias,
                                                "original_sha256": orig}, ts=msg.received_at)
    return message_id


def translate_ids(conn: sqlite3.Connection, thread_id: int, recipient_id: int,
                  ids: Iterable[str]) -> dict[str, str]:
    """Map msg-ids a sender quoted to the ones the recipient knows; unknown ids are left out.

    An id the recipient's own client made (orig) was shown to the sender as a relay id;
    an id the relay made for a message the recipient received stays as it is.
    """
    out: dict[str, str] = {}
    for mid in ids:
        row = conn.execute(
            "SELECT orig_id, sender_id FROM message_ids WHERE relay_id = ? AND thread_id = ?", (mid, thread_id)
        ).fetchone()
        if row is not None:
            orig_id, sender_id = row
            # the recipient wrote it: give back their own id; otherwise they know our relay id
            out[mid] = orig_id if sender_id == recipient_id else mid
            continue
        row = conn.execute(
            "SELECT relay_id, sender_id FROM message_ids WHERE orig_id = ? AND thread_id = ? ORDER BY message_id",
            (mid, thread_id),
        ).fetchone()
        if row is not None:
            relay_id, sender_id = row
            out[mid] = mid if sender_id == recipient_id else relay_id
    return out


def set_state(conn: sqlite3.Connection, message_id: int, state: str, reason: str | None = None) -> None:
    if reason is None:
        conn.execute("UPDATE messages SET state = ? WHERE id = ?", (state, message_id))
    else:
        conn.execute("UPDATE messages SET state = ?, reason = ? WHERE id = ?", (state, reason, message_id))


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    thread_id: int | None
    direction: str | None
    sender_id: int | None
    recipient_id: int | None
    state: str
    reason: str
    received_at: float
    envelope_from: str
    rcpt_alias: str
    subject: str | None
    original_sha256: str | None
    delivered_sha256: str | None
    orig_message_id: str | None
    relay_message_id: str | None


_MSG_COLS = ("id, thread_id, direction, sender_id, recipient_id, state, reason, received_at, envelope_from,"
             " rcpt_alias, subject, original_sha256, delivered_sha256, orig_message_id, relay_message_id")


def get(conn: sqlite3.Connection, message_id: int) -> MessageRow | None:
    row = conn.execute(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,)).fetchone()
    return MessageRow(*row) if row else None


def of_thread(conn: sqlite3.Connection, thread_id: int) -> list[MessageRow]:
    return [MessageRow(*r) for r in conn.execute(
        f"SELECT {_MSG_COLS} FROM messages WHERE thread_id = ? ORDER BY received_at, id", (thread_id,))]
