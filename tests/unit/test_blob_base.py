"""A delivered copy that changed only the head is stored as that head on its original
(messages.shared_tail): it reads back whole everywhere, and never outlives the content it needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay.model import Role
from relay.store import blobfiles, erasure, messages, parties, retention, review
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate

NOW = 1_800_000_000.0
DAY = 86400.0
BODY = os.urandom(messages.SHARED_BYTES).hex().encode()  # 8 KiB of text
ORIGINAL = b"From: a@b.example\r\nSubject: hi\r\n\r\n" + BODY
DELIVERED = b"DKIM-Signature: v=1; b=x\r\nFrom: x@relay.example\r\nSubject: hi\r\n\r\n" + BODY
START = ORIGINAL.index(BODY)


@pytest.mark.parametrize(("original", "delivered", "expected"), [
    (ORIGINAL, DELIVERED, START),                                  # only the head changed
    (ORIGINAL, DELIVERED[:-1] + b"!", None),                       # the body changed (redacted, stripped)
    (ORIGINAL, DELIVERED + b"\r\n", None),                         # … at its end
    (ORIGINAL, ORIGINAL, None),                                    # one content: stored once anyway
    (ORIGINAL, bytes(ORIGINAL), None),                             # the same bytes in another object
    (ORIGINAL[: START + 100], DELIVERED[: len(DELIVERED) - len(BODY) + 100], None),  # a small body
    (b"no head end" + BODY, b"X: y\r\n\r\n" + BODY, None),          # no blank line: no body to share
])
def test_shared_tail(original: bytes, delivered: bytes, expected: int | None) -> None:
    assert messages.shared_tail(original, delivered) == expected


def _store(tmp_path: Path):  # type: ignore[no-untyped-def]
    conn = connect_sync(tmp_path / "relay.db")
    migrate(conn)
    return conn


def _put_pair(conn, original: bytes, delivered: bytes) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    def unit(c):  # type: ignore[no-untyped-def]
        orig = messages.put_blob(c, original)
        tail = messages.shared_tail(original, delivered)
        return orig, messages.put_blob(c, delivered, base=None if tail is None else (orig, tail))
    ((ok, digests),) = run_in_transaction(conn, [unit])
    assert ok, digests
    return digests  # type: ignore[no-any-return]


def _message(conn, mid: int, at: float, orig: str, out: str) -> None:  # type: ignore[no-untyped-def]
    conn.execute("INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias, original_sha256,"
                 " delivered_sha256) VALUES (?, 'delivered', ?, 'a@b.example', 'x', ?, ?)", (mid, at, orig, out))


def test_the_head_is_stored_and_the_whole_reads_back(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    orig, out = _put_pair(conn, ORIGINAL, DELIVERED)
    row = conn.execute("SELECT size, length(data), base, base_from FROM blobs WHERE sha256 = ?", (out,)).fetchone()
    assert row == (len(DELIVERED), len(DELIVERED) - len(BODY), orig, START)
    assert messages.get_blob(conn, out) == DELIVERED and messages.get_blob(conn, orig) == ORIGINAL
    assert messages.small_blob(conn, out, len(DELIVERED) + 1) == (len(DELIVERED), DELIVERED)
    assert messages.small_blob(conn, out, len(DELIVERED)) == (len(DELIVERED), None)
    assert review.blob(conn, out).data == DELIVERED  # type: ignore[union-attr]
    assert _put_pair(conn, ORIGINAL, DELIVERED) == (orig, out)  # again: left as it is
    assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (2,)


def test_a_large_original_in_a_file_is_a_base_and_the_copy_is_not_written(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    body = os.urandom(blobfiles.FILE_BYTES).hex().encode()
    original, delivered = ORIGINAL.replace(BODY, body), DELIVERED.replace(BODY, body)
    tail = messages.shared_tail(original, delivered)
    assert tail is not None
    ahead = messages.write_large(tmp_path / "relay.db", [original, delivered], derived={id(delivered)})
    where = tmp_path / "relay.db-blobs"
    assert sorted(p.name for p in where.rglob("*") if p.is_file()) == [ahead[id(original)]]  # hashed only
    try:
        def unit(c):  # type: ignore[no-untyped-def]
            orig = messages.put_blob(c, original, ahead[id(original)])
            return orig, messages.put_blob(c, delivered, ahead[id(delivered)], base=(orig, tail))
        ((ok, (_orig, out)),) = run_in_transaction(conn, [unit])
    finally:
        blobfiles.forget_ahead(list(ahead.values()))
    assert ok and out == ahead[id(delivered)]
    assert conn.execute("SELECT in_file, length(data) FROM blobs WHERE sha256 = ?", (out,)).fetchone() == (
        0, len(delivered) - len(body))
    assert messages.get_blob(conn, out) == delivered


def test_no_base_no_head(tmp_path: Path) -> None:
    """A base that is gone, or derived itself, is not leaned on: the content is stored whole."""
    conn = _store(tmp_path)
    _orig, out = _put_pair(conn, ORIGINAL, DELIVERED)
    again = DELIVERED.replace(b"b=x", b"b=y")
    results = run_in_transaction(conn, [
        lambda c: messages.put_blob(c, again, base=(out, START + 10)),          # out is derived
        lambda c: messages.put_blob(c, again + b"z", base=("0" * 64, START))])  # never stored
    assert [ok for ok, _ in results] == [True, True]
    for data, (_, digest) in zip((again, again + b"z"), results, strict=True):
        assert messages.get_blob(conn, digest) == data
        assert conn.execute("SELECT base, length(data) FROM blobs WHERE sha256 = ?", (digest,)).fetchone() == (
            None, len(data))


def test_retention_keeps_a_base_while_its_copy_is_kept_and_clears_both_after(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    orig, out = _put_pair(conn, ORIGINAL, DELIVERED)
    _message(conn, 1, NOW - 40 * DAY, orig, orig)  # an old message with the same original…
    _message(conn, 2, NOW - 40 * DAY, orig, out)
    conn.execute("INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                 " next_attempt_at, expires_at) VALUES (2, 'r@x.example', '', ?, 'queued', ?, ?, ?)",
                 (out, NOW - 40 * DAY, NOW, NOW + DAY))  # …and its copy still waiting for delivery
    ((ok, result),) = run_in_transaction(conn, [lambda c: retention.clear_expired(c, NOW - 30 * DAY, NOW)])
    assert ok and result == (0, 0)
    assert messages.get_blob(conn, out) == DELIVERED
    conn.execute("UPDATE queue SET state = 'delivered'")
    ((ok, result),) = run_in_transaction(conn, [lambda c: retention.clear_expired(c, NOW - 30 * DAY, NOW)])
    assert ok and result == (1, len(DELIVERED))  # the copy first: its base is still needed by it
    ((ok, result),) = run_in_transaction(conn, [lambda c: retention.clear_expired(c, NOW - 30 * DAY, NOW)])
    assert ok and result == (1, len(ORIGINAL))
    assert messages.get_blob(conn, out) is None and messages.get_blob(conn, orig) is None
    assert review.blob(conn, out).cleared_reason == "retention"  # type: ignore[union-attr]


def test_clearing_a_base_clears_what_derives_from_it(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    orig, out = _put_pair(conn, ORIGINAL, DELIVERED)
    ((ok, cleared),) = run_in_transaction(conn, [lambda c: retention.clear_blobs(c, [orig], NOW, "erasure")])
    assert ok and cleared == 2
    assert messages.get_blob(conn, out) is None and messages.small_blob(conn, out, 10**9) == (None, None)
    assert _put_pair(conn, ORIGINAL, DELIVERED) == (orig, out)  # arriving again: stored again
    assert messages.get_blob(conn, out) == DELIVERED


def test_erasure_of_an_address_in_the_shared_body_clears_the_copy(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    body = BODY + b"\r\nwrite to taro@example.jp\r\n"
    orig, out = _put_pair(conn, ORIGINAL.replace(BODY, body), DELIVERED.replace(BODY, body))
    assert conn.execute("SELECT base FROM blobs WHERE sha256 = ?", (out,)).fetchone() == (orig,)

    def unit(c):  # type: ignore[no-untyped-def]
        party = parties.add(c, Role.BUYER, "Taro", ["taro@example.jp"])
        return erasure.erase(c, party.id, NOW)
    ((ok, summary),) = run_in_transaction(conn, [unit])
    assert ok and summary["contents_cleared"] == 2
    assert messages.get_blob(conn, out) is None and messages.get_blob(conn, orig) is None
