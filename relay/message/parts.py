"""The part tree of a message: IMAP part ids and byte spans, built by the model's one MIME parser.

Job: ``parse(raw)`` → a tree of ``Part``s, each with where its header block and body lie in the
raw message, from relay.message.mime's header parser, multipart splitter, transfer decoding and
charset table (the same reading the rewriter and the egress views make). The policy reads parts
through it and splices replacements in by offset, so every byte it does not change stays as
received. Part ids follow IMAP (RFC 3501 §6.4.5): "1", "2.1"; a non-multipart message is "1".
Config read: none (pure). Errors raised: none (malformed MIME degrades to leaves). The input
must be in wire form (CRLF line ends): the policy engine's ``to_crlf`` makes it so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final

from relay.message import mime
from relay.message.headers import decode_words, raw_to_str
from relay.message.mime import CRLF, MAX_DEPTH, Field, first, parse_headers, parse_params, unfold

#: past this many parts, each further part is a leaf whose body is not split (DoS: "endless parts")
MAX_PARTS: Final = 500


@dataclass(slots=True)
class Part:
    id: str
    start: int  # first byte of the header block
    body_start: int  # first byte of the body
    end: int  # one past the last byte of the body
    fields: list[Field]
    content_type: str  # lower-case type/subtype (text/plain when absent or junk)
    params: dict[str, str]  # Content-Type parameters, lower-case names
    depth: int
    children: list[Part] = field(default_factory=list)
    parent_type: str = ""

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/") and bool(self.children)

    @property
    def cte(self) -> str:
        return mime.cte_of(self.fields)

    @property
    def charset(self) -> str | None:
        cs = self.params.get("charset", "").strip().strip('"').lower()
        return cs or None

    @property
    def disposition(self) -> str:
        f = first(self.fields, "content-disposition")
        return parse_params(f.value)[0] if f is not None else ""

    @property
    def filename(self) -> str | None:
        return filename_of(self.fields)

    @property
    def is_attachment(self) -> bool:
        if self.is_multipart or (self.content_type == "message/rfc822" and self.children):
            return False
        if self.disposition == "attachment" or self.filename:
            return True
        maintype = self.content_type.split("/")[0]
        return maintype not in ("text", "multipart", "message")

    def header(self, name: str) -> str | None:
        """The first `name` field's value, unfolded, RFC 2047 decoded; None when absent."""
        f = first(self.fields, name.lower())
        return None if f is None else field_text(f.value)

    def walk(self) -> list[Part]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def leaves(self) -> list[Part]:
        return [p for p in self.walk() if not p.children]


def field_text(value: bytes) -> str:
    """A header value as a reader sees it: unfolded, 8-bit bytes as UTF-8 (else Windows-1252),
    encoded words decoded, surrounding whitespace gone."""
    return decode_words(raw_to_str(unfold(value))).strip()


def filename_of(fields: list[Field]) -> str | None:
    """Content-Disposition's filename (or name), else Content-Type's name (or filename): every
    place a client may take a name from; RFC 2231 and 2047 decoded."""
    for name in ("content-disposition", "content-type"):
        f = first(fields, name)
        if f is not None:
            params = parse_params(f.value)[1]
            value = params.get("filename") or params.get("name")
            if value:
                return decode_words(value)
    return None


def parse(raw: bytes) -> Part:
    """Parse a whole message (in wire form); never raises on malformed MIME."""
    return _parse(raw, 0, len(raw), "1", 0, [0], top=True)


def _parse(raw: bytes, start: int, end: int, pid: str, depth: int, counter: list[int], *, top: bool = False,
           parent_type: str = "") -> Part:
    fields, body_start = parse_headers(raw, start, end)
    default = "message/rfc822" if parent_type == "multipart/digest" else "text/plain"
    ctype, params = mime.content_type(fields, default)
    part = Part(pid, start, body_start, end, fields, ctype, params, depth, parent_type=parent_type)
    counter[0] += 1
    if depth >= MAX_DEPTH or counter[0] >= MAX_PARTS:
        return part
    if ctype.startswith("multipart/"):
        boundary = mime.boundary_of(fields)
        mp = mime.split_multipart(raw, body_start, end, boundary) if boundary else None
        if mp is not None:
            prefix = "" if top else pid + "."
            for i, (s, e) in enumerate(mp.parts, 1):
                part.children.append(_parse(raw, s, e, f"{prefix}{i}", depth + 1, counter, parent_type=ctype))
    elif ctype == "message/rfc822" and part.cte in ("7bit", "8bit", "binary"):
        # (an encoded forwarded message has no span in the raw bytes to splice: it is one leaf)
        part.children.append(_parse(raw, body_start, end, "1.1" if top else f"{pid}.1", depth + 1, counter,
                                    parent_type=ctype))
    return part


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
    """The part's body, transfer-decoded (mime.decode_body)."""
    start, end = part.body_start, part.end
    cte = part.cte
    if cte == "base64":
        key = _remembered.key
        if key is not None and key[0] is raw and key[1] == start and key[2] == end:
            data = _remembered.data
            _remembered.key, _remembered.data = None, b""
            return data
        data = mime.decode_body(raw, cte, start, end)
        if end - start >= REMEMBER_BYTES:
            _remembered.key, _remembered.data = (raw, start, end), data
        return data
    return mime.decode_body(raw, cte, start, end)



def decode_text(data: bytes, charset: str | None) -> tuple[str, str]:
    """(text, codec) as relay.message.mime.decode_text reads it, each undecodable byte as
    U+FFFD (checks and readers; the splicer re-reads the bytes it rewrites)."""
    text, codec = mime.decode_text(data, charset)
    return mime.readable(text), codec


def header_values(raw: bytes, part: Part, name: str) -> list[tuple[int, int, str]]:
    """(start, end, decoded value) of every `name` field in the part's header block; the span
    is the field without its final CRLF (what a replacement line takes the place of)."""
    name = name.lower()
    out: list[tuple[int, int, str]] = []
    for f in part.fields:
        if f.name == name and f.offset >= 0:
            out.append((f.offset, f.offset + len(f.raw) - (2 if f.raw.endswith(CRLF) else 0), field_text(f.value)))
    return out


def set_header(block: bytes, name: str, value: bytes | None) -> bytes:
    """Replace (or, with None, remove) the field `name` in a header block; append it if absent.

    `block` is the header block without the blank line that ends it; it is read with the
    model's header parser, and every other field (and anything it could not read) is kept as is.
    """
    fields, stop = parse_headers(block, 0, len(block))
    line = b"" if value is None else name.encode() + b": " + value + CRLF
    if not fields:
        if not line:
            return block
        if block and not block.endswith(b"\n"):
            block += CRLF
        return block + line
    lname = name.lower()
    out = [block[: fields[0].offset]]  # (an mbox "From " line before the first field)
    placed = False
    for f in fields:
        if f.name != lname:
            out.append(f.raw if f.raw.endswith(CRLF) else f.raw + CRLF)
        elif not placed:
            out.append(line)
            placed = True
    if not placed:
        out.append(line)
    out.append(block[stop:])
    return b"".join(out)
