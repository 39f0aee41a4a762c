"""relay.dkim: canonicalization, signing and key handling, checked against dkimpy as the reference verifier."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dnslib import RR

from relay.config import settings_from_dict
from relay.dkim import (
    DEFAULT_HEADERS,
    DKIMKeyError,
    DKIMMessageError,
    Signer,
    body_hash_relaxed,
    canonicalize_body_relaxed,
    canonicalize_header_relaxed,
    generate_ed25519_key,
    generate_rsa_key,
    load_signer,
    public_txt_from_private,
    txt_record,
)
from tests.dkimtools import (
    CORPUS,
    corpus_manifest,
    crlf,
    dict_dnsfunc,
    ed25519_pem,
    relaxed_body_reference,
    rsa_pem,
)

DOMAIN = "example.test"
EMPTY_BODY_HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # sha256(b"")

ASCII = (
    b"From: Seller Alias <s-7f3k2q@relay.example.test>\r\n"
    b"To: Buyer Alias <b-91xz0m@relay.example.test>\r\n"
    b"Subject: About your order\r\n"
    b"Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
    b"Message-ID: <demo-1@relay.example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"X-Not-Signed: whatever\r\n"
    b"\r\n"
    b"Hello,\r\n\r\nthe item ships tomorrow.\r\n"
)

JAPANESE = (
    "From: =?UTF-8?B?5bqX6IiX?= <s-7f3k2q@relay.example.test>\r\n"
    "To: b-91xz0m@relay.example.test\r\n"
    "Subject: =?UTF-8?B?5ZWG5ZOB44Gr44Gk44GE44Gm?= (about the item)\r\n"
    "Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "こんにちは。\r\n商品は明日発送します。  よろしく\t お願いします。 \r\n"
).encode()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(DOMAIN, "sel", rsa_pem(), ed25519_pem())


@pytest.fixture(scope="module")
def dns(signer: Signer) -> object:
    assert signer.ed25519_selector is not None and signer.ed25519_txt is not None
    return dict_dnsfunc({
        f"sel._domainkey.{DOMAIN}": signer.rsa_txt,
        f"{signer.ed25519_selector}._domainkey.{DOMAIN}": signer.ed25519_txt,
    })


def signatures(message: bytes) -> list[dict[str, str]]:
    """Tags of each DKIM-Signature field at the top of a message (FWS removed)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = re.findall(r"^DKIM-Signature:(.*?)(?=^\S)", head + "\r\nX", flags=re.M | re.S)
    out = []
    for f in fields:
        tags = {}
        for part in re.sub(r"\s+", "", f).split(";"):
            if part:
                k, _, v = part.partition("=")
                tags[k] = v
        out.append(tags)
    return out


def verify_each(message: bytes, dns: object) -> list[bool]:
    """dkimpy's result for each signature; a failure dkimpy reports by raising counts as False."""
    d = dkim.DKIM(message)
    results = []
    for i in range(len(signatures(message))):
        try:
            results.append(bool(d.verify(idx=i, dnsfunc=dns)))
        except dkim.ValidationError:
            results.append(False)
    return results


# --------------------------------------------------------------------------- canonicalization


def test_relaxed_canonicalization_matches_rfc6376_example() -> None:
    # RFC 6376 §3.4.5
    assert canonicalize_header_relaxed(b"A", b" X") == b"a:X"
    assert canonicalize_header_relaxed(b"B ", b" Y\t\r\n\tZ  ") == b"b:Y Z"
    assert canonicalize_body_relaxed(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"


@pytest.mark.parametrize(("body", "canonical"), [
    (b"", b""),
    (b"\r\n", b""),
    (b"\r\n\r\n \r\n\t\r\n", b""),
    (b"abc", b"abc\r\n"),
    (b"abc  \t", b"abc\r\n"),
    (b"abc\r\n\r\n\r\n", b"abc\r\n"),
    (b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
    (b"  lead\r\n", b" lead\r\n"),
])
def test_relaxed_body(body: bytes, canonical: bytes) -> None:
    assert canonicalize_body_relaxed(body) == canonical


def _bodies() -> list[bytes]:
    import random

    rnd = random.Random(6376)
    pieces = [b"a", b"bc", b" ", b"  ", b"\t", b"\r\n", b"\r\n\r\n", b" \r\n", b"\t\r\n", b"QUJD" * 20]
    out = [b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40))) for _ in range(300)]
    b64 = b"\r\n".join(base64.b64encode(bytes(range(256)) * 40)[i : i + 76] for i in range(0, 13_600, 76))
    out += [
        b"Hello  there \r\n\r\n" + b64 * 40 + b"\r\n-- \r\nshop \t\r\n",  # > one chunk, WSP on both sides
        b"x\r\n" + b" \r\n\t\r\n" * 5000,  # a long tail of blank lines (more than one 4 KB block)
        b" \t " * 100_000,  # nothing but WSP, no line end
        b64 * 30 + b"  a  b  \r\n" + b64 * 30,  # WSP in the middle of a large body
    ]
    return out


