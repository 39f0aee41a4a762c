"""A byte-offset MIME tree: which bytes of the raw message each part occupies.

Reads no config. The stdlib parser re-serializes what it parses; policy edits must leave
every untouched byte alone, so this module records, for each part, where its header block
and body lie in the raw message and splices replacements in by offset. Part ids follow
IMAP (RFC 3501 section 6.4.5): "1", "2.1", and a non-multipart message is part "1".
"""

from __future__ import annotations

import binascii
import codecs
import email.header
import functools
import quopri
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from relay.scan import a2b_base64, find_dashed, padded_at_end_only

MAX_DEPTH = 40
MAX_PARTS = 500

_HEADER_PARSER = BytesHeaderParser(policy=compat32)

# Declared charset → codec that actually decodes what mailers send under that label.
CHARSET_ALIASES: dict[str, str] = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030", "cp936": "gb18030",
    "gb_2312-80": "gb18030", "chinese": "gb18030", "csgb2312": "gb18030",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949", "korean": "cp949", "ksc5601": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_2", "csiso2022jp": "iso2022_jp_2", "iso-2022-jp-2": "iso2022_jp_2",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "cn-big5": "big5hkscs",
    "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "x-unknown": "utf-8", "unknown-8bit": "utf-8",
    "us-ascii": "utf-8", "ascii": "utf-8", "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
}
_NEVER_RELABEL = {"utf-7", "utf-16", "utf-16le", "utf-16be", "utf-32", "utf-8"}


@dataclass(slots=True)
class Part:
    id: str
    start: int          # first byte of the header block
    body_start: int     # first byte of the body
    end: int            # one past the last byte of the body
    headers: Message
    depth: int
    children: list[Part] = field(default_factory=list)
    parent_type: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/") and bool(self.children)

    @property
    def cte(self) -> str:
        return str(self.headers.get("content-transfer-encoding", "7bit")).strip().lower()

    @property
    def charset(self) -> str | None:
        cs = self.headers.get_content_charset()
        return str(cs) if cs else None

    @property
    def disposition(self) -> str:
        return str(self.headers.get("content-disposition", "")).split(";")[0].strip().lower()

    @property
    def filename(self) -> str | None:
        raw = self.headers.get_filename() or self.headers.get_param("name")
        if raw is None:
            return None
        if isinstance(raw, tuple):  # RFC 2231 triple that compat32 failed to collapse
            raw = email.utils.collapse_rfc2231_value(raw)  # type: ignore[attr-defined]
        return decode_words(str(raw))

    @property
    def is_attachment(self) -> bool:
        if self.is_multipart or (self.content_type == "message/rfc822" and self.children):
            return False
        if self.disposition == "attachment" or self.filename:
            return True
        maintype = self.content_type.split("/")[0]
        return maintype not in ("text", "multipart", "message")

    def walk(self) -> list[Part]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def leaves(self) -> list[Part]:
        return [p for p in self.walk() if not p.children]


def _header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of header block, start of body) for the entity raw[start:end]."""
    if raw.startswith(b"\r\n", start):
        return start, start + 2
    if raw.startswith(b"\n", start):
        return start, start + 1
    a = raw.find(b"\r\n\r\n", start, end)
    # A bare "\n\n" counts only before the first CRLF CRLF: look no further (the search
    # used to run to the end of the message for every part of a CRLF message).
    b = raw.find(b"\n\n", start, end if a < 0 else a + 1)
    if b >= 0:
        return b + 1, b + 2
    if a >= 0:
        return a + 2, a + 4
    return end, end


def parse(raw: bytes) -> Part:
    """Parse a whole message; never raises on malformed MIME (it degrades to leaves)."""
    counter = [0]
    return _parse(raw, 0, len(raw), "1", 0, counter, top=True)


def _parse(raw: bytes, start: int, end: int, pid: str, depth: int, counter: list[int], top: bool = False,
           parent_type: str = "") -> Part:
    hdr_end, body_start = _header_end(raw, start, end)
    headers = _HEADER_PARSER.parsebytes(raw[start:hdr_end])
    part = Part(pid, start, body_start, end, headers, depth, parent_type=parent_type)
    counter[0] += 1
    if depth >= MAX_DEPTH or counter[0] >= MAX_PARTS:
        return part
    ctype = part.content_type
    if ctype.startswith("multipart/"):
        boundary = headers.get_param("boundary")
        if isinstance(boundary, str) and boundary:
            spans = split_multipart(raw, body_start, end, boundary.encode("utf-8", "surrogateescape"))
            prefix = "" if top else pid + "."
            for i, (s, e) in enumerate(spans, 1):
                part.children.append(_parse(raw, s, e, f"{prefix}{i}", depth + 1, counter, parent_type=ctype))
    elif ctype == "message/rfc822" and part.cte in ("7bit", "8bit", "binary"):
        part.children.append(_parse(raw, body_start, end, f"{pid}.1" if not top else "1.1", depth + 1, counter,
                                    parent_type=ctype))
    return part


def split_multipart(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Body spans of the parts between --boundary delimiter lines (RFC 2046 section 5.1.1)."""
    spans: list[tuple[int, int]] = []
    cur: int | None = None
    for line_start, line_end, closing in delimiter_lines(raw, start, end, boundary):
        if cur is not None:
            # The EOL before the delimiter belongs to the delimiter.
            pend = line_start
            if pend > cur and raw[pend - 1 : pend] == b"\n":
                pend -= 1
                if pend > cur and raw[pend - 1 : pend] == b"\r":
                    pend -= 1
            spans.append((cur, max(cur, pend)))
        if closing:
            cur = None
            break
        nl = raw.find(b"\n", line_end, end)
        cur = end if nl < 0 else nl + 1
    if cur is not None and cur < end:
        spans.append((cur, end))  # missing close delimiter: the rest is the last part
    return spans


