"""An oracle for "does this delivered message still reveal a real address?", independent of relay/.

It imports nothing from relay/: it decodes what was delivered with the stdlib e-mail package,
html.parser, pypdf, zipfile, Pillow and zxing-cpp, so a bug in the relay's own finder cannot
hide the same leak from the tests that judge it. It is deliberately greedy: every view of
every part (decoded and raw) is normalised the way a human reader undoes obfuscation
(fullwidth, zero-width, homoglyphs, "(at)"/"dot" words, spacing) before it is searched.
"""

from __future__ import annotations

import binascii
import email
import email.header
import email.message
import email.policy
import email.utils
import html
import html.parser
import io
import quopri
import re
import unicodedata
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

#: Headers that identify the sender's route; they must not survive inside a forwarded message.
FORWARD_ROUTE_HEADERS = ("received", "x-originating-ip", "return-path")

#: Attributes whose value a browser treats as a URL (tab/LF/CR are stripped by the URL parser).
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "cite", "background", "poster",
                            "data", "codebase", "longdesc", "usemap", "srcset", "ping", "xlink:href"})

MAX_DEPTH = 8

# Characters a human reads as Latin letters (after casefold) but that are not ASCII.
_HOMOGLYPHS = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ӏ": "l", "һ": "h",
    "ԛ": "q", "ԝ": "w", "ɡ": "g", "ո": "n", "ս": "u",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes outside ASCII that NFKC keeps
    "ı": "i", "ȷ": "j", "ℓ": "l", "ǀ": "l",
})

_AT_WORDS = re.compile(
    r"\s*[\(\[\{<]\s*(?:at|@|アット|あっと)\s*[\)\]\}>]\s*"  # (at) [at] {at} <at> [@]
    r"|\s+at\s+"                                          # " at "
    r"|\s*(?:アットマーク|あっとまーく|골뱅이)\s*"
    r"|&#0*64;|&#x0*40;|&commat;|%40")
_DOT_WORDS = re.compile(
    r"\s*[\(\[\{<]\s*(?:dot|\.|。|点|點|ドット)\s*[\)\]\}>]\s*"  # (dot) [dot] [.] (.)
    r"|\s+dot\s+"                                                # " dot "
    r"|\s*(?:ドット|どっと|닷|點|点)\s*"
    r"|[。｡．︒]|&#0*46;|&#x0*2e;|&period;|%2e")
_WHITESPACE = re.compile(r"\s+")


def _invisible(ch: str) -> bool:
    """Characters a reader never sees: format controls, variation selectors, combining joiners."""
    cp = ord(ch)
    return (unicodedata.category(ch) == "Cf" or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF
            or cp in (0x034F, 0x180B, 0x180C, 0x180D, 0x180E, 0x115F, 0x1160, 0x3164, 0xFFA0))


