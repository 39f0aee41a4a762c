"""Walk the MIME tree on the raw bytes and replace registered addresses in text leaves.

Job: produce a list of *edits* (start, end, replacement) against the normalised message, so
that every byte nobody changed is copied exactly once, at the very end. Text leaves (and
text-like message/* leaves) are decoded (transfer encoding + charset), rewritten and
re-encoded only when an address was found; attachments are never decoded. message/rfc822
forwards and base64-wrapped multiparts are walked inside their decoded bytes.
Config read: none (pure). Errors raised: none (malformed structure degrades to an opaque
body that is still scanned textually).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

from relay.message.contacts import AddressFinder
from relay.message.html import HtmlTooComplex, rewrite_html, text_superset
from relay.message.mime import (
    CRLF,
    IDENTITY,
    MAX_DEPTH,
    NESTED_MESSAGE,
    TEXTLIKE,
    TEXTLIKE_APPLICATION,
    Field,
    boundary_of,
    content_type,
    cte_of,
    decode_body,
    decode_text,
    encode_base64,
    encode_qp,
    encode_text,
    first,
    lookup_codec,
    max_line_length,
    mime_name,
    normalize_eol,
    parse_headers,
    parse_params,
    split_multipart,
)
from relay.rewrite.headers import copy_field, sub_value
from relay.rewrite.plan import RewriteResult
from relay.scan import clean_slice, is_crlf, known_clean, remember_clean

Edit = tuple[int, int, bytes]

#: The header fields a forwarded message keeps.
FORWARDED_KEEP: Final = frozenset({
    "from", "to", "cc", "date", "subject", "message-id", "in-reply-to", "references", "mime-version",
    "content-type", "content-transfer-encoding", "content-disposition", "content-language", "content-id",
    "content-description", "content-location", "thread-index", "thread-topic", "importance", "x-priority",
    "keywords", "comments",
})
_WIDE: Final = ("utf_16", "utf_32", "utf_7")
_CHARSET_PARAM_RE: Final = re.compile(rb'(;\s*charset\s*=\s*)("[^"]*"|[^;\s]*)', re.IGNORECASE)


def apply_edits(buf: bytes, edits: list[Edit]) -> bytes:
    if not edits:
        return buf
    edits.sort(key=lambda e: (e[0], e[1]))
    view = memoryview(buf)
    out: list[bytes | memoryview] = []
    pos = 0
    for start, end, rep in edits:
        out.append(view[pos:start])
        out.append(rep)
        pos = end
    out.append(view[pos:])
    joined = b"".join(out)
    # Pieces in wire form join into wire form: say so, and the leak check, the signer and the
    # store need not scan the rewritten message again (8 ms per 10 MB each).
    if known_clean(buf) and clean_slice(buf, pos, len(buf)) and all(
            clean_slice(buf, prev_end, start) and is_crlf(rep)
            for (start, _, rep), prev_end in zip(edits, [0, *(e for _, e, _ in edits)], strict=False)):
        remember_clean(joined)
    return joined


def set_field(fields: list[Field], label: str, value: bytes) -> None:
    """Replace the first field called ``label`` (dropping repeats) or append one."""
    name = label.lower()
    new = Field.make(label, b" " + value)
    out: list[Field] = []
    placed = False
    for f in fields:
        if f.name == name:
            if not placed:
                out.append(new)
                placed = True
            continue
        out.append(f)
    if not placed:
        out.append(new)
    fields[:] = out


def set_charset(fields: list[Field], charset: str) -> None:
    f = first(fields, "content-type")
    cs = charset.encode("ascii")
    if f is None:
        set_field(fields, "Content-Type", b"text/plain; charset=" + cs)
        return
    value, n = _CHARSET_PARAM_RE.subn(lambda m: m.group(1) + cs, f.value, count=1)
    if not n:
        value = value.rstrip() + b"; charset=" + cs
    label = f.label.decode("ascii").strip()
    set_field(fields, label, value.strip())


class Walker:
    """One message's walk; collects counters into the RewriteResult."""

    def __init__(self, matcher: AddressFinder, result: RewriteResult) -> None:
        self.m = matcher
        self.result = result

    # -- entities ---------------------------------------------------------------------------

    def entity(
        self, buf: bytes, fields: list[Field], start: int, end: int, depth: int
    ) -> tuple[list[Edit], bool]:
        """Edits for the body [start, end) of an entity with ``fields``; True if fields changed."""
        if depth > MAX_DEPTH:
            self.result.notes.append("nesting too deep: scanned as opaque text")
            return self.opaque(buf, start, end), False
        ctype, params = content_type(fields)
        cte = cte_of(fields)
        if ctype.startswith("multipart/"):
            bnd = boundary_of(fields)
            if not bnd:
                self.result.notes.append("multipart without boundary: scanned as opaque text")
                return self.opaque(buf, start, end), False
            if cte in IDENTITY or cte not in ("base64", "quoted-printable"):
                return self.multipart(buf, start, end, bnd, depth), False
            return self.encoded_nested(buf, start, end, cte, depth, bnd), False
        if ctype in NESTED_MESSAGE:
            if cte in ("base64", "quoted-printable"):
                return self.encoded_nested(buf, start, end, cte, depth, None), False
            return self.message(buf, start, end, depth), False
        if ctype.startswith(("text/", "message/")) or ctype in TEXTLIKE or ctype in TEXTLIKE_APPLICATION:
            return self.text_leaf(buf, fields, start, end, params, cte)
        if cte == "base64" and (buf.find(b"@", start, end) >= 0 or buf.find(b"&", start, end) >= 0):
            # "@" and "&" are not base64: only junk after the data (a list footer) can hold one
            return self.opaque(buf, start, end), False
        return [], False  # attachment: byte-identical

    def multipart(self, buf: bytes, start: int, end: int, boundary: bytes, depth: int) -> list[Edit]:
        mp = split_multipart(buf, start, end, boundary)
        if mp is None:
            self.result.notes.append("multipart boundary never found: scanned as opaque text")
            return self.opaque(buf, start, end)
        edits = self.opaque(buf, *mp.preamble) + self.opaque(buf, *mp.epilogue)
        for ps, pe in mp.parts:
            pfields, pbody = parse_headers(buf, ps, pe)
            hchanged = self.sub_headers(pfields)
            bedits, fchanged = self.entity(buf, pfields, pbody, pe, depth + 1)
            edits.extend(bedits)
            if hchanged or fchanged:
                edits.append((ps, pbody, b"".join(f.raw for f in pfields) + CRLF))
        return edits

    def message(self, buf: bytes, start: int, end: int, depth: int) -> list[Edit]:
        """A forwarded message: its headers keep what a reader of a forward needs (an allowlist,
        as at the top level: Received, Reply-To, Return-Path, X-Originating-IP … identify the
        sender and their route), and registered addresses in them become aliases."""
        ifields, ibody = parse_headers(buf, start, end)
        kept = [f for f in ifields if f.name in FORWARDED_KEEP]
        hchanged = len(kept) != len(ifields)
        ifields[:] = kept
        hchanged = self.sub_headers(ifields) or hchanged
        edits, fchanged = self.entity(buf, ifields, ibody, end, depth + 1)
        if hchanged or fchanged:
            edits.append((start, ibody, b"".join(f.raw for f in ifields) + CRLF))
        return edits

    def encoded_nested(
        self, buf: bytes, start: int, end: int, cte: str, depth: int, boundary: bytes | None
    ) -> list[Edit]:
        inner = normalize_eol(decode_body(buf[start:end], cte))
        if boundary is None:
            edits = self.message(inner, 0, len(inner), depth)
        else:
            edits = self.multipart(inner, 0, len(inner), boundary, depth)
        if not edits:
            return []
        new = apply_edits(inner, edits)
        return [(start, end, encode_base64(new) if cte == "base64" else encode_qp(new))]

    def opaque(self, buf: bytes, start: int, end: int) -> list[Edit]:
        if start >= end:
            return []
        data = buf[start:end]
        new, n = self.m.sub_bytes(data)
        if not n:
            return []
        self.result.parts_rewritten += 1
        return [(start, end, new)]

    def _sub_params(self, f: Field) -> Field | None:
        """The field rebuilt when a parameter, read as RFC 2231 says (continuations joined,
        percent-decoded), holds a registered address that the raw text does not show whole."""
        head, params = parse_params(f.value)
        hits = {k: self.m.sub(v) for k, v in params.items()}
        if not any(n for _, n in hits.values()):
            return None
        parts = [head]
        for key, (value, _) in hits.items():
            if value.isascii() and '"' not in value and "\\" not in value:
                parts.append(f'{key}="{value}"')
            else:
                parts.append(f"{key}*=utf-8''{urllib.parse.quote(value, safe='')}")
        label = f.label.decode("ascii").strip()
        raw = label.encode("ascii") + b": " + "; ".join(parts).encode("ascii") + CRLF
        return Field(f.name, f.label, raw[len(f.label) + 1 : -2], raw)

    # -- leaves -----------------------------------------------------------------------------

    def text_leaf(
        self, buf: bytes, fields: list[Field], start: int, end: int, params: dict[str, str], cte: str
    ) -> tuple[list[Edit], bool]:
        body = buf[start:end]
        junk = 0
        if cte == "base64" and (b"@" in body or b"&" in body):
            # text appended after the base64 data (mailing-list footers): rewrite it raw
            body, junk = self.m.sub_bytes(body)
        data = decode_body(body, cte) if cte in ("base64", "quoted-printable") else body
        label = params.get("charset")
        label_codec = lookup_codec(label) if label else None
        # codecs.lookup names them "utf-16", "utf-32-le"…: compare with the separator unified, or
        # a UTF-16 body is searched as bytes with a NUL between the letters and never matches
        wide = label_codec is not None and label_codec.replace("-", "_").startswith(_WIDE)
        unchanged: list[Edit] = [(start, end, body)] if junk else []
        # RFC 5322 §2.1.1: lines are at most 998 octets; receivers (aiosmtpd, Exchange) refuse
        # longer ones, so an identity-encoded part with a longer line is re-encoded even when
        # no address in it changes.
        too_long = cte not in ("base64", "quoted-printable") and max_line_length(data) > 998
        html = content_type(fields)[0] == "text/html"
        # (markup or entities can split an address so that no anchor shows in the source)
        if not too_long and not wide and not html and not self.m.might_contain_bytes(data):
            return unchanged, False
        text, codec = decode_text(data, label)
        new, n = text, 0
        if not html:
            new, n = self.m.sub(text)
        elif self.m.might_contain(text_superset(text)):  # (the superset holds the source itself too)
            new, n = self.m.sub(text)
            try:  # (a DOM walk costs ~0.5 ms per KB: only where an address may be)
                new, k = rewrite_html(new, self.m)
            except HtmlTooComplex:
                k = 0  # left to the egress check, which refuses what it cannot read
            n += k
        if not n and not too_long:
            return unchanged, False
        fchanged = False
        if n:
            newdata, used = encode_text(new, codec)
            if used != (label_codec or "ascii") and not newdata.isascii():
                set_charset(fields, mime_name(used))
                fchanged = True
        else:
            newdata = data  # same bytes, same charset: only the transfer encoding changes
        if cte == "base64":
            enc = encode_base64(newdata)
        elif cte == "quoted-printable":
            enc = encode_qp(newdata)
        elif max_line_length(newdata) <= 998:
            enc = newdata
        else:
            high = len(newdata) - len(newdata.translate(None, bytes(range(128, 256))))
            if high * 6 > len(newdata):
                enc, new_cte = encode_base64(newdata), b"base64"
            else:
                enc, new_cte = encode_qp(newdata), b"quoted-printable"
            set_field(fields, "Content-Transfer-Encoding", new_cte)
            fchanged = True
        self.result.parts_rewritten += 1
        return [(start, end, enc)], fchanged

    def sub_headers(self, fields: list[Field]) -> bool:
        """Registered addresses in a part's own headers (file names, descriptions …)."""
        changed = False
        for i, f in enumerate(fields):
            if f.name in ("content-type", "content-disposition"):
                rebuilt = self._sub_params(f)
                if rebuilt is not None:
                    fields[i] = rebuilt
                    changed = True
                    continue
            _, hit = sub_value(f.value, self.m, None)
            if hit:
                label = f.label.decode("ascii").strip()
                raw, _ = copy_field(label, f.name, f.value, self.m, None)
                fields[i] = Field(f.name, f.label, raw[len(f.label) + 1 : -2], raw)
                changed = True
        return changed
