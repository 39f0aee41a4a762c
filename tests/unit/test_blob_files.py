"""Contents from blobfiles.FILE_BYTES on are files beside the database; everything that reads,
clears or erases contents sees them as it sees contents inside the database."""

from __future__ import annotations

import os
from pathlib import Path

from relay.model import Role
from relay.store import blobfiles, erasure, messages, parties, retention, review
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate

NOW = 1_800_000_000.0
DAY = 86400.0


def _store(tmp_path: Path):  # type: ignore[no-untyped-def]
    conn = connect_sync(tmp_path / "relay.db")
    migrate(conn)
    return conn


def _put(conn, data: bytes) -> str:  # type: ignore[no-untyped-def]
    ((ok, digest),) = run_in_transaction(conn, [lambda c: messages.put_blob(c, data)])
    assert ok, digest
    return str(digest)


def test_large_contents_are_files_and_read_back(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    small, large = os.urandom(blobfiles.FILE_BYTES - 1), os.urandom(blobfiles.FILE_BYTES + 5)
    ds, dl = _put(conn, small), _put(conn, large)
    where = tmp_path / "relay.db-blobs"
    assert blobfiles.directory(conn) == where
    assert blobfiles.path_of(where, dl).read_bytes() == large and not blobfiles.path_of(where, ds).exists()
    assert oct(blobfiles.path_of(where, dl).stat().st_mode & 0o777) == "0o600"
    rows = dict(conn.execute("SELECT sha256, in_file FROM blobs"))
    assert rows == {ds: 0, dl: 1}
    assert conn.execute("SELECT length(data) FROM blobs WHERE sha256 = ?", (dl,)).fetchone() == (0,)
    assert messages.get_blob(conn, dl) == large and messages.get_blob(conn, ds) == small
    assert messages.small_blob(conn, dl, len(large) + 1) == (len(large), large)
    assert messages.small_blob(conn, dl, len(large)) == (len(large), None)  # size without loading it
    assert review.blob(conn, dl).data == large  # type: ignore[union-attr]
    assert _put(conn, large) == dl  # the same content again: one file, one row
    assert sorted(p.name for p in where.rglob("*") if p.is_file()) == [dl]


def test_retention_zeroes_and_removes_the_file(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    large = os.urandom(blobfiles.FILE_BYTES * 2)
    digest = _put(conn, large)
    path = blobfiles.path_of(tmp_path / "relay.db-blobs", digest)
    conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias, original_sha256)"
                 " VALUES (1, 'delivered', ?, 'a@b.example', 'x', ?)", (NOW - 40 * DAY, digest))
    inode = os.open(path, os.O_RDONLY)  # what a reader still holding the file would see
    try:
        ((ok, result),) = run_in_transaction(conn, [lambda c: retention.clear_expired(c, NOW - 30 * DAY, NOW)])
        assert ok and result == (1, len(large))
        assert not path.exists()  # set aside inside the transaction: one rename under the lock
        assert blobfiles.wipe_cleared(tmp_path / "relay.db-blobs") == 1  # zeroed after the commit
        assert os.pread(inode, len(large), 0) == bytes(len(large))  # overwritten before the unlink
        assert not any(p.is_file() for p in (tmp_path / "relay.db-blobs").rglob("*"))
    finally:
        os.close(inode)
    assert messages.get_blob(conn, digest) is None and messages.small_blob(conn, digest, 10**9) == (None, None)
    assert review.blob(conn, digest).cleared_reason == "retention"  # type: ignore[union-attr]


