"""readable_texts: every place an address can hide in an attachment is read; caps fire and return.

Fixtures are built here with the writers of other libraries (pypdf's writer, zipfile, segno,
zxing-cpp's encoder, Pillow) or by hand; the oracle is the address we put in, found in the output.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable

import numpy as np
import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo
from pypdf import PdfWriter
from pypdf.annotations import Link
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

from relay.message.attachments import readable_texts, replace_notice


def joined(data: bytes, content_type: str = "application/octet-stream", filename: str | None = None) -> str:
    return "\n".join(f"{where}\t{text}" for where, text in readable_texts(data, content_type, filename))


def wheres(data: bytes, content_type: str = "application/octet-stream", filename: str | None = None) -> set[str]:
    return {where for where, text in readable_texts(data, content_type, filename) if not text}


# --- PDF -------------------------------------------------------------------------------------------


def _pdf(compress: bool, encrypt: str | None = None) -> bytes:
    w = PdfWriter()
    page = w.add_blank_page(300, 300)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): w._add_object(font)})})
    # the address split by a kerning gap inside a TJ array, as typesetters write it
    content = b"BT /F1 12 Tf 20 200 Td [(page.text@sell) -30 (er.example)] TJ ET"
    stream: StreamObject
    if compress:
        stream = StreamObject()
        stream._data = zlib.compress(content)
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    else:
        stream = DecodedStreamObject()
        stream.set_data(content)
    page[NameObject("/Contents")] = w._add_object(stream)
    w.add_annotation(page_number=0, annotation=Link(rect=(10, 10, 100, 30), url="mailto:annot.uri@seller.example"))
    w.add_outline_item(title="bookmark@seller.example", page_number=0)
    field = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
        NameObject("/FT"): NameObject("/Tx"), NameObject("/T"): TextStringObject("field.name@seller.example"),
        NameObject("/V"): TextStringObject("field.value@seller.example"),
        NameObject("/Rect"): ArrayObject([FloatObject(10), FloatObject(50), FloatObject(200), FloatObject(70)]),
    })
    ref = w._add_object(field)
    page[NameObject("/Annots")].append(ref)
    w._root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): ArrayObject([ref])})
    w.add_metadata({"/Author": "info.author@seller.example", "/Producer": "test"})
    xmp = (b'<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
           b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:source="xmp.attr@seller.example">'
           b"<dc:creator>xmp.creator&#64;seller.example</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>")
    meta = DecodedStreamObject()
    meta.set_data(xmp)
    meta[NameObject("/Type")] = NameObject("/Metadata")
    meta[NameObject("/Subtype")] = NameObject("/XML")
    w._root_object[NameObject("/Metadata")] = w._add_object(meta)
    w.add_attachment("embedded.name@seller.example.txt", b"inside the embedded file: embedded.body@seller.example")
    if encrypt is not None:
        w.encrypt(user_password=encrypt, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


PDF_ADDRESSES = ["annot.uri@seller.example", "bookmark@seller.example", "field.name@seller.example",
                 "field.value@seller.example", "info.author@seller.example", "xmp.attr@seller.example",
                 "xmp.creator@seller.example", "embedded.name@seller.example", "embedded.body@seller.example"]


@pytest.mark.parametrize("compress", [False, True])
def test_pdf_every_place(compress: bool) -> None:
    data = _pdf(compress)
    assert (b"page.text@sell" in data) is not compress  # the fixture is what it says it is
    text = joined(data, "application/pdf", "a.pdf")
    for address in [*PDF_ADDRESSES, "page.text@seller.example"]:
        assert address in text, address
    assert not {w for w in wheres(data) if w.startswith("pdf.")}


def test_pdf_declared_as_image_is_read_as_pdf() -> None:
    assert "info.author@seller.example" in joined(_pdf(True), "image/png", "photo.png")


def test_pdf_encrypted_marker_and_unreadable_when_password_needed() -> None:
    texts = readable_texts(_pdf(False, encrypt="secret"), "application/pdf", "a.pdf")
    assert ("pdf.encrypted", "") in texts


def test_pdf_owner_password_only_is_marked_and_read() -> None:
    data = _pdf(False, encrypt="")
    texts = readable_texts(data, "application/pdf", "a.pdf")
    assert ("pdf.encrypted", "") in texts
    assert "info.author@seller.example" in "\n".join(t for _, t in texts)


def test_pdf_garbage_is_unreadable_not_an_exception() -> None:
    data = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + bytes(range(256)) * 4 + b"%%EOF"
    texts = readable_texts(data, "application/pdf", "x.pdf")
    assert all(isinstance(w, str) and isinstance(t, str) for w, t in texts)
    assert readable_texts(b"%PDF-", "application/pdf", None) is not None


# --- Office Open XML -------------------------------------------------------------------------------

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _docx(extra: dict[str, bytes] | None = None) -> bytes:
    parts = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "word/document.xml": (f'<w:document {W}><w:body><w:p><w:r><w:t>write to body.run</w:t></w:r>'
                              '<w:r><w:t>@seller.example</w:t></w:r></w:p>'
                              '<w:p><w:r><w:t>entity&#64;seller.example</w:t></w:r></w:p>'
                              '<w:ins w:id="1" w:author="revision.author@seller.example"/></w:body></w:document>').encode(),
        "word/comments.xml": (f'<w:comments {W}><w:comment w:id="0" w:author="comment.author@seller.example" '
                              'w:initials="CA"><w:p><w:r><w:t>see me</w:t></w:r></w:p></w:comment></w:comments>').encode(),
        "word/people.xml": (b'<w15:people xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml">'
                            b'<w15:person w15:author="Jane Seller"><w15:presenceInfo w15:providerId="AD" '
                            b'w15:userId="people.user@seller.example"/></w15:person></w15:people>'),
        "word/header1.xml": f'<w:hdr {W}><w:p><w:r><w:t>header@seller.example</w:t></w:r></w:p></w:hdr>'.encode(),
        "docProps/core.xml": (b'<cp:coreProperties xmlns:cp="c" xmlns:dc="d"><dc:creator>core.creator@seller.example'
                              b"</dc:creator><cp:lastModifiedBy>core.modified@seller.example</cp:lastModifiedBy>"
                              b"</cp:coreProperties>"),
        "word/_rels/document.xml.rels": (b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                                         b'<Relationship Id="rId9" Type="http://x/hyperlink" '
                                         b'Target="mailto:rels.target%40seller.example" TargetMode="External"/>'
                                         b"</Relationships>"),
        "word/media/image1.png": _png(_qr("media.qr@seller.example")),
    }
    parts.update(extra or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    return out.getvalue()


def test_docx_every_part_text_attributes_and_media() -> None:
    text = joined(_docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a.docx")
    for address in ["body.run@seller.example", "entity@seller.example", "revision.author@seller.example",
                    "comment.author@seller.example", "people.user@seller.example", "header@seller.example",
                    "core.creator@seller.example", "core.modified@seller.example", "rels.target@seller.example",
                    "media.qr@seller.example"]:
        assert address in text, address


def test_docx_declared_as_text_is_still_a_zip() -> None:
    assert "header@seller.example" in joined(_docx(), "text/plain", "notes.txt")


def test_xml_entities_are_not_expanded() -> None:
    billion = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
               b"<w:document><w:t>&b;&b; safe@seller.example</w:t></w:document>")
    text = joined(_docx({"word/document.xml": billion}))
    assert "safe@seller.example" in text
    assert "aaaaaaaaaaaaaaaaaaaa" not in text


# --- vCard, iCalendar, text ------------------------------------------------------------------------


def test_vcard_30_folded_email_is_unfolded() -> None:
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jane\r\nEMAIL;TYPE=INTERNET:vcard.fold@sel\r\n ler.example\r\nEND:VCARD\r\n"
    assert "vcard.fold@seller.example" in joined(card, "text/vcard", "jane.vcf")


def test_vcard_21_quoted_printable_with_soft_break() -> None:
    card = (b"BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Gr=C3=BC=C3=9Fe qp.addr=\r\n"
            b"=40seller.example\r\nEND:VCARD\r\n")
    text = joined(card, "text/x-vcard", None)
    assert "qp.addr@seller.example" in text
    assert "Grüße" in text


def test_vcard_photo_is_read_as_an_image() -> None:
    import base64

    photo = base64.b64encode(_png(_qr("photo.qr@seller.example")))
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nPHOTO;ENCODING=b;TYPE=PNG:" + photo + b"\r\nEND:VCARD\r\n"
    assert "photo.qr@seller.example" in joined(card, "text/vcard", None)


def test_ics_folded_organizer() -> None:
    ics = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nORGANIZER;CN=Jane Seller:mailto:organizer@sel\r\n"
           b"\tler.example\r\nSUMMARY:pickup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    assert "organizer@seller.example" in joined(ics, "text/plain", "invite.ics")


def test_ics_recognised_by_content_type_only() -> None:
    ics = b"VERSION:2.0\r\nORGANIZER:mailto:ct.org@sel\r\n ler.example\r\n"
    assert "ct.org@seller.example" in joined(ics, "text/calendar; method=REQUEST", None)


@pytest.mark.parametrize(("body", "ctype"), [
    ("Grüße plain@seller.example".encode("latin-1"), "text/plain; charset=iso-8859-1"),
    ("\ufeffplain@seller.example".encode("utf-16-le"), "text/plain"),
    ("plain@seller.example".encode("utf-16"), "text/plain"),
    (b"plain@seller.example", "text/plain; charset=bogus-charset"),
])
def test_plain_text(body: bytes, ctype: str) -> None:
    assert "plain@seller.example" in joined(body, ctype, "a.txt")


# --- images ----------------------------------------------------------------------------------------


def _png(img: Image.Image, info: PngInfo | None = None) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _qr(text: str) -> Image.Image:
    out = io.BytesIO()
    segno.make(text, micro=False).save(out, kind="png", scale=4, border=4)
    return Image.open(io.BytesIO(out.getvalue())).convert("L")


def _zx(fmt: zxingcpp.BarcodeFormat, text: str) -> Image.Image:
    symbol = zxingcpp.create_barcode(text, fmt)
    return Image.fromarray(np.array(zxingcpp.write_barcode_to_image(symbol, scale=3)))


@pytest.mark.parametrize("make", [
    lambda t: _qr(t),
    lambda t: _zx(zxingcpp.BarcodeFormat.Code128, t),
    lambda t: _zx(zxingcpp.BarcodeFormat.DataMatrix, t),
    lambda t: _zx(zxingcpp.BarcodeFormat.PDF417, t),
    lambda t: _zx(zxingcpp.BarcodeFormat.Aztec, t),
], ids=["qr", "code128", "datamatrix", "pdf417", "aztec"])
def test_barcode_symbologies(make: Callable[[str], Image.Image]) -> None:
    assert "code@seller.example" in joined(_png(make("code@seller.example").convert("L")), "image/png", "c.png")


def test_qr_light_on_dark_and_on_transparency() -> None:
    from PIL import ImageOps

    qr = _qr("inverted@seller.example").convert("L")
    assert "inverted@seller.example" in joined(_png(ImageOps.invert(qr)))
    # black modules on a transparent background: flattening alpha without a white ground makes it all black
    mask = ImageOps.invert(_qr("alpha@seller.example").convert("L"))
    clear = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    clear.putalpha(mask)
    assert "alpha@seller.example" in joined(_png(clear))


def test_gif_qr_in_last_of_three_frames() -> None:
    qr = _qr("gif.last@seller.example").convert("RGB")
    frames = [Image.new("RGB", qr.size, c) for c in ("red", "blue")] + [qr]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert "gif.last@seller.example" in joined(out.getvalue(), "image/gif", "a.gif")


def test_tiff_qr_on_second_page() -> None:
    qr = _qr("tiff.page2@seller.example").convert("L")
    out = io.BytesIO()
    Image.new("L", qr.size, 255).save(out, "TIFF", save_all=True, append_images=[qr])
    assert "tiff.page2@seller.example" in joined(out.getvalue(), "image/tiff", "a.tif")


def test_jpeg_exif_and_png_text_chunks() -> None:
    img = Image.new("RGB", (64, 64), "white")
    exif = Image.Exif()
    exif[0x010E] = "exif.description@seller.example"
    exif[0x9C9F] = "xp.subject@seller.example\x00".encode("utf-16-le")
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    text = joined(out.getvalue(), "image/jpeg", "a.jpg")
    assert "exif.description@seller.example" in text
    assert "xp.subject@seller.example" in text
    info = PngInfo()
    info.add_text("Author", "png.text@seller.example")
    info.add_text("Comment", "png.ztxt@seller.example", zip=True)
    info.add_itxt("Title", "png.itxt@seller.example")
    text = joined(_png(img, info), "image/png", "a.png")
    for address in ("png.text@seller.example", "png.ztxt@seller.example", "png.itxt@seller.example"):
        assert address in text


def test_gif_comment() -> None:
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, "GIF", comment=b"gif.comment@seller.example")
    assert "gif.comment@seller.example" in joined(out.getvalue())


def test_broken_image_is_unreadable() -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\xff" * 40
    assert "image.unreadable" in wheres(data, "image/png", "a.png")


def test_polyglot_png_with_zip_appended() -> None:
    data = _png(Image.new("L", (8, 8), 255)) + _docx()
    assert "header@seller.example" in joined(data, "image/png", "a.png")


# --- the notice ------------------------------------------------------------------------------------


def test_replace_notice() -> None:
    ctype, body = replace_notice("../../Factura\u202e.pdf", "it contained contact details")
    assert ctype == "text/plain; charset=utf-8"
    text = body.decode("utf-8")
    assert "Factura.pdf" in text and "contained contact details." in text
    assert "\u202e" not in text and "../" not in text
    _, body = replace_notice("mail me at seller.real@gmail.com.pdf", "it contained contact details.")
    assert b"@" not in body and b".." not in body
    _, body = replace_notice(None, "x")
    assert body.decode("utf-8").startswith('The attachment "attachment"')


# --- hostile input: the caps fire and the call returns ---------------------------------------------


def _zip_bomb(megabytes: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("word/document.xml", "w") as member:
        block = b"<w:t>a</w:t>" * (1 << 16)
        for _ in range(megabytes * (1 << 20) // len(block)):
            member.write(block)
    return out.getvalue()


def test_zip_bomb_stops_at_the_cap() -> None:
    data = _zip_bomb(60)
    assert len(data) < 2 << 20  # a high-ratio bomb: 60 MB from well under 2 MB
    assert "zip.truncated" in wheres(data, "application/zip", "bomb.docx")


def test_zip_with_too_many_entries() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for i in range(10_050):
            zf.writestr(f"p/{i}.xml", b"<a/>")
    assert "zip.truncated" in wheres(out.getvalue())


def test_gif_with_many_frames() -> None:
    frames = [Image.new("L", (16, 16), i % 250) for i in range(150)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=10)
    assert "image.truncated" in wheres(out.getvalue(), "image/gif", None)


def test_huge_image_is_not_decoded() -> None:
    out = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(out, "PNG")  # 50 Mpx, a few kB compressed
    assert "image.truncated" in wheres(out.getvalue(), "image/png", None)


def test_pdf_with_thousands_of_pages() -> None:
    w = PdfWriter()
    for _ in range(3000):
        w.add_blank_page(10, 10)
    out = io.BytesIO()
    w.write(out)
    assert "pdf.truncated" in wheres(out.getvalue(), "application/pdf", None)


def test_pdf_with_many_objects() -> None:
    w = PdfWriter()
    page = w.add_blank_page(10, 10)
    page[NameObject("/Junk")] = ArrayObject([w._add_object(NumberObject(i)) for i in range(21_000)])
    out = io.BytesIO()
    w.write(out)
    assert "pdf.truncated" in wheres(out.getvalue(), "application/pdf", None)


def test_pdf_with_a_bomb_stream() -> None:
    w = PdfWriter()
    page = w.add_blank_page(10, 10)
    stream = StreamObject()
    stream._data = zlib.compress(b" " * (60 << 20), 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = w._add_object(stream)
    out = io.BytesIO()
    w.write(out)
    assert "pdf.truncated" in wheres(out.getvalue(), "application/pdf", None)


def test_image_drawn_with_text_only_is_quiet() -> None:
    img = Image.new("L", (200, 60), 255)
    ImageDraw.Draw(img).text((5, 20), "no code here", fill=0)
    texts = readable_texts(_png(img), "image/png", None)
    assert not [w for w, _ in texts if w.endswith((".truncated", ".unreadable"))]


def test_pdf_page_too_heavy_to_lay_out_is_marked_and_still_read_raw() -> None:
    # 3 MB of text operators: past the layout budget; the raw pass still reads its strings
    w = PdfWriter()
    page = w.add_blank_page(10, 10)
    stream = StreamObject()
    stream._data = zlib.compress(b"BT /F1 9 Tf " + b"(a) Tj " * 450_000 + b"(raw.pass@seller.example) Tj ET", 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = w._add_object(stream)
    out = io.BytesIO()
    w.write(out)
    texts = readable_texts(out.getvalue(), "application/pdf", None)
    assert ("pdf.truncated", "") in texts
    assert "raw.pass@seller.example" in "\n".join(t for _, t in texts)


def test_unknown_binary_is_marked_and_its_strings_read() -> None:
    data = b"\x00\x01\x02\x03" * 64 + b"strings@seller.example" + b"\x00\xff" * 64
    texts = readable_texts(data, "application/octet-stream", "blob.bin")
    assert ("binary.unreadable", "") in texts
    assert "strings@seller.example" in "\n".join(t for _, t in texts)


_HEADS = [b"%PDF-1.4\n", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"\xff\xd8\xff\xe0",
          b"BEGIN:VCARD\r\n", b"BEGIN:VCALENDAR\r\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b""]


@settings(max_examples=60, deadline=None)
@given(head=st.sampled_from(_HEADS), tail=st.binary(max_size=2048))
def test_malformed_input_never_raises(head: bytes, tail: bytes) -> None:
    texts = readable_texts(head + tail, "application/octet-stream", "x")
    assert all(isinstance(w, str) and isinstance(t, str) for w, t in texts)


def test_truncated_real_files_never_raise() -> None:
    for whole in (_pdf(True), _docx()):
        for cut in range(0, len(whole), max(1, len(whole) // 40)):
            readable_texts(whole[:cut], "application/octet-stream", None)
