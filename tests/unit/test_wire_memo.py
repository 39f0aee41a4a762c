"""A content known to be in wire form (CRLF only) is not scanned again: the rewriter's joined output,
the signed message and a stored content read back carry that knowledge when — and only when —
every piece they were made of is in wire form."""

from __future__ import annotations

from pathlib import Path

from relay import scan
from relay.dkim import Signer
from relay.rewrite.body import apply_edits
from relay.store import messages
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import migrate
from tests.unit.test_dkim import ed25519_pem, rsa_pem


def _clean_text(lines: int = 3000) -> bytes:
    return b"".join(b"line %05d of some text that is long enough\r\n" % i for i in range(lines))


def _fresh(data: bytes) -> bytes:
    return bytes(bytearray(data))  # equal, but a different object than anything remembered


def test_clean_slice_looks_at_the_ends() -> None:
    data = b"ab\r\ncd\r\n"
    assert scan.clean_slice(data, 0, len(data)) and scan.clean_slice(data, 4, 8) and scan.clean_slice(data, 5, 5)
    assert not scan.clean_slice(data, 0, 3)  # ends on the CR of a CRLF
    assert not scan.clean_slice(data, 3, 8)  # starts on its LF
    for start in range(len(data)):  # the answer is is_crlf's, for every slice
        for end in range(start, len(data) + 1):
            assert scan.clean_slice(data, start, end) == scan.is_crlf(data[start:end])


def test_remembered_only_when_large_and_known() -> None:
    big = _fresh(_clean_text())
    assert not scan.known_clean(big)
    scan.remember_clean(big)
    assert scan.known_clean(big) and scan.is_crlf(big)
    small = _fresh(b"x\r\n")
    scan.remember_clean(small)
    assert not scan.known_clean(small)  # small contents are cheap to scan: not kept


def test_joined_edits_of_clean_pieces_are_known_clean() -> None:
    buf = _fresh(_clean_text())
    assert scan.is_crlf(buf)  # checked once, as the handler does
    out = apply_edits(buf, [(0, 10, b"Subject: x\r\n"), (500, 520, b"REPLACED\r\n")])
    assert scan.known_clean(out) and scan.is_crlf(_fresh(out))


def test_a_piece_with_a_bare_line_end_is_not_taken_for_clean() -> None:
    buf = _fresh(_clean_text())
    assert scan.is_crlf(buf)
    out = apply_edits(buf, [(100, 110, b"bare\nLF")])
    assert not scan.known_clean(out) and not scan.is_crlf(out)
    # an edit that cuts a CRLF in two: the kept slice before it ends on a CR
    lf = buf.index(b"\r\n", 200) + 1
    buf2 = _fresh(buf)
    scan.is_crlf(buf2)
    out = apply_edits(buf2, [(lf, lf + 1, b"X")])
    assert not scan.known_clean(out) and not scan.is_crlf(out)


def test_an_unchecked_source_gives_no_knowledge() -> None:
    buf = _fresh(_clean_text())  # never checked: apply_edits must not vouch for it
    out = apply_edits(buf, [(0, 1, b"l")])
    assert not scan.known_clean(out)


def test_a_signed_clean_message_is_known_clean() -> None:
    signer = Signer("relay.example", "sel", rsa_pem(), ed25519_pem())
    message = _fresh(b"From: a@relay.example\r\nTo: b@x.example\r\nSubject: hi\r\n\r\n" + _clean_text())
    assert scan.is_crlf(message)
    signed = signer.sign(message)
    assert signed.startswith(b"DKIM-Signature:") and scan.known_clean(signed) and scan.is_crlf(_fresh(signed))


def test_a_stored_content_read_back_keeps_what_was_known(tmp_path: Path) -> None:
    conn = connect_sync(tmp_path / "relay.db")
    migrate(conn)

    def put(data: bytes) -> str:
        ((ok, digest),) = run_in_transaction(conn, [lambda c: messages.put_blob(c, data)])
        assert ok
        return str(digest)

    for size in (100_000, 300_000):  # in the database, and in a file beside it
        known = _fresh(_clean_text(size // 45))
        scan.remember_clean(known)
        other = _fresh(known[:-2] + b"\n\n")  # never checked (and not clean)
        dk, do = put(known), put(other)
        assert dict(conn.execute("SELECT sha256, wire FROM blobs WHERE sha256 IN (?, ?)", (dk, do))) == {dk: 1, do: 0}
        back, back_other = messages.get_blob(conn, dk), messages.get_blob(conn, do)
        assert back == known and back is not known and scan.known_clean(back)  # type: ignore[arg-type]
        assert back_other == other and not scan.known_clean(back_other)  # type: ignore[arg-type]
        assert not scan.is_crlf(back_other)  # type: ignore[arg-type]
