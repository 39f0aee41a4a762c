"""What the marketplace backend asked of the CLI (and will ask of the HTTP API, through the same store
methods): party list, party update, thread list, thread find, and party add --ref once per ref. Run as
real subprocesses; the state is read back both through other commands and from the store itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from relay.config import load
from relay.store.sqlite import SqliteStore


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "relay.toml"
    p.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n')
    return p


def relay(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60)


def ok_json(cfg: Path, *args: str) -> dict[str, Any]:
    r = relay(cfg, *args, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def refused(cfg: Path, *args: str, status: int = 1) -> str:
    """A refusal: the status, one line on stderr (and with --json one object naming the error)."""
    r = relay(cfg, *args)
    assert r.returncode == status, (args, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    if status == 1:
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
        j = relay(cfg, *args, "--json")
        assert j.returncode == 1 and json.loads(j.stdout)["error"]
    return r.stderr


def stored(cfg: Path, work: Any) -> Any:
    """Read the state from the store directly (not through the CLI under test)."""
    async def run() -> Any:
        async with SqliteStore.at(load(cfg).db_path) as store:
            return await work(store)
    return asyncio.run(run())


def events(cfg: Path) -> list[dict[str, Any]]:
    r = relay(cfg, "audit", "tail", "-n", "0", "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


SELLER = ("party", "add", "--role", "seller", "--email", "Shop@Seller.example", "--email", "staff@seller.example",
          "--name", "京都  クラフト", "--ref", "S-1")


def test_party_add_with_a_ref_is_idempotent(cfg: Path) -> None:
    first = ok_json(cfg, *SELLER)
    assert first["created"] is True and first["ref"] == "S-1" and first["name"] == "京都 クラフト"
    again = ok_json(cfg, *SELLER)  # the backend retries: the same party, nothing new
    assert again == first | {"created": False}
    text = relay(cfg, *SELLER)
    assert text.returncode == 0
    assert text.stdout == (f"party {first['party']}: seller 京都 クラフト <shop@seller.example,"
                           " staff@seller.example> (exists already)\n")
    assert [e["event"] for e in events(cfg)] == ["party.added"]
    assert [p.id for p in stored(cfg, lambda st: st.parties.listing())] == [first["party"]]

    other_name = refused(cfg, *SELLER[:-4], "--name", "Another Shop", "--ref", "S-1")
    assert "ref 'S-1' exists already" in other_name and "another name" in other_name
    assert f"relay party update {first['party']}" in other_name
    other_order = refused(cfg, "party", "add", "--role", "seller", "--email", "staff@seller.example",
                          "--email", "shop@seller.example", "--name", "京都 クラフト", "--ref", "S-1")
    assert "other addresses" in other_order
    # a ref is the marketplace's id per role: a buyer may carry the same one
    buyer = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "b@buyer.example", "--name", "B", "--ref", "S-1")
    assert buyer["created"] is True and buyer["party"] != first["party"]
    assert [e["event"] for e in events(cfg)] == ["party.added", "party.added"]
    # without a ref, add is add: an address registered already is refused, as before
    assert "already registered" in refused(cfg, "party", "add", "--role", "buyer", "--email", "b@buyer.example",
                                           "--name", "B")


def test_party_list(cfg: Path) -> None:
    assert relay(cfg, "party", "list").stdout == "no parties\n"
    assert ok_json(cfg, "party", "list") == {"count": 0, "parties": []}
    s = ok_json(cfg, *SELLER)
    b1 = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "a@buyer.example", "--name", "Alice")
    b2 = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "c@buyer.example", "--name", "Carol",
                 "--ref", "B-2")
    everyone = ok_json(cfg, "party", "list")
    assert everyone["count"] == 3
    assert everyone["parties"] == [{k: v for k, v in p.items() if k != "created"} for p in (s, b1, b2)]
    buyers = ok_json(cfg, "party", "list", "--role", "buyer")
    assert [p["party"] for p in buyers["parties"]] == [b1["party"], b2["party"]]
    lines = relay(cfg, "party", "list", "--role", "seller").stdout.splitlines()
    assert lines == [f"{s['party']:>7} seller active    ref=S-1 京都 クラフト <shop@seller.example, staff@seller.example>"]
    assert relay(cfg, "party", "list").stdout.splitlines()[1].split()[1:5] == ["buyer", "active", "ref=-", "Alice"]
    assert relay(cfg, "party", "list", "--role", "nobody").returncode == 64


def test_party_update(cfg: Path) -> None:
    s = ok_json(cfg, *SELLER)
    b = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "a@buyer.example", "--name", "Alice")
    pid = str(s["party"])
    renamed = ok_json(cfg, "party", "update", "S-1", "--name", " Kyoto  Craft ")
    assert (renamed["name"], renamed["changed"]) == ("Kyoto Craft", ["name"])
    moved = ok_json(cfg, "party", "update", pid, "--email", "New@Seller.example", "--email", "shop@seller.example")
    assert (moved["emails"], moved["changed"]) == (["new@seller.example", "shop@seller.example"], ["addresses"])
    r = relay(cfg, "party", "update", "new@seller.example", "--status", "suspended")
    assert r.returncode == 0
    assert r.stdout == (f"party {pid}: seller Kyoto Craft <new@seller.example, shop@seller.example>, suspended"
                        " (changed: status)\n")
    same = relay(cfg, "party", "update", pid, "--status", "suspended", "--name", "Kyoto Craft")
    assert same.returncode == 0 and same.stdout.endswith("(unchanged)\n")

    shown = ok_json(cfg, "party", "show", pid)
    assert (shown["name"], shown["emails"], shown["status"]) == ("Kyoto Craft", ["new@seller.example",
                                                                                "shop@seller.example"], "suspended")
    party = stored(cfg, lambda st: st.parties.get(int(pid)))
    assert (party.name, party.emails, party.status) == ("Kyoto Craft", ("new@seller.example", "shop@seller.example"),
                                                        "suspended")
    assert stored(cfg, lambda st: st.parties.by_address("staff@seller.example")) is None  # no longer the seller's
    updates = [e for e in events(cfg) if e["event"] == "party.updated"]
    assert [e["detail"]["fields"] for e in updates] == [["name"], ["addresses"], ["status"]]
    assert all(e["party"] == int(pid) and e["reason"] == "cli.party_update" for e in updates)
    chain = relay(cfg, "audit", "verify")
    assert chain.returncode == 0, chain.stdout
    # the values are personal: the chained detail holds none of them
    raw = stored(cfg, lambda st: st.review.raw_events([e["seq"] for e in updates]))
    assert not any("seller.example" in r["detail"] or "Kyoto" in r["detail"] for r in raw)

    assert "already registered: a@buyer.example" in refused(cfg, "party", "update", pid, "--email", "a@buyer.example")
    assert "nothing to change" in refused(cfg, "party", "update", pid)
    assert "invalid address" in refused(cfg, "party", "update", pid, "--email", "not-an-address")
    assert "no such party" in refused(cfg, "party", "update", "999", "--name", "X")
    refused(cfg, "party", "update", pid, "--status", "erased", status=64)
    assert relay(cfg, "party", "erase", str(b["party"])).returncode == 0
    assert "is erased" in refused(cfg, "party", "update", str(b["party"]), "--name", "Back")
    assert stored(cfg, lambda st: st.parties.get(int(pid))) == party  # nothing refused changed anything


def _world(cfg: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    s = ok_json(cfg, *SELLER)
    b1 = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "a@buyer.example", "--name", "Alice")
    b2 = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "c@buyer.example", "--name", "Carol")
    t1 = ok_json(cfg, "thread", "open", "--buyer", str(b1["party"]), "--seller", "S-1", "--order", "ORD-1")
    t2 = ok_json(cfg, "thread", "open", "--buyer", str(b2["party"]), "--seller", "S-1", "--order", "ORD-2")
    return s, b1, b2, t1, t2


def _listed(t: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in t.items() if k != "created"}


def test_thread_list(cfg: Path) -> None:
    assert relay(cfg, "thread", "list").stdout == "no threads\n"
    s, b1, b2, t1, t2 = _world(cfg)
    ok_json(cfg, "thread", "open", "--buyer", str(b1["party"]), "--seller", "S-1", "--order", "ORD-3")
    everything = ok_json(cfg, "thread", "list")
    assert everything == {"count": 2, "threads": [_listed(t1) | {"orders": ["ORD-1", "ORD-3"]}, _listed(t2)]}
    assert ok_json(cfg, "thread", "list", "--party", "c@buyer.example")["threads"] == [_listed(t2)]
    assert ok_json(cfg, "thread", "list", "--party", "S-1")["count"] == 2
    lines = relay(cfg, "thread", "list", "--party", str(b2["party"])).stdout.splitlines()
    assert lines == [f"{t2['thread']:>7} buyer={b2['party']} seller={s['party']} buyer_alias={t2['buyer_alias']}"
                     f" seller_alias={t2['seller_alias']} orders=ORD-2"]
    assert "no such party" in refused(cfg, "thread", "list", "--party", "nobody@x.example")
    threads = stored(cfg, lambda st: st.threads.listing())
    assert [t.id for t, _ in threads] == [t1["thread"], t2["thread"]]


def test_thread_find(cfg: Path) -> None:
    s, b1, b2, t1, t2 = _world(cfg)
    by_order = ok_json(cfg, "thread", "find", "--order", "ORD-2")
    assert by_order == {"count": 1, "threads": [_listed(t2)]}
    assert "no thread with order \"ORD-9\"" in refused(cfg, "thread", "find", "--order", "ORD-9")
    # an order recorded on two threads (the schema allows it): both, by id
    ok_json(cfg, "thread", "open", "--buyer", str(b2["party"]), "--seller", "S-1", "--order", "ORD-1")
    assert [t["thread"] for t in ok_json(cfg, "thread", "find", "--order", "ORD-1")["threads"]] == [t1["thread"],
                                                                                                  t2["thread"]]
    by_alias = ok_json(cfg, "thread", "find", "--alias", t1["seller_alias"])
    assert by_alias["alias"] == t1["seller_alias"] and by_alias["stands_for"] == s["party"]
    assert by_alias["revoked"] is False and by_alias["threads"] == [_listed(t1)]
    local = t1["buyer_alias"].split("@")[0]
    assert ok_json(cfg, "thread", "find", "--alias", local.upper())["stands_for"] == b1["party"]
    text = relay(cfg, "thread", "find", "--alias", local).stdout.splitlines()
    assert text[0] == f"alias {t1['buyer_alias']} stands for party {b1['party']}" and len(text) == 2
    # a revoked alias still finds its thread (a dispute about old mail), marked revoked
    assert relay(cfg, "alias", "revoke", t1["buyer_alias"]).returncode == 0
    revoked = ok_json(cfg, "thread", "find", "--alias", t1["buyer_alias"])
    assert revoked["revoked"] is True and revoked["threads"][0]["buyer_alias"] is None
    assert relay(cfg, "thread", "find", "--alias", local).stdout.splitlines()[0].endswith("(revoked)")
    assert "no such alias" in refused(cfg, "thread", "find", "--alias", "nosuchalias1")
    assert "is not at relay.example" in refused(cfg, "thread", "find", "--alias", f"{local}@other.example")
    refused(cfg, "thread", "find", status=64)
    refused(cfg, "thread", "find", "--order", "ORD-1", "--alias", local, status=64)


def test_audit_verify_and_party_list_on_postgresql(pg_store_url: str, tmp_path: Path) -> None:
    """store.url naming PostgreSQL: the commands run on that store (migrated when it opens), not on a
    SQLite file in the state directory."""
    cfg = tmp_path / "pg.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n'
                   f'[store]\nurl = "{pg_store_url}"\n')
    s = ok_json(cfg, *SELLER)
    b = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "a@buyer.example", "--name", "Alice")
    assert ok_json(cfg, *SELLER) == s | {"created": False}
    listed = ok_json(cfg, "party", "list")
    assert listed["count"] == 2
    assert listed["parties"] == [{k: v for k, v in p.items() if k != "created"} for p in (s, b)]
    verified = ok_json(cfg, "audit", "verify")
    assert verified["ok"] is True and verified["count"] == 2
    assert relay(cfg, "audit", "verify").stdout.startswith("OK: 2 events")
    assert not (tmp_path / "state" / "relay.db").exists()

    async def read() -> list[int]:
        import asyncpg

        conn = await asyncpg.connect(pg_store_url)
        try:
            return [r[0] for r in await conn.fetch("SELECT id FROM parties ORDER BY id")]
        finally:
            await conn.close()

    assert asyncio.run(read()) == [s["party"], b["party"]]
