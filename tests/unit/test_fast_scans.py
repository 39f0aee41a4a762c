"""The linear scans that replaced line-anchored regexes over whole messages find exactly what the
regexes found: on every message of the shared corpus (as received, and with CRLF line ends, as the
server hands them on) and on generated edge cases.

The reference implementations below are the code before the change, kept as the oracle.
"""

from __future__ import annotations

import binascii
import hashlib
import random
import re

import pytest

from relay import dkim
from relay.message import mime, parts
from relay.scan import a2b_base64, is_crlf
from relay.smtp import shape
from tests.dkimtools import CORPUS, corpus_manifest, relaxed_body_reference


def _corpus() -> list[tuple[str, bytes]]:
    out = []
    for row in corpus_manifest():
        name = row["file"]
        raw = (CORPUS / name).read_bytes()
        out.append((name, raw))
        crlf = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
        if crlf != raw:
            out.append((name + " (CRLF)", crlf))
    return out


MESSAGES = _corpus()
needs_corpus = pytest.mark.skipif(not MESSAGES, reason="shared corpus not present")


# --- the old implementations ------------------------------------------------------------------


def old_split_multipart(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    delim = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.M)
    spans: list[tuple[int, int]] = []
    cur: int | None = None
    for m in delim.finditer(raw, start, end):
        if cur is not None:
            pend = m.start()
            if pend > cur and raw[pend - 1 : pend] == b"\n":
                pend -= 1
                if pend > cur and raw[pend - 1 : pend] == b"\r":
                    pend -= 1
            spans.append((cur, max(cur, pend)))
        if m.group(1):
            cur = None
            break
        nl = raw.find(b"\n", m.end(), end)
        cur = end if nl < 0 else nl + 1
    if cur is not None and cur < end:
        spans.append((cur, end))
    return spans


def old_longest_line_over(raw: bytes, limit: int) -> bool:
    first = raw.find(b"\n")
    end = first if first >= 0 else len(raw)
    if end - (raw[end - 1 : end] == b"\r") > limit:
        return True
    return re.search(rb"\n[^\r\n]{%d}" % (limit + 1), raw) is not None


def reference_decode_base64(body: bytes) -> bytes:
    """binascii's non-strict reading (the stdlib's), else the policy's old cleaner."""
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        pass
    cleaned = body.translate(None, mime._NOT_BASE64)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return b""


# --- corpus -----------------------------------------------------------------------------------


