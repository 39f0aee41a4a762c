"""Attachments: what a file really is (magic bytes), whether that is allowed, and what it says.

Reads [attachments] of policy.toml. The type is decided by content and must agree with the
file name's extension and the declared Content-Type; archives, executables, scripts, macro
or encrypted documents, polyglots (a PNG with a ZIP appended) and anything not on the allow
list are refused with a rule id (attachment.*). Allowed files yield their text (and QR
codes) for the same rules as the body. File names are sanitized.
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field

from relay.policy import extract
from relay.policy.extract import Extracted
from relay.policy.settings import Attachments

_EXECUTABLE_EXT = frozenset(
    "exe com scr pif bat cmd ps1 psm1 vbs vbe js jse wsf wsh hta msi msp dll cpl jar app sh bash command "
    "lnk reg inf apk ipa deb rpm py pl rb php elf bin run gadget application msc scf url iso img vhd".split()
)
_ARCHIVE_EXT = frozenset("zip rar 7z gz tgz bz2 xz tar cab arj lz lzh lzma zst z ace iso 001".split())


@dataclass(slots=True)
class Inspection:
    kind: str                     # sniffed: pdf, jpeg, png, gif, tiff, bmp, doc, docx, txt, zip, exe, …
    problems: list[tuple[str, str]] = field(default_factory=list)  # (rule, detail)
    extracted: Extracted = field(default_factory=Extracted)


#: Plain leading magic numbers, checked in this order (the ones needing more than a prefix are in sniff).
_MAGIC: tuple[tuple[tuple[bytes, ...], str], ...] = (
    ((b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",), "ole"),
    ((b"PK\x03\x04", b"PK\x05\x06"), "zip"),
    ((b"MZ",), "exe"),
    ((b"\x7fELF",), "elf"),
    ((b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"), "macho"),
    ((b"#!",), "script"),
    ((b"Rar!\x1a\x07",), "rar"),
    ((b"7z\xbc\xaf\x27\x1c",), "7z"),
    ((b"\x1f\x8b",), "gz"),
    ((b"BZh",), "bz2"),
    ((b"\xfd7zXZ\x00",), "xz"),
    ((b"MSCF",), "cab"),
)


def sniff(data: bytes) -> str:
    """The file's kind from its content."""
    head = data[:4096]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM") and len(head) > 26 and head[6:10] == b"\x00\x00\x00\x00":
        return "bmp"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    for prefixes, kind in _MAGIC:
        if head.startswith(prefixes):
            return kind
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "heic" if head[8:12] in (b"heic", b"heix", b"mif1", b"msf1") else "media"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in head.lower():
        return "svg"
    if stripped.startswith((b"<!doctype html", b"<html", b"<script")):
        return "html"
    try:
        import filetype

        guess = filetype.guess(head)
    except ImportError:  # pragma: no cover
        guess = None
    if guess is not None:
        return str(guess.extension)
    if _looks_textual(data):
        return "txt"
    return "binary"


def _looks_textual(data: bytes) -> bool:
    sample = data[:65536]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in sample:
        return False
    bad = sum(1 for b in sample if b < 0x09 or (0x0E <= b < 0x20 and b != 0x1B))
    return bad <= len(sample) // 100


