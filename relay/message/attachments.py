"""Every text a recipient or their software can read inside one attachment, for the egress check (no matching).
Config: none; the caps are the constants below, shared by all read from one attachment (bytes, pages, frames …).
Never raises: markers ("<kind>.truncated" / ".unreadable", "pdf.encrypted"; text "") tell the caller to fail closed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import io
import logging
import quopri
import re
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from relay.message.parts import decode_text
from relay.policy import extract
from relay.policy.attachments import sanitize_filename, sniff
from relay.policy.settings import Attachments

#: Bytes inflated or decoded per attachment (ZIP members, PDF streams, embedded files together):
#: a 10 MB deflate bomb expands to 10 GB; this is where reading it stops.
MAX_INFLATED_BYTES = 50 * 1024 * 1024
MAX_ZIP_ENTRIES = 10_000
MAX_PDF_PAGES = 100
#: content-stream bytes given to pypdf's extract_text, all pages together: it interprets about 0.5 MB
#: of text operators a second, so a 1 MB stream shared by 100 pages would cost minutes. Past this the
#: pages are read only by the raw stream pass (their literal strings), and the PDF is marked truncated.
MAX_PDF_LAYOUT_BYTES = 2 * 1024 * 1024
#: indirect objects walked for strings and streams; a PDF of thousands of tiny objects stops here
MAX_PDF_OBJECTS = 20_000
MAX_FRAMES = 100
#: pixels of one frame before decoding it (Pillow's own bomb check warns at 89 M and raises at 179 M)
MAX_FRAME_PIXELS = 40_000_000
#: pixels handed to the barcode reader per attachment, after downscaling to BARCODE_MAX_SIDE: reading
#: every symbology costs about 0.3 µs a pixel on a noisy frame (a 700×700 frame: 0.15 s)
MAX_BARCODE_PIXELS = 10_000_000
BARCODE_MAX_SIDE = 2000
#: attachments inside attachments (an image in a DOCX, a PDF embedded in a PDF, a vCard photo)
MAX_DEPTH = 3
CHUNK = 1 << 20

_IMAGE_KINDS = frozenset({"png", "jpeg", "gif", "tiff", "bmp", "webp"})
_VCARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
_ICAL_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
_TEXT_KINDS = frozenset({"txt", "html", "svg", "rtf", "xml", "csv"})


@dataclass(slots=True)
class _Reading:
    """The texts found so far and the work still allowed, for one attachment and all it holds."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    bytes_left: int = MAX_INFLATED_BYTES
    frames_left: int = MAX_FRAMES
    pixels_left: int = MAX_BARCODE_PIXELS
    markers: set[str] = field(default_factory=set)

    def add(self, where: str, text: str) -> None:
        if text:
            self.texts.append((where, text))

    def mark(self, kind: str, what: str) -> None:
        marker = f"{kind}.{what}"
        if marker not in self.markers:
            self.markers.add(marker)
            self.texts.append((marker, ""))

    def take(self, n: int) -> bool:
        """Spend n bytes of the inflation budget; False once it is gone."""
        if n > self.bytes_left:
            self.bytes_left = 0
            return False
        self.bytes_left -= n
        return True


def readable_texts(data: bytes, content_type: str, filename: str | None) -> list[tuple[str, str]]:
    """(where, text) for everything a reader or their software can see in one attachment."""
    key = (hashlib.blake2b(data, digest_size=16).digest(), content_type, filename)
    cached = _RECENT.get(key)
    if cached is not None:
        return list(cached)
    reading = _Reading()
    _read(data, content_type, filename, reading, "", 0)
    # The policy and the egress check read the same attachment in one worker one after the other:
    # the second reading (barcodes in every frame: milliseconds to seconds) is the first's.
    _RECENT[key] = tuple(reading.texts)
    while len(_RECENT) > _RECENT_MAX:
        del _RECENT[next(iter(_RECENT))]
    return reading.texts


