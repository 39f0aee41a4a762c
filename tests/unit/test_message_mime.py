"""The model's one MIME parser (relay.message.mime) and the part tree built from it
(relay.message.parts) on malformed MIME, with the stdlib email package as an independent oracle
where it reads the same thing; and the differences between the two parsers that were merged (the
policy's and the rewriter's), each pinned to the more robust reading."""

from __future__ import annotations

import base64
import email
import email.policy
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.message import mime, parts
from relay.message.views import places
from relay.policy import Policy, check, load_policy
from relay.policy.engine import apply, check_and_apply, to_crlf
from relay.review.transcript import read

CRLF = b"\r\n"
POLICY: Policy = load_policy(Path(__file__).resolve().parents[2] / "config" / "policy.toml")


def msg(*lines: str | bytes) -> bytes:
    return CRLF.join(x.encode() if isinstance(x, str) else x for x in lines) + CRLF


def leaf_texts(raw: bytes) -> list[str]:
    root = parts.parse(raw)
    return [parts.decode_text(parts.decode_body(raw, p), p.charset)[0] for p in root.leaves()]


def stdlib_texts(raw: bytes) -> list[str]:
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    out = []
    for p in m.walk():
        if not p.is_multipart():
            data = p.get_payload(decode=True)
            assert isinstance(data, bytes)
            out.append(data.decode(p.get_content_charset() or "utf-8", "replace"))
    return out


MULTI = msg(
    "From: a@example.org", "Content-Type: multipart/mixed; boundary=\"xx\"", "",
    "preamble --xx not a delimiter", "--xx", "Content-Type: text/plain", "", "one", "--xx",
    "Content-Type: text/plain; charset=utf-8", "", "two", "--xx--", "epilogue",
)


# --- multipart --------------------------------------------------------------------------------


def test_parts_ids_and_spans_match_the_stdlib() -> None:
    root = parts.parse(MULTI)
    assert [p.id for p in root.walk()] == ["1", "1", "2"]
    assert leaf_texts(MULTI) == stdlib_texts(MULTI) == ["one", "two"]
    for p in root.leaves():  # every span is the part exactly: header block, blank line, body
        assert MULTI[p.start : p.end].startswith(b"Content-Type: text/plain")


def test_missing_final_boundary_runs_the_last_part_to_the_end() -> None:
    raw = MULTI.split(b"--xx--")[0] + b"tail\r\n"
    assert leaf_texts(raw) == ["one", "two\r\ntail\r\n"]
    assert stdlib_texts(raw) == ["one", "two\r\ntail"]  # (the stdlib drops a part's last line end)


def test_boundary_in_the_preamble_is_not_a_delimiter_unless_it_starts_a_line() -> None:
    raw = MULTI.replace(b"preamble --xx not", b"preamble\r\n--xxnot")  # "--xxnot": a longer boundary
    assert leaf_texts(raw) == stdlib_texts(raw) == ["one", "two"]


def test_a_multipart_without_delimiters_is_checked_as_text() -> None:
    """Policy difference: the old tree left such a part unread (no children, skipped as multipart);
    a client shows its body, so the policy reads it as text."""
    raw = msg("From: a@example.org", "Content-Type: multipart/mixed; boundary=zz", "",
              "visit https://evil.example/buy now")
    root = parts.parse(raw)
    assert not root.children
    assert any(f.category == "links" for f in check(raw, POLICY).findings)


def test_nesting_past_the_depth_cap_is_one_leaf_and_still_checked() -> None:
    depth = mime.MAX_DEPTH + 5
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    tail = b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth)))
    raw = b"From: a@example.org\r\n" + head + b"Content-Type: text/plain\r\n\r\nsee https://evil.example/x" + tail + CRLF
    root = parts.parse(raw)
    assert max(p.depth for p in root.walk()) == mime.MAX_DEPTH
    deepest = max(root.walk(), key=lambda p: p.depth)
    assert not deepest.children and deepest.content_type == "multipart/mixed"
    assert any(f.category == "links" for f in check(raw, POLICY).findings)


def test_too_many_parts_stay_leaves() -> None:
    body = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx%d\r\n" % i for i in range(parts.MAX_PARTS + 20))
    raw = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + body + b"--p--\r\n"
    root = parts.parse(raw)
    assert len(root.children) == parts.MAX_PARTS + 20  # every part present, none split further


