"""Raw-byte MIME structure: line endings, header blocks, Content-Type, boundaries, codings.

Job: THE MIME parser of the message model. Split a message into header fields and body spans
*without* copying or re-serialising the parts nobody changes, and decode/encode the few leaves
that must change: one header parser, one multipart splitter, one transfer decoding, one charset
table, read by the rewriter, the egress views, the policy's part tree (relay.message.parts) and
the review transcript. Everything is tolerant: malformed input degrades to "one opaque body".
Config read: none (pure). Errors raised: none on purpose.
"""

from __future__ import annotations

import binascii
import codecs
import itertools
import re
from dataclasses import dataclass
from typing import Final

from relay.scan import a2b_base64, find_dashed, is_crlf, padded_at_end_only

CRLF: Final = b"\r\n"
MAX_DEPTH: Final = 40  # deeper nesting is treated as an opaque body (DoS: "endless nesting")

#: Transfer encodings that leave the body as it is.
IDENTITY: Final = frozenset({"7bit", "8bit", "binary"})
# message/* leaves are text (RFC 2046 §5.2: 7bit/8bit only); these are the common ones
# (DSN fields carry the failed recipient's address). Every other message/* is text too.
TEXTLIKE: Final = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/global-disposition-notification",
        "message/feedback-report",
        "message/partial",
        "message/news",
    }
)
# Attachment types that are plain text in disguise and routinely carry addresses
# (calendar ORGANIZER/ATTENDEE mailto:, vCard EMAIL): rewritten like text/*.
TEXTLIKE_APPLICATION: Final = frozenset(
    {"application/ics", "application/calendar", "application/vcard", "application/x-vcard"}
)
NESTED_MESSAGE: Final = frozenset({"message/rfc822", "message/global",
                                   # a DSN's copy of the original's header block (RFC 6522)
                                   "message/rfc822-headers", "text/rfc822-headers", "message/global-headers"})

_FIELD_RE: Final = re.compile(rb"([!-9;-~]+)[ \t]*:")
_PARAM_RE: Final = re.compile(rb';\s*([!#-\'*+\-.0-9A-Z^-~]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*)', re.DOTALL)


def normalize_eol(raw: bytes) -> bytes:
    """Every line ending (bare LF, bare CR, CRLF) as CRLF; the result ends with CRLF.

    Checking is far cheaper than copying, so an already-clean message is returned as is.
    """
    out = raw
    if not is_crlf(raw):
        if b"\r" not in raw:
            out = raw.replace(b"\n", CRLF)
        else:
            out = raw.replace(CRLF, b"\n").replace(b"\r", b"\n").replace(b"\n", CRLF)
    if not out.endswith(CRLF):
        out += CRLF
    return out


@dataclass(slots=True)
class Field:
    """One header field as received: lower-case name, original label, value bytes.

    ``value`` is everything after the colon up to (not including) the field's final CRLF,
    with its folding CRLFs; ``raw`` is the whole field ending in CRLF.
    """

    name: str
    label: bytes
    value: bytes
    raw: bytes
    offset: int = -1  # where ``raw`` starts in the parsed buffer; -1 for a field made here

    @classmethod
    def make(cls, label: str, value: bytes) -> Field:
        lab = label.encode("ascii")
        return cls(label.lower(), lab, value, lab + b":" + value + CRLF)


def parse_headers(buf: bytes, pos: int, end: int) -> tuple[list[Field], int]:
    """Header fields of the entity starting at ``pos``; returns (fields, body start).

    A line that is neither a field nor a continuation ends the header block without a
    separator (as most clients do); leading whitespace lines and an mbox ``From `` line
    before the first field are skipped.
    """
    fields: list[Field] = []
    i = pos
    if buf.startswith(b"From ", pos):
        nl = buf.find(CRLF, pos, end)
        i = end if nl < 0 else nl + 2
    while i < end:
        j = buf.find(CRLF, i, end)
        line_end = end if j < 0 else j + 2
        if j < 0:
            j = end
        if j == i:
            return fields, line_end
        c = buf[i]
        if c == 0x20 or c == 0x09:
            if fields:
                last = fields[-1]
                last.value += CRLF + buf[i:j]
                last.raw = last.raw + buf[i:line_end]
            elif buf[i:j].strip():
                # continuation with nothing to continue: the header block has not started;
                # a non-blank one is most likely body text of a part without headers.
                return fields, i
        else:
            m = _FIELD_RE.match(buf, i, j)
            if m is None:
                return fields, i
            label = m.group(1)
            fields.append(Field(label.decode("ascii").lower(), label, buf[m.end() : j], buf[i:line_end], i))
        i = line_end
    return fields, end