_RECENT: dict[tuple[bytes, str, str | None], tuple[tuple[str, str], ...]] = {}
_RECENT_MAX = 16


def barcode_texts(data: bytes, content_type: str) -> list[str]:
    """The text of every barcode, of every symbology, in every frame or page of an image."""
    return [text.split(": ", 1)[-1] for where, text in readable_texts(data, content_type, None)
            if where.endswith(".barcode")]


def replace_notice(filename: str | None, reason: str) -> tuple[str, bytes]:
    """Content type and body of the text/plain part that replaces an attachment the relay removed.

    Worded as the policy engine's strip notice (policy.toml [attachments].notice). A name holding "@"
    is not repeated: the notice must not carry the very address the attachment was removed for."""
    name = sanitize_filename(filename, Attachments.model_fields["filename_max_length"].default)
    if "@" in name or "%40" in name.lower():
        name = "attachment"
    template: str = Attachments.model_fields["notice"].default
    text = template.format(filename=name, reason=reason.strip().rstrip("."))
    return "text/plain; charset=utf-8", text.encode("utf-8") + b"\r\n"


def _kind(data: bytes, content_type: str, filename: str | None) -> str:
    """The kind to read the bytes as: the content decides; the declared type and name only pick
    between text formats the bytes cannot tell apart (a vCard is plain text to a sniffer)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    ext = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    if head.startswith(b"BEGIN:VCARD"):
        return "vcard"
    if head.startswith(b"BEGIN:VCALENDAR"):
        return "ical"
    kind = sniff(data)
    if kind in ("txt", "binary"):
        if ctype in _VCARD_TYPES or ext == "vcf":
            return "vcard"
        if ctype in _ICAL_TYPES or ext in ("ics", "ical", "ifb"):
            return "ical"
    return kind


def _read(data: bytes, content_type: str, filename: str | None, reading: _Reading, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        reading.mark("zip" if data.startswith(b"PK") else "nested", "truncated")
        return
    kind = _kind(data, content_type, filename)
    if kind == "pdf":
        _read_pdf(data, reading, where, depth)
    elif kind == "zip":
        _read_zip(data, reading, where, depth)
    elif kind in _IMAGE_KINDS:
        _read_image(data, reading, where)
    elif kind == "ole":
        reading.add(f"{where}ole.text", extract.text_of_doc(data[:MAX_INFLATED_BYTES]).texts[0][1])
        if len(data) > MAX_INFLATED_BYTES:
            reading.mark("ole", "truncated")
    elif kind in ("vcard", "ical"):
        _read_directory(data, kind, reading, where, depth)
    elif kind in _TEXT_KINDS:
        _read_text(data, content_type, kind, reading, where)
    elif depth == 0:
        # a kind we cannot read (an archive, a program, a video): its printable runs, as `strings` or a
        # hex viewer shows them, and a marker, since what it shows in its own application is unknown.
        # Inside a document (its fonts, its binary parts) only the runs: those are not shown to a reader.
        reading.mark("binary", "unreadable")
        reading.add(f"{where}binary.strings", extract.text_of_doc(data[:MAX_INFLATED_BYTES]).texts[0][1])
    else:
        reading.add(f"{where}binary.strings", extract.text_of_doc(data[:MAX_INFLATED_BYTES]).texts[0][1])
    # A polyglot (a PDF or an image with a ZIP appended) is a ZIP to every unzip tool: read that too.
    if kind != "zip" and data.find(b"PK\x05\x06", max(0, len(data) - 70_000)) >= 0:
        try:
            is_zip = zipfile.is_zipfile(io.BytesIO(data))
        except Exception:
            is_zip = False
        if is_zip:
            _read_zip(data, reading, where + "appended.", depth)


# --- plain text ------------------------------------------------------------------------------------


def _charset(content_type: str) -> str | None:
    m = re.search(r";\s*charset\s*=\s*\"?([\w.:+-]{1,40})", content_type, re.I)
    return m.group(1) if m else None


def _read_text(data: bytes, content_type: str, kind: str, reading: _Reading, where: str) -> None:
    try:
        text = extract.text_of_txt(data, _charset(content_type)).texts[0][1]
    except Exception:
        text = data.decode("latin-1")
    reading.add(f"{where}text", text)
    if kind in ("html", "svg", "xml"):
        _xml_texts(text, reading, f"{where}{kind}")


# --- vCard and iCalendar ---------------------------------------------------------------------------

#: RFC 6350 §3.2 and RFC 5545 §3.1: a line break followed by one space or tab is a fold, removed
_FOLD = re.compile(r"\r?\n[ \t]")
_PROPERTY = re.compile(r"^([^:\r\n]*?):(.*)$")


def _read_directory(data: bytes, kind: str, reading: _Reading, where: str, depth: int) -> None:
    text, _ = decode_text(data[:MAX_INFLATED_BYTES], None)
    unfolded = _FOLD.sub("", text)
    reading.add(f"{where}{kind}.text", unfolded)
    values: list[str] = []
    lines = iter(re.split(r"\r?\n", unfolded))
    for line in lines:
        m = _PROPERTY.match(line)
        if not m:
            continue
        params, value = m.group(1).upper(), m.group(2)
        if "QUOTED-PRINTABLE" in params:
            # vCard 2.1 §2.1.3: a quoted-printable value goes on after a soft break ("=" ending the line)
            while value.endswith("=") and len(value) < 1_000_000:
                value = value[:-1] + next(lines, "")
            cs = re.search(r"CHARSET=([\w.:+-]{1,40})", params)
            raw = quopri.decodestring(value.encode("utf-8", errors="replace"))
            values.append(decode_text(raw, cs.group(1) if cs else "utf-8")[0])
        elif re.search(r"ENCODING=(?:B|BASE64)\b", params) or ";BASE64" in params:
            try:
                blob = base64.b64decode(re.sub(r"\s", "", value), validate=False)
            except (binascii.Error, ValueError):
                reading.mark(kind, "unreadable")
                continue
            _read(blob, "application/octet-stream", None, reading, f"{where}{kind}.{params.split(';')[0]}.", depth + 1)
        else:
            # RFC 6350 §3.4 escapes: what an address book shows
            values.append(re.sub(r"\\([\\,;:nN])", lambda e: "\n" if e.group(1) in "nN" else e.group(1), value))
        if params:
            values.append(m.group(1))  # parameters: CN="…", EMAIL=…, ALTREP="mailto:…"
    reading.add(f"{where}{kind}.values", "\n".join(values))


# --- XML (Office Open XML parts, XMP, SVG) ---------------------------------------------------------

_XML_HIDDEN = re.compile(r"<!--(.*?)-->|<!\[CDATA\[(.*?)\]\]>", re.S)
_XML_TAG = re.compile(r"<[^<>]*>")
_XML_ATTR = re.compile(r"""[\s"'][\w:.-]+\s*=\s*(?:"([^"]*)"|'([^']*)')""")
#: where a reader sees a new line or a gap between text nodes (Word, DrawingML, SpreadsheetML cells)
_XML_BREAK = re.compile(r"</(?:w:p|a:p|p|si|c|row|text:p|text:h)>|<(?:w:br|w:cr|a:br|w:tab|text:tab|text:line-break)\b[^>]*>")


def _decode_xml(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8", errors="replace")


def _xml_texts(xml: str, reading: _Reading, where: str) -> None:
    """Text nodes (joined as a reader sees them, and one per line) and every attribute value.

    A regex reading, not an XML parser: no entity expansion, no DTD, no network, and it works on
    broken XML too. An address split across runs (<w:t>a</w:t></w:r><w:r><w:t>@b.c</w:t>) is whole
    in the joined text; one glued to the next cell is whole in the per-node text."""
    hidden = [m.group(1) or m.group(2) or "" for m in _XML_HIDDEN.finditer(xml)]
    body = _XML_HIDDEN.sub(" ", xml)
    nodes: list[str] = []
    joined: list[str] = []
    pos = 0
    for m in _XML_TAG.finditer(body):
        text = body[pos : m.start()]
        if text.strip():
            nodes.append(html.unescape(text))
        if text:
            joined.append(html.unescape(text))
        if _XML_BREAK.fullmatch(m.group(0)) or _XML_BREAK.match(m.group(0)):
            joined.append("\n")
        pos = m.end()
    tail = body[pos:]
    if tail.strip():
        nodes.append(html.unescape(tail))
    reading.add(f"{where}.text", "".join(joined).strip())
    reading.add(f"{where}.nodes", "\n".join(nodes))
    attrs: list[str] = []
    for tag in _XML_TAG.finditer(body):
        for a in _XML_ATTR.finditer(tag.group(0)):
            value = html.unescape(a.group(1) if a.group(1) is not None else a.group(2) or "")
            if value:
                attrs.append(value)
                if "%" in value:
                    attrs.append(urllib.parse.unquote(value))  # mailto:a%40b.c is a@b.c to a mail client
    reading.add(f"{where}.attributes", "\n".join(attrs))
    reading.add(f"{where}.hidden", "\n".join(html.unescape(h) for h in hidden if h.strip()))


# --- ZIP containers (DOCX, XLSX, PPTX, ODF, plain ZIP) ---------------------------------------------

_XML_NAMES = re.compile(r"(?i).*\.(?:xml|rels|vml|xhtml|html?|svg|txt|json|csv)$|.*/?\[content_types\]\.xml$")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, reading: _Reading) -> bytes | None:
    """The member's bytes, read a chunk at a time against the budget: a bomb is never inflated whole.
    None when the budget ran out (the caller marks the truncation)."""
    out = bytearray()
    with zf.open(info) as member:
        while True:
            chunk = member.read(CHUNK)
            if not chunk:
                return bytes(out)
            if not reading.take(len(chunk)):
                return None
            out += chunk


def _read_zip(data: bytes, reading: _Reading, where: str, depth: int) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception:
        reading.mark("zip", "unreadable")
        return
    with zf:
        if zf.comment:
            reading.add(f"{where}zip.comment", zf.comment.decode("utf-8", errors="replace"))
        reading.add(f"{where}zip.names", "\n".join(i.filename for i in infos[:MAX_ZIP_ENTRIES]))
        if len(infos) > MAX_ZIP_ENTRIES:
            reading.mark("zip", "truncated")
        for info in infos[:MAX_ZIP_ENTRIES]:
            if info.is_dir():
                continue
            try:
                raw = _read_member(zf, info, reading)
            except Exception:  # bad CRC, unknown compression, encrypted member, truncated archive
                reading.mark("zip", "unreadable")
                continue
            if raw is None:
                reading.mark("zip", "truncated")
                return
            label = f"{where}{info.filename}"
            if _XML_NAMES.fullmatch(info.filename) and not raw.startswith(b"PK"):
                _xml_texts(_decode_xml(raw), reading, label)
            else:
                # media, embedded objects, nested packages: whatever they are, read them as such
                _read(raw, "application/octet-stream", info.filename, reading, label + "/", depth + 1)


# --- images ----------------------------------------------------------------------------------------

#: Exif tags Windows writes as UTF-16LE (XPTitle, XPComment, XPAuthor, XPKeywords, XPSubject)
_XP_TAGS = frozenset({0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F})
_EXIF_IFDS = (0x8769, 0x8825, 0xA005)  # Exif, GPS, Interop


def _meta_text(tag: int, value: Any) -> str:
    if isinstance(value, bytes):
        if tag in _XP_TAGS:
            return value.decode("utf-16-le", errors="replace").rstrip("\x00")
        if tag == 0x9286 and value[:8] in (b"UNICODE\x00", b"ASCII\x00\x00\x00", b"\x00" * 8, b"JIS\x00\x00\x00\x00\x00"):
            body = value[8:]  # UserComment: an 8-byte charset id, then the text (Exif 2.32 §4.6.5)
            return body.decode("utf-16", errors="replace") if value[:7] == b"UNICODE" else body.decode("latin-1")
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(value, str):
        return value.rstrip("\x00")
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value) and tag in _XP_TAGS:
        return bytes(value).decode("utf-16-le", errors="replace").rstrip("\x00")
    return ""


