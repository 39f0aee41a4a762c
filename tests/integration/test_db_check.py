"""`relay db check` on both backends: connectivity, schema version, expired leases; no password shown."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg

from relay.store.db import connect_sync
from relay.store.migrate import (
    available,
    migrate,
)
from tests.pgcluster import free_port

LATEST = max(m.version for m in available())  # the newest migration, the same in both dialects


def _relay(tmp_path: Path, store: str = "", *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n{store}')
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), "db", "check", *args],
                          capture_output=True, text=True, timeout=60)


def test_sqlite(tmp_path: Path) -> None:
    r = _relay(tmp_path)
    assert r.returncode == 1 and "no database file yet" in r.stderr
    assert not (tmp_path / "state" / "relay.db").exists()  # a check creates nothing
    conn = connect_sync(tmp_path / "state" / "relay.db")
    migrate(conn)
    conn.close()
    r = _relay(tmp_path, "", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backend"] == "sqlite" and out["ok"] and out["expired_leases"] == 0
    assert out["schema_version"] == out["expected_version"] == LATEST


def test_postgresql(tmp_path: Path, pg_store_url: str, pg_url: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text("Hunter2Hunter2\n")  # trust authentication accepts it; it must never be printed
    store = f'[store]\nurl = "{pg_store_url}"\npassword_file = "{pw}"\n'

    async def expire_one() -> None:
        conn = await asyncpg.connect(pg_store_url)
        await conn.execute("INSERT INTO blobs (sha256, size) VALUES ('h', 0);"
                           " INSERT INTO messages (id, state, received_at, envelope_from, rcpt_alias)"
                           " VALUES (1, 'queued', 0, '', 'x');"
                           " INSERT INTO queue (message_id, recipient, envelope_from, blob_sha256, state, created_at,"
                           " next_attempt_at, expires_at, claimed_by, lease_until)"
                           " VALUES (1, 'r', '', 'h', 'sending', 0, 0, 9e9, 'gone:1:x', 1)")
        await conn.close()

    asyncio.run(expire_one())
    r = _relay(tmp_path, store, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backend"] == "postgresql" and out["ok"] and out["schema_version"] == LATEST
    assert out["expired_leases"] == 1 and out["store"] == pg_store_url
    assert "Hunter2" not in r.stdout + r.stderr
    # a database without the schema: connected, not current
    r = _relay(tmp_path, f'[store]\nurl = "{pg_url}"\n')
    assert r.returncode == 1 and f"schema 0 (expected {LATEST})" in r.stderr


def test_postgresql_unreachable_never_shows_the_password(tmp_path: Path) -> None:
    url = f"postgresql://relay:Hunter2Hunter2@127.0.0.1:{free_port()}/relay"
    r = _relay(tmp_path, f'[store]\nurl = "{url}"\n')
    assert r.returncode == 1 and "cannot connect" in r.stderr
    assert "Hunter2" not in r.stdout + r.stderr
    r = _relay(tmp_path, '[store]\nurl = "mysql://relay:Hunter2Hunter2@db/relay"\n')
    assert r.returncode == 78 and "unsupported scheme" in r.stderr and "Hunter2" not in r.stdout + r.stderr
