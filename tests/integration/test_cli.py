"""The provisioning CLI, run as a real subprocess (as operators and scripts run it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "relay.toml"
    p.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n')
    return p


def relay(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60)


def ok_json(cfg: Path, *args: str) -> dict:
    r = relay(cfg, *args, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_provisioning_flow(cfg: Path) -> None:
    seller = ok_json(cfg, "party", "add", "--role", "seller", "--email", "Shop@Seller.example",
                     "--email", "staff@seller.example", "--name", "京都クラフト", "--ref", "S-1")
    buyer = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "alice@buyer.example", "--name", "Alice")
    assert seller["emails"] == ["shop@seller.example", "staff@seller.example"]
    t = ok_json(cfg, "thread", "open", "--buyer", str(buyer["party"]), "--seller", "S-1", "--order", "ORD-9")
    assert t["buyer_alias"].endswith("@relay.example") and t["created"] is True
    again = ok_json(cfg, "thread", "open", "--buyer", "alice@buyer.example", "--seller", str(seller["party"]))
    assert (again["thread"], again["buyer_alias"], again["created"]) == (t["thread"], t["buyer_alias"], False)
    shown = ok_json(cfg, "thread", "show", str(t["thread"]))
    assert shown["orders"] == ["ORD-9"]
    party = ok_json(cfg, "party", "show", "shop@seller.example")
    assert party["threads"] == [t["thread"]] and party["name"] == "京都クラフト"
    revoked = ok_json(cfg, "alias", "revoke", t["buyer_alias"])
    assert revoked["revoked"] is True
    r = relay(cfg, "alias", "revoke", t["buyer_alias"])
    assert r.returncode == 1 and "already revoked" in r.stderr
    tail = relay(cfg, "audit", "tail", "--json")
    events = [json.loads(line)["event"] for line in tail.stdout.splitlines()]
    assert events == ["party.added", "party.added", "thread.opened", "order.recorded", "alias.revoked"]


def test_import_aliases(cfg: Path) -> None:
    s = ok_json(cfg, "party", "add", "--role", "seller", "--email", "s@s.example", "--name", "S")
    b = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "b@b.example", "--name", "B")
    b2 = ok_json(cfg, "party", "add", "--role", "buyer", "--email", "c@b.example", "--name", "C")
    short = relay(cfg, "thread", "open", "--buyer", str(b["party"]), "--seller", str(s["party"]),
                  "--buyer-alias", "abc", "--seller-alias", "sellerold1")
    assert short.returncode == 1 and "8 to 64" in short.stderr
    t = ok_json(cfg, "thread", "open", "--buyer", str(b["party"]), "--seller", str(s["party"]),
                "--buyer-alias", "BuyerOld1", "--seller-alias", "sellerold1@relay.example")
    assert t["buyer_alias"] == "buyerold1@relay.example" and t["seller_alias"] == "sellerold1@relay.example"
    taken = relay(cfg, "thread", "open", "--buyer", str(b2["party"]), "--seller", str(s["party"]),
                  "--buyer-alias", "buyerold1", "--json")
    assert taken.returncode == 1 and "taken" in taken.stderr
    assert json.loads(taken.stdout)["error"]


@pytest.mark.parametrize("bad", ["not-an-address", "a@b@c", "x@", "a\r\nb@x.example", "<a@x.example>"])
def test_invalid_address_is_one_line_error(cfg: Path, bad: str) -> None:
    r = relay(cfg, "party", "add", "--role", "buyer", "--email", bad, "--name", "X")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "invalid address" in r.stderr


def test_dkim_keygen_prints_record(cfg: Path) -> None:
    out = ok_json(cfg, "dkim", "keygen")
    assert out["name"] == "relay._domainkey.relay.example" and out["txt"].startswith("v=DKIM1; k=rsa; p=")
    assert (Path(out["key_file"]).stat().st_mode & 0o777) == 0o600
    assert relay(cfg, "dkim", "keygen").returncode == 1  # refuses to overwrite
    rot = ok_json(cfg, "dkim", "keygen", "--selector", "r2026")
    assert rot["key_file"].endswith("r2026.pem")


def test_dkim_show_prints_the_record_of_the_key_in_use(cfg: Path) -> None:
    import base64

    import dkim as dkimpy
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    made = ok_json(cfg, "dkim", "keygen")
    refused = relay(cfg, "dkim", "keygen")
    assert refused.returncode == 1 and "relay dkim show" in refused.stderr
    shown = ok_json(cfg, "dkim", "show")
    (rec,) = shown["records"]
    assert rec["name"] == "relay._domainkey.relay.example" and rec["txt"] == made["txt"]
    text = relay(cfg, "dkim", "show")
    assert text.returncode == 0 and text.stdout.strip() == rec["record"]
    # zone-file syntax: owner, IN TXT, then quoted character-strings of at most 255 octets
    owner, cls, rtype, rest = text.stdout.strip().split(" ", 3)
    assert (owner, cls, rtype) == ("relay._domainkey.relay.example.", "IN", "TXT")
    strings = [s.strip('"') for s in rest.split('" "')]
    assert len(strings) > 1 and all(len(s.strip('"')) <= 255 for s in strings)
    value = "".join(s.strip('"') for s in strings)
    # independently: the p= of the record is the public half of the private key on disk
    tags = dict(t.strip().split("=", 1) for t in value.split(";"))
    public = serialization.load_der_public_key(base64.b64decode(tags["p"]))
    private = serialization.load_pem_private_key(Path(made["key_file"]).read_bytes(), password=None)
    signature = private.sign(b"probe", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg,union-attr]
    public.verify(signature, b"probe", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg,union-attr]
    # and dkimpy verifies a message signed with the key against the shown record
    msg = b"From: a@relay.example\r\nTo: b@example.com\r\nSubject: x\r\n\r\nhello\r\n"
    sig = dkimpy.sign(msg, b"relay", b"relay.example", Path(made["key_file"]).read_bytes(),
                      include_headers=[b"from", b"to", b"subject"])
    assert dkimpy.verify(sig + msg, dnsfunc=lambda name, timeout=5: value.encode())