def _image_metadata(img: Any, where: str, reading: _Reading) -> None:
    texts: list[str] = []
    for key, value in list(img.info.items()):
        if key in ("icc_profile", "exif", "transparency", "palette"):
            continue
        if isinstance(value, (str, bytes)):
            texts.append(f"{key}: {_meta_text(0, value)}")
    for key, value in (getattr(img, "text", None) or {}).items():  # PNG tEXt/zTXt/iTXt, also after IDAT
        texts.append(f"{key}: {value}")
    try:
        exif = img.getexif()
        entries = list(exif.items())
        for ifd in _EXIF_IFDS:
            try:
                entries.extend(exif.get_ifd(ifd).items())
            except Exception:
                continue
    except Exception:
        entries = []
    tag_v2 = getattr(img, "tag_v2", None)  # TIFF: this page's own tags
    if tag_v2 is not None:
        entries.extend(tag_v2.items())
    for tag, value in entries:
        text = _meta_text(tag, value)
        if text.strip():
            texts.append(text)
    reading.add(f"{where}.metadata", "\n".join(dict.fromkeys(texts)))


def _barcodes(frame: Any, reading: _Reading) -> list[str]:
    """Every symbology zxing-cpp reads, on a grey copy (transparency flattened onto white).

    zxing-cpp's try_invert also reads light-on-dark codes, on the same pass; an inverted copy of
    our own would double the cost of every image without a code."""
    import zxingcpp
    from PIL import Image

    img = frame
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img.alpha_composite(rgba)
    grey = img.convert("L")
    if max(grey.size) > BARCODE_MAX_SIDE:
        grey.thumbnail((BARCODE_MAX_SIDE, BARCODE_MAX_SIDE))
    elif max(grey.size) < 200:
        # generated codes at one pixel per module: too small for the finder patterns
        scale = max(1, 400 // max(1, max(grey.size)))
        grey = grey.resize((grey.width * scale, grey.height * scale), Image.Resampling.NEAREST)
    pixels = grey.width * grey.height
    if pixels > reading.pixels_left:
        reading.mark("image", "truncated")
        return []
    reading.pixels_left -= pixels
    found: list[str] = []
    formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.AllReadable)
    for result in zxingcpp.read_barcodes(grey, formats=formats, try_invert=True, try_rotate=True):
        text = result.text
        if not text and result.bytes:
            text = bytes(result.bytes).decode("latin-1")
        if text:
            found.append(f"{result.format}: {text}")
    return found


