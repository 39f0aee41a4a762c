"""The rewriter's address helpers: its finder, and the address headers we write.

Job: ``matcher_for`` gives the one contact finder (relay.message.contacts), which finds every
written form of a registered address in ``str`` or ``bytes``; small helpers sanitise
names/addresses and format mailboxes so no CR, LF or NUL ever reaches a header we write.
Config read: none (pure). Errors raised: ``ValueError`` for an address that cannot be written safely (a bug in the caller's plan, not in the message).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from relay.message.contacts import AddressFinder, finder_for

# Characters never allowed in a name or address we put into a header.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]+")
_ADDR_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f<>()\[\],;:\\\"]")



def matcher_for(address_map: Mapping[str, str]) -> AddressFinder:
    """The one contact finder (relay.message.contacts): every written form of an address, not
    only the literal one, so the rewriter maps what the policy recognised as the party's own."""
    return finder_for(address_map)


def clean_name(name: str) -> str:
    """A display name with every control character (CR, LF, NUL …) turned into one space."""
    return " ".join(_CONTROL_RE.sub(" ", name).split())


def check_address(addr: str) -> str:
    """Return ``addr`` stripped, or raise ValueError if it cannot go into a header safely."""
    addr = addr.strip()
    if addr.count("@") != 1 or _ADDR_FORBIDDEN.search(addr):
        raise ValueError(f"unsafe address for a header: {addr!r}")
    local, domain = addr.split("@")
    if not local or not domain:
        raise ValueError(f"unsafe address for a header: {addr!r}")
    return addr


_ATOM_OK: Final = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")


def quote_name(name: str) -> str:
    """An ASCII display name as a phrase: bare if all atoms, else a quoted-string."""
    if _ATOM_OK.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