@pytest.mark.parametrize("chunk", [1, 7, 4096, 256 * 1024])
def test_relaxed_body_in_chunks_is_the_one_piece_canonical_form(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import relay.dkim

    monkeypatch.setattr(relay.dkim, "_CHUNK", chunk)
    for body in _bodies():
        assert canonicalize_body_relaxed(body) == relaxed_body_reference(body)


def test_body_hash_reads_the_body_in_place() -> None:
    for body in _bodies()[-6:]:
        message = b"Subject: x\r\n\r\n" + body
        expected = hashlib.sha256(relaxed_body_reference(body)).digest()
        assert body_hash_relaxed(message, len(b"Subject: x\r\n\r\n")) == expected
        assert body_hash_relaxed(body) == expected


# --------------------------------------------------------------------------- signing, verified by dkimpy


def test_ascii_message_verifies_with_both_algorithms(signer: Signer, dns: object) -> None:
    out = signer.sign(ASCII, timestamp=1_700_000_000)
    assert out.endswith(ASCII)
    rsa_tags, ed_tags = signatures(out)
    assert rsa_tags["a"] == "rsa-sha256" and ed_tags["a"] == "ed25519-sha256"
    assert rsa_tags["s"] == "sel" and ed_tags["s"] == "sel-ed"
    assert rsa_tags["c"] == "relaxed/relaxed" and rsa_tags["d"] == DOMAIN
    assert rsa_tags["t"] == "1700000000"
    assert rsa_tags["h"].split(":") == ["from", "from", "to", "subject", "date", "message-id",
                                        "mime-version", "content-type"]
    assert verify_each(out, dns) == [True, True]
    assert dkim.verify(out, dnsfunc=dns)


def test_timestamp_defaults_to_now(signer: Signer) -> None:
    import time

    before = int(time.time())
    t = int(signatures(signer.sign(ASCII))[0]["t"])
    assert before <= t <= int(time.time())


def test_dkim_signature_lines_are_folded_to_78(signer: Signer, dns: object) -> None:
    many = ASCII.replace(b"Subject:", b"Cc: a@x.test\r\nCc: b@x.test\r\nReply-To: r@x.test\r\n"
                         b"List-Unsubscribe: <https://x.test/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                         b"Auto-Submitted: auto-replied\r\nIn-Reply-To: <a@x.test>\r\nReferences: <a@x.test>\r\n"
                         b"Content-Transfer-Encoding: 7bit\r\nSubject:")
    long_sel = Signer(DOMAIN, "a-rather-long-selector-name-2026-11.rotation", rsa_pem(), ed25519_pem())
    for s in (signer, long_sel):
        out = s.sign(many)
        head = out[: out.index(b"From:")]
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))
        assert head.count(b"\r\n") > 6  # b= really is split over several lines
        tags = signatures(out)[0]
        assert tags["h"].split(":") == ["from", "from", "to", "cc", "cc", "subject", "date", "message-id",
                                        "in-reply-to", "references", "mime-version", "content-type",
                                        "content-transfer-encoding", "reply-to", "list-unsubscribe",
                                        "list-unsubscribe-post", "auto-submitted"]
        dns2 = dict_dnsfunc({f"{s.selector}._domainkey.{DOMAIN}": s.rsa_txt,
                             f"{s.ed25519_selector}._domainkey.{DOMAIN}": s.ed25519_txt or ""})
        assert verify_each(out, dns2) == [True, True]


def test_japanese_body_and_encoded_subject(signer: Signer, dns: object) -> None:
    out = signer.sign(JAPANESE)
    assert out.endswith(JAPANESE)
    assert verify_each(out, dns) == [True, True]


def test_raw_utf8_header(signer: Signer, dns: object) -> None:
    msg = JAPANESE.replace(b"Subject: =?UTF-8?B?5ZWG5ZOB44Gr44Gk44GE44Gm?=", "Subject: 商品について".encode())
    assert verify_each(signer.sign(msg), dns) == [True, True]