def test_a_boundary_with_8bit_bytes_is_matched_as_written() -> None:
    """The rewriter and the views decoded the parameter as UTF-8 ("replace"), so a Latin-1 boundary
    became U+FFFD and no delimiter matched; boundary_of keeps its bytes."""
    raw = msg(b"Content-Type: multipart/mixed; boundary=\"\xe9t\xe9\"", b"", b"--\xe9t\xe9",
              b"Content-Type: text/plain", b"", b"inner", b"--\xe9t\xe9--")
    assert leaf_texts(raw) == ["inner"]
    assert any(p.where == "body of message.1 (text/plain)" for p in places(raw))


# --- headers ----------------------------------------------------------------------------------


def test_a_junk_line_ends_the_header_block_as_clients_read_it() -> None:
    """Policy difference: the old tree read up to the first blank line, so text after a line that is
    not a field was neither header nor body to it, and went unchecked."""
    raw = msg("From: a@example.org", "Subject: hi", "this line is body text: https://evil.example/x", "",
              "more body")
    root = parts.parse(raw)
    assert raw[root.body_start :].startswith(b"this line is body text")
    stdlib = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert str(stdlib.get_payload()).startswith("this line is body text")
    assert any(f.category == "links" for f in check(raw, POLICY).findings)


def test_folded_and_8bit_headers() -> None:
    raw = msg(b"Subject: =?utf-8?b?44GT44KT?=", b"  =?utf-8?b?44Gr44Gh44Gv?=", b"X-Note: caf\xc3\xa9",
              b"X-Latin: caf\xe9", b"Content-Type: text/plain;", b"\tcharset=\"utf-8\"", b"", b"body")
    root = parts.parse(raw)
    assert root.header("subject") == "こんにちは"
    assert root.header("x-note") == "café" and root.header("x-latin") == "café"
    assert root.charset == "utf-8"
    [(start, end, value)] = parts.header_values(raw, root, "subject")
    assert raw[start:end].startswith(b"Subject:") and raw[end : end + 2] == CRLF and value == "こんにちは"


def test_set_header_keeps_every_other_byte() -> None:
    block = b"From x\r\nA: 1\r\nContent-Type: text/plain;\r\n charset=x\r\nB: 2\r\n"
    assert parts.set_header(block, "content-type", b"text/html") == b"From x\r\nA: 1\r\ncontent-type: text/html\r\nB: 2\r\n"
    assert parts.set_header(block, "Content-Type", None) == b"From x\r\nA: 1\r\nB: 2\r\n"
    assert parts.set_header(block, "C", b"3") == block + b"C: 3\r\n"
    assert parts.set_header(b"", "C", b"3") == b"C: 3\r\n"


def test_lf_only_input_is_read_as_wire_form() -> None:
    raw = MULTI.replace(CRLF, b"\n")
    policy = POLICY
    assert check(raw, policy) == check(MULTI, policy)
    assert leaf_texts(to_crlf(raw)) == ["one", "two"]
    assert read(raw)["text"] == "one\ntwo"


# --- transfer encodings -----------------------------------------------------------------------


def b64_part(body: bytes) -> bytes:
    return b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body


def test_base64_with_junk_whitespace_and_missing_padding_decodes_as_the_stdlib() -> None:
    """Rewriter difference: its fallback cut the text to a multiple of 4 and lost the last bytes
    ("QUJDRA" gave "ABC"); the stdlib and the old policy tree pad ("ABCD"). Policy difference: its
    cleaner dropped every "=", so text after the padding (a list footer) was decoded into the data;
    the stdlib and the rewriter stop at the padding."""
    for body in (b"QUJDRA", b"QUJD RA\r\n", b"QU!JD\r\n\tRA==\r\n", b"QUJDRA=", b"QUJD\r\nRA==\r\nfooter: x@y\r\n"):
        raw = b64_part(body)
        stdlib = email.message_from_bytes(raw, policy=email.policy.compat32).get_payload(decode=True)
        root = parts.parse(raw)
        assert parts.decode_body(raw, root) == mime.decode_body(raw, "base64", root.body_start) == stdlib, body


