"""The command line as an operator and a script meet it: cheap to start, documented exit statuses,
quiet on a closed pipe, text without Python reprs."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import ROOT

#: What `relay --help` must not import (each is tens of milliseconds or more).
HEAVY = ("aiosmtpd", "aiosmtplib", "dkim", "pydantic", "selectolax", "pypdf", "PIL", "zxingcpp", "email_validator",
         "dns", "aiosqlite", "cryptography", "structlog", "prometheus_client", "relay.config", "relay.app",
         "relay.store", "relay.policy", "relay.message", "relay.supervisor", "relay.pipeline", "relay.smtp")


def run(*args: str, cfg: Path | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    pre = ["--config", str(cfg)] if cfg else []
    return subprocess.run([sys.executable, "-m", "relay", *pre, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)  # type: ignore[call-overload]


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of the argparse tree, as the words that name it (`("queue", "list")`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from command_paths(sub, path)
                else:
                    yield path


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.startswith(HEAVY) and (m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY)))}


def test_help_imports_nothing_heavy() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "relay", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and "usage: relay" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "relay.cli" in imported
    assert heavy(imported) == set()


def test_every_subcommand_help_imports_nothing_heavy() -> None:
    script = """
import contextlib, io, json, sys
import relay.cli
from tests.integration.test_cli_polish import command_paths
paths = list(command_paths(relay.cli.build_parser()))
for path in paths:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            relay.cli.build_parser().parse_args([*path, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, (path, exc.code)
    assert "usage: relay " + " ".join(path) in " ".join(out.getvalue().split()), path
print(json.dumps({"paths": paths, "modules": sorted(sys.modules)}))
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["paths"]) > 30
    assert heavy(set(out["modules"])) == set()


@pytest.mark.parametrize("argv", [[], ["nosuch"], ["party", "add"], ["thread", "show", "one"], ["queue", "list", "--bogus"],
                                  ["dkim"]])
def test_usage_errors_exit_64(tmp_path: Path, argv: list[str]) -> None:
    r = run(*argv)
    assert r.returncode == 64, (argv, r.returncode, r.stderr)
    assert "usage: relay" in r.stderr and "error:" in r.stderr and "Traceback" not in r.stderr


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{tmp_path / "state"}"\n')
    return cfg


def test_closed_pipe_is_quiet(tmp_path: Path) -> None:
    from relay.config import load
    from relay.model import Role
    from relay.store import parties
    from relay.store.db import connect_sync, run_in_transaction
    from relay.store.migrate import migrate

    cfg = _config(tmp_path)
    s = load(cfg)
    s.relay.state_dir.mkdir(parents=True)
    conn = connect_sync(s.db_path)
    migrate(conn)
    # far more than a pipe holds (64 KiB), so the writer is still writing when the reader leaves
    units = [lambda c, i=i: parties.add(c, Role.BUYER, f"Buyer {i}", [f"b{i}@b.example"]) for i in range(1500)]
    for i in range(0, len(units), 500):
        assert all(ok for ok, _ in run_in_transaction(conn, units[i : i + 500]))
    conn.close()
    for extra in ([], ["--json"]):
        proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "audit", "tail", "-n", "0", *extra],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()  # `| head -1`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, err
        assert err == ""


def test_text_output_has_no_python_reprs(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    outputs = []

    def ok(*args: str) -> str:
        r = run(*args, cfg=cfg)
        assert r.returncode == 0, (args, r.stderr)
        outputs.append((args, r.stdout))
        return r.stdout

    ok("party", "add", "--role", "seller", "--email", "s@s.example", "--email", "t@s.example", "--name", "Shop")
    ok("party", "add", "--role", "buyer", "--email", "b@b.example", "--name", "B")
    ok("thread", "open", "--buyer", "b@b.example", "--seller", "s@s.example", "--order", "O-1")
    for args in (["thread", "show", "1"], ["party", "show", "1"], ["party", "show", "2"], ["party", "rules", "1"],
                 ["party", "rules", "2"], ["party", "optout", "2", "on"], ["party", "vacation", "1", "on"],
                 ["metrics", "seller", "1"], ["queue", "list"], ["audit", "head"], ["audit", "verify"],
                 ["config", "check"], ["db", "migrate"], ["retention", "run"], ["dkim", "keygen"], ["dkim", "show"]):
        ok(*args)
    repr_like = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\['|\{'|datetime\.datetime\(|\(\)|\[\]|\{\}")
    for args, text in outputs:
        assert not repr_like.search(text), (args, text)
    bad = run("party", "add", "--role", "buyer", "--email", "x@", "--name", "X", cfg=cfg)
    assert bad.returncode == 1 and "'x@'" not in bad.stderr and '"x@"' in bad.stderr, bad.stderr
