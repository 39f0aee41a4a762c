"""Is a message already in wire form (every line end CRLF)? Asked by every stage that must not
send or sign a bare CR or LF, so it has to be cheap on a 10 MB message.

Reads no config; raises nothing.
"""

from __future__ import annotations

import re

# Each pattern starts with a literal character, so the regex engine skips from one CR (LF) to
# the next at memchr speed and looks around only there.
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


def is_crlf(data: bytes) -> bool:
    """True when every CR is followed by LF and every LF follows a CR.

    Two skipping searches: ~8 ms on 10 MB, against ~15 ms for counting CR, LF and CRLF (a
    two-byte count is three times slower than a one-byte one) and ~55 ms for one regex with
    both branches (no literal first character left to skip with).
    """
    return _BARE_CR.search(data) is None and _BARE_LF.search(data) is None
