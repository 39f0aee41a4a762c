"""Transit: one message on its way to one recipient, and what the stages learned about it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.model import AliasTarget, Direction, Party, Thread, Verdict
from relay.pipeline.headers import HeaderFacts
from relay.store.interface import AcceptHook
from relay.store.messages import PendingEvent


class CommitRefused(Exception):
    """Raised by an on_accept hook: a rule checked again inside the commit refuses the message.

    The commit's unit is rolled back (nothing of the DATA is written or queued); the SMTP session
    answers with the verdict's reply, as if the stage had refused it."""

    def __init__(self, transit: Transit, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.transit = transit
        self.verdict = verdict


@dataclass(slots=True)
class Transit:
    peer: str
    helo: str
    envelope_from: str
    rcpt: str  # the alias address as the client wrote it
    target: AliasTarget
    raw: bytes  # the message as received (CRLF, checked for bare CR/LF)
    #: a file holding exactly `raw` until the reply to DATA (the spool file of a large message)
    raw_file: Path | None = None
    received_at: float = field(default_factory=time.time)
    # filled by stages
    facts: HeaderFacts | None = None
    thread: Thread | None = None
    sender: Party | None = None
    recipient: Party | None = None
    message: bytes = b""  # the version that will be delivered
    subject: str = ""
    orig_message_id: str | None = None
    relay_message_id: str = ""
    id_map: dict[str, str] = field(default_factory=dict)  # quoted msg-id → what the recipient knows
    held: bool = False
    events: list[PendingEvent] = field(default_factory=list)
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    #: What the store does inside the message's own commit (rows that must be atomic with it, checks
    #: that must hold when it commits; relay/store/accept.py); a check may raise CommitRefused.
    on_accept: list[AcceptHook] = field(default_factory=list)

    @property
    def relay_key(self) -> int:
        """This transit's identity while it is in flight (the policy workers' affinity key)."""
        return id(self)

    @property
    def direction(self) -> Direction:
        assert self.sender is not None
        return Direction.from_sender(self.sender.role)

    def record(self, event: str, reason: str = "", **detail: Any) -> None:
        """Queue an audit event; it is written in the same transaction as the message."""
        self.events.append(PendingEvent(event, reason, detail))