def normalize(text: str) -> str:
    """The text as a human reads an address out of it, without whitespace."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if not _invisible(ch))
    text = text.casefold().translate(_HOMOGLYPHS)
    text = _AT_WORDS.sub("@", text)
    text = _DOT_WORDS.sub(".", text)
    return _WHITESPACE.sub("", text)


@dataclass(frozen=True, slots=True)
class View:
    """One place in the delivered message, as text."""

    where: str
    text: str


def _variants(text: str) -> Iterator[str]:
    yield text
    if "%" in text:
        yield urllib.parse.unquote(text, errors="replace")
    if "&" in text:
        yield html.unescape(text)


def _decode_bytes(data: bytes, charset: str | None = None) -> list[str]:
    out: list[str] = []
    for cs in (charset, "utf-8", "latin-1"):
        if not cs:
            continue
        try:
            out.append(data.decode(cs))
            break
        except (LookupError, UnicodeDecodeError):
            continue
    if data.count(b"\x00") > len(data) // 8:  # looks like UTF-16 somewhere in the file
        for cs in ("utf-16-le", "utf-16-be"):
            out.append(data.decode(cs, errors="ignore"))
    return out


class _HTMLViews(html.parser.HTMLParser):
    """Data, comments and attribute values (already entity-decoded by the parser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: list[str] = []
        self.comments: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            self.attributes.append(value)
            if name in URL_ATTRIBUTES:
                url = re.sub(r"[\t\n\r]", "", value)
                self.attributes.append(urllib.parse.unquote(url, errors="replace"))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def unknown_decl(self, data: str) -> None:
        self.comments.append(data)


def html_views(markup: str, where: str) -> list[View]:
    parser = _HTMLViews()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # a hostile page must not stop the other views
        pass
    # Tags and comments removed and not replaced: "jo<b>hn" and "jo<!-- -->hn" read "john".
    stripped = re.sub(r"<!--.*?(?:-->|$)|<[^>]*>", "", markup, flags=re.S)
    return [View(f"{where} html data", "".join(parser.data)),
            View(f"{where} html comments", "\n".join(parser.comments)),
            View(f"{where} html attributes", "\n".join(parser.attributes)),
            View(f"{where} html tags removed", html.unescape(stripped))]


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676: a line ending in a space continues on the next (the space dropped with DelSp=yes)."""
    lines = text.replace("\r\n", "\n").split("\n")
    out = ""
    for line in lines:
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            out += line[:-1] if delsp else line
        else:
            out += line + "\n"
    return out


def _unfold(text: str) -> str:
    """vCard/iCalendar (RFC 6350 3.2, RFC 5545 3.1): CRLF + one space or tab continues a line."""
    return re.sub(r"\r?\n[ \t]", "", text)


def _pdf_views(data: bytes, where: str) -> list[View]:
    views: list[View] = []
    try:
        from pypdf import PdfReader
        from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject
    except ImportError:
        return views
    texts: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                try:
                    reader.decrypt("")
                except Exception:
                    pass
            for page in reader.pages:
                try:
                    texts.append(page.extract_text() or "")
                except Exception:
                    pass
            try:
                for value in (reader.metadata or {}).values():
                    texts.append(str(value))
            except Exception:
                pass
            try:
                for value in (reader.get_fields() or {}).values():
                    texts.append(str(value.get("/V", "")))
            except Exception:
                pass
            # Every object: strings anywhere (annotations, outlines, fields, /Info) and decoded streams.
            seen: set[int] = set()

            def walk(obj: object, depth: int) -> None:
                if depth > 40 or id(obj) in seen:
                    return
                seen.add(id(obj))
                if isinstance(obj, IndirectObject):
                    try:
                        obj = obj.get_object()
                    except Exception:
                        return
                if isinstance(obj, StreamObject):
                    try:
                        texts.extend(_decode_bytes(obj.get_data()))
                    except Exception:
                        pass
                if isinstance(obj, DictionaryObject):
                    for v in obj.values():
                        walk(v, depth + 1)
                elif isinstance(obj, ArrayObject):
                    for v in obj:
                        walk(v, depth + 1)
                elif isinstance(obj, str):
                    texts.append(str(obj))
                elif isinstance(obj, bytes):
                    texts.extend(_decode_bytes(bytes(obj)))

            for gen, ids in list(reader.xref.items()):
                for idnum in ids:
                    try:
                        walk(reader.get_object(IndirectObject(idnum, gen, reader)), 0)
                    except Exception:
                        pass
            for idnum in list(getattr(reader, "xref_objStm", {})):
                try:
                    walk(reader.get_object(IndirectObject(idnum, 0, reader)), 0)
                except Exception:
                    pass
            walk(reader.trailer, 0)
    except Exception:
        pass
    views.append(View(f"{where} pdf", "\n".join(texts)))
    return views


def _zip_views(data: bytes, where: str, depth: int) -> list[View]:
    views: list[View] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist()[:500]:
                views.append(View(f"{where} zip name", info.filename))
                try:
                    member = z.read(info)
                except Exception:
                    continue
                views.extend(attachment_views(member, f"{where} zip:{info.filename}", depth + 1))
                for text in _decode_bytes(member):
                    if "<" in text:
                        views.append(View(f"{where} zip:{info.filename} tags removed",
                                          html.unescape(re.sub(r"<[^>]*>", "", text))))
                        values = re.findall(r"""=\s*(?:"([^"]*)"|'([^']*)')""", text)
                        views.append(View(f"{where} zip:{info.filename} attributes",
                                          "\n".join(html.unescape(a or b) for a, b in values)))
    except Exception:
        pass
    return views


