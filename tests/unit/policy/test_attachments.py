"""Attachments: allowed types pass (and are scrubbed), everything else is stripped with a notice."""

from __future__ import annotations

import email
import io
from email import policy as email_policy

import pytest
from PIL import Image

from relay.message import parts
from relay.policy import Policy, apply, check
from relay.policy.attachments import sanitize_filename, sniff
from relay.policy.engine import to_crlf
from tests.unit.policy import fixtures as fx
from tests.unit.policy.conftest import CORPUS, with_attachment


def _attachments(raw: bytes) -> dict[str, bytes]:
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    out = {}
    for part in msg.walk():
        if part.get_filename():
            out[part.get_filename()] = part.get_payload(decode=True)
    return out


ALLOWED = [
    ("photo.jpg", "image/jpeg", lambda: fx.image("JPEG")),
    ("photo.png", "image/png", lambda: fx.image("PNG")),
    ("anim.gif", "image/gif", lambda: fx.image("GIF")),
    ("scan.tiff", "image/tiff", lambda: fx.image("TIFF")),
    ("scan.bmp", "image/bmp", lambda: fx.image("BMP")),
    ("invoice.pdf", "application/pdf", lambda: fx.pdf("Invoice 42")),
    ("notes.txt", "text/plain", lambda: b"Size M, colour navy.\n"),
    ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", lambda: fx.docx()),
]


