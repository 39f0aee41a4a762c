"""apply(): redaction and stripping touch only the affected parts; everything else is byte-identical."""

from __future__ import annotations

import base64
import email
from email import policy as email_policy

import pytest

from relay.message import parts
from relay.policy import Policy, apply, check, engine
from relay.policy.engine import check_and_apply, to_crlf
from tests.unit.policy import fixtures as fx
from tests.unit.policy.conftest import CORPUS, html, plain, with_attachment


def _body(raw: bytes, subtype: str = "plain") -> str:
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    return msg.get_body((subtype,)).get_content()  # type: ignore[union-attr]


def test_redact_phone_and_email_in_plain_text(policy: Policy) -> None:
    raw = plain("Hi,\ncall ０９０－１２３４－５６７８ or mail taro@gmail.com\nthanks")
    report = check(raw, policy)
    assert report.action == "redact"
    out = apply(raw, report, policy)
    body = _body(out)
    assert "[removed]" in body and "taro@gmail.com" not in body and "１２３４" not in body
    assert body.startswith("Hi,") and "thanks" in body
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_redact_in_base64_iso2022jp_part(policy: Policy) -> None:
    text = "ご連絡は 090-1234-5678 までお願いします。"
    raw = (b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(text.encode("iso-2022-jp")))
    out = apply(raw, check(raw, policy), policy)
    assert b"charset=iso-2022-jp" in out
    assert _body(out) == "ご連絡は [removed] までお願いします。"


def test_redact_in_subject(policy: Policy) -> None:
    raw = plain("hello", subject="=?utf-8?B?" + base64.b64encode("電話 090-1234-5678".encode()).decode() + "?=")
    report = check(raw, policy)
    assert [f.part for f in report.findings] == ["header:subject"]
    out = apply(raw, report, policy)
    msg = email.message_from_bytes(out, policy=email_policy.default)
    assert msg["Subject"] == "電話 [removed]"


def test_html_redaction_and_tracking_pixel_strip(policy: Policy) -> None:
    raw = html('<p>Call me: 090-1234-5678</p><img src="https://t.example/p.gif" width="1" height="1">'
               '<img src="cid:item">')
    report = check(raw, policy)
    assert {f.rule for f in report.findings} == {"contact.phone", "tracking.pixel"}
    out = apply(raw, report, policy)
    body = _body(out, "html")
    assert "090-1234-5678" not in body and "[removed]" in body
    assert "t.example" not in body and 'src="cid:item"' in body


def test_untouched_parts_are_byte_identical(policy: Policy) -> None:
    jpg = fx.image("JPEG")
    raw = with_attachment(jpg, "photo.jpg", "image/jpeg", text="mail me: a.b@yahoo.co.jp")
    report = check(raw, policy)
    out = apply(raw, report, policy)
    start = raw.index(b"Content-Type: image/jpeg")
    assert raw[start:] in out  # the attachment part (headers and body) is unchanged
    assert raw[: raw.index(b"Content-Type: text/plain")] == out[: out.index(b"Content-Type: text/plain")]


def test_nothing_to_do_returns_crlf_copy(policy: Policy) -> None:
    raw = plain("Thanks for your order!").replace(b"\r\n", b"\n")
    out = apply(raw, check(raw, policy), policy)
    assert out == raw.replace(b"\n", b"\r\n")


def test_corpus_messages_never_crash(policy: Policy) -> None:
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".jsonl", ".pub")]
    assert len(files) > 100
    for path in files:
        raw = path.read_bytes()
        report = check(raw, policy)
        out = apply(raw, report, policy)
        assert b"\n" not in out.replace(b"\r\n", b""), path


def test_check_and_apply_is_check_then_apply_on_one_parse(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's one call gives what check() and apply() give, for every corpus message; a CRLF
    message (as the SMTP server hands it over) is parsed once, one with bare LFs again for apply."""
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".jsonl", ".pub")]
    changed = 0
    for path in files:
        raw = path.read_bytes()
        report = check(raw, policy)
        expected = None if report.action in ("reject", "hold") else apply(raw, report, policy)
        both, out = check_and_apply(raw, policy)
        assert (both, out) == (report, expected), path
        changed += out is not None and out != to_crlf(raw)
    assert changed > 0  # some corpus messages are redacted or stripped: the edits were compared too
    parses: list[bytes] = []
    real_parse = parts.parse
    monkeypatch.setattr(engine, "parse", lambda raw: parses.append(raw) or real_parse(raw))
    crlf = plain("call 090-1234-5678 please")
    report, out = check_and_apply(crlf, policy)
    assert report.action == "redact" and out is not None and b"[removed]" in out and parses == [crlf]
    parses.clear()
    bare = crlf.replace(b"\r\n", b"\n")
    # (the model's parser reads wire form: a bare-LF message is made CRLF first, then parsed once)
    assert check_and_apply(bare, policy)[1] == out and parses == [crlf]