def _image_views(data: bytes, where: str) -> list[View]:
    views: list[View] = []
    try:
        from PIL import ExifTags, Image, ImageSequence
    except ImportError:
        return views
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            meta: list[str] = [str(v) for v in img.info.values() if isinstance(v, str | bytes)]
            exif = img.getexif()
            meta.extend(str(v) for v in exif.values())
            for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, ExifTags.IFD.Interop):
                try:
                    meta.extend(str(v) for v in exif.get_ifd(ifd).values())
                except Exception:
                    pass
            views.append(View(f"{where} image metadata", "\n".join(meta)))
            codes: list[str] = []
            try:
                import zxingcpp
            except ImportError:
                zxingcpp = None  # type: ignore[assignment]
            if zxingcpp is not None:
                for n, frame in enumerate(ImageSequence.Iterator(img)):
                    if n >= 64:
                        break
                    try:
                        codes.extend(r.text for r in zxingcpp.read_barcodes(frame.convert("RGB")))
                    except Exception:
                        pass
            views.append(View(f"{where} barcodes", "\n".join(codes)))
    except Exception:
        pass
    return views


def attachment_views(data: bytes, where: str, depth: int = 0) -> list[View]:
    """Every readable view of one attachment's bytes, whatever it claims to be."""
    if depth > MAX_DEPTH:
        return []
    views = [View(f"{where} raw bytes", t) for t in _decode_bytes(data)]
    head = data[:1024]
    if b"%PDF" in head:
        views.extend(_pdf_views(data, where))
    if data.startswith(b"PK"):
        views.extend(_zip_views(data, where, depth))
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:6] in (b"GIF87a", b"GIF89a") or data[:2] == b"\xff\xd8" \
            or data[:4] in (b"II*\x00", b"MM\x00*") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") \
            or data[:2] == b"BM":
        views.extend(_image_views(data, where))
    text = _decode_bytes(data)[0] if data else ""
    if "BEGIN:VCARD" in text.upper() or "BEGIN:VCALENDAR" in text.upper():
        unfolded = _unfold(text)
        views.append(View(f"{where} unfolded", unfolded))
        try:
            views.append(View(f"{where} unfolded quoted-printable",
                              quopri.decodestring(unfolded.encode("latin-1", "replace")).decode("utf-8", "replace")))
        except (ValueError, binascii.Error):
            pass
    return views


def _header_views(msg: email.message.Message, where: str) -> list[View]:
    views: list[View] = []
    for name, raw in msg.raw_items():
        raw_text = str(raw)
        views.append(View(f"{where} header {name.lower()} raw", raw_text))
        try:
            legacy = str(email.header.make_header(email.header.decode_header(raw_text)))
            views.append(View(f"{where} header {name.lower()} decoded-legacy", legacy))
        except Exception:
            pass
    for name in set(msg.keys()):
        try:
            for value in msg.get_all(name) or []:
                views.append(View(f"{where} header {name.lower()} decoded", str(value)))
        except Exception:
            pass
    for header in ("content-type", "content-disposition"):
        try:
            params = msg.get_params(header=header) or []
        except Exception:
            params = []
        for key, value in params:
            try:
                text = email.utils.collapse_rfc2231_value(value)  # type: ignore[arg-type]
            except Exception:
                text = str(value)
            views.append(View(f"{where} param {key}", urllib.parse.unquote(text, errors="replace")))
    try:
        filename = msg.get_filename()
    except Exception:
        filename = None
    if filename:
        views.append(View(f"{where} param filename", urllib.parse.unquote(filename, errors="replace")))
    return views