def test_folded_headers(signer: Signer, dns: object) -> None:
    msg = (
        b"From: \"Seller,\r\n\t Inc.\" <s@relay.example.test>\r\n"
        b"To: a@relay.example.test,\r\n    b@relay.example.test,\r\n\tc@relay.example.test\r\n"
        b"Subject:   a  subject\r\n  folded   over\r\n\t\tthree lines   \r\n"
        b"Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
        b"\r\nbody\r\n"
    )
    out = signer.sign(msg)
    assert verify_each(out, dns) == [True, True]
    refolded = out.replace(b"folded   over\r\n\t\tthree", b"folded over three")  # relaxed: same canonical form
    assert verify_each(refolded, dns) == [True, True]


@pytest.mark.parametrize("msg", [
    b"From: a@example.test\r\nSubject: empty\r\n\r\n",
    b"From: a@example.test\r\nSubject: no body at all\r\n",
    b"From: a@example.test\r\nSubject: blank lines only\r\n\r\n\r\n\r\n  \r\n",
])
def test_empty_body(signer: Signer, dns: object, msg: bytes) -> None:
    out = signer.sign(msg)
    assert signatures(out)[0]["bh"] == EMPTY_BODY_HASH
    assert verify_each(out, dns) == [True, True]


def test_body_without_final_crlf(signer: Signer, dns: object) -> None:
    msg = ASCII[:-2]
    out = signer.sign(msg)
    assert out.endswith(ASCII)  # wire form: the final CRLF an SMTP client would add anyway
    assert verify_each(out, dns) == [True, True]
    unterminated = out[:-2]  # RFC 6376 §3.4.4: same canonical body, so it still verifies
    assert verify_each(unterminated, dns) == [True, True]


def test_trailing_blank_lines_are_not_signed(signer: Signer, dns: object) -> None:
    plain = signer.sign(ASCII)
    padded = signer.sign(ASCII + b"\r\n\r\n   \r\n\r\n")
    assert signatures(plain)[0]["bh"] == signatures(padded)[0]["bh"]
    assert verify_each(padded, dns) == [True, True]


def test_long_lines(signer: Signer, dns: object) -> None:
    msg = (b"From: a@example.test\r\nSubject: " + b"word " * 400 + b"\r\nDate: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
           b"\r\n" + b"x" * 5000 + b"\r\n" + b"y \t" * 3000 + b"\r\n")
    assert verify_each(signer.sign(msg), dns) == [True, True]


def test_bare_lf_input_is_signed_in_wire_form(signer: Signer, dns: object) -> None:
    lf = ASCII.replace(b"\r\n", b"\n")
    out = signer.sign(lf)
    assert out.endswith(ASCII) and b"\n" not in out.replace(b"\r\n", b"")
    assert verify_each(out, dns) == [True, True]


def test_repeated_header_instances_are_all_signed(signer: Signer, dns: object) -> None:
    msg = ASCII.replace(b"Subject:", b"Cc: one@x.test\r\nCc: two@x.test\r\nSubject:")
    out = signer.sign(msg)
    assert signatures(out)[0]["h"].count("cc") == 2
    assert verify_each(out, dns) == [True, True]
    assert verify_each(out.replace(b"two@x.test", b"evil@x.test"), dns) == [False, False]


def _corpus_messages() -> list[tuple[str, bytes]]:
    out = []
    for row in corpus_manifest():
        name = row["file"]
        raw = (CORPUS / name).read_bytes()
        head = crlf(raw).split(b"\r\n\r\n", 1)[0]
        if len(re.findall(rb"(?mi)^from[ \t]*:", head)) == 1 and not re.search(rb"(?mi)^dkim-signature:", head):
            out.append((name, raw))
    return out


def test_shared_corpus_signs_and_verifies(signer: Signer, dns: object) -> None:
    messages = _corpus_messages()
    if not messages:
        pytest.skip(f"shared corpus not found at {CORPUS}")
    failures = []
    checked = 0
    for name, raw in messages:
        out = signer.sign(crlf(raw))
        try:
            ok = verify_each(out, dns)
        except dkim.MessageFormatError:  # dkimpy cannot parse a few malformed fixtures at all
            continue
        checked += 1
        if ok != [True, True]:
            failures.append((name, ok))
    assert not failures
    assert checked > 100


def test_messages_without_exactly_one_from_are_refused(signer: Signer) -> None:
    with pytest.raises(DKIMMessageError):
        signer.sign(b"To: a@example.test\r\nSubject: x\r\n\r\nbody\r\n")
    with pytest.raises(DKIMMessageError):
        signer.sign(b"From: a@example.test\r\nFrom: b@example.test\r\n\r\nbody\r\n")
    with pytest.raises(DKIMMessageError):
        signer.sign(b"\r\nFrom: in the body@example.test\r\n")