def first(fields: list[Field], name: str) -> Field | None:
    for f in fields:
        if f.name == name:
            return f
    return None


def unfold(value: bytes) -> bytes:
    return value.replace(b"\r\n", b"")


def parse_params(value: bytes) -> tuple[str, dict[str, str]]:
    """(lower-case main value, {lower-case param: value}) of a Content-Type/-Disposition value.

    RFC 2231 continuations (``name*0*``) are joined and percent-decoded; the first of
    duplicated parameters wins.
    """
    v = unfold(value)
    semi = v.find(b";")
    head = (v if semi < 0 else v[:semi]).strip().lower().decode("latin-1")
    params: dict[str, str] = {}
    ext: dict[str, list[tuple[int, bool, str]]] = {}
    if semi >= 0:
        for m in _PARAM_RE.finditer(v, semi):
            key = m.group(1).decode("latin-1").lower()
            raw = m.group(2)
            if raw.startswith(b'"'):
                raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1] if raw.endswith(b'"') and len(raw) > 1 else raw[1:])
            text = raw.decode("utf-8", "replace")
            if "*" in key:
                base, _, rest = key.partition("*")
                encoded = rest.endswith("*") or rest == ""
                num = rest.rstrip("*")
                ext.setdefault(base, []).append((int(num) if num.isdigit() else 0, encoded, text))
            elif key not in params:
                params[key] = text
    for base, pieces in ext.items():
        pieces.sort(key=lambda p: p[0])
        out: list[str] = []
        charset = "utf-8"
        for idx, (_, encoded, text) in enumerate(pieces):
            if encoded:
                if idx == 0 and text.count("'") >= 2:
                    charset, _, text = text.split("'", 2)
                try:
                    text = _percent_decode(text, charset or "utf-8")
                except LookupError:
                    text = _percent_decode(text, "utf-8")
            out.append(text)
        params.setdefault(base, "".join(out))
    return head, params


def content_type(fields: list[Field], default: str = "text/plain") -> tuple[str, dict[str, str]]:
    """(lower-case type/subtype, params); ``default`` when there is no Content-Type field
    ("message/rfc822" in a multipart/digest, RFC 2046 §5.1.5)."""
    f = first(fields, "content-type")
    if f is None:
        return default, {}
    ctype, params = parse_params(f.value)
    if "/" not in ctype:
        # "Content-Type: text" and other junk: clients render it as text
        ctype = "text/plain" if ctype in ("", "text") else ctype + "/unknown"
    return ctype, params


def boundary_of(fields: list[Field]) -> bytes | None:
    """The boundary parameter's bytes as written (parse_params decodes values as UTF-8, which
    would turn a non-UTF-8 boundary into U+FFFD that no delimiter line matches)."""
    f = first(fields, "content-type")
    if f is None:
        return None
    v = unfold(f.value)
    semi = v.find(b";")
    if semi < 0:
        return None
    for m in _PARAM_RE.finditer(v, semi):
        if m.group(1).lower() == b"boundary":
            raw = m.group(2)
            if raw.startswith(b'"'):
                raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1] if raw.endswith(b'"') and len(raw) > 1 else raw[1:])
            raw = raw.strip()
            return raw or None
    return None


def _percent_decode(text: str, charset: str) -> str:
    raw = re.sub(
        rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("latin-1", "replace")
    )
    return raw.decode(lookup_codec(charset) or "utf-8", "replace")


@dataclass(slots=True)
class Multipart:
    """Spans of a multipart body: preamble, parts, epilogue; ``delims`` are the boundary lines."""

    preamble: tuple[int, int]
    parts: list[tuple[int, int]]
    delims: list[tuple[int, int]]  # each boundary line (start, end incl. CRLF), len = parts + 1 or parts
    epilogue: tuple[int, int]


