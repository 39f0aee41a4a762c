"""Text and links inside attachments: .txt, PDF, DOCX, DOC (OLE) and QR codes in images.

Reads the [attachments] caps of policy.toml (pdf_max_pages, docx_max_bytes, image_max_pixels,
qr_max_side). Work is bounded: a page cap for PDFs, an uncompressed-size cap for DOCX, a pixel
cap and a downscaled copy for QR decoding. Nothing here touches the network.
"""

from __future__ import annotations

import gc
import html
import io
import logging
import re
import warnings
import weakref
import zipfile
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs

from relay.message.parts import decode_text
from relay.policy.settings import Attachments


@dataclass(slots=True)
class Extracted:
    """What an attachment says: texts (label, text), URLs from link annotations, problems found."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    urls: list[tuple[str, str]] = field(default_factory=list)  # (label, url)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (rule, detail)


def text_of_txt(data: bytes, charset: str | None) -> Extracted:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Extracted(texts=[("text", data.decode("utf-16", errors="replace"))])
    text, _ = decode_text(data, charset)
    return Extracted(texts=[("text", text)])


#: Byte signatures looked for in an attachment, all in one pass: archives that may be appended to
#: another file (RAR, 7-Zip; ZIP is found from its tail) and the names of PDF scripts, launch
#: actions and embedded files. One Aho–Corasick pass over 7.4 MB: 2 ms, against 10 ms for two
#: bytes.find and the regex the PDF check used.
_ACTIVE_NAMES = (b"JavaScript", b"JS", b"Launch", b"EmbeddedFile", b"RichMedia", b"XFA")
_ACTIVE_PDF = re.compile(rb"/(?:" + b"|".join(_ACTIVE_NAMES) + rb")\b")
_MARKERS = {b"Rar!\x1a\x07": "rar", b"7z\xbc\xaf\x27\x1c": "7z", **{b"/" + n: "pdf_active" for n in _ACTIVE_NAMES}}
_MARKER_LIST = list(_MARKERS)
_MARKER_FINDER = ahocorasick_rs.BytesAhoCorasick(_MARKER_LIST)


def markers(data: bytes) -> frozenset[str]:
    """Which of "rar", "7z" (a signature after the first 8 bytes: appended to something else) and
    "pdf_active" (/JavaScript, /JS, /Launch, /EmbeddedFile, /RichMedia or /XFA ending a name, as
    _ACTIVE_PDF matches it) the bytes hold."""
    found: set[str] = set()
    for idx, start, end in _MARKER_FINDER.find_matches_as_indexes(data, overlapping=True):
        name = _MARKERS[_MARKER_LIST[idx]]
        if name == "pdf_active":
            if end < len(data) and (data[end:end + 1].isalnum() or data[end] == 0x5F):
                continue  # \b: the name goes on (/JSON, /EmbeddedFiles)
        elif start < 8:
            continue
        found.add(name)
    return frozenset(found)


def text_of_pdf(data: bytes, caps: Attachments, found: frozenset[str] | None = None) -> Extracted:
    """found: markers(data) when the caller has it."""
    out = Extracted()
    active = _ACTIVE_PDF.search(data) is not None if found is None else "pdf_active" in found
    if active:
        out.problems.append(("attachment.active_content", "PDF with scripts, launch actions or embedded files"))
    _read_pdf(data, caps, out)
    collect_pdf_garbage(len(data))
    return out


#: pypdf's objects hold each other (pages ↔ reader) and, with them, a copy of the file and of the
#: streams it read: about three times the PDF, freed only by the cyclic collector. From this size
#: on it runs as soon as a PDF has been read, not after the whole message (50 × 10 MB: the 22 MB of
#: a 7.4 MB PDF no longer live on through rewriting, signing and storing).
COLLECT_PDF_BYTES = 1 << 20
#: every pypdf reader and writer made here, while it lives
_pdf_objects: weakref.WeakSet[Any] = weakref.WeakSet()


class PdfSource(io.BytesIO):
    """The stream pypdf reads a PDF from. pypdf asks for the stream's size through getbuffer()
    (get_stream_size); BytesIO's own first copies the buffer it shares with the bytes it was
    made from (a 7.4 MB copy and its page faults, per PDF read). This one shows those bytes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._source = data

    def getbuffer(self) -> memoryview:
        return memoryview(self._source)