@given(st.binary(max_size=300), st.integers(0, 3), st.sampled_from([b"", b"\r\n", b" ", b"*", b"\x80"]))
@settings(max_examples=300, deadline=None)
def test_base64_agrees_with_the_stdlib_on_mangled_bodies(data: bytes, cut: int, junk: bytes) -> None:
    enc = base64.encodebytes(data).replace(b"\n", b"\r\n")
    enc = enc.rstrip(b"=\r\n") if cut == 3 else enc
    mangled = enc[: len(enc) // 2] + junk + enc[len(enc) // 2 :]
    stdlib = email.message_from_bytes(b64_part(mangled), policy=email.policy.compat32).get_payload(decode=True)
    assert mime.decode_body(mangled, "base64") == stdlib


def test_quoted_printable_as_the_stdlib() -> None:
    raw = b"Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" \
          b"caf=C3=A9 soft=\r\nbreak =3D=\r\n"
    assert leaf_texts(raw) == stdlib_texts(raw) == ["café softbreak ="]


# --- charsets ---------------------------------------------------------------------------------


def text_part(data: bytes, charset: str | None) -> bytes:
    ct = "text/plain" + (f"; charset={charset}" if charset is not None else "")
    return b"Content-Type: " + ct.encode() + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + data


def test_unknown_and_absent_charsets() -> None:
    assert leaf_texts(text_part("naïve".encode(), None)) == ["naïve"]  # valid UTF-8 wins
    assert leaf_texts(text_part("naïve".encode("cp1252"), None)) == ["naïve"]  # else Windows-1252
    assert leaf_texts(text_part("naïve".encode(), "x-klingon")) == ["naïve"]
    assert leaf_texts(text_part("naïve".encode("cp1252"), "unknown-8bit")) == ["naïve"]
    assert leaf_texts(text_part("Grüße".encode("latin-1"), "iso-8859-1")) == ["Grüße"]


def test_invalid_utf8_keeps_an_ascii_at_sign_visible() -> None:
    """Policy difference: invalid UTF-8 used to be read as GB18030, where a high byte followed by
    "@" is one character: the address vanished from the policy's text."""
    raw = text_part(b"write to bob\x81@mail.example please", "utf-8")
    [text] = leaf_texts(raw)
    assert "@mail.example" in text and "\ufffd" in text
    assert text == mime.readable(mime.decode_text(b"write to bob\x81@mail.example please", "utf-8")[0])


def test_undecodable_bytes_survive_a_redaction() -> None:
    raw = msg("From: a@example.org", "To: b@relay.example", "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 8bit", "") + b"call 090-1234-5678 \xff\xfe now\r\n"
    policy = POLICY
    report, out = check_and_apply(raw, policy)
    assert report.action == "redact" and out is not None
    assert out.endswith(b"\r\n\r\ncall [removed] \xff\xfe now\r\n")  # (was U+FFFD twice, as UTF-8)


def test_iso_2022_jp_is_decoded_not_read_as_ascii() -> None:
    """Rewriter difference: ISO-2022-JP bytes are all ASCII, and the ASCII shortcut returned the
    escape sequences as text (a full-width ＠ inside was invisible to the finder)."""
    data = "連絡先：ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ".encode("iso2022_jp")
    assert mime.decode_text(data, "iso-2022-jp")[0] == "連絡先：ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ"


def test_second_codec_for_labels_no_single_superset_reads() -> None:
    kana = "ｱｲｳ".encode("iso2022_jp_ext")  # half-width kana: only _ext
    korean = "한국".encode("iso2022_jp_2")  # a KS X 1001 designation: only _2
    assert mime.decode_text(kana, "iso-2022-jp") == ("ｱｲｳ", "iso2022_jp_ext")
    assert mime.decode_text(korean, "iso-2022-jp") == ("한국", "iso2022_jp_2")
    hkscs = bytes([0x88, 0x40])  # an HKSCS code point cp950 lacks
    text, codec = mime.decode_text(hkscs, "big5")
    assert codec == "big5hkscs" and text == hkscs.decode("big5hkscs")
    for data in (kana, korean, hkscs):  # and each is written back with the codec that read it
        text, codec = mime.decode_text(data, "iso-2022-jp" if data is not hkscs else "big5")
        assert mime.encode_text(text, codec) == (data, codec)


# --- byte identity ----------------------------------------------------------------------------

_LINE = st.one_of(
    st.sampled_from([b"", b"--b", b"--b--", b"--bb", b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64",
                     b"Subject: =?utf-8?q?x?=", b" folded", b"QUJD", b"x@y.example", b"\xe9\xff", b"From here"]),
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)


@given(st.lists(_LINE, max_size=40))
@settings(max_examples=300, deadline=None)
def test_parse_then_re_emit_unchanged_is_byte_identical(lines: list[bytes]) -> None:
    """Whatever the input, the tree's spans tile the message: re-emitting each leaf's bytes in place
    (no edit) gives the input back, and apply() with nothing to do changes no byte."""
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"\r\n".join(lines) + CRLF
    root = parts.parse(raw)
    for p in root.walk():
        assert 0 <= p.start <= p.body_start <= p.end <= len(raw)
        for a, b in zip(p.children, p.children[1:], strict=False):
            assert a.end <= b.start
    edits = [(p.start, p.end, raw[p.start : p.end]) for p in root.leaves()]
    out, pos = [], 0
    for s, e, data in sorted(edits):
        out += [raw[pos:s], data]
        pos = e
    assert b"".join(out) + raw[pos:] == raw
    report = check(raw, POLICY)
    report.findings.clear()
    report.attachments.clear()
    assert apply(raw, report, POLICY) == raw


# --- review reads the model -------------------------------------------------------------------


def test_review_reads_headers_and_html_as_displayed() -> None:
    raw = msg("From: =?utf-8?q?Jos=C3=A9?= <Jose@Example.org>", "To: a@x.example, \"Doe, J\" <j@x.example>",
              "Subject: =?utf-8?b?44GT44KT?=", "Content-Type: text/html; charset=utf-8", "",
              "<p>Hello<br>there</p><div style=\"display:none\">hidden</div><script>x()</script>")
    got = read(raw)
    assert got["headers"]["From"] == "José <jose@example.org>"
    assert got["headers"]["To"] == 'a@x.example, "Doe, J" <j@x.example>'
    assert got["headers"]["Subject"] == "こん"
    assert "Hello" in got["text"] and "there" in got["text"] and "x()" not in got["text"]
    assert "hidden" not in got["text"]


def test_review_lists_attachments_with_decoded_sizes() -> None:
    pdf = base64.encodebytes(b"%PDF-1.4\n").replace(b"\n", CRLF)
    raw = msg("Content-Type: multipart/mixed; boundary=q", "", "--q", "Content-Type: text/plain", "", "hi",
              "--q", "Content-Type: application/pdf", "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.pdf",
              "Content-Transfer-Encoding: base64", "") + pdf + b"--q--\r\n"
    got = read(raw)
    assert got["text"] == "hi"
    assert got["attachments"] == [{"filename": "€.pdf", "content_type": "application/pdf", "size": 9}]


def test_pipeline_header_facts_read_the_block_as_the_model_does() -> None:
    """pipeline/headers.py had its own line reader, which skipped a junk line and read fields after it;
    a client shows those lines as body, so the early stages now see the same block as the model."""
    from relay.pipeline.headers import facts, fields

    raw = msg("From: Ann <ann@example.org>", "Subject: =?utf-8?q?caf=C3=A9?=", " tail", "junk line",
              "From: other@example.org", "", "body").replace(b"\r\n", b"\n")
    assert [n for n, _ in fields(raw)] == ["from", "subject"]
    got = facts(raw)
    assert got.from_addresses == ("ann@example.org",) and got.subject == "café tail"


def test_critical_text_reads_through_the_model() -> None:
    """policy/critical.py parsed with stdlib email, whose get_content() raised on an unknown charset
    label, so that part's text was never classified; the model reads it (UTF-8, else Windows-1252)."""
    from relay.policy.critical import message_text

    raw = msg("Content-Type: multipart/alternative; boundary=a", "", "--a",
              "Content-Type: text/plain; charset=x-unknown-label", "", "Please change the delivery date",
              "> quoted line", "--a", "Content-Type: text/html", "", "<p>html</p>", "--a--")
    assert message_text(raw) == "Please change the delivery date"
    assert message_text(raw.replace(b"text/plain", b"text/other").replace(b"text/other", b"image/png")) == "html"


def test_filename_from_every_place_a_client_takes_it() -> None:
    """The views read filename-or-name in either field; the policy's tree (compat32 get_filename)
    only Disposition's filename and Content-Type's name. One reading now: the wider one."""
    fields, _ = mime.parse_headers(b"Content-Disposition: attachment; name=a.exe\r\n\r\n", 0, 46)
    assert parts.filename_of(fields) == "a.exe"
    fields, _ = mime.parse_headers(b"Content-Type: application/x; filename==?utf-8?q?=E2=82=AC?=.exe\r\n", 0, 65)
    assert parts.filename_of(fields) == "€.exe"