def split_multipart(buf: bytes, start: int, end: int, boundary: bytes) -> Multipart | None:
    """Find the boundary lines of a multipart body; None when there is no delimiter at all.

    A missing close delimiter makes the last part run to the end (RFC 2046 §5.1.1 readers do
    the same). A part's span excludes the CRLF that belongs to the next delimiter.
    """
    dash = b"--" + boundary
    needle = CRLF + dash  # find_dashed: memchr to each "-", then this needle
    delims: list[tuple[int, int, bool]] = []
    i = start
    while True:
        if i == start and buf.startswith(dash, start):
            k = start
        else:
            k = find_dashed(buf, needle, max(start, i - 2), end)
            if k < 0:
                break
            k += 2
        i = k + len(dash)
        j = k + len(dash)
        closing = buf.startswith(b"--", j)
        if closing:
            j += 2
        nl = buf.find(CRLF, j, end)
        tail_end = end if nl < 0 else nl
        if buf[j:tail_end].strip(b" \t"):
            continue  # "--boundaryX": a longer boundary, not ours
        line_end = end if nl < 0 else nl + 2
        delims.append((k, line_end, closing))
        i = line_end
        if closing:
            break
    if not delims:
        return None
    parts: list[tuple[int, int]] = []
    for (_, a_end, a_close), (b_start, _, _) in itertools.pairwise(delims):
        if not a_close:
            parts.append((a_end, max(a_end, b_start - 2)))
    _, last_end, last_close = delims[-1]
    pre_end = max(start, delims[0][0] - 2) if delims[0][0] > start else start
    if last_close:
        epilogue = (last_end, end)
    else:
        parts.append((last_end, end))
        epilogue = (end, end)
    return Multipart((start, pre_end), parts, [(a, b) for a, b, _ in delims], epilogue)


# ---- transfer encodings -------------------------------------------------------------------


def cte_of(fields: list[Field]) -> str:
    f = first(fields, "content-transfer-encoding")
    if f is None:
        return "7bit"
    return unfold(f.value).strip().lower().decode("latin-1") or "7bit"


def decode_body(data: bytes, cte: str, start: int = 0, end: int | None = None) -> bytes:
    """The transfer-decoded data[start:end] (base64 is decoded without copying the range first).

    Base64 is read as the stdlib reads it: junk skipped, the data ends at its padding (a list
    footer after it is not data), a missing padding added; a lone 6-bit leftover is dropped where
    the stdlib would hand back the undecoded text. Never raises.
    """
    end = len(data) if end is None else end
    if cte == "base64":
        try:  # (binascii, or pybase64's SIMD decoder where the two agree: see scan.a2b_base64)
            return a2b_base64(data, start, end, padded_at_end=padded_at_end_only(data, start, end))
        except (binascii.Error, ValueError):
            pass  # missing or odd padding: clean and pad as below
        cleaned = data[start:end].translate(None, _NOT_BASE64)  # C speed: a regex took 60 ms on 4 MB
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if start or end != len(data):
        data = data[start:end]
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


_NOT_BASE64: Final = bytes(b for b in range(256)
                           if b not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def encode_base64(data: bytes) -> bytes:
    return b"".join(
        binascii.b2a_base64(data[i : i + 57], newline=False) + CRLF for i in range(0, len(data), 57)
    )


def encode_qp(data: bytes) -> bytes:
    """Quoted-printable of text whose lines end in CRLF; result lines ≤ 76 (ends as the text does)."""
    out = binascii.b2a_qp(data.replace(CRLF, b"\n"), quotetabs=False, istext=True, header=False)
    # b2a_qp leaves "." and "From " at line starts alone; both are harmless with SMTP dot-stuffing.
    return out.replace(b"\r", b"=0D").replace(b"\n", CRLF)


#: up to this size max_line_length splits the whole text at once (a copy of it, as short lines)
_SPLIT_BYTES = 1024 * 1024


def max_line_length(data: bytes) -> int:
    """The longest line's length (lines end at CRLF), or the first one found over 998."""
    if len(data) <= 998:
        return len(data)
    if len(data) <= _SPLIT_BYTES:  # one split in C instead of a find per line
        return max(map(len, data.split(CRLF)))
    best = 0
    i = 0
    n = len(data)
    while i < n:
        j = data.find(CRLF, i)
        if j < 0:
            j = n
        best = max(best, j - i)
        if best > 998:
            return best
        i = j + 2
    return best


# ---- charsets ------------------------------------------------------------------------------

# Labels seen in the wild that Python lacks, and decoders that are supersets of the label
# (a superset decodes everything the label allows and re-encodes it to the same bytes).
_CHARSET_ALIASES: Final = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "korean": "cp949",
    "euc-kr": "cp949",
    "euckr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cn-gb": "gb18030",
    "euc-cn": "gb18030",
    "cp936": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "cp950",
    "x-big5": "cp950",
    "cn-big5": "cp950",
    "iso-2022-jp": "iso2022_jp_ext",
    "csiso2022jp": "iso2022_jp_ext",
    "iso-2022-jp-2": "iso2022_jp_2",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "iso-8859-1": "cp1252",  # what every client really renders for the Latin-1 label
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    # labels that say "we do not know": decoded as an unknown label is (UTF-8, then Windows-1252)
    "x-unknown": "",
    "unknown-8bit": "",
}