def test_a_cleared_content_arriving_again_is_stored_again(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    contents = [b"small content", os.urandom(blobfiles.FILE_BYTES - 1), os.urandom(blobfiles.FILE_BYTES)]
    digests = [_put(conn, c) for c in contents]
    ((ok, cleared),) = run_in_transaction(conn, [lambda c: retention.clear_blobs(c, digests, NOW, "retention")])
    assert ok and cleared == 3 and all(messages.get_blob(conn, d) is None for d in digests)
    assert [_put(conn, c) for c in contents] == digests
    for d, c in zip(digests, contents, strict=True):
        assert messages.get_blob(conn, d) == c
        assert review.blob(conn, d).cleared_at is None  # type: ignore[union-attr]
    assert [_put(conn, c) for c in contents] == digests  # present: left as it is
    assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (3,)


def test_erasure_finds_an_address_inside_a_file(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    ((ok, party),) = run_in_transaction(conn, [lambda c: parties.add(c, Role.BUYER, "B", ["erase.me@buyer.example"])])
    assert ok
    quoting = b"x" * blobfiles.FILE_BYTES + b"\r\nwrite to ERASE.ME@buyer.example\r\n"
    other = b"y" * blobfiles.FILE_BYTES
    dq, do = _put(conn, quoting), _put(conn, other)
    ((ok, summary),) = run_in_transaction(conn, [lambda c: erasure.erase(c, party.id, NOW)])
    assert ok, summary
    where = tmp_path / "relay.db-blobs"
    assert not blobfiles.path_of(where, dq).exists() and messages.get_blob(conn, dq) is None
    assert messages.get_blob(conn, do) == other


def test_a_large_content_stored_inside_the_database_before_is_still_read(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    legacy = os.urandom(messages.PIECE + 7)
    conn.execute("INSERT INTO blobs (sha256, size, data) VALUES ('old', ?, ?)", (len(legacy), legacy))
    assert messages.get_blob(conn, "old") == legacy
    assert messages.small_blob(conn, "old", 100) == (len(legacy), None)


def test_a_content_written_ahead_is_not_written_again(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    data = os.urandom(blobfiles.FILE_BYTES + 10)
    digests = messages.write_large(tmp_path / "relay.db", [data, data, b"small"])
    assert list(digests) == [id(data)]  # once per content, and only the large ones
    digest = digests[id(data)]
    path = blobfiles.path_of(tmp_path / "relay.db-blobs", digest)
    inode = path.stat().st_ino
    assert _put_known(conn, data, digest) == digest
    assert path.stat().st_ino == inode  # the transaction kept the file written ahead
    assert messages.get_blob(conn, digest) == data
    assert digest not in blobfiles._ahead  # taken


def test_a_file_cleared_after_it_was_written_ahead_is_written_again(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    where = tmp_path / "relay.db-blobs"
    removed, rewritten = os.urandom(blobfiles.FILE_BYTES + 1), os.urandom(blobfiles.FILE_BYTES + 2)
    d1 = messages.write_large(tmp_path / "relay.db", [removed])[id(removed)]
    d2 = messages.write_large(tmp_path / "relay.db", [rewritten])[id(rewritten)]
    blobfiles.remove(where, d1)  # another transaction cleared the same content meanwhile
    p2 = blobfiles.path_of(where, d2)
    with open(p2, "r+b") as fh:  # or zeroed it in place (same inode, a later mtime)
        fh.write(bytes(blobfiles.FILE_BYTES + 2))
    os.utime(p2, ns=(p2.stat().st_atime_ns, p2.stat().st_mtime_ns + 1_000_000))
    assert _put_known(conn, removed, d1) == d1 and _put_known(conn, rewritten, d2) == d2
    assert messages.get_blob(conn, d1) == removed and messages.get_blob(conn, d2) == rewritten


def test_written_ahead_entries_not_taken_are_forgotten(tmp_path: Path) -> None:
    data = os.urandom(blobfiles.FILE_BYTES + 3)
    digest = messages.write_large(tmp_path / "relay.db", [data])[id(data)]
    assert digest in blobfiles._ahead
    blobfiles.forget_ahead([digest])
    assert digest not in blobfiles._ahead


def _put_known(conn, data: bytes, digest: str) -> str:  # type: ignore[no-untyped-def]
    ((ok, value),) = run_in_transaction(conn, [lambda c: messages.put_blob(c, data, digest)])
    assert ok, value
    return str(value)


def test_a_content_that_already_is_a_file_is_linked_not_copied(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    data = os.urandom(blobfiles.FILE_BYTES + 5)
    spool = tmp_path / "spool-file"
    spool.write_bytes(data)
    spool.chmod(0o600)  # as the spool creates its files
    digest = messages.write_large(tmp_path / "relay.db", [data], {id(data): spool})[id(data)]
    path = blobfiles.path_of(tmp_path / "relay.db-blobs", digest)
    assert path.stat().st_ino == spool.stat().st_ino  # the same file, not a copy
    assert path.stat().st_mode & 0o777 == 0o600  # owner only, as every content file
    spool.unlink()  # the spool file goes after the reply; the content stays
    assert _put_known(conn, data, digest) == digest
    assert messages.get_blob(conn, digest) == data


def test_a_file_that_does_not_hold_the_content_is_not_linked(tmp_path: Path) -> None:
    data = os.urandom(blobfiles.FILE_BYTES + 6)
    where = tmp_path / "relay.db-blobs"
    short = tmp_path / "short"
    short.write_bytes(data[:-1])  # not the same size: written instead
    d1 = messages.write_large(tmp_path / "relay.db", [data], {id(data): short})[id(data)]
    assert blobfiles.path_of(where, d1).stat().st_ino != short.stat().st_ino
    assert blobfiles.path_of(where, d1).read_bytes() == data
    other = os.urandom(blobfiles.FILE_BYTES + 7)
    d2 = messages.write_large(tmp_path / "relay.db", [other], {id(other): tmp_path / "gone"})[id(other)]
    assert blobfiles.path_of(where, d2).read_bytes() == other  # a missing file: written instead
    third = os.urandom(blobfiles.FILE_BYTES + 8)
    readable = tmp_path / "readable"
    readable.write_bytes(third)
    readable.chmod(0o644)
    d3 = messages.write_large(tmp_path / "relay.db", [third], {id(third): readable})[id(third)]
    assert blobfiles.path_of(where, d3).stat().st_mode & 0o777 == 0o600  # a copy, owner only