def _frames(img: Any, reading: _Reading) -> Iterator[tuple[int, Any]]:
    """The frames or pages of an image, until the frame cap."""
    from PIL import ImageSequence

    for index, frame in enumerate(ImageSequence.Iterator(img)):
        if reading.frames_left <= 0:
            reading.mark("image", "truncated")
            return
        reading.frames_left -= 1
        yield index, frame


def _read_image(data: bytes, reading: _Reading, where: str) -> None:
    from PIL import Image

    seen: set[int] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format == "JPEG" and max(img.size) > 2 * BARCODE_MAX_SIDE:
                    img.draft("L", (BARCODE_MAX_SIDE, BARCODE_MAX_SIDE))  # decoded at 1/2–1/8 scale
                for index, frame in _frames(img, reading):
                    label = f"{where}image.frame {index + 1}"
                    w, h = frame.size
                    if w * h > MAX_FRAME_PIXELS:
                        reading.mark("image", "truncated")
                        continue
                    frame.load()
                    _image_metadata(frame, label, reading)
                    pixels = hash(frame.tobytes())  # an animation repeating a frame: decode it once
                    if pixels in seen:
                        continue
                    seen.add(pixels)
                    for text in _barcodes(frame, reading):
                        reading.add(f"{label}.barcode", text)
        except Exception:
            reading.mark("image", "unreadable")