def track_pdf(obj: Any) -> Any:
    """Remember a PdfReader/PdfWriter so that collect_pdf_garbage can tell whether it is gone."""
    _pdf_objects.add(obj)
    return obj


def collect_pdf_garbage(size: int) -> None:
    """Free the cycles of the PDF objects just dropped. They are young: collecting the two young
    generations frees them (0.1 ms); the full collection (~6 ms, every object of the process)
    runs only when one is still alive after it — promoted meanwhile, or still in use by another
    thread's check, whose objects the young collection could not have freed anyway."""
    if size >= COLLECT_PDF_BYTES:
        gc.collect(1)
        if len(_pdf_objects):
            gc.collect()


def _read_pdf(data: bytes, caps: Attachments, out: Extracted) -> None:
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - pypdf is a dependency
        out.problems.append(("attachment.undecodable", "no PDF reader installed"))
        return
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = track_pdf(PdfReader(PdfSource(data), strict=False))
            if reader.is_encrypted:
                out.problems.append(("attachment.encrypted", "encrypted PDF"))
                return
            info: Any = reader.metadata or {}
            for key in ("/Title", "/Subject", "/Keywords", "/Author", "/Creator"):
                value = info.get(key)
                if value:
                    out.texts.append((f"metadata{key.lower()}", str(value)))
            for i, page in enumerate(reader.pages):
                if i >= caps.pdf_max_pages:
                    break
                try:
                    out.texts.append((f"page {i + 1}", page.extract_text() or ""))
                except Exception:
                    pass
                for annot in _pdf_annots(page):
                    action: Any = annot.get("/A")
                    if action is not None and hasattr(action, "get_object"):
                        action = action.get_object()
                    if isinstance(action, dict):
                        if action.get("/URI"):
                            out.urls.append((f"page {i + 1}", str(action.get("/URI"))))
                        if action.get("/S") in ("/Launch", "/JavaScript"):
                            out.problems.append(("attachment.active_content", "PDF launch or script action"))
        except Exception as exc:
            out.problems.append(("attachment.undecodable", f"PDF does not parse ({type(exc).__name__})"))


def _pdf_annots(page: Any) -> list[dict[str, Any]]:
    annots = page.get("/Annots")
    if annots is None:
        return []
    annots = annots.get_object() if hasattr(annots, "get_object") else annots
    out = []
    for a in annots or []:
        obj = a.get_object() if hasattr(a, "get_object") else a
        if isinstance(obj, dict):
            out.append(obj)
    return out


_W_PARA = re.compile(r"</w:p>|<w:br[^>]*>|<w:cr/>")
_W_TAB = re.compile(r"<w:tab/>")
_TAG = re.compile(r"<[^>]{0,4000}>")
_REL_TARGET = re.compile(r'Target="([^"]{1,4000})"[^>]{0,300}TargetMode="External"|TargetMode="External"[^>]{0,300}Target="([^"]{1,4000})"')
_INSTR_LINK = re.compile(r"HYPERLINK\s+(?:\\[a-z]\s+)*\"?([^\"\s]{1,2000})", re.I)


def docx_kind(zf: zipfile.ZipFile) -> str:
    """'docx', 'docm' (macros), or the other OOXML/ODF/zip kind the archive is."""
    names = set(zf.namelist())
    lower = {n.lower() for n in names}
    if any(n.endswith("vbaproject.bin") or n.endswith("vbadata.xml") for n in lower):
        return "docm"
    if "[Content_Types].xml" in names:
        try:
            ct = zf.read("[Content_Types].xml")[:200_000]
        except (KeyError, zipfile.BadZipFile, OSError, RuntimeError):
            return "zip"
        if b"macroEnabled" in ct or b"vbaProject" in ct:
            return "docm"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "ppt/presentation.xml" in names:
            return "pptx"
        return "ooxml"
    if "mimetype" in names:
        return "odf"
    return "zip"


