"""What stages share: settings, the store, the signer, the clock. Built once by the app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.config import Settings
from relay.store.interface import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    signer: Any = None  # relay.dkim.Signer | None
    clock: Callable[[], float] = field(default=time.time)
    extras: dict[str, Any] = field(default_factory=dict)  # per-feature services (policy, resolver, …)

    def alias_address(self, local: str) -> str:
        return f"{local}@{self.settings.relay.domain}"
