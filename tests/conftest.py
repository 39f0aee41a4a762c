from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from relay.app import Relay
from tests.support import Sink, make_settings

if TYPE_CHECKING:
    from tests.pgcluster import PgCluster


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


# --- PostgreSQL (tests/pgcluster.py): one throwaway cluster per session, started by the first test
# that asks for it; every test gets its own database. Missing binaries fail, never skip: CI installs
# them (scripts/test), and a skipped PostgreSQL suite would pass without testing anything.

@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    from tests.pgcluster import PgCluster, PgUnavailable

    try:
        cluster = PgCluster().start()
    except PgUnavailable as exc:
        pytest.fail(f"PostgreSQL tests need a local PostgreSQL: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database of the session's cluster (dropped after the test)."""
    name = f"t_{next(_pg_seq)}_{re.sub(r'[^a-z0-9]+', '_', request.node.name.lower())[:40]}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


_pg_seq = itertools.count(1)


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database with the PostgreSQL migrations applied, once per session: the template of pg_store_url."""
    import asyncio

    import asyncpg

    from relay.store.pg.migrate import migrate

    url = pg_cluster.create_database("relay_template")

    async def _migrate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(_migrate())
    return "relay_template"


@pytest.fixture
def pg_store_url(pg_cluster: PgCluster, pg_template: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new database with the relay's schema (a copy of pg_template), dropped after the test."""
    name = f"s_{next(_pg_seq)}_{re.sub(r'[^a-z0-9]+', '_', request.node.name.lower())[:40]}"
    url = pg_cluster.create_database(name, template=pg_template)
    yield url
    pg_cluster.drop_database(name)