def _spans(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The model's splitter's part spans, in the old reader's terms (it kept no empty last part
    after a delimiter that is never closed)."""
    mp = mime.split_multipart(raw, start, end, boundary)
    spans = [] if mp is None else list(mp.parts)
    if spans and mp is not None and len(mp.delims) == len(spans) and spans[-1][0] >= end:
        spans.pop()
    return spans


@needs_corpus
@pytest.mark.parametrize(("name", "raw"), MESSAGES, ids=[n for n, _ in MESSAGES])
def test_part_tree_as_before(name: str, raw: bytes) -> None:
    if not is_crlf(raw):
        return  # the part tree reads wire form (the policy engine's to_crlf)
    for part in parts.parse(raw).walk():
        boundary = mime.boundary_of(part.fields)
        if part.content_type.startswith("multipart/") and boundary:
            assert _spans(raw, part.body_start, part.end, boundary) == \
                old_split_multipart(raw, part.body_start, part.end, boundary)
        if part.cte == "base64" and not part.children:
            assert parts.decode_body(raw, part) == reference_decode_base64(raw[part.body_start : part.end])


@needs_corpus
@pytest.mark.parametrize(("name", "raw"), MESSAGES, ids=[n for n, _ in MESSAGES])
def test_shape_scans_as_before(name: str, raw: bytes) -> None:
    end = shape._header_end(raw, 0)
    assert [m.span() for m in shape.boundary_lines(raw, end)] == \
        [m.span() for m in shape._BOUNDARY_LINE.finditer(raw, end)]
    for limit in (60, 76, 200, 998, 8192):
        assert shape._longest_line_over(raw, limit) is old_longest_line_over(raw, limit)


@needs_corpus
@pytest.mark.parametrize(("name", "raw"), MESSAGES, ids=[n for n, _ in MESSAGES])
def test_wire_checks_as_before(name: str, raw: bytes) -> None:
    assert is_crlf(raw) is (raw.count(b"\r") == raw.count(b"\n") == raw.count(b"\r\n"))
    if is_crlf(raw):
        start = raw.find(b"\r\n\r\n")
        body = raw[start + 4 :] if start >= 0 else b""
        assert dkim.canonicalize_body_relaxed(body) == relaxed_body_reference(body)
        assert dkim.body_hash_relaxed(raw, start + 4 if start >= 0 else len(raw)) == \
            hashlib.sha256(relaxed_body_reference(body)).digest()


# --- generated --------------------------------------------------------------------------------


def _fragments(seed: int, pieces: list[bytes], count: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30))) for _ in range(count)]


@pytest.mark.parametrize("boundary", [b"b", b"b.", b"-b", b"=_a+b"])
def test_split_multipart_on_generated_bodies(boundary: bytes) -> None:
    pieces = [b"a", b"\r\n", b"-", b"--", b" ", b"\t", b"--" + boundary, b"--" + boundary + b"--",
              b"\r\n--" + boundary + b"\r\n", b"\r\n\r\n", boundary, b"--" + boundary + b"x"]
    for raw in _fragments(2046, pieces, 3000):
        for start in range(0, len(raw) + 1, 3):
            if start and raw[start - 2 : start] != b"\r\n":
                continue  # a body starts on a line of its own
            assert _spans(raw, start, len(raw), boundary) == old_split_multipart(raw, start, len(raw), boundary), \
                (raw, start)


def test_shape_scans_on_generated_text() -> None:
    pieces = [b"a", b"bb", b"\r", b"\n", b"\r\n", b"-", b"--", b"--x", b"--x--", b" ", b"\t", b"y" * 7]
    for raw in _fragments(5322, pieces, 3000):
        for limit in (1, 2, 5, 9):
            assert shape._longest_line_over(raw, limit) is old_longest_line_over(raw, limit), (raw, limit)
        for start in range(0, len(raw) + 1, 4):
            assert [m.span() for m in shape.boundary_lines(raw, start)] == \
                [m.span() for m in shape._BOUNDARY_LINE.finditer(raw, start)]


def test_base64_decoding_on_generated_bodies() -> None:
    pieces = [b"A", b"Q", b"z", b"+", b"/", b"=", b"==", b"\r\n", b" ", b"-", b"QUJD", b"QQ==", b"QUI=", b"\x80"]
    for body in _fragments(4648, pieces, 5000):
        assert mime.decode_body(body, "base64") == reference_decode_base64(body), body


def _binascii(data: bytes) -> bytes | str:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error as exc:
        return f"error: {type(exc).__name__}"


def _fast(data: bytes, start: int = 0, end: int | None = None) -> bytes | str:
    try:
        return a2b_base64(data, start, end)
    except binascii.Error as exc:
        return f"error: {type(exc).__name__}"


def test_simd_base64_decodes_what_binascii_decodes() -> None:
    """pybase64 reads "=" inside the text and "-_" its own way: scan.a2b_base64 must still answer
    exactly what binascii answers (the bytes, or an error) on well-formed and mangled bodies."""
    import base64

    rnd = random.Random(7)
    pieces = [b"A", b"Q", b"z", b"+", b"/", b"=", b"==", b"\r\n", b"\n", b" ", b"\t", b"-", b"_", b".", b"\x00",
              b"\xff", b"QUJD", b"QQ==", b"QUI="]
    bodies = _fragments(9113, pieces, 5000)
    for _ in range(3000):
        body = bytearray(base64.encodebytes(rnd.randbytes(rnd.randint(0, 200))).replace(b"\n", b"\r\n"))
        for _ in range(rnd.randint(0, 3)):
            at = rnd.randint(0, len(body))
            body[at:at] = rnd.choice(pieces)
        if rnd.random() < 0.3:
            body = bytearray(body.rstrip(b"=\r\n"))
        bodies.append(bytes(body))
    for body in bodies:
        assert _fast(body) == _binascii(body), body
        assert _fast(b"xx" + body + b"yy", 2, len(body) + 2) == _binascii(body), body
    big = rnd.randbytes(3_000_000)
    assert a2b_base64(base64.encodebytes(big).replace(b"\n", b"\r\n")) == big


def test_an_attachment_decoded_twice_in_a_row_is_decoded_once() -> None:
    import base64
    import threading

    payload = bytes(range(256)) * 2000  # 512 KB: over parts.REMEMBER_BYTES once encoded
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n")
    [leaf] = [p for p in parts.parse(raw).leaves() if p.cte == "base64"]
    first = parts.decode_body(raw, leaf)          # check()
    assert first == payload
    assert parts.decode_body(raw, leaf) is first  # apply(): the same bytes, not a second decode
    again = parts.decode_body(raw, leaf)          # a hit is forgotten: decoded anew
    assert again == payload and again is not first

    twin = bytes(bytearray(raw))                 # equal bytes, another message: never served from memory
    [twin_leaf] = [p for p in parts.parse(twin).leaves() if p.cte == "base64"]
    assert parts.decode_body(twin, twin_leaf) is not again

    seen: list[bytes] = []
    parts.decode_body(raw, leaf)
    thread = threading.Thread(target=lambda: seen.append(parts.decode_body(raw, leaf)))
    thread.start()
    thread.join()
    assert seen[0] == payload and seen[0] is not parts.decode_body(raw, leaf)  # each thread its own memory


@pytest.mark.parametrize("split_bytes", [0, 1 << 20])
def test_max_line_length_tells_a_line_over_998_as_the_loop_did(split_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both readings (one split, or a find per line above _SPLIT_BYTES) agree with the longest
    CRLF-ended line on whether it passes 998 (what the callers ask)."""
    from relay.message import mime as rmime

    monkeypatch.setattr(rmime, "_SPLIT_BYTES", split_bytes)
    rnd = random.Random(998)
    for _ in range(400):
        lines = [b"x" * rnd.choice([0, 1, 500, 997, 998, 999, 1500]) + rnd.choice([b"", b"\n", b"\r"])
                 for _ in range(rnd.randint(1, 6))]
        data = b"\r\n".join(lines)
        longest = max(len(line) for line in data.split(b"\r\n"))
        got = rmime.max_line_length(data)
        assert (got > 998) == (longest > 998), data[:50]