def test_garbage_never_crashes_otherwise(signer: Signer) -> None:
    for junk in (b"", b"\r\n", b" \r\n\t\r\n", b"\x00\xff" * 50, b":\r\n:\r\n", b" From: x\r\n"):
        with pytest.raises(DKIMMessageError):
            signer.sign(junk)


# --------------------------------------------------------------------------- tampering


def test_tampered_body_fails(signer: Signer, dns: object) -> None:
    out = signer.sign(JAPANESE)
    assert verify_each(out.replace("明日".encode(), "来週".encode()), dns) == [False, False]
    assert verify_each(out + b"P.S. visit http://spam.example\r\n", dns) == [False, False]


def test_tampered_subject_fails(signer: Signer, dns: object) -> None:
    out = signer.sign(ASCII)
    assert verify_each(out.replace(b"About your order", b"About your 0rder"), dns) == [False, False]


def test_whitespace_only_changes_still_verify(signer: Signer, dns: object) -> None:
    out = signer.sign(ASCII)
    assert verify_each(out.replace(b"Subject: About", b"Subject:   About"), dns) == [True, True]
    assert verify_each(out.replace(b"ships tomorrow.", b"ships  tomorrow.  "), dns) == [True, True]


def test_oversigned_from_rejects_an_added_from(signer: Signer, dns: object) -> None:
    out = signer.sign(ASCII)
    top = out.replace(b"From: Seller", b"From: evil@attacker.test\r\nFrom: Seller", 1)
    bottom = out.replace(b"X-Not-Signed", b"From: evil@attacker.test\r\nX-Not-Signed", 1)
    assert verify_each(top, dns) == [False, False]
    assert verify_each(bottom, dns) == [False, False]
    assert verify_each(out.replace(b"X-Not-Signed", b"X-Added: fine\r\nX-Not-Signed"), dns) == [True, True]


def test_rsa_only_signer(dns: object) -> None:
    s = Signer(DOMAIN, "sel", rsa_pem())
    out = s.sign(ASCII)
    assert [t["a"] for t in signatures(out)] == ["rsa-sha256"]
    assert s.ed25519_txt is None and s.ed25519_selector is None
    assert verify_each(out, dns) == [True]


def test_custom_header_list_and_selector() -> None:
    s = Signer(DOMAIN, "sel", rsa_pem(), ed25519_pem(), ed25519_selector="ed", headers=["From", "Subject"])
    out = s.sign(ASCII)
    rsa_tags, ed_tags = signatures(out)
    assert rsa_tags["h"] == "from:from:subject" and ed_tags["s"] == "ed"
    dns2 = dict_dnsfunc({f"sel._domainkey.{DOMAIN}": s.rsa_txt, f"ed._domainkey.{DOMAIN}": s.ed25519_txt or ""})
    assert verify_each(out, dns2) == [True, True]
    assert verify_each(out.replace(b"To: Buyer", b"To: Other"), dns2) == [True, True]  # To not signed here


def test_sign_is_thread_safe(signer: Signer, dns: object) -> None:
    msgs = [ASCII.replace(b"tomorrow", f"in {i} days".encode()) for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(signer.sign, msgs))
    for m, out in zip(msgs, outs, strict=True):
        assert out.endswith(m)
        assert verify_each(out, dns) == [True, True]


# --------------------------------------------------------------------------- keys and records


