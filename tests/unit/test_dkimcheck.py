"""DKIM verification against a local DNS server: malformed signatures and header blocks are a
permerror for that signature (never an exception, which the runner would turn into 451), and the
key is the selector's TXT record that parses as a key, wherever it stands among the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import dkim
import pytest

from relay.config import DnsSection
from relay.dkim import public_txt_from_private, txt_record
from relay.pipeline.headers import fields
from relay.trust import dkimcheck
from relay.trust.dns import Resolver
from tests.dkimtools import dns_server, rsa_pem

KEY = 31
BODY = (b"From: shop@mail.test\r\nTo: buyer@x.test\r\nSubject: hi\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        b"\r\nHello.\r\n")
ZONE = (txt_record("s1", "mail.test", public_txt_from_private(rsa_pem(2048, KEY))) + "\n"
        # two records at one selector, junk first (a site-verification token published at the wrong name)
        + 'two._domainkey.mail.test. 60 IN TXT "google-site-verification=abc123"\n'
        + txt_record("two", "mail.test", public_txt_from_private(rsa_pem(2048, KEY))) + "\n")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with dns_server(ZONE) as (p, _):
        yield p


def signed(selector: bytes = b"s1", data: bytes = BODY) -> bytes:
    return dkim.sign(data, selector, b"mail.test", rsa_pem(2048, KEY), include_headers=[b"from", b"to", b"subject"]) + data


def verify(port: int, raw: bytes) -> list[tuple[str, str]]:
    resolver = Resolver(DnsSection(nameservers=["127.0.0.1"], port=port, timeout=3))
    headers = [v for n, v in fields(raw) if n == "dkim-signature"]
    return asyncio.run(dkimcheck.verify_all(resolver, raw, headers, 3))


def sig(tags: str) -> bytes:
    return f"DKIM-Signature: {tags}\r\n".encode()


@pytest.mark.parametrize("header", [
    sig("v=1; a=rsa-sha256; d=mail.test; s=s1; garbage; h=from; bh=AAAA; b=AAAA"),  # tag without =
    sig("v=1; a=rsa-sha256; d=mail.test; d=mail.test; s=s1; h=from; bh=AAAA; b=AAAA"),  # duplicate tag
    sig("v=1; a=rsa-sha256; d=mail.test; s=s1; h=from; bh=AAAA; b=!!!!"),  # b= not base64
    sig("v=1; a=rsa-md5; d=mail.test; s=s1; h=from; bh=AAAA; b=AAAA"),  # unknown algorithm
    sig("v=1; a=rsa-sha256; c=odd/worse; d=mail.test; s=s1; h=from; bh=AAAA; b=AAAA"),  # bad c=
    sig("v=1; a=rsa-sha256; d=mail.test; i=; s=s1; h=from; bh=AAAA; b=AAAA"),  # i= outside d=
    sig(""),  # empty
])
def test_unreadable_signature_is_permerror(port: int, header: bytes) -> None:
    assert verify(port, header + BODY) == [("mail.test" if b"d=" in header else "", "permerror")]


def test_non_ascii_signature_never_raises(port: int) -> None:
    raw = "DKIM-Signature: v=1; a=rsa-sha256; d=mail.test; s=sé; h=from; bh=AAAA; b=AAAA\r\n".encode() + BODY
    ((domain, result),) = verify(port, raw)
    assert domain == "mail.test" and result in ("fail", "permerror")


def test_header_line_dkimpy_cannot_split_is_permerror_not_an_exception(port: int) -> None:
    # dkimpy raised MessageFormatError from its constructor: the runner answered 451, forever
    raw = signed().replace(b"\r\n\r\n", b"\r\nthis line has no colon\r\n\r\n", 1)
    assert verify(port, raw) == [("mail.test", "permerror")]


@pytest.mark.parametrize("junk", [b"X-Note: a\x00b\r\n", b"X-Note: a\rb\r\n"])
def test_nul_or_bare_cr_in_the_header_block_never_raises(port: int, junk: bytes) -> None:
    raw = signed(data=junk + BODY)  # signed over the odd bytes: still a result, not an exception
    ((domain, result),) = verify(port, raw)
    assert domain == "mail.test" and result in ("pass", "fail", "permerror")


def test_one_bad_signature_does_not_spoil_the_next(port: int) -> None:
    raw = sig("v=1; a=rsa-sha256; d=other.test; s=s1; garbage") + signed()
    assert verify(port, raw) == [("other.test", "permerror"), ("mail.test", "pass")]


def test_tampered_body_is_still_fail(port: int) -> None:
    assert verify(port, signed().replace(b"Hello.", b"Hullo.")) == [("mail.test", "fail")]


def test_selector_with_junk_txt_record_first_verifies(port: int) -> None:
    assert verify(port, signed(b"two")) == [("mail.test", "pass")]


def test_key_record_picks_the_record_that_is_a_key() -> None:
    key = public_txt_from_private(rsa_pem(2048, KEY))
    assert dkimcheck.key_record(b"x", ["v=spf1 -all", key, "junk"]) == key.encode()
    assert dkimcheck.key_record(b"x", ["junk"]) == b"junk"  # dkimpy then says why it is no key
    assert dkimcheck.key_record(b"x", []) is None
