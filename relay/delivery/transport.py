"""What a transport promises: deliver one message to one recipient, or say how it failed."""

from __future__ import annotations

from typing import Protocol


class DeliveryError(Exception):
    """A failed attempt. `permanent` decides between retry and bounce; `text` is for the audit only."""

    def __init__(self, text: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.code = code


class Transport(Protocol):
    async def send(self, envelope_from: str, recipient: str, data: bytes) -> str:
        """Deliver; return the receiving side's answer (for the audit) or raise DeliveryError."""
        ...

    async def close(self) -> None: ...