@pytest.mark.parametrize(("name", "ctype", "make"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_allowed_types_are_kept(policy: Policy, name: str, ctype: str, make: object) -> None:
    data = make()  # type: ignore[operator]
    raw = with_attachment(data, name, ctype)
    report = check(raw, policy)
    assert report.findings == [], report.findings
    assert [a.action for a in report.attachments] == ["keep"]
    out = apply(raw, report, policy)
    if name.endswith(".pdf"):  # pypdf wrote a /Producer entry: scrubbed, content unchanged
        from pypdf import PdfReader

        assert "Invoice 42" in PdfReader(io.BytesIO(_attachments(out)[name])).pages[0].extract_text()
    else:
        assert _attachments(out)[name] == data  # nothing to scrub: byte-identical


BAD = [
    ("invoice.pdf.exe", "application/octet-stream", fx.PE, "attachment.executable"),
    ("photo.jpg", "image/jpeg", fx.PE, "attachment.executable"),
    ("cat.png", "image/png", fx.ELF, "attachment.executable"),
    ("files.zip", "application/zip", fx.zip_of(), "attachment.archive"),
    ("holiday.jpg", "image/jpeg", fx.zip_of(), "attachment.archive"),
    ("run.sh", "text/plain", b"#!/bin/sh\nrm -rf /\n", "attachment.executable"),
    ("invoice_\u202efdp.exe", "application/pdf", fx.PE, "attachment.executable"),
    ("draw.svg", "image/svg+xml", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>',
     "attachment.type_not_allowed"),
    ("report.docm", "application/vnd.ms-word.document.macroEnabled.12", fx.docx(macro=True), "attachment.macro"),
    ("report.docx", "application/octet-stream", fx.docx(macro=True), "attachment.macro"),
    ("secret.pdf", "application/pdf", fx.pdf(encrypt=True), "attachment.encrypted"),
    ("photo.pdf", "application/pdf", fx.image("PNG"), "attachment.type_mismatch"),
]


@pytest.mark.parametrize(("name", "ctype", "data", "rule"), BAD, ids=[b[0] + "-" + b[3] for b in BAD])
def test_forbidden_attachments_are_stripped_with_notice(policy: Policy, name: str, ctype: str, data: bytes,
                                                        rule: str) -> None:
    raw = with_attachment(data, name, ctype)
    report = check(raw, policy)
    assert rule in {f.rule for f in report.findings}
    assert report.action == "strip"
    out = apply(raw, report, policy)
    assert data not in out
    assert b"was removed by the marketplace" in out.replace(b"=\r\n", b"")
    assert b"\n" not in out.replace(b"\r\n", b"")
    msg = email.message_from_bytes(out, policy=email_policy.default)
    assert "Please see the attached file." in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_png_with_zip_appended_is_a_polyglot(policy: Policy) -> None:
    data = fx.image("PNG") + fx.zip_of("evil.exe", fx.PE)
    assert sniff(data) == "png"
    report = check(with_attachment(data, "cat.png", "image/png"), policy)
    assert "attachment.polyglot" in {f.rule for f in report.findings}


def test_size_limits(policy: Policy) -> None:
    big = b"a" * (policy.settings.attachments.max_file_size + 1)
    report = check(with_attachment(big, "big.txt", "text/plain"), policy)
    assert {f.rule for f in report.findings} == {"attachment.too_large"}


def test_jpeg_gps_exif_is_scrubbed_and_image_still_decodes(policy: Policy) -> None:
    data = fx.image("JPEG", (120, 80), fx.gps_exif())
    with Image.open(io.BytesIO(data)) as img:
        assert img.getexif().get_ifd(0x8825)
    raw = with_attachment(data, "photo.jpg", "image/jpeg")
    report = check(raw, policy)
    out = apply(raw, report, policy)
    new = _attachments(out)["photo.jpg"]
    assert new != data
    with Image.open(io.BytesIO(new)) as img:
        img.load()
        assert img.size == (120, 80)
        exif = img.getexif()
        assert not exif.get_ifd(0x8825) and 0x013B not in exif and 0x0110 not in exif
    assert b"Taro Yamada" not in new


def test_png_and_tiff_metadata_scrubbed(policy: Policy) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Taro Yamada")
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG", pnginfo=info)
    tif_exif = Image.Exif()
    tif_exif[0x013B] = "Taro Yamada"
    tif_exif[0x0110] = "Phone X"
    tif = fx.image("TIFF", exif=tif_exif)
    for name, data in (("a.png", buf.getvalue()), ("b.tiff", tif)):
        raw = with_attachment(data, name, "image/png" if name.endswith("png") else "image/tiff")
        out = apply(raw, check(raw, policy), policy)
        new = _attachments(out)[name]
        assert b"Taro Yamada" not in new
        with Image.open(io.BytesIO(new)) as img:
            img.load()
            assert 0x013B not in img.getexif()


def test_pdf_and_docx_author_removed(policy: Policy) -> None:
    from pypdf import PdfReader

    for name, data, ctype in (
        ("a.pdf", fx.pdf("Invoice", author="Taro Yamada"), "application/pdf"),
        ("a.docx", fx.docx("Invoice", author="Taro Yamada"),
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ):
        raw = with_attachment(data, name, ctype)
        report = check(raw, policy)
        assert report.findings == []
        new = _attachments(apply(raw, report, policy))[name]
        if name.endswith(".pdf"):
            reader = PdfReader(io.BytesIO(new))
            assert not (reader.metadata or {}).get("/Author")
            assert "Invoice" in reader.pages[0].extract_text()
        else:
            import zipfile

            core = zipfile.ZipFile(io.BytesIO(new)).read("docProps/core.xml")
            assert b"Taro Yamada" not in core and b"Invoice" in core


@pytest.mark.parametrize(("make", "name", "ctype"), [
    (lambda: fx.pdf("Hello", link="https://evil.example/x"), "a.pdf", "application/pdf"),
    (lambda: fx.pdf("visit cheap-shop.example.com now"), "b.pdf", "application/pdf"),
    (lambda: fx.docx("Hello", link="https://evil.example/x"), "c.docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (lambda: fx.docx("Please leave a 5-star review"), "d.docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (lambda: b"call me 090-1234-5678", "e.txt", "text/plain"),
    (lambda: fx.qr_png("https://evil.example/qr"), "qr.png", "image/png"),
])
def test_rule_breaking_content_inside_attachments(policy: Policy, make: object, name: str, ctype: str) -> None:
    raw = with_attachment(make(), name, ctype)  # type: ignore[operator]
    report = check(raw, policy)
    assert report.attachments[0].action == "strip", report.findings
    assert all(f.part == f"attachment:{name}" for f in report.findings)
    if name == "qr.png":
        assert "links.qr_code" in {f.rule for f in report.findings}


def test_filename_sanitizing() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Users\\x\\a.pdf") == "a.pdf"
    assert sanitize_filename("a\r\nb.txt") == "a b.txt"
    assert sanitize_filename("invoice_\u202efdp.exe") == "invoice_fdp.exe"
    long = sanitize_filename("あ" * 200 + ".pdf", 120)
    assert long.endswith(".pdf") and len(long.encode()) <= 120
    assert sanitize_filename("") == "attachment"


def test_unsafe_filename_rewritten_on_delivery(policy: Policy) -> None:
    raw = with_attachment(b"hello", "../../secret/notes.txt", "text/plain")
    report = check(raw, policy)
    out = apply(raw, report, policy)
    assert list(_attachments(out)) == ["notes.txt"]


CORPUS_ATTACHMENTS = [
    ("rspamd/rspamd/test/functional/messages/zip.eml", "attachment.archive"),
    ("rspamd/rspamd/test/functional/messages/rar4.eml", "attachment.archive"),
    ("rspamd/rspamd/test/functional/messages/pdf_encrypted.eml", "attachment.encrypted"),
    ("apache/spamassassin/t/data/spam/olevbmacro/encrypted.eml", "attachment.encrypted"),
    ("apache/spamassassin/t/data/spam/olevbmacro/nomacro.eml", "attachment.type_not_allowed"),
    ("mailgun/flanker/tests/fixtures/messages/bz2-attachment.eml", "attachment.archive"),
    ("MailCore/mailcore2/unittest/data/summary/input/4489-to-field-chinese.eml", "attachment.type_not_allowed"),
]


@pytest.mark.parametrize(("path", "rule"), CORPUS_ATTACHMENTS, ids=[c[0].split("/")[-1] for c in CORPUS_ATTACHMENTS])
def test_corpus_attachments(policy: Policy, path: str, rule: str) -> None:
    raw = (CORPUS / path).read_bytes()
    report = check(raw, policy)
    assert rule in {f.rule for f in report.findings}
    out = apply(raw, report, policy)
    assert b"removed by the marketplace" in out.replace(b"=\r\n", b"")


def test_a_large_pdf_leaves_no_pypdf_objects_behind(policy: Policy) -> None:
    """pypdf's objects hold each other and a copy of the file; from COLLECT_PDF_BYTES on they are
    collected as soon as the PDF is read or scrubbed, not when the whole message is done."""
    import gc

    from pypdf import PdfReader

    from bench.messages import noise_pdf
    from relay.policy import extract, scrub

    def readers() -> int:
        return sum(isinstance(o, PdfReader) for o in gc.get_objects())

    caps = policy.settings.attachments
    gc.collect()
    gc.disable()  # only the reader's own collection may free them
    try:
        extract.text_of_pdf(noise_pdf(50_000), caps)  # small: left to the collector, as before
        assert readers() >= 1
        gc.collect()
        assert readers() == 0
        big = noise_pdf(extract.COLLECT_PDF_BYTES + 100_000)
        assert extract.text_of_pdf(big, caps).texts  # still read: its text is there
        assert readers() == 0
        scrub.scrub_pdf(big)
        assert readers() == 0
    finally:
        gc.enable()


def test_a_pdf_object_already_old_is_still_collected() -> None:
    """The young generations are collected first; a tracked PDF object that survives that (it was
    promoted to the old generation meanwhile) gets the full collection."""
    import gc
    import weakref

    from relay.policy import extract

    class Cycle:
        pass

    gc.disable()
    try:
        obj = Cycle()
        obj.me = obj  # type: ignore[attr-defined]  # freed only by the cyclic collector
        extract.track_pdf(obj)
        gc.collect()  # survives a full collection: now in the oldest generation
        ref = weakref.ref(obj)
        del obj
        gc.collect(1)
        assert ref() is not None  # the young collection alone would leave it
        extract.collect_pdf_garbage(extract.COLLECT_PDF_BYTES)
        assert ref() is None
        assert len(extract._pdf_objects) == 0
    finally:
        gc.enable()


def _old_markers(data: bytes) -> frozenset[str]:
    """What the separate searches answered before the one-pass scan (extract.markers)."""
    import re

    found = set()
    if data.find(b"Rar!\x1a\x07", 8) >= 0:
        found.add("rar")
    if data.find(b"7z\xbc\xaf\x27\x1c", 8) >= 0:
        found.add("7z")
    if re.search(rb"/(?:JavaScript|JS|Launch|EmbeddedFile|RichMedia|XFA)\b", data):
        found.add("pdf_active")
    return frozenset(found)


def test_one_pass_markers_answer_what_the_separate_searches_did() -> None:
    import random

    from relay.policy import extract

    pieces = [b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"/JavaScript", b"/JS", b"/JSON", b"/Launch", b"/EmbeddedFile",
              b"/EmbeddedFiles", b"/RichMedia", b"/XFA", b"/XFA_", b"/XFA1", b" ", b"/", b"x", b"\x00", b"Rar!",
              b"%PDF-1.7", b">>", b"\xff"]
    rnd = random.Random(3)
    cases = [b"", b"Rar!\x1a\x07 at start", b"1234567Rar!\x1a\x07", b"12345678Rar!\x1a\x07", b"/JS", b"/JSx", b"/JS_",
             b"<< /S /JavaScript /JS (app.alert(1)) >>", b"/EmbeddedFiles only"]
    cases += [b"".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 30))) for _ in range(5000)]
    cases += [rnd.randbytes(5000) + p + rnd.randbytes(3) for p in pieces]
    hits = set()
    for data in cases:
        assert extract.markers(data) == _old_markers(data), data
        hits |= _old_markers(data)
    assert hits == {"rar", "7z", "pdf_active"}
    for path in sorted(CORPUS.rglob("*.eml")):  # every attachment of the corpus, too
        raw = to_crlf(path.read_bytes())
        for leaf in parts.parse(raw).leaves():
            if leaf.is_attachment:
                data = parts.decode_body(raw, leaf)
                assert extract.markers(data) == _old_markers(data), path.name


def test_pdf_source_shows_its_bytes_and_reads_as_bytesio(policy: Policy) -> None:
    from pypdf import PdfReader

    from bench.messages import noise_pdf
    from relay.policy import extract

    data = noise_pdf(200_000)
    source = extract.PdfSource(data)
    with source.getbuffer() as view:
        assert view.obj is data and view.nbytes == len(data)  # the bytes themselves: no copy
    ours = PdfReader(extract.PdfSource(data), strict=False)
    plain = PdfReader(io.BytesIO(data), strict=False)
    assert [p.extract_text() for p in ours.pages] == [p.extract_text() for p in plain.pages]
    assert "Invoice" in ours.pages[0].extract_text()


def test_docx_scrub_anonymises_comment_revision_and_people_authors() -> None:
    """word/people.xml and every w:author/w15:userId carry the writer's name and often the
    address itself; the scrubbed document keeps its text and names nobody (read back with zipfile)."""
    import io
    import zipfile

    from relay.policy.scrub import scrub

    src = io.BytesIO()
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("word/document.xml", '<w:document><w:body><w:p><w:r><w:t>Thanks</w:t></w:r></w:p>'
                   '<w:ins w:id="1" w:author="Kenji Sato" w:date="2026-01-01T00:00:00Z"/></w:body></w:document>')
        z.writestr("word/comments.xml", "<w:comments><w:comment w:id='0' w:author='kenji.sato@gmail.com' "
                   "w:initials='KS'><w:p><w:r><w:t>note</w:t></w:r></w:p></w:comment></w:comments>")
        z.writestr("word/people.xml", '<w15:people><w15:person w15:author="Kenji Sato"><w15:presenceInfo '
                   'w15:providerId="Windows Live" w15:userId="kenji.sato@gmail.com"/></w15:person></w15:people>')
    out = scrub("docx", src.getvalue())
    assert out is not None
    with zipfile.ZipFile(io.BytesIO(out)) as z:
        parts = {name: z.read(name).decode() for name in z.namelist()}
    everything = "".join(parts.values()).lower()
    assert "kenji" not in everything and "sato" not in everything
    assert "<w:t>Thanks</w:t>" in parts["word/document.xml"] and "<w:t>note</w:t>" in parts["word/comments.xml"]
