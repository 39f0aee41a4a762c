"""What the rewriter is told (RewritePlan), what it answers (RewriteResult), and its one error.

Config read: none (the pipeline builds the plan from the thread and config).
Errors raised: ``ValueError`` from ``RewritePlan`` when a name/address could not be written
into a header safely (CR, LF, NUL, angle brackets … in an address).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from relay.rewrite.addresses import check_address, clean_name


class Unparseable(Exception):
    """The input cannot be made into a safe message at all (e.g. a binary blob, no header)."""


def _drop_all(_msg_id: str) -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class RewritePlan:
    """Everything ``rewrite`` needs to know about one delivery (one recipient).

    ``address_map`` maps lower-case real addresses (both parties' registered addresses) to
    aliases. ``translate_id`` maps one ``<id>`` of In-Reply-To/References to what the
    recipient knows (None drops it). ``date_if_missing`` is an RFC 5322 date or a callable
    returning one (empty: now, UTC). Keyword-only, because positional plans invite mix-ups.
    """

    from_addr: str
    from_name: str
    to_addr: str
    to_name: str = ""
    message_id: str
    address_map: Mapping[str, str]
    alias_domain: str
    keep_aliases: frozenset[str] = frozenset()
    translate_id: Callable[[str], str | None] = _drop_all
    extra_headers: Sequence[tuple[str, str]] = ()
    strip_user_agent: bool = True
    date_if_missing: Callable[[], str] | str = ""

    def __post_init__(self) -> None:
        check_address(self.from_addr)
        check_address(self.to_addr)
        mid = self.message_id.strip()
        if not (mid.startswith("<") and mid.endswith(">")) or any(c in mid for c in "\r\n\0 \t"):
            raise ValueError(f"message_id must be one <id>: {self.message_id!r}")
        for name, value in self.extra_headers:
            if not name or any(not (33 <= ord(c) <= 126) or c == ":" for c in name):
                raise ValueError(f"bad extra header name {name!r}")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"control character in extra header {name}")

    def date_value(self) -> str:
        value = self.date_if_missing() if callable(self.date_if_missing) else self.date_if_missing
        if not value:
            from email.utils import formatdate

            value = formatdate(localtime=False)
        return clean_name(value)


@dataclass
class RewriteResult:
    """The message to deliver and what the pipeline wants to know about the original."""

    message: bytes
    subject: str = ""
    orig_message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    parts_rewritten: int = 0
    headers_rewritten: int = 0
    notes: list[str] = field(default_factory=list)