# A label whose usual superset cannot read everything sent under it: the second codec is tried
# when the first fails. ISO-2022-JP: half-width kana (ESC ( I) only in _ext, Korean/Chinese
# designations only in _2; Big5: Microsoft's extensions only in cp950, HKSCS only in big5hkscs.
_SECOND_CODEC: Final = {"iso2022_jp_ext": "iso2022_jp_2", "cp950": "big5hkscs"}

_MIME_NAMES: Final = {
    "utf_8": "utf-8",
    "cp1252": "windows-1252",
    "latin_1": "iso-8859-1",
    "ascii": "us-ascii",
}


def lookup_codec(label: str) -> str | None:
    """Python codec name for a MIME charset label, or None when unknown."""
    label = label.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    if not label:
        return None
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def mime_name(codec: str) -> str:
    return _MIME_NAMES.get(codec, codec.replace("_", "-"))


_MULTIBYTE_ASCII_TRAIL: Final = frozenset(
    {"cp932", "gb18030", "cp950", "cp949", "big5hkscs", "shift_jis", "gbk"}
)


# Codecs whose text is not ASCII where its bytes are: UTF-16/32 and the 7-bit ones that switch
# character sets by escape sequences (ISO-2022-JP is all ASCII bytes; read as ASCII, a Japanese
# text would be escape codes and letters, and a full-width ＠ in it invisible).
_NOT_ASCII_COMPATIBLE: Final = ("utf_16", "utf_32", "utf_7", "iso2022", "hz")


def decode_text(data: bytes, label: str | None) -> tuple[str, str]:
    """(text, codec used). Undecodable bytes survive as surrogates (``surrogateescape``) so
    that encoding with the same codec gives the original bytes back.

    Plain ASCII needs no codec at all. Valid UTF-8 wins over a multi-byte CJK label whose
    trail bytes can be ASCII (mislabelled gb2312 spam would otherwise swallow an ``@``).
    Unknown labels try UTF-8, then Windows-1252.
    """
    codec = lookup_codec(label) if label else None
    if codec is not None and codec.startswith(_NOT_ASCII_COMPATIBLE):
        for candidate in (codec, _SECOND_CODEC.get(codec)):
            try:
                if candidate is not None:
                    return data.decode(candidate), candidate
            except UnicodeDecodeError:
                pass
        codec = None
    if data.isascii():
        return data.decode("ascii"), codec or "ascii"
    if codec in (None, "ascii") or codec in _MULTIBYTE_ASCII_TRAIL:
        try:
            return data.decode("utf-8"), "utf_8"
        except UnicodeDecodeError:
            pass
    if codec is None or codec == "ascii":
        codec = "cp1252"
    for candidate in (codec, _SECOND_CODEC.get(codec)):
        if candidate is None:
            continue
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            pass
        except (LookupError, ValueError):
            codec = "cp1252"
    try:
        return data.decode(codec, "surrogateescape"), codec
    except (UnicodeError, LookupError, ValueError):
        return data.decode("utf-8", "surrogateescape"), "utf_8"


def readable(text: str) -> str:
    """decode_text's text for readers and checks: each undecodable byte (a lone surrogate, which
    no encoder, store or log accepts) as U+FFFD, one code point for one, so offsets hold."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def encode_text(text: str, codec: str) -> tuple[bytes, str]:
    """(bytes, codec actually used): the original codec if it can carry the text, else UTF-8."""
    try:
        return text.encode(codec, "surrogateescape"), codec
    except (UnicodeError, LookupError, ValueError):
        return text.encode("utf-8", "surrogateescape"), "utf_8"
