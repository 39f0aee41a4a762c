"""Retention and erasure against the real server: the chain still verifies, and the erased
address is nowhere in the database files' bytes (the file and its WAL are searched raw)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

from relay.retention import RetentionTask
from relay.store.audit_verify import verify
from tests.integration.test_review import cli
from tests.support import DOMAIN, World, eventually, maildir_messages, message, provision, send_expect


def raw_bytes(db: Path) -> bytes:
    # Read in another process: closing any descriptor of the database file in *this* process
    # (where the relay runs) would drop the relay's POSIX locks on it (a known SQLite pitfall).
    files = [str(p) for p in (db, Path(f"{db}-wal")) if p.exists()]
    return subprocess.run(["cat", *files], capture_output=True, check=True).stdout.lower()


def ok_json(state: Path, *args: str) -> dict:
    r = cli(state, *args, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


async def conversation(relay, world: World) -> None:
    port = relay.addresses[0][1]
    body = f"Hi, I am Alice ({world.buyer_email}); please ship to my home.\r\n"
    assert (await send_expect(port, world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias, subject="Your order")))[0] == 250
    assert (await send_expect(port, world.buyer_email, [world.seller_alias],
                              message(f"Alice <{world.buyer_email}>", world.seller_alias, subject="Re: Your order",
                                      body=body)))[0] == 250
    # refusals whose audit details carry Alice's address (kept beside the chain)
    assert (await send_expect(port, "Alice@Buyer.example", ["someone@elsewhere.example"], b"x"))[0] == 554
    assert (await send_expect(port, world.buyer_email, [f"nosuchalias1234@{DOMAIN}"], b"x"))[0] == 550
    await eventually(lambda: len(maildir_messages(relay.settings)) == 2)


async def test_retention_keeps_a_verifiable_chain(start_relay) -> None:
    relay = await start_relay(audit={"retention": "30d"})
    assert relay.retention is not None  # the daemon's daily pass is running
    world = provision(relay.settings)
    await conversation(relay, world)
    state = relay.settings.relay.state_dir
    (state.parent / "relay.toml").write_text(f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{state}"\n'
                                             '[audit]\nretention = "30d"\n')
    conn = world.conn()
    try:
        await eventually(lambda: conn.execute("SELECT count(*) FROM messages WHERE state = 'delivered'")
                         .fetchone()[0] == 2)
        old = time.time() - 40 * 86400
        conn.execute("UPDATE messages SET received_at = ? WHERE id = 1", (old,))
        conn.execute("UPDATE queue SET created_at = ? WHERE message_id = 1", (old,))
    finally:
        conn.close()
    out = ok_json(state, "retention", "run")
    assert out["blobs_cleared"] == 2 and out["retention_seconds"] == 30 * 86400
    assert ok_json(state, "retention", "run")["blobs_cleared"] == 0
    assert ok_json(state, "audit", "verify")["ok"] is True
    t = json.loads(cli(state, "thread", "transcript", "1", "--format", "json").stdout)
    first, second = t["messages"]
    assert first["received"]["stored"] is False and first["received"]["cleared"]["reason"] == "retention"
    assert first["received"]["size"] > 0 and first["received"]["sha256"]
    assert second["received"]["stored"] is True
    assert "content no longer stored (retention on" in cli(state, "thread", "transcript", "1").stdout.decode()
    events = [json.loads(line) for line in cli(state, "audit", "tail", "--json", "--event", "retention").stdout
              .splitlines()]
    assert [(e["event"], e["detail"]["blobs"]) for e in events] == [("retention.cleared", 2)]

    # the daemon's periodic pass does the same
    conn = world.conn()
    try:
        conn.execute("UPDATE messages SET received_at = ? WHERE id = 2", (old,))
        conn.execute("UPDATE queue SET created_at = ? WHERE message_id = 2", (old,))
    finally:
        conn.close()
    task = RetentionTask(relay.store, relay.settings.audit.retention, interval=3600, first_delay=0)
    task.start()
    conn = world.conn()
    try:
        await eventually(lambda: conn.execute("SELECT count(*) FROM blobs WHERE data IS NULL").fetchone()[0] == 4)
        assert verify(conn).ok
    finally:
        conn.close()
        await task.stop()


async def test_erasure_leaves_no_trace_and_a_verifiable_chain(start_relay) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    await conversation(relay, world)
    state = relay.settings.relay.state_dir
    db = relay.settings.db_path
    conn = world.conn()
    try:
        await eventually(lambda: conn.execute("SELECT count(*) FROM messages WHERE state = 'delivered'")
                         .fetchone()[0] == 2)
    finally:
        conn.close()
    needle = world.buyer_email.encode()
    assert needle in raw_bytes(db)  # the test can see it before
    tail = cli(state, "audit", "tail", "--json", "-n", "0").stdout.decode()
    assert "alice@buyer.example" in tail.lower()  # operators see the refused sender

    out = ok_json(state, "party", "erase", world.buyer_email)
    assert out["traces"] == [] and out["chained_traces"] == [] and out["checkpointed"] is True
    assert out["contents_cleared"] == 4 and len(out["aliases_revoked"]) == 1 and len(out["pii_events"]) == 2
    assert needle not in raw_bytes(db)
    assert b"alice" not in raw_bytes(db)  # the name in the party row and in the contents is gone too
    verified = ok_json(state, "audit", "verify")
    assert verified["ok"] is True and verified["erased_pii"] == 2

    party = ok_json(state, "party", "show", str(world.buyer_id))
    assert party["status"] == "erased" and party["emails"] == [f"erased-{world.buyer_id}@erased.invalid"]
    assert party["name"] == f"[erased party {world.buyer_id}]"
    erased = [json.loads(line) for line in cli(state, "audit", "tail", "--json", "--event", "party.erased")
              .stdout.splitlines()]
    assert len(erased) == 1 and erased[0]["detail"]["contents_cleared"] == 4
    tail = cli(state, "audit", "tail", "--json", "-n", "0").stdout.decode()
    assert "alice@buyer.example" not in tail.lower() and f"erased-{world.buyer_id}@erased.invalid" in tail

    # the running relay keeps working: the revoked alias is refused, the chain grows and verifies
    port = relay.addresses[0][1]
    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias],
                                message(world.seller_email, world.buyer_alias))
    assert code == 550
    assert ok_json(state, "audit", "verify")["ok"] is True
    assert "[erased]" in cli(state, "thread", "transcript", "1").stdout.decode()
    # erasing again only compacts
    again = ok_json(state, "party", "erase", str(world.buyer_id))
    assert again["already_erased"] is True


async def test_owner_only_files(start_relay, tmp_path: Path) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    await conversation(relay, world)
    s = relay.settings
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(s.relay.state_dir) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert mode(f"{s.db_path}{suffix}") == 0o600, suffix
    for d in (s.maildir_path, s.maildir_path / "new", s.maildir_path / "tmp", s.maildir_path / "cur"):
        assert mode(d) == 0o700, d
    for f in (s.maildir_path / "new").iterdir():
        assert mode(f) == 0o600
    out = tmp_path / "b.zip"
    assert cli(s.relay.state_dir, "thread", "export", "1", "--out", str(out)).returncode == 0
    assert mode(out) == 0o600
    # the audit never holds key material
    key = raw_bytes(s.dkim_key_path).upper()
    body = b"".join(key.splitlines()[1:-1])[:40].lower()
    assert body not in raw_bytes(s.db_path).replace(b"\n", b"") and b"private key" not in raw_bytes(s.db_path)
