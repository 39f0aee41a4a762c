"""What a transport promises: deliver one message to one recipient, or say how it failed."""

from __future__ import annotations

from typing import Protocol


class DeliveryError(Exception):
    """A failed attempt. `permanent` decides between retry and bounce; `text` is for the audit only.

    `ambiguous`: the whole message was sent and the answer never came, so it may have been taken
    (RFC 5321 section 4.1.1.4 leaves that window open): retried later, with backoff, never at once."""

    def __init__(self, text: str, *, permanent: bool, code: int | None = None, ambiguous: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.code = code
        self.ambiguous = ambiguous


class Transport(Protocol):
    async def send(self, envelope_from: str, recipient: str, data: bytes) -> str:
        """Deliver; return the receiving side's answer (for the audit) or raise DeliveryError."""
        ...

    async def close(self) -> None: ...
