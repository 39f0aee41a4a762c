"""`relay config check` names every problem `relay serve` would fail on, in one run (exit 78), and
`relay serve` on the same file prints the same lines and exits 78 without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.daemon import ROOT


def relay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_every_problem_named_in_one_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'''
[relay]
state_dir = "{tmp_path / 'state'}"
[smtp]
max_connections = 0
[delivery]
transport = "smtp"
maildir = "{blocker / 'outbox'}"
[tls]
cert_file = "{tmp_path / 'missing-cert.pem'}"
key_file = "{tmp_path / 'missing-key.pem'}"
[dkim]
private_key = "{garbage}"
ed25519_key = "{tmp_path / 'missing-ed.pem'}"
[dns]
nameservers = ["192.0.2.53", "ns.example"]
[rules]
critical_words = "{tmp_path / 'missing-words.toml'}"
''')
    expected = ["smtp.max_connections", "delivery.smarthost", "tls.cert_file", "tls.key_file",
                "dkim.private_key", "dkim.ed25519_key", "dns.nameservers", "rules.critical_words"]
    check = relay("config", "check", str(cfg))
    assert check.returncode == 78, check.stderr
    for key in expected:
        assert f": {key}" in check.stderr, (key, check.stderr)
    as_json = relay("config", "check", str(cfg), "--json")
    assert as_json.returncode == 78
    out = json.loads(as_json.stdout)
    assert out["ok"] is False and all(any(f": {k}" in e for e in out["errors"]) for k in expected)

    serve = relay("--config", str(cfg), "serve")
    assert serve.returncode == 78
    assert "Traceback" not in serve.stderr
    assert serve.stderr == check.stderr


def test_unwritable_paths_are_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x\n")
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\nstate_dir = "{blocker / "state"}"\n[delivery]\nmaildir = "{blocker / "outbox"}"\n')
    r = relay("config", "check", str(cfg))
    assert r.returncode == 78
    assert ": relay.state_dir: cannot create" in r.stderr and ": delivery.maildir: cannot create" in r.stderr
    serve = relay("--config", str(cfg), "serve")
    assert serve.returncode == 78 and "Traceback" not in serve.stderr and serve.stderr == r.stderr


def test_bad_certificate_and_policy(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    policy = tmp_path / "policy.toml"
    policy.write_text("[links]\naction = 'vaporize'\n")
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path / "state"}"\n[tls]\ncert_file = "{junk}"\nkey_file = "{junk}"\n'
                   f'[policy]\npath = "{policy}"\n')
    r = relay("config", "check", str(cfg))
    assert r.returncode == 78
    assert "tls.cert_file, tls.key_file: cannot load" in r.stderr and ": policy.path: " in r.stderr


def test_good_configuration_still_passes(tmp_path: Path) -> None:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path / "state"}"\n[dns]\nnameservers = ["127.0.0.1", "::1"]\n')
    r = relay("config", "check", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "does not exist yet" in r.stdout  # a key created at start is a warning, not an error