# --- PDF -------------------------------------------------------------------------------------------

_PDF_LITERAL = re.compile(rb"\((?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*\)", re.S)
#: one pass over all escapes (PDF 32000-1 §7.3.4.2): octal, a line continuation, or a named/literal one
_PDF_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|(\r\n|\r|\n)|(.))", re.S)
_PDF_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _pdf_unescape(m: re.Match[bytes]) -> bytes:
    if m.group(1):
        return bytes([int(m.group(1), 8) & 0xFF])
    if m.group(2):
        return b""
    return _PDF_ESCAPES.get(m.group(3), m.group(3))


def _pdf_literals(stream: bytes) -> str:
    """The literal strings of a content stream joined: text a TJ array splits ([(a) -20 (@b.c)] TJ)
    read whole, even when the page has no font table extract_text could use. Escapes are undone on
    the joined bytes (no escape spans two strings: each string ends on an unescaped parenthesis)."""
    joined = b"".join(m.group(0)[1:-1] for m in _PDF_LITERAL.finditer(stream))
    return _PDF_ESCAPE.sub(_pdf_unescape, joined).decode("latin-1")


def _pdf_strings(obj: Any, out: list[str], depth: int = 0) -> None:
    """Every string (and form field value name) in a PDF object, direct children only (indirect
    objects are walked on their own)."""
    from pypdf.generic import ArrayObject, ByteStringObject, DictionaryObject, TextStringObject

    if depth > 20 or len(out) > 200_000:
        return
    if isinstance(obj, TextStringObject):
        out.append(str(obj))
    elif isinstance(obj, ByteStringObject):
        out.append(bytes(obj).decode("latin-1"))
    elif isinstance(obj, DictionaryObject):
        for key, value in obj.items():
            if key in ("/V", "/DV", "/AS", "/Opt") and type(value).__name__ == "NameObject":
                out.append(str(value)[1:])  # a check box's export value is a name
            _pdf_strings(value, out, depth + 1)
    elif isinstance(obj, ArrayObject):
        for value in obj:
            _pdf_strings(value, out, depth + 1)