def sanitize_filename(name: str | None, max_bytes: int = 120, fallback_ext: str = "") -> str:
    """No directories, control or bidi characters, reserved punctuation, or over-long names."""
    name = name or ""
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(("" if unicodedata.category(ch) == "Cf" else " ")
                   if unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029" else ch
                   for ch in unicodedata.normalize("NFC", name))
    name = re.sub(r'[<>:"|?*\x00-\x1f]', "_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if not name:
        name = "attachment" + (f".{fallback_ext}" if fallback_ext else "")
    if len(name.encode("utf-8")) > max_bytes:
        stem, ext = os.path.splitext(name)
        ext = ext[:16]
        budget = max(1, max_bytes - len(ext.encode("utf-8")))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
        name = stem + ext
    return name


def allowed_kind(kind: str, caps: Attachments) -> bool:
    return kind in caps.allowed


def _kind_for_ext(ext: str, caps: Attachments) -> str | None:
    for kind, spec in caps.allowed.items():
        if ext in spec.extensions:
            return kind
    return None


def _kind_for_mime(mime: str, caps: Attachments) -> str | None:
    for kind, spec in caps.allowed.items():
        if mime in spec.mime_types:
            return kind
    return None


def inspect(data: bytes, filename: str, declared: str, charset: str | None, caps: Attachments) -> Inspection:
    """Decide what an attachment is and collect its problems and its text."""
    kind = sniff(data)
    problems: list[tuple[str, str]] = []
    extracted = Extracted()
    exts = [e.lower() for e in filename.split(".")[1:]] if "." in filename else []
    ext = exts[-1] if exts else ""

    if kind == "ole":
        streams = extract.ole_streams(data)
        if "EncryptedPackage" in streams or "EncryptionInfo" in streams:
            kind = "encrypted-office"
            problems.append(("attachment.encrypted", "password-protected Office document"))
        elif streams & {"Macros", "_VBA_PROJECT", "VBA"}:
            kind = "doc-macro"
            problems.append(("attachment.macro", "document with VBA macros"))
        elif "WordDocument" in streams:
            kind = "doc"
            if extract.doc_encrypted(data):
                problems.append(("attachment.encrypted", "encrypted Word document"))
        elif "__substg1.0_" in streams:
            kind = "msg"
        elif streams & {"Workbook", "Book"}:
            kind = "xls"
        elif "PowerPoint Document" in streams:
            kind = "ppt"
    elif kind == "zip":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                kind = extract.docx_kind(zf)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError):
            kind = "zip"
        if kind == "docm":
            problems.append(("attachment.macro", "macro-enabled document"))

    if kind in ("exe", "elf", "macho", "script") or ext in _EXECUTABLE_EXT:
        problems.append(("attachment.executable", f"executable content ({kind}, .{ext or '-'})"))
    elif kind in ("zip", "rar", "7z", "gz", "bz2", "xz", "tar", "cab") or ext in _ARCHIVE_EXT:
        problems.append(("attachment.archive", f"archive ({kind})"))
    elif not allowed_kind(kind, caps) and not problems:
        problems.append(("attachment.type_not_allowed", f"{kind} is not an allowed type"))

    if allowed_kind(kind, caps):
        ext_kind = _kind_for_ext(ext, caps) if ext else kind
        if ext and ext_kind is None:
            problems.append(("attachment.type_not_allowed", f".{ext} is not an allowed extension"))
        elif ext_kind != kind:
            problems.append(("attachment.type_mismatch", f"named .{ext} but the content is {kind}"))
        mime_kind = _kind_for_mime(declared, caps)
        if mime_kind is not None and mime_kind != kind and not (mime_kind == "txt" and kind == "txt"):
            problems.append(("attachment.type_mismatch", f"declared {declared} but the content is {kind}"))
        found = extract.markers(data) if kind != "docx" and kind != "txt" else None
        if found is not None and _has_appended_archive(data, found):
            problems.append(("attachment.polyglot", f"{kind} with an archive appended"))

    if not problems:
        extracted = _extract(kind, data, charset, caps, found)
        problems.extend(extracted.problems)
    return Inspection(kind, problems, extracted)


def _has_appended_archive(data: bytes, found: frozenset[str]) -> bool:
    """found: extract.markers(data)."""
    tail = max(0, len(data) - 70_000)
    if data.find(b"PK\x05\x06", tail) >= 0:
        try:
            if zipfile.is_zipfile(io.BytesIO(data)):
                return True
        except OSError:
            pass
    # find with a start offset, not `in data[8:]`: slicing copied the whole file three times
    # (the central directory is looked for in the tail first: the cheap half of the last test)
    return ("rar" in found or "7z" in found
            or (data.find(b"PK\x01\x02", tail) >= 0 and data.find(b"PK\x03\x04", 4) >= 0))


def _extract(kind: str, data: bytes, charset: str | None, caps: Attachments,
             found: frozenset[str] | None = None) -> Extracted:
    if kind == "txt":
        return extract.text_of_txt(data, charset)
    if kind == "pdf":
        return extract.text_of_pdf(data, caps, found)
    if kind == "docx":
        return extract.text_of_docx(data, caps)
    if kind == "doc":
        return extract.text_of_doc(data)
    if kind in ("jpeg", "png", "gif", "tiff", "bmp"):
        return _image(data, caps)
    return Extracted()


def _image(data: bytes, caps: Attachments) -> Extracted:
    out = Extracted()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > caps.image_max_pixels:
                    out.problems.append(("attachment.too_large", f"image of {w}x{h} pixels"))
                    return out
                img.load()
            if caps.qr_scan:  # every frame or page, every symbology: the message model's reader
                from relay.message.attachments import barcode_texts  # (it builds on this module)

                for text in barcode_texts(data, "image/*"):
                    out.texts.append(("qr", text))
        except Exception as exc:
            out.problems.append(("attachment.undecodable", f"image does not decode ({type(exc).__name__})"))
    return out
