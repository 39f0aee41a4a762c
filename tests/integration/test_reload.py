"""Relay.reload() contract for other features: reloaders check first, and all apply or none does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relay.config import Settings
from tests.daemon import toml


async def test_reloaders_all_or_nothing(start_relay: Any, tmp_path: Path, dkim_key: Path) -> None:
    relay = await start_relay()
    path = tmp_path / "relay.toml"
    base = {"relay": {"domain": "relay.example", "state_dir": str(relay.settings.relay.state_dir)},
            "smtp": {"listen": ["127.0.0.1:0"]}, "dkim": {"selector": "test", "private_key": str(dkim_key)},
            "http": {"listen": "127.0.0.1:0"}, "logging": {"format": "json"}}
    seen: list[tuple[int, int]] = []
    applied: list[int] = []
    refuse = {"now": True}

    def tls_like(old: Settings, new: Settings) -> Any:
        seen.append((old.smtp.max_connections, new.smtp.max_connections))
        if refuse["now"]:
            raise ValueError("certificate does not match its key")
        return lambda: applied.append(new.smtp.max_connections)

    async def policy_like(old: Settings, new: Settings) -> None:  # async, nothing to apply
        return None

    relay.add_reloader(tls_like)
    assert relay.ctx is not None
    relay.ctx.extras["reloaders"].append(policy_like)  # the way a stage registers one

    path.write_text(toml({**base, "smtp": {**base["smtp"], "max_connections": 7, "max_recipients": 3}}))
    assert await relay.reload(path) is False  # one reloader refused: nothing changes
    assert seen == [(200, 7)] and applied == []
    assert relay.limits.max_connections == 200 and relay.ctx.settings.smtp.max_recipients == 50
    assert relay.metrics.reloads.labels("refused")._value.get() == 1

    refuse["now"] = False
    assert await relay.reload(path) is True
    assert applied == [7]
    assert relay.limits.max_connections == 7  # live limits
    assert relay.ctx.settings.smtp.max_recipients == 3 and relay.settings.smtp.max_recipients == 3
    assert relay.worker is not None and relay.worker.settings.smtp.max_recipients == 3
