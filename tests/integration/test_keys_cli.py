"""`relay keys …` as an operator runs it: init, install, list, export; exit statuses; nothing secret
in what list, install or an error prints."""

from __future__ import annotations

import json
import os
from pathlib import Path

from relay import dkim
from tests.integration.test_cli_polish import run


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\nnode = "mx-1"\n'
                   f'[dkim]\nselector = "2026a"\n{extra}')
    return cfg


def ok(*args: str, cfg: Path) -> dict[str, object]:
    r = run(*args, "--json", cfg=cfg)
    assert r.returncode == 0, (args, r.stderr)
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_init_install_list_export(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    state = tmp_path / "state"
    # without the KEK: a configuration error naming the file and what to do
    r = run("keys", "install", "unsubscribe", cfg=cfg)
    assert r.returncode == 78 and "store.key_file" in r.stderr and "relay keys init" in r.stderr, r.stderr
    assert ok("keys", "init", cfg=cfg)["key_file"] == str(state / "store.key")
    kek = (state / "store.key").read_bytes()
    assert len(kek) == 32 and os.stat(state / "store.key").st_mode & 0o777 == 0o600
    r = run("keys", "init", cfg=cfg)
    assert r.returncode == 1 and "exists" in r.stderr and (state / "store.key").read_bytes() == kek

    # dkim: a key file there already is what is stored (the record stays the one published)
    txt = dkim.generate_rsa_key(state / "dkim" / "2026a.pem")
    pem = (state / "dkim" / "2026a.pem").read_bytes()
    out = ok("keys", "install", "dkim", cfg=cfg)
    assert out["name"] == "dkim/2026a" and out["version"] == 1 and out["txt"] == txt
    # another selector without a file: a new key, its record printed
    out = ok("keys", "install", "dkim", "--selector", "2026b", cfg=cfg)
    assert out["from"] == "new" and str(out["record"]).startswith("2026b._domainkey.relay.example.")
    r = run("keys", "install", "dkim", cfg=cfg)
    assert r.returncode == 1 and "in the store already" in r.stderr
    # unsubscribe: from a given file; too short a one is refused
    (tmp_path / "short").write_bytes(b"s" * 8)
    r = run("keys", "install", "unsubscribe", "--from", str(tmp_path / "short"), cfg=cfg)
    assert r.returncode == 1 and "at least 32" in r.stderr
    secret = os.urandom(32)
    (tmp_path / "u.key").write_bytes(secret)
    assert ok("keys", "install", "unsubscribe", "--from", str(tmp_path / "u.key"), cfg=cfg)["version"] == 1
    assert ok("keys", "install", "unsubscribe", "--force", "--from", str(tmp_path / "u.key"), cfg=cfg)["version"] == 2

    listed = ok("keys", "list", cfg=cfg)["keys"]
    assert [(k["name"], k["version"], k["node"]) for k in listed] == [  # type: ignore[attr-defined]
        ("dkim/2026a", 1, "mx-1"), ("dkim/2026b", 1, "mx-1"), ("unsubscribe", 2, "mx-1")]
    text = run("keys", "list", cfg=cfg)
    assert text.returncode == 0 and "dkim/2026a  version 1" in text.stdout

    # export: decrypted, to a new 0600 file; an existing file is never overwritten
    out_file = tmp_path / "exported.pem"
    assert ok("keys", "export", "dkim/2026a", "--out", str(out_file), cfg=cfg)["out"] == str(out_file)
    assert out_file.read_bytes() == pem and os.stat(out_file).st_mode & 0o777 == 0o600
    r = run("keys", "export", "dkim/2026a", "--out", str(out_file), cfg=cfg)
    assert r.returncode == 1 and "exists" in r.stderr
    ok("keys", "export", "unsubscribe", "--out", str(tmp_path / "u.out"), cfg=cfg)
    assert (tmp_path / "u.out").read_bytes() == secret
    r = run("keys", "export", "dkim/none", "--out", str(tmp_path / "x"), cfg=cfg)
    assert r.returncode == 1 and "no key" in r.stderr

    # a node with another KEK: 78, and no key in the message
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    other.chmod(0o600)
    cfg2 = _config(tmp_path, f'[store]\nkey_file = "{other}"\n')
    r = run("keys", "export", "unsubscribe", "--out", str(tmp_path / "y"), cfg=cfg2)
    assert r.returncode == 78 and "cannot be opened" in r.stderr and not (tmp_path / "y").exists()

    # nothing secret went to the terminal, nor into the database in the clear
    outputs = ""
    for args in (["keys", "list"], ["keys", "list", "--json"], ["keys", "install", "dkim"],
                 ["keys", "export", "unsubscribe", "--out", str(tmp_path / "u.out")]):
        r = run(*args, cfg=cfg)
        outputs += r.stdout + r.stderr
    stored = (state / "relay.db").read_bytes()
    body = b"".join(pem.splitlines()[1:-1])  # the PEM's base64 without its armour lines
    for material in (kek, secret, pem):
        for form in (material.hex(), material.decode("latin-1")):
            assert form not in outputs
    assert secret not in stored and body[:64] not in stored and kek not in stored


def test_dkim_show_reads_the_stored_key(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 'source = "store"\n')  # in [dkim]
    r = run("dkim", "show", cfg=cfg)
    assert r.returncode == 78 and "store.key_file" in r.stderr
    ok("keys", "init", cfg=cfg)
    r = run("dkim", "show", cfg=cfg)
    assert r.returncode == 1 and "relay keys install dkim --selector 2026a" in r.stderr
    installed = ok("keys", "install", "dkim", cfg=cfg)
    shown = ok("dkim", "show", cfg=cfg)
    assert shown["records"] == [{"selector": "2026a", "name": "2026a._domainkey.relay.example",  # type: ignore[comparison-overlap]
                                 "txt": installed["txt"], "record": installed["record"], "key": "store:dkim/2026a"}]