def _outline_titles(items: Any, out: list[str], depth: int = 0) -> None:
    for item in items:
        if len(out) > 100_000 or depth > 50:
            return
        if isinstance(item, list):
            _outline_titles(item, out, depth + 1)
        else:
            title = getattr(item, "title", None) or (item.get("/Title") if hasattr(item, "get") else None)
            if title:
                out.append(str(title))


def _content_bytes(page: Any) -> int:
    """Decoded bytes extract_text would interpret for a page: its content streams and the form
    XObjects its resources name (decoded once; pypdf keeps the result for extract_text)."""
    from pypdf.generic import ArrayObject

    total = 0
    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    streams = list(contents) if isinstance(contents, ArrayObject) else [contents] if contents is not None else []
    resources = page.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources is not None else None
    if xobjects is not None:
        streams.extend(x for x in xobjects.get_object().values() if x.get_object().get("/Subtype") == "/Form")
    for stream in streams[:10_000]:
        total += len(stream.get_object().get_data())
    return total


def _read_pdf(data: bytes, reading: _Reading, where: str, depth: int) -> None:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = extract.track_pdf(PdfReader(extract.PdfSource(data), strict=False))
            if reader.is_encrypted:
                reading.mark("pdf", "encrypted")
                # a PDF with only an owner password opens in every viewer without asking: read it too
                if not reader.decrypt(""):
                    return
            _read_pdf_parts(reader, reading, where, depth)
        except Exception:
            reading.mark("pdf", "unreadable")
        finally:
            extract.collect_pdf_garbage(len(data))


