"""The egress check on hand-made outgoing messages: what it strips, what it refuses, what it lets by.

The oracle for "the address is gone" is the stdlib's parse of the result, not the relay's finder.
"""

from __future__ import annotations

import base64
import email
import email.policy

import pytest

from relay.message.contacts import finder_of
from relay.pipeline.stages.egress import check

SELLER = "kenji.sato@gmail.com"
BUYER = "alice.wong@example.org"
FINDER = finder_of([SELLER, BUYER])


def _msg(body: str, *, extra: str = "", to: str = BUYER) -> bytes:
    head = (f"From: Kyoto Crafts <s1x@relay.example>\r\nTo: {to}\r\nSubject: Your order\r\n{extra}"
            "MIME-Version: 1.0\r\n")
    return (head + body).encode()


def _with_attachment(data: bytes, ctype: str, name: str) -> bytes:
    return _msg("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\nThe invoice is attached.\r\n"
                f"--b1\r\nContent-Type: {ctype}; name={name}\r\nContent-Disposition: attachment; filename={name}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data).decode().replace("\n", "\r\n")
                + "--b1--\r\n")


def test_a_clean_message_passes_unchanged_and_the_recipient_may_be_in_to() -> None:
    raw = _msg("Content-Type: text/plain; charset=utf-8\r\n\r\nYour parcel ships on Monday.\r\n")
    out, stripped, bad = check(raw, FINDER, BUYER)
    assert (out, stripped, bad) == (raw, [], [])


@pytest.mark.parametrize("body", [
    "Content-Type: text/plain; charset=utf-8\r\n\r\nWrite to kenji (at) gmail (dot) com… kenji.sato@gmail\r\n",
    "Content-Type: text/html; charset=utf-8\r\n\r\n<p>ke<b>nji.sa</b>to&#64;gmail.com</p>\r\n",
    "Content-Type: text/html; charset=utf-8\r\n\r\n<a href=\"mail&#9;to:kenji.sato%40gmail.com\">me</a>\r\n",
])
def test_text_that_still_holds_an_address_is_refused(body: str) -> None:
    _, stripped, bad = check(_msg(body), FINDER, BUYER)
    assert bad and not stripped
    assert all("kenji" not in p.where and "gmail" not in p.where for p in bad)  # places name no address


def test_the_other_party_in_a_kept_header_is_refused() -> None:
    raw = _msg("Content-Type: text/plain\r\n\r\nhello\r\n", extra="Comments: ask ｋｅｎｊｉ．ｓａｔｏ＠ｇｍａｉｌ．ｃｏｍ\r\n")
    _, _, bad = check(raw, FINDER, BUYER)
    assert [p.kind for p in bad] == ["header"]


def test_a_forwarded_route_header_is_refused() -> None:
    raw = _msg("Content-Type: message/rfc822\r\n\r\nReceived: from mail.example by mx\r\nFrom: a@b.example\r\n"
               "Subject: fwd\r\n\r\nbody\r\n")
    _, _, bad = check(raw, FINDER, BUYER)
    assert [p.kind for p in bad] == ["route"]


def test_an_attachment_holding_an_address_becomes_a_notice() -> None:
    import segno

    qr = segno.make(f"mailto:{SELLER}")
    import io

    png = io.BytesIO()
    qr.save(png, kind="png", scale=6)
    raw = _with_attachment(png.getvalue(), "image/png", "card.png")
    out, stripped, bad = check(raw, FINDER, BUYER)
    assert bad == [] and stripped
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    kinds = [p.get_content_type() for p in parsed.walk()]
    assert "image/png" not in kinds and kinds.count("text/plain") == 2
    notice = [p for p in parsed.walk() if p.get_content_type() == "text/plain"][1].get_content()
    assert "removed" in notice.lower() and "kenji" not in notice.lower()
    assert check(out, FINDER, BUYER)[2] == []  # what is delivered passes the check again
