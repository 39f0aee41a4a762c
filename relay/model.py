"""Domain vocabulary: parties, threads, aliases, verdicts.

Plain dataclasses and enums shared by every layer; no I/O here.
The words follow ../shared/DESIGN.md (party, thread, alias, order, message, verdict).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Role(enum.StrEnum):
    BUYER = "buyer"
    SELLER = "seller"

    @property
    def other(self) -> Role:
        return Role.SELLER if self is Role.BUYER else Role.BUYER


class Direction(enum.StrEnum):
    """Which way a message flows through a thread."""

    SELLER_TO_BUYER = "seller_to_buyer"
    BUYER_TO_SELLER = "buyer_to_seller"

    @classmethod
    def from_sender(cls, role: Role) -> Direction:
        return cls.SELLER_TO_BUYER if role is Role.SELLER else cls.BUYER_TO_SELLER


class Action(enum.Enum):
    CONTINUE = "continue"
    REJECT = "reject"
    TEMPFAIL = "tempfail"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: code, enhanced status code (RFC 3463) and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reply: Reply | None = None
    reason: str = "ok"
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, reason: str = "ok", **detail: Any) -> Verdict:
        return cls(Action.CONTINUE, None, reason, detail)


@dataclass(frozen=True, slots=True)
class Party:
    id: int
    role: Role
    name: str
    emails: tuple[str, ...]
    status: str = "active"
    ref: str | None = None
    opted_out: bool = False
    vacation_until: str | None = None
    vacation: bool = False


@dataclass(frozen=True, slots=True)
class Thread:
    id: int
    buyer_id: int
    seller_id: int
    buyer_alias: str  # local part; what the seller writes to
    seller_alias: str  # local part; what the buyer writes to
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class AliasTarget:
    """What an alias local part resolves to: the thread and the party it stands for."""

    alias: str
    thread_id: int
    party_id: int  # the party the alias stands for (the recipient of mail to it)
    role: Role  # that party's role
    revoked: bool = False
