"""relay.dkim signatures checked by verifiers that share no code with it: Perl Mail::DKIM and OpenDKIM.

Keys are published by a real DNS server (dnslib, UDP, 127.0.0.1, ephemeral port; for opendkim-testmsg a
second one on port 53 inside a private network namespace), from zone lines written by relay.dkim.txt_record.
A test is skipped only when the verifier's binary is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.dkim import Signer, generate_ed25519_key, generate_rsa_key, txt_record
from tests.dkimtools import (
    CORPUS,
    DOMAIN,
    ED_SELECTOR,
    SELECTOR,
    ZoneResolver,
    crlf,
    dkimproxy_verify,
    dns_server,
    opendkim_testkey,
    opendkim_testmsg,
    tool,
)

HAVE_MAIL_DKIM = tool("dkimproxy-verify") is not None
HAVE_TESTKEY = tool("opendkim-testkey") is not None
HAVE_TESTMSG = tool("opendkim-testmsg") is not None and shutil.which("unshare") is not None
needs_mail_dkim = pytest.mark.skipif(not HAVE_MAIL_DKIM, reason="dkimproxy-verify (libmail-dkim-perl) not installed")
needs_testkey = pytest.mark.skipif(not HAVE_TESTKEY, reason="opendkim-testkey (opendkim-tools) not installed")
needs_testmsg = pytest.mark.skipif(not HAVE_TESTMSG,
                                   reason="opendkim-testmsg (opendkim-tools) or unshare (util-linux) not installed")

DATE = b"Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"

SYNTHETIC: dict[str, bytes] = {
    "ascii": (b"From: Seller Alias <s-7f3k2q@relay.example.test>\r\nTo: b-91xz0m@relay.example.test\r\n"
              b"Subject: About your order\r\n" + DATE + b"Message-ID: <demo-1@relay.example.test>\r\n"
              b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
              b"Hello,\r\n\r\nthe item ships tomorrow.\r\n"),
    "japanese": ("From: =?UTF-8?B?5bqX6IiX?= <s-7f3k2q@relay.example.test>\r\nTo: b-91xz0m@relay.example.test\r\n"
                 "Subject: =?UTF-8?B?5ZWG5ZOB44Gr44Gk44GE44Gm?= (about the item)\r\n"
                 "Date: Mon, 03 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                 "こんにちは。\r\n商品は明日発送します。  よろしく\t お願いします。 \r\n").encode(),
    "folded": (b"From: \"Seller,\r\n\t Inc.\" <s@relay.example.test>\r\n"
               b"To: a@relay.example.test,\r\n    b@relay.example.test\r\n"
               b"Subject:   a  subject\r\n  folded   over\r\n\t\tthree lines   \r\n" + DATE + b"\r\nbody\r\n"),
    "empty-body": b"From: a@relay.example.test\r\nSubject: empty\r\n" + DATE + b"\r\n",
    "no-final-crlf": b"From: a@relay.example.test\r\nSubject: x\r\n" + DATE + b"\r\nlast line has no CRLF",
    "trailing-blank-lines": b"From: a@relay.example.test\r\nSubject: x\r\n" + DATE + b"\r\ntext\r\n\r\n \r\n\r\n",
    "long-lines": (b"From: a@relay.example.test\r\nSubject: " + b"word " * 200 + b"\r\n" + DATE + b"\r\n"
                   + b"x" * 5000 + b"\r\n" + b"y \t" * 2000 + b"\r\n"),
    "bare-lf": (b"From: a@relay.example.test\nSubject: lf\n" + DATE.replace(b"\r\n", b"\n")
                + b"\nline one\nline two\n"),
}

#: Varied real messages (charsets, raw 8-bit headers, no final CRLF, bare CR, 150 KB, odd folding).
CORPUS_FILES = (
    "MailCore/mailcore2/unittest/data/summary/input/6094-japanese-2.eml",
    "MailCore/mailcore2/unittest/data/summary/input/4925-japanese.eml",
    "MailCore/mailcore2/unittest/data/summary/input/1798-korean.eml",
    "MailCore/mailcore2/unittest/data/summary/input/4851-chinese.eml",
    "jstedfast/MimeKit/UnitTests/TestData/messages/bounce.txt",
    "stalwartlabs/mail-parser/resources/eml/thirdparty/011.eml",
    "rspamd/rspamd/test/functional/messages/fname.eml",
    "rspamd/rspamd/test/functional/messages/numeric_urls.eml",
    "zbateson/mail-mime-parser/tests/_data/emails/m0022.txt",
    "mailgun/flanker/tests/fixtures/messages/long-links.eml",
    "mikel/mail/spec/fixtures/emails/plain_emails/raw_email_trailing_dot.eml",
    "sisimai/set-of-emails/maildir/bsd/lhost-kddi-01.eml",
    "jhillyerd/enmime/testdata/low-quality/bad-header-wrap.raw",
    "mailgun/talon/tests/fixtures/standard_replies/gmail.eml",
    "nodemailer/mailparser/test/fixtures/spam.eml",
)


def _opendkim_compatible(msg: bytes) -> bool:
    """OpenDKIM refuses (dkim_chunk syntax error) a header without exactly one From and one Date."""
    head = crlf(msg).split(b"\r\n\r\n", 1)[0]
    return (len(re.findall(rb"(?mi)^from[ \t]*:", head)) == 1
            and len(re.findall(rb"(?mi)^date[ \t]*:", head)) == 1)


def _messages() -> dict[str, bytes]:
    out = dict(SYNTHETIC)
    for name in CORPUS_FILES:
        path = CORPUS / name
        if path.exists():
            raw = path.read_bytes()
            out[f"corpus:{name}"] = crlf(raw)
            if b"\r\r\n" in raw or not raw.endswith(b"\n"):
                out[f"corpus-raw:{name}"] = raw  # the signer's own wire-form normalisation
    return out


MESSAGES = _messages()


@dataclass(frozen=True)
class Setup:
    signer: Signer
    rsa_key: Path
    ed_key: Path
    zone: str
    port: int
    resolver: ZoneResolver


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    keys = tmp_path_factory.mktemp("dkim") / "keys"
    rsa_key, ed_key = keys / f"{SELECTOR}.pem", keys / f"{ED_SELECTOR}.pem"
    rsa_txt = generate_rsa_key(rsa_key, 2048)
    ed_txt = generate_ed25519_key(ed_key)
    signer = Signer(DOMAIN, SELECTOR, rsa_key.read_bytes(), ed_key.read_bytes(), ed25519_selector=ED_SELECTOR)
    zone = "\n".join([
        txt_record(SELECTOR, DOMAIN, rsa_txt, ttl=300),
        txt_record(ED_SELECTOR, DOMAIN, ed_txt, ttl=300),
        "nosign._domainkey.example.test. 300 IN TXT \"v=DKIM1; p=\"",
    ]) + "\n"
    assert len(rsa_txt) > 255  # the 2048-bit key really needs two character-strings
    with dns_server(zone) as (port, resolver):
        yield Setup(signer, rsa_key, ed_key, zone, port, resolver)


def _results(output: str) -> list[str]:
    return re.findall(r"^verify result: (.*)$", output, flags=re.M)


def _tamper_body(signed: bytes) -> bytes:
    head, _, body = signed.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n" + body + b"P.S. call me on +1 555 0100\r\n"


def _tamper_subject(signed: bytes) -> bytes:
    out, n = re.subn(rb"(?mi)^(subject:[ \t]*)", rb"\1[changed] ", signed, count=1)
    assert n == 1
    return out


def _only_ed25519(signed: bytes) -> bytes:
    """Drop the first (rsa-sha256) DKIM-Signature field, keeping the ed25519 one."""
    second = signed.index(b"\r\nDKIM-Signature:") + 2
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256")
    return signed[second:]


# --------------------------------------------------------------------------- Perl Mail::DKIM


@needs_mail_dkim
@pytest.mark.parametrize("name", list(MESSAGES))
def test_mail_dkim_passes(setup: Setup, name: str) -> None:
    signed = setup.signer.sign(MESSAGES[name])
    results = _results(dkimproxy_verify(signed, setup.port))
    assert results[0] == "pass", results
    assert (f"{SELECTOR}._domainkey.{DOMAIN}.", "TXT") in setup.resolver.queries  # the key came from our DNS
    # Mail::DKIM ≤ 1.20230212 has no ed25519 (second signature): "invalid (unsupported algorithm …)"
    assert results[1] == "pass" or "unsupported algorithm" in results[1], results


@needs_mail_dkim
@pytest.mark.parametrize("name", ["ascii", "japanese", "folded", "long-lines",
                                  "corpus:MailCore/mailcore2/unittest/data/summary/input/1798-korean.eml"])
def test_mail_dkim_rejects_tampering(setup: Setup, name: str) -> None:
    if name not in MESSAGES:
        pytest.skip("corpus file not present")
    signed = setup.signer.sign(MESSAGES[name])
    body = _results(dkimproxy_verify(_tamper_body(signed), setup.port))
    subject = _results(dkimproxy_verify(_tamper_subject(signed), setup.port))
    assert body[0].startswith("fail (body has been altered)"), body
    assert subject[0].startswith("fail (message has been altered)"), subject


@needs_mail_dkim
def test_mail_dkim_oversigned_from(setup: Setup) -> None:
    msg = MESSAGES["ascii"]
    evil = b"From: Support <evil@attacker.test>\r\n"
    signed = setup.signer.sign(msg)
    assert _results(dkimproxy_verify(evil + signed, setup.port))[0].startswith("fail"), "From added on top"
    # Control: without oversigning, Mail::DKIM accepts the added From (it hashes the bottom-most one).
    plain = Signer(DOMAIN, SELECTOR, setup.rsa_key.read_bytes(), oversign=()).sign(msg)
    assert _results(dkimproxy_verify(evil + plain, setup.port))[0] == "pass"


@needs_mail_dkim
def test_mail_dkim_ed25519(setup: Setup) -> None:
    r = subprocess.run(["perl", "-MMail::DKIM::Signature", "-e",
                        'print Mail::DKIM::Signature->new->get_algorithm_class("ed25519-sha256") ? "yes" : "no"'],
                       capture_output=True, text=True, timeout=20, check=False)
    if r.stdout.strip() != "yes":
        pytest.skip("this Mail::DKIM has no ed25519-sha256 (added after 1.20230212)")
    signed = _only_ed25519(setup.signer.sign(MESSAGES["japanese"]))
    assert _results(dkimproxy_verify(signed, setup.port)) == ["pass"]
    assert _results(dkimproxy_verify(_tamper_body(signed), setup.port))[0].startswith("fail")


# --------------------------------------------------------------------------- OpenDKIM


@needs_testkey
def test_opendkim_testkey(setup: Setup, tmp_path: Path) -> None:
    rc, out = opendkim_testkey(tmp_path, setup.port, SELECTOR, setup.rsa_key)
    assert rc == 0 and "key OK" in out, out
    other = tmp_path / "other.pem"
    generate_rsa_key(other, 1024)
    rc, out = opendkim_testkey(tmp_path, setup.port, SELECTOR, other)
    assert rc != 0 and "keys do not match" in out, out
    # opendkim-testkey 2.11 reads only RSA private keys ("EVP_PKEY_get1_RSA() failed"), so no ed25519 here.


@needs_testmsg
def test_opendkim_testmsg(setup: Setup) -> None:
    cases: list[tuple[str, bytes, bool]] = []
    for name, msg in MESSAGES.items():
        if not _opendkim_compatible(msg):
            continue
        signed = setup.signer.sign(msg)
        cases.append((f"{name} rsa+ed25519", signed, True))
        cases.append((f"{name} ed25519 only", _only_ed25519(signed), True))
        if not name.startswith("corpus"):
            cases.append((f"{name} body tampered", _tamper_body(signed), False))
            cases.append((f"{name} subject tampered", _tamper_subject(signed), False))
            cases.append((f"{name} ed25519 only, body tampered", _tamper_body(_only_ed25519(signed)), False))
            cases.append((f"{name} ed25519 only, subject tampered", _tamper_subject(_only_ed25519(signed)), False))
    rsa_only = Signer(DOMAIN, SELECTOR, setup.rsa_key.read_bytes()).sign(MESSAGES["ascii"])
    cases.append(("ascii rsa only", rsa_only, True))
    cases.append(("ascii rsa only, subject tampered", _tamper_subject(rsa_only), False))
    assert sum(1 for c in cases if c[0].startswith("corpus")) >= 16

    results = opendkim_testmsg(setup.zone, [c[1] for c in cases])
    assert len(results) == len(cases)
    wrong = []
    for (label, _, good), (rc, out) in zip(cases, results, strict=True):
        if good and not (rc == 0 and out == ""):
            wrong.append(f"{label}: expected pass, got rc={rc} {out!r}")
        if not good and not (rc == 70 and "Bad signature" in out):
            wrong.append(f"{label}: expected Bad signature, got rc={rc} {out!r}")
    assert not wrong, "\n".join(wrong)
