"""`relay audit verify` and `relay audit head` as operators run them (subprocesses)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.integration.test_cli import ok_json, relay


def test_verify_and_head(tmp_path: Path) -> None:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n')
    for i in range(3):
        ok_json(cfg, "party", "add", "--role", "buyer", "--email", f"b{i}@buyer.example", "--name", f"B{i}")
    head = ok_json(cfg, "audit", "head")
    assert head["seq"] == 3 and len(head["hash"]) == 64
    assert relay(cfg, "audit", "head").stdout.strip() == f"3 {head['hash']}"
    ok = ok_json(cfg, "audit", "verify", "--anchor", head["hash"])
    assert ok == ok | {"ok": True, "count": 3, "head": head["hash"], "head_seq": 3}
    assert relay(cfg, "audit", "verify").stdout.startswith(f"OK: 3 events, head #3 {head['hash']}")

    db = sqlite3.connect(tmp_path / "state" / "relay.db")
    db.execute("UPDATE audit_events SET detail = replace(detail, 'buyer', 'BUYER') WHERE seq = 2")
    db.commit()
    db.close()
    r = relay(cfg, "audit", "verify", "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert (out["ok"], out["seq"], out["problem"], out["count"]) == (False, 2, "changed", 1)
    text = relay(cfg, "audit", "verify")
    assert text.returncode == 1 and "event #2 was changed" in text.stdout


def test_truncation_is_caught_by_an_anchor(tmp_path: Path) -> None:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n')
    for i in range(2):
        ok_json(cfg, "party", "add", "--role", "seller", "--email", f"s{i}@seller.example", "--name", f"S{i}")
    anchored = ok_json(cfg, "audit", "head")["hash"]
    db = sqlite3.connect(tmp_path / "state" / "relay.db")
    db.execute("DELETE FROM audit_events WHERE seq = 2")
    db.commit()
    db.close()
    assert ok_json(cfg, "audit", "verify")["ok"] is True  # a cut tail alone looks like a shorter chain…
    r = relay(cfg, "audit", "verify", "--anchor", anchored, "--json")
    assert r.returncode == 1 and "not in the chain" in json.loads(r.stdout)["message"]  # …but not to an anchor