def _text_of(part: email.message.Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except Exception:
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    return _decode_bytes(payload, part.get_content_charset())[0] if payload else ""


def message_views(msg: email.message.Message, where: str = "message", depth: int = 0) -> list[View]:
    """Headers and every leaf of one message, and of messages nested in it."""
    views = _header_views(msg, where)
    if depth > MAX_DEPTH:
        return views
    if msg.is_multipart():
        payload = msg.get_payload()
        parts = payload if isinstance(payload, list) else []
        for n, part in enumerate(parts, 1):
            if msg.get_content_maintype() == "message":
                views.extend(message_views(part, f"{where}/msg", depth + 1))
            else:
                views.extend(message_views(part, f"{where}.{n}", depth + 1))
        return views
    views.append(View(f"{where} body raw", str(msg.get_payload())))
    if msg.get_content_maintype() == "text" and not msg.get_filename():
        text = _text_of(msg)
        views.append(View(f"{where} content", text))
        if msg.get_param("format", "").lower() == "flowed":  # type: ignore[union-attr]
            delsp = str(msg.get_param("delsp", "no")).lower() == "yes"
            views.append(View(f"{where} content unflowed", _unflow(text, delsp)))
        if msg.get_content_subtype() in ("html", "xml") or "<" in text:
            views.extend(html_views(text, where))
        if "BEGIN:V" in text.upper():
            views.append(View(f"{where} unfolded", _unfold(text)))
        return views
    payload = msg.get_payload(decode=True)
    if isinstance(payload, bytes):
        views.extend(attachment_views(payload, f"{where} attachment"))
        if msg.get_content_maintype() == "text":
            text = _text_of(msg)
            views.append(View(f"{where} content", text))
            views.extend(html_views(text, where))
    return views


def nested_messages(msg: email.message.Message, depth: int = 0) -> Iterator[email.message.Message]:
    if depth > MAX_DEPTH or not msg.is_multipart():
        return
    payload = msg.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if msg.get_content_maintype() == "message":
            yield part
        yield from nested_messages(part, depth + 1)


def views_of(delivered: bytes) -> list[View]:
    msg = email.message_from_bytes(delivered, policy=email.policy.default)
    views = message_views(msg)
    views.append(View("raw message", delivered.decode("utf-8", "replace")))
    return views


def _local_pattern(local: str) -> str:
    """The local part with optional dots anywhere (Gmail ignores dots), as a regex."""
    chars = [re.escape(c) for c in local if c != "."]
    return r"\.?".join(chars)


def _domains(domain: str) -> list[str]:
    if domain in ("gmail.com", "googlemail.com"):
        return ["gmail.com", "googlemail.com"]
    return [domain]


@dataclass(frozen=True, slots=True)
class _Target:
    address: str
    forms: tuple[tuple[str, re.Pattern[str]], ...]


def _target(address: str) -> _Target:
    addr = normalize(address)
    local, _, domain = addr.rpartition("@")
    forms: list[tuple[str, re.Pattern[str]]] = [("address", re.compile(re.escape(addr)))]
    lp = _local_pattern(local)
    for d in _domains(domain):
        forms.append(("gmail dot/+tag variant", re.compile(rf"{lp}(?:\+[^@\s]{{0,64}})?@{re.escape(d)}")))
        forms.append(("VERP", re.compile(rf"{lp}=(?:{re.escape(d)})")))
    forms.append(("reversed", re.compile(re.escape(addr[::-1]))))
    return _Target(address, tuple(forms))


def _is_top_to(where: str) -> bool:
    return where.startswith("message header to ")


def forms_found(delivered: bytes, addresses: list[str], *, allow_in_to: str | None) -> list[str]:
    """Descriptions of every place any form of any of ``addresses`` appears in ``delivered``.

    ``allow_in_to`` is the recipient's own address: it may appear in the top-level To header.
    """
    targets = [_target(a) for a in addresses if "@" in a]
    allowed = normalize(allow_in_to) if allow_in_to else None
    found: list[str] = []
    views = views_of(delivered)
    for view in views:
        for variant in _variants(view.text):
            text = normalize(variant)
            if "@" not in text and "=" not in text:  # every form has one of them
                continue
            for target in targets:
                if allowed and _is_top_to(view.where) and normalize(target.address) == allowed:
                    continue
                if view.where == "raw message" and allowed and normalize(target.address) == allowed:
                    # the raw message holds the top-level To; every other place is checked by a decoded view
                    continue
                for kind, pattern in target.forms:
                    if pattern.search(text):
                        found.append(f"{view.where}: {target.address} ({kind})")
                        break
    msg = email.message_from_bytes(delivered, policy=email.policy.default)
    for nested in nested_messages(msg):
        for name in FORWARD_ROUTE_HEADERS:
            if nested.get(name) is not None:
                found.append(f"forwarded message keeps its {name} header")
    return list(dict.fromkeys(found))
