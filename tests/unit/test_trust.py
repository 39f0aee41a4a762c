"""Sender-authentication helpers from tables: SPF evaluation (against a local DNS server), relaxed
alignment with the public-suffix list, Authentication-Results evidence, message shape limits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from relay.config import DnsSection, SmtpSection
from relay.smtp import shape
from relay.trust import passwords, spf
from relay.trust.align import aligned, org_domain
from relay.trust.dns import Resolver
from relay.trust.evidence import Evidence, from_authentication_results
from tests.dkimtools import dns_server

ZONE = """
plain.test. IN TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"
soft.test. IN TXT "v=spf1 ~all"
neutral.test. IN TXT "v=spf1 ip4:198.51.100.1"
inc.test. IN TXT "v=spf1 include:plain.test -all"
redir.test. IN TXT "v=spf1 redirect=plain.test"
mx.test. IN TXT "v=spf1 mx/24 -all"
mx.test. IN MX 10 mail.mx.test.
mail.mx.test. IN A 203.0.113.10
a.test. IN TXT "v=spf1 a:host.a.test -all"
host.a.test. IN A 203.0.113.20
macro.test. IN TXT "v=spf1 exists:%{i}.%{l}.allow.macro.test -all"
192.0.2.7.alice.allow.macro.test. IN A 127.0.0.2
two.test. IN TXT "v=spf1 -all"
two.test. IN TXT "v=spf1 +all"
loop.test. IN TXT "v=spf1 include:loop.test -all"
many.test. IN TXT "v=spf1 a:x1.many.test a:x2.many.test a:x3.many.test a:x4.many.test a:x5.many.test a:x6.many.test a:x7.many.test a:x8.many.test a:x9.many.test a:x10.many.test a:x11.many.test -all"
bad.test. IN TXT "v=spf1 ip4:not-an-ip -all"
noinc.test. IN TXT "v=spf1 include:nothing.test -all"
mx11.test. IN TXT "v=spf1 mx -all"
mx11.test. IN MX 1 m1.mx11.test.
mx11.test. IN MX 2 m2.mx11.test.
mx11.test. IN MX 3 m3.mx11.test.
mx11.test. IN MX 4 m4.mx11.test.
mx11.test. IN MX 5 m5.mx11.test.
mx11.test. IN MX 6 m6.mx11.test.
mx11.test. IN MX 7 m7.mx11.test.
mx11.test. IN MX 8 m8.mx11.test.
mx11.test. IN MX 9 m9.mx11.test.
mx11.test. IN MX 10 m10.mx11.test.
mx11.test. IN MX 11 m11.mx11.test.
m1.mx11.test. IN A 192.0.2.7
"""


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with dns_server(ZONE) as (p, _):
        yield p


@pytest.mark.parametrize(("ip", "sender", "want"), [
    ("192.0.2.7", "a@plain.test", "pass"),
    ("2001:db8::1", "a@plain.test", "pass"),
    ("198.51.100.9", "a@plain.test", "fail"),
    ("198.51.100.9", "a@soft.test", "softfail"),
    ("198.51.100.9", "a@neutral.test", "neutral"),
    ("192.0.2.7", "a@inc.test", "pass"),
    ("198.51.100.9", "a@inc.test", "fail"),
    ("192.0.2.7", "a@redir.test", "pass"),
    ("203.0.113.99", "a@mx.test", "pass"),
    ("203.0.113.20", "a@a.test", "pass"),
    ("203.0.113.21", "a@a.test", "fail"),
    ("192.0.2.7", "alice@macro.test", "pass"),
    ("192.0.2.7", "bob@macro.test", "fail"),
    ("192.0.2.7", "a@nospf.test", "none"),
    ("192.0.2.7", "a@two.test", "permerror"),
    ("192.0.2.7", "a@loop.test", "permerror"),
    ("192.0.2.7", "a@many.test", "permerror"),
    ("192.0.2.7", "a@bad.test", "permerror"),
    ("192.0.2.7", "a@noinc.test", "permerror"),
    ("192.0.2.7", "a@mx11.test", "permerror"),  # 11 MX names (§4.6.4), even though the first one matches
    ("::ffff:192.0.2.7", "a@plain.test", "pass"),
])
def test_spf(port: int, ip: str, sender: str, want: str) -> None:
    resolver = Resolver(DnsSection(nameservers=["127.0.0.1"], port=port, timeout=3))
    assert asyncio.run(spf.check_host(resolver, ip, sender, "helo.test")) == want


def test_spf_temperror_when_dns_is_silent() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = Resolver(DnsSection(nameservers=["127.0.0.1"], port=silent.getsockname()[1], timeout=0.3))
        assert asyncio.run(spf.check_host(resolver, "192.0.2.7", "a@plain.test")) == "temperror"


@pytest.mark.parametrize(("a", "b", "want"), [
    ("mail.example.co.uk", "example.co.uk", True),
    ("example.co.uk", "other.co.uk", False),
    ("eu.outlook.test", "outlook.test", True),
    ("bounce.mailer.example.com", "example.com", True),
    ("a.github.io", "b.github.io", False),  # private-section suffixes count too
    ("", "example.com", False),
])
def test_relaxed_alignment(a: str, b: str, want: bool) -> None:
    assert aligned(a, b) is want


def test_org_domain() -> None:
    assert org_domain("x.y.example.com.") == "example.com"
    assert org_domain("co.uk") == "co.uk"


def test_evidence_rule() -> None:
    assert Evidence("shop.test", dkim=[("mail.shop.test", "pass")]).decide() == ("pass", "dkim_aligned")
    assert Evidence("shop.test", dkim=[("esp.test", "pass")], spf="pass", spf_domain="esp.test").decide()[0] == "fail"
    assert Evidence("shop.test", spf="pass", spf_domain="bounce.shop.test").decide() == ("pass", "spf_aligned")
    assert Evidence("shop.test", spf="temperror", spf_domain="shop.test").decide()[0] == "temperror"
    # a temperror does not matter once an aligned pass is proven
    assert Evidence("shop.test", spf="temperror", dkim=[("shop.test", "pass")]).decide()[0] == "pass"


def test_authentication_results_topmost_with_our_id_only() -> None:
    values = ["other.test; dkim=pass header.d=shop.test",
              "mx.ours.test; dkim=fail header.d=shop.test; spf=pass smtp.mailfrom=x@esp.test",
              "mx.ours.test; dkim=pass header.d=shop.test"]
    ev = from_authentication_results(values, "mx.ours.test", "shop.test")
    assert ev is not None and ev.dkim == [("shop.test", "fail")] and ev.spf_domain == "esp.test"
    assert ev.decide()[0] == "fail"
    assert from_authentication_results(values[:1], "mx.ours.test", "shop.test") is None
    dm = from_authentication_results(["mx.ours.test; dmarc=pass header.from=other.test"], "mx.ours.test", "shop.test")
    assert dm is not None and dm.dmarc is None  # about another From


def _mime(depth: int, parts: int = 1) -> bytes:
    body = b"leaf\r\n"
    for level in range(depth):
        inner_ct = b'multipart/mixed; boundary="' + str(level - 1).encode() + b'"' if level else b"text/plain"
        part = b"Content-Type: " + inner_ct + b"\r\n\r\n" + body
        body = b"".join(b"--" + str(level).encode() + b"\r\n" + part + b"\r\n" for _ in range(parts if level == 0 else 1))
        body += b"--" + str(level).encode() + b"--\r\n"
    return b'Content-Type: multipart/mixed; boundary="' + str(depth - 1).encode() + b'"\r\n\r\n' + body


def test_shape_limits() -> None:
    smtp = SmtpSection(max_mime_depth=4, max_mime_parts=10, max_header_bytes=1000, max_header_fields=5)
    assert shape.check(_mime(4), smtp) is None
    assert shape.check(_mime(5), smtp) == "data.mime_too_deep"
    assert shape.check(_mime(1, parts=11), smtp) == "data.too_many_mime_parts"
    assert shape.check(b"X: " + b"a" * 1000 + b"\r\n\r\nbody", smtp) == "data.header_too_big"
    assert shape.check(b"".join(b"X%d: v\r\n" % i for i in range(6)) + b"\r\nbody", smtp) == "data.too_many_header_fields"
    assert shape.check(b"Subject: x\r\n\r\n" + b"y" * 9000, smtp) == "data.line_too_long"


@pytest.mark.parametrize(("raw", "too_long"), [
    (b"a" * 10 + b"\r\nb\r\n", False),            # exactly the limit, first line
    (b"a" * 11 + b"\r\nb\r\n", True),             # one over, first line
    (b"a" * 11, True),                              # one over, the only line, no CRLF
    (b"x\r\n" + b"a" * 10 + b"\r\n", False),       # exactly the limit, inner line
    (b"x\r\n" + b"a" * 11 + b"\r\nz\r\n", True),   # one over, inner line
    (b"x\r\n" + b"a" * 11, True),                  # one over, last line without CRLF
    (b"x\r\n" * 50 + b"a" * 10, False),
])
def test_line_length_limit(raw: bytes, too_long: bool) -> None:
    assert shape._longest_line_over(raw, 10) is too_long


def test_passwords() -> None:
    stored = passwords.hash_password("a long enough password")
    assert stored.startswith("scrypt$") and "a long enough" not in stored
    assert passwords.verify(b"a long enough password", stored)
    assert not passwords.verify(b"a long enough passwore", stored)
    assert not passwords.verify(b"anything", None)
    assert not passwords.verify(b"anything", "md5$x")


def test_unknown_login_costs_what_a_real_hash_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown login is verified against the dummy hash: the same scrypt N, r, p and salt length
    as a real one (asserted on the parameters handed to the KDF, not on timing)."""
    real = passwords.hash_password("a long enough password")
    assert passwords.parameters(passwords.DUMMY) == passwords.parameters(real)
    seen: list[tuple[int, int, int, int]] = []
    derive = passwords._derive

    def spy(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        seen.append((len(salt), n, r, p))
        return derive(password, salt, n, r, p)

    monkeypatch.setattr(passwords, "_derive", spy)
    assert not passwords.verify(b"a long enough password", None)
    assert passwords.verify(b"a long enough password", real)
    assert seen[0] == seen[1] == (passwords.SALT_BYTES, passwords.N, passwords.R, passwords.P)


CACHED_ZONE = """
cached.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
"""


@pytest.mark.parametrize(("cache_size", "asked"), [(100, 2), (0, 6)])
def test_answers_are_cached_for_their_ttl(cache_size: int, asked: int) -> None:
    """Three SPF checks of one sender: with the cache the name server is asked once per name
    (the TXT record, and the NXDOMAIN of a name that is not there), without it every time."""
    with dns_server(CACHED_ZONE) as (p, zone):
        seen: list[str] = []
        original = zone.resolve

        def counting(request, handler):  # type: ignore[no-untyped-def]
            seen.append(str(request.q.qname))
            return original(request, handler)

        zone.resolve = counting  # type: ignore[method-assign]
        resolver = Resolver(DnsSection(nameservers=["127.0.0.1"], port=p, timeout=3, cache_size=cache_size))

        async def three() -> list[str]:
            out = []
            for _ in range(3):
                out.append(await spf.check_host(resolver, "192.0.2.7", "a@cached.test"))
                await resolver.txt("absent.cached.test")
            return out

        assert asyncio.run(three()) == ["pass"] * 3
        assert len(seen) == asked, seen
