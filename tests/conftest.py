from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.app import Relay
from tests.support import Sink, make_settings


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from relay import dkim

    path = tmp_path_factory.mktemp("dkim") / "test.pem"
    dkim.generate_rsa_key(path)
    return path


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def start_relay(tmp_path: Path, dkim_key: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start relays in this test's loop; all are stopped at the end."""
    started: list[Relay] = []

    async def _start(settings: Any = None, **kwargs: Any) -> Relay:
        s = settings or make_settings(tmp_path / "state", dkim={"private_key": str(dkim_key)}, **kwargs)
        relay = Relay(s)
        await relay.start()
        started.append(relay)
        return relay

    yield _start
    for relay in started:
        if relay.servers or relay.worker:
            try:
                await relay.stop(grace=2)
            except Exception:
                pass
