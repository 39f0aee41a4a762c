"""Shared keys on the real (throwaway) PostgreSQL: PgSecrets (relay/store/pg/secrets.py) keeps what
relay/keys.py seals, two nodes with the same KEK open it, a stale write is refused."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from relay import keys
from relay.store.interface import Secrets
from relay.store.pg.db import PgDatabase
from relay.store.pg.secrets import PgSecrets
from relay.store.url import PgTarget, parse

KEK = bytes(range(32))


def _target(url: str) -> PgTarget:
    t = parse(url, Path("."))
    assert isinstance(t, PgTarget)
    return t


async def test_round_trip_between_two_nodes(pg_store_url: str) -> None:
    async with PgDatabase(_target(pg_store_url)) as db1, PgDatabase(_target(pg_store_url)) as db2:
        node1: Secrets = PgSecrets(db1)
        node2: Secrets = PgSecrets(db2)
        pem = b"-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n"
        assert await keys.install(node1, "dkim/2026a", pem, kek=KEK, node="mx-1", now=5.0) == 1
        assert await keys.install(node1, "unsubscribe", b"u" * 32, kek=KEK, node="mx-1") == 1
        assert await keys.load(node2, "dkim/2026a", kek=KEK) == pem
        assert [(i.name, i.version, i.created_at, i.node) for i in await node2.names()][:1] == [
            ("dkim/2026a", 1, 5.0, "mx-1")]
        with pytest.raises(keys.KeysError):
            await keys.install(node2, "dkim/2026a", b"other", kek=KEK, node="mx-2")
        assert await keys.install(node2, "dkim/2026a", b"other", kek=KEK, node="mx-2", replace=True) == 2
        row = await node1.get("dkim/2026a")
        assert row is not None and row.version == 2 and row.node == "mx-2"
        assert not await node1.put("dkim/2026a", 2, b"n" * 12, b"stale", 6.0, "mx-1")  # read v1, too late
        assert await keys.load(node1, "dkim/2026a", kek=KEK) == b"other"
        with pytest.raises(keys.KeyDecryptError):
            await keys.load(node1, "dkim/2026a", kek=bytes(32))
        assert await node1.get("nothing") is None
    conn = await asyncpg.connect(pg_store_url)
    try:
        stored = await conn.fetchval("SELECT data FROM secrets WHERE name = 'dkim/2026a'")
        assert b"other" not in stored and len(stored) == len(b"other") + 16  # ciphertext and GCM tag
    finally:
        await conn.close()


def test_keys_cli_on_postgresql(pg_store_url: str, tmp_path: Path) -> None:
    """`relay keys` with store.url naming PostgreSQL: the keys go to the shared database, a second
    node's configuration (its own state directory, the same KEK file) lists and exports them."""
    import json
    import os

    from tests.integration.test_cli_polish import run

    def cfg(node: str) -> Path:
        path = tmp_path / f"{node}.toml"
        path.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / node}"\nnode = "{node}"\n'
                        f'[store]\nurl = "{pg_store_url}"\nkey_file = "{tmp_path / "store.key"}"\n')
        return path

    for args in (["keys", "init"], ["keys", "install", "dkim"], ["keys", "install", "unsubscribe"]):
        r = run(*args, cfg=cfg("mx-1"))
        assert r.returncode == 0, (args, r.stderr)
    r = run("keys", "list", "--json", cfg=cfg("mx-2"))
    assert r.returncode == 0, r.stderr
    assert [(k["name"], k["node"]) for k in json.loads(r.stdout)["keys"]] == [("dkim/relay", "mx-1"),
                                                                              ("unsubscribe", "mx-1")]
    r = run("keys", "export", "dkim/relay", "--out", str(tmp_path / "k.pem"), cfg=cfg("mx-2"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "k.pem").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert os.stat(tmp_path / "k.pem").st_mode & 0o777 == 0o600
    assert not (tmp_path / "mx-1" / "relay.db").exists() and not (tmp_path / "mx-2" / "relay.db").exists()
