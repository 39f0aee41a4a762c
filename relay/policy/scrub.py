"""Metadata scrubbing of kept attachments, so that a file does not reveal who sent it.

Reads [attachments].scrub_metadata. JPEG: Exif/XMP/IPTC/comment segments dropped (the image
data is copied byte for byte; a non-default Orientation is kept in a minimal Exif). PNG:
eXIf/tEXt/zTXt/iTXt/tIME chunks dropped. TIFF: owner, device, GPS, Exif, XMP entries removed
from the first IFD and their data zeroed. PDF: document info and XMP metadata removed.
DOCX: creator, last-modified-by (and company/manager) removed. Each function returns the
new bytes, or None when there was nothing to remove.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zipfile
from typing import Any

from relay.policy.extract import PdfSource, collect_pdf_garbage, track_pdf


def scrub(kind: str, data: bytes) -> bytes | None:
    try:
        if kind == "jpeg":
            return scrub_jpeg(data)
        if kind == "png":
            return scrub_png(data)
        if kind == "tiff":
            return scrub_tiff(data)
        if kind == "pdf":
            return scrub_pdf(data)
        if kind == "docx":
            return scrub_docx(data)
    except Exception:
        return None
    return None


_JPEG_DROP = {0xE1, 0xED, 0xFE}  # APP1 (Exif, XMP), APP13 (Photoshop IRB/IPTC), COM


def _jpeg_orientation(data: bytes) -> int:
    try:
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


def scrub_jpeg(data: bytes) -> bytes | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    out = bytearray(b"\xff\xd8")
    pos = 2
    dropped = False
    inserted = False
    orientation = 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: leave the file alone
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan / end: copy the rest verbatim
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[pos : pos + 2]
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = data[pos : pos + 2 + length]
        if marker in _JPEG_DROP:
            if marker == 0xE1 and segment[4:10] == b"Exif\x00\x00" and orientation == 1:
                orientation = _jpeg_orientation(data)
            dropped = True
        else:
            out += segment
            if marker in (0xE0,) and not inserted:
                inserted = True
        pos += 2 + length
    if not dropped:
        return None
    rest = data[pos:]
    if orientation != 1:
        from PIL import Image

        exif = Image.Exif()
        exif[0x0112] = orientation
        payload = exif.tobytes()
        if not payload.startswith(b"Exif"):
            payload = b"Exif\x00\x00" + payload
        app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
        # after APP0 when present, else right after SOI
        insert_at = 2
        if out[2:4] == b"\xff\xe0":
            insert_at = 4 + struct.unpack(">H", bytes(out[4:6]))[0]
        out[insert_at:insert_at] = app1
    return bytes(out) + rest


_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def scrub_png(data: bytes) -> bytes | None:
    sig = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(sig):
        return None
    out = bytearray(sig)
    pos = 8
    dropped = False
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if ctype in _PNG_DROP:
            dropped = True
        else:
            out += data[pos:end]
        pos = end
        if ctype == b"IEND":
            break
    out += data[pos:]
    return bytes(out) if dropped else None


# Tags that identify an owner, a device, a place or a time, or that carry free text/XMP/IPTC.
_TIFF_DROP = {270, 271, 272, 305, 306, 315, 316, 700, 33432, 33723, 34377, 34665, 34853, 37510, 42016, 42032,
              42033, 42034, 42035, 42036, 50735}
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def scrub_tiff(data: bytes) -> bytes | None:
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    bo = "<" if data[:2] == b"II" else ">"
    buf = bytearray(data)
    ifd = struct.unpack(bo + "I", data[4:8])[0]
    if ifd + 2 > len(buf):
        return None
    n = struct.unpack(bo + "H", buf[ifd : ifd + 2])[0]
    if ifd + 6 + 12 * n > len(buf):
        return None
    entries = [bytes(buf[ifd + 2 + 12 * i : ifd + 14 + 12 * i]) for i in range(n)]
    keep = []
    for e in entries:
        tag, typ, count, value = struct.unpack(bo + "HHII", e)
        if tag not in _TIFF_DROP:
            keep.append(e)
            continue
        if tag in (34665, 34853):
            _zero_sub_ifd(buf, bo, value)
        else:
            size = _TIFF_SIZES.get(typ, 1) * count
            if size > 4 and value + size <= len(buf):
                buf[value : value + size] = bytes(size)
    if len(keep) == n:
        return None
    next_ifd = bytes(buf[ifd + 2 + 12 * n : ifd + 6 + 12 * n])
    block = struct.pack(bo + "H", len(keep)) + b"".join(keep) + next_ifd
    buf[ifd : ifd + 6 + 12 * n] = block + bytes(6 + 12 * n - len(block))
    return bytes(buf)


def _zero_sub_ifd(buf: bytearray, bo: str, off: int) -> None:
    if off + 2 > len(buf):
        return
    n = struct.unpack(bo + "H", buf[off : off + 2])[0]
    end = off + 6 + 12 * n
    if end > len(buf) or n > 1000:
        return
    for i in range(n):
        _tag, typ, count, value = struct.unpack(bo + "HHII", buf[off + 2 + 12 * i : off + 14 + 12 * i])
        size = _TIFF_SIZES.get(typ, 1) * count
        if size > 4 and value + size <= len(buf):
            buf[value : value + size] = bytes(size)
    buf[off:end] = bytes(end - off)


def scrub_pdf(data: bytes) -> bytes | None:
    try:
        return _scrub_pdf(data)
    finally:
        collect_pdf_garbage(len(data))


def _scrub_pdf(data: bytes) -> bytes | None:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = track_pdf(PdfReader(PdfSource(data), strict=False))
        if reader.is_encrypted:
            return None
        root: Any = reader.trailer["/Root"].get_object()
        if not reader.metadata and "/Metadata" not in root:
            return None
        writer = track_pdf(PdfWriter(clone_from=reader))
        writer.metadata = None
        wroot: Any = writer._root_object
        if NameObject("/Metadata") in wroot:
            del wroot[NameObject("/Metadata")]
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()


_CORE_DROP = re.compile(rb"<(dc:creator|cp:lastModifiedBy)\b[^>]*?(?:/>|>.*?</\1>)", re.S)
_APP_DROP = re.compile(rb"<(Company|Manager)\b[^>]*?(?:/>|>.*?</\1>)", re.S)
# who wrote a comment or a tracked change, and word/people.xml's list of them (name, account id,
# often the e-mail address itself): the document stays readable, the author becomes "Author"
_AUTHOR_ATTRS = re.compile(rb'\b((?:w|w14|w15|w16cid|w16se):(?:author|initials|userId|providerId|dateUtc)|author)'
                           rb'\s*=\s*("[^"]*"|\'[^\']*\')')


def _anonymous(m: re.Match[bytes]) -> bytes:
    name = m.group(1)
    value = b"Author" if name.endswith(b"author") else b"A" if name.endswith(b"initials") else b""
    return name + b'="' + value + b'"'


def scrub_docx(data: bytes) -> bytes | None:
    src = zipfile.ZipFile(io.BytesIO(data))
    changed = False
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                new = _CORE_DROP.sub(b"", body)
                changed |= new != body
                body = new
            elif info.filename == "docProps/app.xml":
                new = _APP_DROP.sub(b"", body)
                changed |= new != body
                body = new
            elif info.filename.startswith("word/") and info.filename.endswith(".xml"):
                new = _AUTHOR_ATTRS.sub(_anonymous, body)
                changed |= new != body
                body = new
            dst.writestr(info, body, compress_type=info.compress_type)
    return out.getvalue() if changed else None