def delimiter_lines(raw: bytes, start: int, end: int, boundary: bytes) -> Iterator[tuple[int, int, bool]]:
    """(start, end before the EOL, closing?) of each line `--boundary[--][ \t]*` in raw[start:end].

    find_dashed jumps from one "\n--boundary" to the next and the anchored pattern is tried
    only there: the same lines as `pattern.finditer`, without stepping through every byte of
    the attachments in between (a line-anchored pattern has no literal prefix to skip with).
    """
    delim = _delimiter(boundary)
    needle = b"\n--" + boundary
    pos = start
    m = delim.match(raw, pos, end)  # "^" decides whether pos itself starts a line
    while True:
        if m is not None:
            yield m.start(), m.end(), bool(m.group(1))
            pos = m.end()
            m = delim.match(raw, pos, end)
            continue
        k = find_dashed(raw, needle, pos, end)
        if k < 0:
            return
        pos = k + 1
        m = delim.match(raw, pos, end)


@functools.lru_cache(maxsize=64)
def _delimiter(boundary: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.M)


_NOT_BASE64 = bytes(b for b in range(256)
                    if b not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class _Remembered(threading.local):
    """The last large base64 body this thread decoded, kept until it is asked for once more.

    check() and then apply() decode the same attachment of the same message in one thread
    (policy.pool.run); the second decode of a 10 MB attachment was ~10% of the relay's CPU.
    The key holds the message itself, so identity cannot be confused with another message;
    a hit forgets the entry, so at most one decoded body per thread outlives its message
    (when apply() never asks: a refused or held message), until that thread's next decode.
    """

    key: tuple[bytes, int, int] | None = None
    data: bytes = b""


_remembered = _Remembered()
REMEMBER_BYTES = 256 * 1024


def decode_body(raw: bytes, part: Part) -> bytes:
    start, end = part.body_start, part.end
    cte = part.cte
    if cte == "base64":
        key = _remembered.key
        if key is not None and key[0] is raw and key[1] == start and key[2] == end:
            data = _remembered.data
            _remembered.key, _remembered.data = None, b""
            return data
        data = _decode_base64(raw, start, end)
        if end - start >= REMEMBER_BYTES:
            _remembered.key, _remembered.data = (raw, start, end), data
        return data
    body = raw[start:end]
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    return body


def _decode_base64(raw: bytes, start: int, end: int) -> bytes:
    if padded_at_end_only(raw, start, end):
        # Padding only at the end (any well-formed body): binascii skips the line breaks
        # itself and, when it does not raise, decodes exactly what the cleaning below would.
        try:
            return a2b_base64(raw, start, end, padded_at_end=True)
        except binascii.Error:
            pass  # missing or odd padding: clean and pad as below
    cleaned = raw[start:end].translate(None, _NOT_BASE64)  # C speed: a regex took 60 ms on 4 MB
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return b""


def codec_for(charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def decode_text(data: bytes, charset: str | None) -> tuple[str, str]:
    """Decode text bytes; returns (text, codec used). A legacy label on valid UTF-8 means UTF-8."""
    codec = codec_for(charset)
    if codec not in _NEVER_RELABEL and not data.isascii():
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    if codec == "utf-8" and not data.isascii():
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            for fallback in ("gb18030", "cp1252"):
                try:
                    return data.decode(fallback), fallback
                except UnicodeDecodeError:
                    continue
    return data.decode(codec, errors="replace"), codec


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words → text; adjacent words are joined (a domain split across two stays whole)."""
    if "=?" not in value:
        return value
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # malformed encoded-word: keep the raw text
        return value
    out: list[str] = []
    for chunk, cs in chunks:
        if isinstance(chunk, bytes):
            out.append(chunk.decode(codec_for(cs) if cs else "utf-8", errors="replace"))
        else:
            out.append(chunk)
    return "".join(out)


def raw_header_values(raw: bytes, part: Part, name: str) -> list[tuple[int, int, str]]:
    """(start, end, unfolded decoded value) of every `name:` field in a part's header block."""
    block_end = part.body_start
    pat = re.compile(rb"^" + re.escape(name.encode()) + rb"[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.M | re.I)
    out: list[tuple[int, int, str]] = []
    for m in pat.finditer(raw, part.start, block_end):
        value = re.sub(rb"\r?\n(?=[ \t])", b"", m.group(1)).strip()
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("gb18030", errors="replace")
        out.append((m.start(), m.end(), decode_words(text)))
    return out


def set_header(block: bytes, name: str, value: bytes | None) -> bytes:
    """Replace (or, with None, remove) the field `name` in a header block; append it if absent.

    `block` is the header block without the blank line that ends it.
    """
    pat = re.compile(rb"^" + re.escape(name.encode()) + rb"[ \t]*:.*(?:\r?\n[ \t].*)*(?:\r?\n|$)", re.M | re.I)
    line = b"" if value is None else name.encode() + b": " + value + b"\r\n"
    first = pat.search(block)
    if first is None:
        if not line:
            return block
        if block and not block.endswith(b"\n"):
            block += b"\r\n"
        return block + line
    head, tail = block[: first.start()], pat.sub(b"", block[first.start():])
    return head + line + tail