def text_of_docx(data: bytes, caps: Attachments) -> Extracted:
    out = Extracted()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        total = sum(i.file_size for i in zf.infolist())
        if total > caps.docx_max_bytes:
            out.problems.append(("attachment.too_large", "document expands beyond the size cap"))
            return out
        for info in zf.infolist():
            name = info.filename
            if re.fullmatch(r"word/(?:document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml", name):
                xml = zf.read(info).decode("utf-8", errors="replace")
                for m in _INSTR_LINK.finditer(xml):
                    out.urls.append((name, html.unescape(m.group(1))))
                plain = _TAG.sub("", _W_TAB.sub("\t", _W_PARA.sub("\n", xml)))
                out.texts.append((name, html.unescape(plain)))
            elif name.endswith(".rels"):
                xml = zf.read(info).decode("utf-8", errors="replace")
                for m in _REL_TARGET.finditer(xml):
                    out.urls.append((name, html.unescape(m.group(1) or m.group(2))))
            elif name == "docProps/core.xml":
                xml = zf.read(info).decode("utf-8", errors="replace")
                for m in re.finditer(r"<(dc:title|dc:subject|cp:keywords|dc:description)>([^<]{1,4000})<", xml):
                    out.texts.append((f"metadata {m.group(1)}", html.unescape(m.group(2))))
    except (zipfile.BadZipFile, OSError, RuntimeError, KeyError, EOFError, NotImplementedError) as exc:
        out.problems.append(("attachment.undecodable", f"document does not open ({type(exc).__name__})"))
    return out


def ole_streams(data: bytes) -> set[str]:
    """Names of well-known OLE2 streams present (found in the directory as UTF-16LE)."""
    found = set()
    for name in ("WordDocument", "EncryptedPackage", "EncryptionInfo", "Workbook", "Book", "PowerPoint Document",
                 "__substg1.0_", "Macros", "_VBA_PROJECT", "VBA", "Ole10Native", "ObjectPool"):
        if name.encode("utf-16-le") in data:
            found.add(name)
    return found


def doc_encrypted(data: bytes) -> bool:
    """Word 97-2003 FIB fEncrypted flag (MS-DOC 2.5.2), found at a 512-byte sector start."""
    for m in re.finditer(rb"\xec\xa5", data):
        pos = m.start()
        if pos % 512 == 0 and pos + 12 <= len(data):
            return bool(data[pos + 0x0B] & 0x01)
    return False


def text_of_doc(data: bytes) -> Extracted:
    """Crude but bounded: UTF-16LE and single-byte runs of readable text from the OLE file."""
    texts = []
    for m in re.finditer(rb"(?:[\x20-\x7e\r\n\t]\x00|[\x00-\xff][\x30\x4e-\x9f\xac-\xd7]){6,}", data[:20_000_000]):
        chunk = m.group(0)
        if len(chunk) % 2:
            chunk = chunk[:-1]
        texts.append(chunk.decode("utf-16-le", errors="ignore"))
    for m in re.finditer(rb"[\x20-\x7e\r\n\t]{6,}", data[:20_000_000]):
        texts.append(m.group(0).decode("ascii"))
    return Extracted(texts=[("text", "\n".join(texts))])


def qr_codes(image: Any, caps: Attachments) -> list[str]:
    """Texts of QR (and other 2-D) codes in a Pillow image, decoded on a downscaled greyscale copy."""
    if not caps.qr_scan:
        return []
    try:
        import zxingcpp
    except ImportError:  # pragma: no cover - optional at runtime
        return []
    img = image
    if max(img.size) > caps.qr_max_side:
        img = img.copy()
        img.thumbnail((caps.qr_max_side, caps.qr_max_side))
    if img.mode != "L":
        img = img.convert("L")  # the decoder works on luminance anyway
    try:
        # QR codes only: looking for every 1-D/2-D format costs 15x more on a noisy photo
        return [r.text for r in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)) if r.text]
    except Exception:
        return []