def _read_pdf_parts(reader: Any, reading: _Reading, where: str, depth: int) -> None:
    from pypdf.generic import StreamObject

    def guarded(step: Any) -> None:
        try:
            step()
        except Exception:  # one broken part (a bad outline, a bad field tree) does not hide the others
            reading.mark("pdf", "unreadable")

    def info() -> None:
        meta = reader.metadata or {}
        reading.add(f"{where}pdf.info", "\n".join(f"{k}: {v}" for k, v in meta.items()))

    def xmp() -> None:
        root = reader.trailer["/Root"].get_object()
        if "/Metadata" in root:
            raw = root["/Metadata"].get_object().get_data()
            if reading.take(len(raw)):
                _xml_texts(_decode_xml(raw), reading, f"{where}pdf.xmp")

    def pages() -> None:
        n = len(reader.pages)
        if n > MAX_PDF_PAGES:
            reading.mark("pdf", "truncated")
        layout_left = MAX_PDF_LAYOUT_BYTES
        for i in range(min(n, MAX_PDF_PAGES)):
            page = reader.pages[i]
            size = _content_bytes(page)
            if size > layout_left:
                layout_left = 0
                reading.mark("pdf", "truncated")
            else:
                layout_left -= size
                try:
                    reading.add(f"{where}pdf.page {i + 1}", page.extract_text() or "")
                except Exception:
                    reading.mark("pdf", "unreadable")
            for annot in page.get("/Annots") or []:
                annot = annot.get_object()
                strings: list[str] = []
                _pdf_strings(annot, strings)
                action = annot.get("/A")
                if action is not None:
                    _pdf_strings(action.get_object(), strings)
                reading.add(f"{where}pdf.page {i + 1}.annotation", "\n".join(strings))

    def outline() -> None:
        titles: list[str] = []
        _outline_titles(reader.outline, titles)
        reading.add(f"{where}pdf.outline", "\n".join(titles))

    def fields() -> None:
        for name, fld in (reader.get_fields() or {}).items():
            strings = [name]
            for key in ("/T", "/TU", "/TM", "/V", "/DV"):
                if fld.get(key) is not None:
                    strings.append(str(fld.get(key)))
            reading.add(f"{where}pdf.field", "\n".join(strings))

    def embedded() -> None:
        for name, contents in reader.attachments.items():
            reading.add(f"{where}pdf.embedded name", name)
            for blob in contents:
                if reading.take(len(blob)):
                    _read(blob, "application/octet-stream", name, reading, f"{where}pdf.embedded {name}/", depth + 1)
                else:
                    reading.mark("pdf", "truncated")

    def objects() -> None:
        # the last resort: every string of every object, and every stream that is not an image
        numbers = sorted({n for table in reader.xref.values() for n in table} | set(reader.xref_objStm))
        if len(numbers) > MAX_PDF_OBJECTS:
            reading.mark("pdf", "truncated")
        strings: list[str] = []
        for num in numbers[:MAX_PDF_OBJECTS]:
            try:
                obj = reader.get_object(num)
            except Exception:
                continue
            _pdf_strings(obj, strings)
            if isinstance(obj, StreamObject) and obj.get("/Subtype") != "/Image":
                try:
                    raw = obj.get_data()
                except Exception:
                    continue
                if not reading.take(len(raw)):
                    reading.mark("pdf", "truncated")
                    break
                reading.add(f"{where}pdf.stream {num}", raw.decode("latin-1"))
                literals = _pdf_literals(raw)
                if literals:
                    reading.add(f"{where}pdf.stream {num}.strings", literals)
        reading.add(f"{where}pdf.strings", "\n".join(strings))

    for step in (info, xmp, pages, outline, fields, embedded, objects):
        guarded(step)