def test_ed25519_key_forms_are_equivalent() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    txts = {Signer(DOMAIN, "s", rsa_pem(), form).ed25519_txt
            for form in (key, seed, pem, base64.b64encode(seed), base64.b64encode(seed) + b"\n")}
    assert len(txts) == 1
    assert txts == {public_txt_from_private(pem)} == {public_txt_from_private(seed)}
    raw_pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert txts == {"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw_pub).decode()}


def test_bad_keys_and_settings_are_refused() -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(DKIMKeyError, match="not an RSA key"):
        Signer(DOMAIN, "s", ed25519_pem())
    with pytest.raises(DKIMKeyError, match="cannot load"):
        Signer(DOMAIN, "s", b"-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(DKIMKeyError, match="not an ed25519 key"):
        Signer(DOMAIN, "s", rsa_pem(), rsa_pem())
    with pytest.raises(DKIMKeyError):
        Signer(DOMAIN, "s", rsa_pem(), b"short")
    with pytest.raises(DKIMKeyError, match="unsupported"):
        public_txt_from_private(ec_pem)
    with pytest.raises(DKIMKeyError, match="selector"):
        Signer(DOMAIN, "bad selector", rsa_pem())
    with pytest.raises(DKIMKeyError, match="domain"):
        Signer("not a domain", "s", rsa_pem())
    with pytest.raises(DKIMKeyError, match="From"):
        Signer(DOMAIN, "s", rsa_pem(), headers=["subject", "to"])
    with pytest.raises(DKIMKeyError, match="DKIM-Signature"):
        Signer(DOMAIN, "s", rsa_pem(), headers=["from", "dkim-signature"])
    with pytest.raises(DKIMKeyError, match="field name"):
        Signer(DOMAIN, "s", rsa_pem(), headers=["from", "sub:ject"])
    with pytest.raises(DKIMKeyError, match="1024"):
        generate_rsa_key(Path("/nonexistent/never-written.pem"), bits=512)


def test_generate_rsa_key(tmp_path: Path, dns: object) -> None:
    path = tmp_path / "keys" / "nested" / "relay.pem"
    txt = generate_rsa_key(path, bits=1024)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert txt.startswith("v=DKIM1; k=rsa; p=MI")
    assert public_txt_from_private(path.read_bytes()) == txt
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    s = Signer(DOMAIN, "relay", path.read_bytes())
    assert s.rsa_txt == txt
    assert verify_each(s.sign(ASCII), dict_dnsfunc({f"relay._domainkey.{DOMAIN}": txt})) == [True]
    with pytest.raises(FileExistsError):
        generate_rsa_key(path, bits=1024)
    assert public_txt_from_private(path.read_bytes()) == txt  # untouched
    txt2 = generate_rsa_key(path, bits=1024, overwrite=True)
    assert txt2 != txt and public_txt_from_private(path.read_bytes()) == txt2


def test_generate_ed25519_key(tmp_path: Path) -> None:
    path = tmp_path / "ed" / "relay-ed.pem"
    old_umask = os.umask(0o022)
    try:
        txt = generate_ed25519_key(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", txt)
    s = Signer(DOMAIN, "relay", rsa_pem(), path.read_bytes())
    assert s.ed25519_txt == txt
    dns2 = dict_dnsfunc({f"relay._domainkey.{DOMAIN}": s.rsa_txt, f"relay-ed._domainkey.{DOMAIN}": txt})
    assert verify_each(s.sign(ASCII), dns2) == [True, True]


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_txt_record_splits_into_255_byte_strings(bits: int) -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * (bits // 5)
    line = txt_record("sel", DOMAIN, value, ttl=300)
    assert line.startswith(f"sel._domainkey.{DOMAIN}. 300 IN TXT \"")
    (rr,) = RR.fromZone(line)
    strings = rr.rdata.data
    assert all(len(s) <= 255 for s in strings)
    assert b"".join(strings).decode() == value
    assert len(strings) == -(-len(value) // 255)


def test_txt_record_for_a_real_key() -> None:
    value = public_txt_from_private(rsa_pem())
    (rr,) = RR.fromZone(txt_record("sel", DOMAIN, value))
    assert len(rr.rdata.data) == 2 and b"".join(rr.rdata.data).decode() == value
    assert str(rr.rname) == f"sel._domainkey.{DOMAIN}."


def test_body_hash_is_sha256_of_relaxed_body(signer: Signer) -> None:
    out = signer.sign(JAPANESE)
    body = JAPANESE.split(b"\r\n\r\n", 1)[1]
    expected = base64.b64encode(hashlib.sha256(canonicalize_body_relaxed(body)).digest()).decode()
    assert {t["bh"] for t in signatures(out)} == {expected}


def test_load_signer_from_settings(tmp_path: Path) -> None:
    rsa_txt = generate_rsa_key(tmp_path / "dkim" / "mail2026.pem", bits=1024)
    ed_txt = generate_ed25519_key(tmp_path / "dkim" / "mail2026-ed.pem")
    settings = settings_from_dict({
        "relay": {"domain": "relay.example.test", "state_dir": str(tmp_path)},
        "dkim": {"selector": "mail2026", "ed25519_key": str(tmp_path / "dkim" / "mail2026-ed.pem")},
    })
    s = load_signer(settings)
    assert (s.domain, s.selector, s.ed25519_selector) == ("relay.example.test", "mail2026", "mail2026-ed")
    assert (s.rsa_txt, s.ed25519_txt) == (rsa_txt, ed_txt)
    missing = settings_from_dict({"relay": {"state_dir": str(tmp_path / "nowhere")}})
    with pytest.raises(DKIMKeyError, match="cannot read DKIM key"):
        load_signer(missing)


def test_default_header_list_is_the_documented_one() -> None:
    assert DEFAULT_HEADERS[0] == "from" and len(set(DEFAULT_HEADERS)) == 15
