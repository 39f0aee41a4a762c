"""Structural limits of a received message, checked before any parsing: header size and field
count, line length, MIME nesting depth and part count. Each scan is linear and runs at C speed:
a find jumps to the few candidate places (lines starting "--", newline-free stretches) and a
regex anchored there decides, so a 10 MB base64 attachment is skimmed, not stepped through.

Reads: smtp.max_header_bytes, smtp.max_header_fields, smtp.max_line_length, smtp.max_mime_depth,
smtp.max_mime_parts. Returns an audit reason (data.header_too_big, data.too_many_header_fields,
data.line_too_long, data.mime_too_deep, data.too_many_mime_parts) or None.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from relay.config import SmtpSection
from relay.scan import find_dashed

_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:", re.M)
_BOUNDARY_LINE = re.compile(rb"^--([^\r\n]{1,200}?)[ \t]*\r?$", re.M)
_MULTIPART = re.compile(rb"^content-type:[ \t]*multipart/[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", re.I | re.M)
_BOUNDARY_PARAM = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]+)"|([^\s;"]+))', re.I)


def _header_end(raw: bytes, start: int) -> int:
    end = raw.find(b"\r\n\r\n", start)
    return end if end >= 0 else len(raw)


def boundary_lines(raw: bytes, start: int) -> Iterator[re.Match[bytes]]:
    """The matches of _BOUNDARY_LINE from start on, as finditer gives them. Only a line that
    starts with "--" can match, so find_dashed hops from one such line to the next (a base64
    body has none: "-" is not in its alphabet) and the anchored pattern is tried only there."""
    pos = start
    m = _BOUNDARY_LINE.match(raw, pos)  # "^" decides whether pos itself starts a line
    while True:
        if m is not None:
            yield m
            pos = m.end()
            m = _BOUNDARY_LINE.match(raw, pos)
            continue
        k = find_dashed(raw, b"\n--", pos, len(raw))
        if k < 0:
            return
        pos = k + 1
        m = _BOUNDARY_LINE.match(raw, pos)


def _boundary(header: bytes) -> bytes | None:
    m = _MULTIPART.search(header)
    if not m:
        return None
    b = _BOUNDARY_PARAM.search(m.group(0).replace(b"\r\n", b""))
    return (b.group(1) or b.group(2)) if b else None


def mime_shape(raw: bytes, max_depth: int, max_parts: int) -> str | None:
    """Walk boundary lines with a stack of the open multiparts; stop as soon as a limit is passed."""
    end = _header_end(raw, 0)
    top = _boundary(raw[:end])
    stack: list[bytes] = [top] if top else []
    parts = 0
    if not stack:
        return None
    for m in boundary_lines(raw, end):
        line = m.group(1)
        closing = line.endswith(b"--") and line[:-2] in stack
        name = line[:-2] if closing else line
        if name not in stack:
            continue
        del stack[stack.index(name) + 1 :]  # an outer boundary closes the inner ones
        if closing:
            stack.pop()
            continue
        parts += 1
        if parts > max_parts:
            return "data.too_many_mime_parts"
        head_end = _header_end(raw, m.end())
        inner = _boundary(raw[m.end() : head_end])
        if inner and inner not in stack:
            stack.append(inner)
            if len(stack) > max_depth:
                return "data.mime_too_deep"
    return None


def _longest_line_over(raw: bytes, limit: int) -> bool:
    """True when a line (CRLF excluded) is longer than limit: the first line, or a newline
    followed by limit + 1 bytes that are neither CR nor LF (the _long_line pattern).

    Such a stretch covers at least one whole block of (limit + 2) // 2 bytes aligned to that
    size, and a block that holds a newline cannot be inside it; so one bytes.find per block
    (a few thousand for 10 MB) finds the only lines worth matching the pattern against.
    Scanning with the pattern itself steps through every byte (6% of a 2 MB message's CPU)."""
    first = raw.find(b"\n")
    end = first if first >= 0 else len(raw)
    if end - (raw[end - 1 : end] == b"\r") > limit:  # the first line, which no newline precedes
        return True
    if first < 0:
        return False
    pattern = _long_line(limit)
    step = (limit + 2) // 2
    pos = (first + 1) // step * step  # blocks before this lie in the first line, checked above
    n = len(raw)
    while pos < n:
        if raw.find(b"\n", pos, pos + step) >= 0:
            pos += step
            continue
        nl = raw.rfind(b"\n", 0, pos)  # the newline that starts the line holding this block
        if pattern.match(raw, nl):
            return True
        after = raw.find(b"\n", pos)
        if after < 0:
            return False
        pos = after // step * step  # resume at the block holding the end of that line
    return False


@functools.lru_cache(maxsize=4)
def _long_line(limit: int) -> re.Pattern[bytes]:
    return re.compile(rb"\n[^\r\n]{%d}" % (limit + 1))


def check(raw: bytes, smtp: SmtpSection) -> str | None:
    end = _header_end(raw, 0)
    if end > smtp.max_header_bytes:
        return "data.header_too_big"
    header = raw[:end]
    if len(_FIELD_START.findall(header)) > smtp.max_header_fields:
        return "data.too_many_header_fields"
    if _longest_line_over(raw, smtp.max_line_length):
        return "data.line_too_long"
    return mime_shape(raw, smtp.max_mime_depth, smtp.max_mime_parts)
