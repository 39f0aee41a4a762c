"""Scans of a whole message that must stay cheap on 10 MB: is it in wire form (CRLF only), where
is the next MIME delimiter line, is there a line starting with ".". All skip with memchr-speed
searches instead of stepping through every byte (base64 has no lone CR or LF, no "-", no ".").

Reads no config; raises nothing.
"""

from __future__ import annotations

import binascii
import re
import sys

import pybase64

# Each pattern starts with a literal character, so the regex engine skips from one CR (LF) to
# the next at memchr speed and looks around only there.
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"\n(?<!\r\n)")

#: find_rare looks this far past a rare byte with the needle before it hops to the next one.
WINDOW = 64 * 1024
FIRST_WINDOW = 256


#: Large contents found in wire form, newest last. The stages check the same bytes object again
#: (DATA, policy, rewrite; leak check, signing and delivery the rewritten one), and with several
#: sessions at once the checks of different messages interleave: `is` against these answers
#: again without a scan (8 ms per 10 MB). Holding an entry keeps its id its own; an entry nothing
#: else holds any more is dropped at the next addition, so a finished message is not kept alive.
_clean: list[bytes] = []
_KEEP = 8
_REMEMBER = 64 * 1024


def is_crlf(data: bytes) -> bool:
    """True when every CR is followed by LF and every LF follows a CR.

    Two skipping searches: ~8 ms on 10 MB, against ~15 ms for counting CR, LF and CRLF (a
    two-byte count is three times slower than a one-byte one) and ~55 ms for one regex with
    both branches (no literal first character left to skip with).
    """
    if known_clean(data):
        return True
    clean = _BARE_CR.search(data) is None and _BARE_LF.search(data) is None
    if clean:
        remember_clean(data)
    return clean


def known_clean(data: bytes) -> bool:
    """is_crlf's answer if it is remembered (no scan): True, or False for "not known"."""
    for known in _clean:
        if known is data:
            return True
    return False


def remember_clean(data: bytes) -> None:
    """Note that `data` is in wire form without scanning it: only for contents built from parts
    known to be clean (rewrite.body.apply_edits, dkim.Signer.sign), or read back from where such
    a content was stored (store.messages.get_blob)."""
    if len(data) >= _REMEMBER and type(data) is bytes and not known_clean(data):
        _clean[:] = [*_in_use()[-(_KEEP - 1):], data]


def clean_slice(data: bytes, start: int, end: int) -> bool:
    """Is data[start:end] in wire form, given that `data` is? Only its ends can break a CRLF."""
    return start >= end or (data[start] != 0x0A and data[end - 1] != 0x0D)


def _in_use() -> list[bytes]:
    # references to an entry nobody else holds: the list's, the loop variable's, getrefcount's
    return [c for c in _clean if sys.getrefcount(c) > 3]


def forget_finished() -> None:
    """Drop the remembered contents nothing else holds (a message done with: call after one)."""
    _clean[:] = _in_use()


def find_dashed(data: bytes, needle: bytes, start: int, end: int) -> int:
    """data.find(needle, start, end) for a delimiter needle ("\r\n--boundary"): see find_rare."""
    return find_rare(data, needle, b"-", start, end)


def find_rare(data: bytes | bytearray, needle: bytes, rare: bytes, start: int, end: int) -> int:
    """data.find(needle, start, end), jumping between the places of `rare`, one byte of the
    needle that bulk data seldom holds ("-" and "." are in no base64 text).

    A short needle makes bytes.find crawl (~2 GB/s, 5 ms on 10 MB); a single byte is found
    with memchr (~100 GB/s). Every match has the needle's first `rare` on a `rare` of data,
    so the search jumps to the next one and looks for the needle only in a window from there:
    through base64 it flies, and text full of `rare` costs what bytes.find did. The window
    starts small and grows fourfold after each miss up to WINDOW: a `rare` that is not the
    needle's (the "--" of a nested multipart's delimiters when looking for the outer one) costs
    a glance, not 64 KiB of bytes.find (~40 us each).
    """
    offset = needle.index(rare)
    size = len(needle)
    window = min(FIRST_WINDOW, WINDOW)
    while True:
        k = data.find(rare, start + offset, end)
        if k < 0:
            return -1
        first = k - offset  # no match starts before this: its `rare` would be an earlier one
        hit = data.find(needle, first, min(end, first + window + size))
        if hit >= 0:
            return hit
        start = first + window + 1  # no match starts in [first, first + window]
        window = min(window * 4, WINDOW)


def padded_at_end_only(data: bytes, start: int, end: int) -> bool:
    """Does "=" come nowhere in data[start:end] but in its trailing padding (any well-formed
    base64 body)?"""
    pad = data.find(b"=", start, end)
    return pad < 0 or not data[pad:end].strip(b"=\r\n\t ")


def a2b_base64(data: bytes, start: int = 0, end: int | None = None, *,
               padded_at_end: bool | None = None) -> bytes:
    """binascii.a2b_base64(data[start:end]), the same bytes or the same binascii.Error, ~3.5 times
    faster on a MIME body (7.4 MB: 22 → 6.4 ms) through pybase64's SIMD decoder.

    pybase64 (validate=False) skips what is not base64 as binascii does, but reads "=" inside the
    text and the URL-safe alphabet its own way: it is asked only when "=" comes nowhere but in the
    trailing padding, where the two agree (tests/unit/test_fast_scans.py fuzzes this), and when it
    refuses, binascii answers (and raises) itself. `padded_at_end`: padded_at_end_only()'s answer,
    when the caller has it.
    """
    end = len(data) if end is None else end
    view = memoryview(data)[start:end]
    if padded_at_end if padded_at_end is not None else padded_at_end_only(data, start, end):
        try:
            return pybase64.b64decode(view, validate=False)
        except (binascii.Error, ValueError):
            pass
    return binascii.a2b_base64(view)
