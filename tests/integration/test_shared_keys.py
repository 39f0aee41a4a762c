"""Keys shared through the store (dkim.source, rules.unsubscribe_secret_source = "store"): two
relays with separate state directories, one store file and one KEK sign with the same DKIM key and
give the same unsubscribe tokens; a new selector installed in the store is taken up on reload; a
node without the KEK, or with another one, refuses to start with exit 78 and one readable line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dkim as dkimpy

from relay.app import Relay
from relay.cli import main
from relay.config import load
from relay.rules import tokens
from tests.daemon import ROOT
from tests.dkimtools import dict_dnsfunc
from tests.support import DOMAIN, Sink, message, provision, send_expect

BASE_URL = "https://market.example/mail"


def config(tmp_path: Path, node: str, *, sink: int = 25, selector: str = "shared", key_file: Path | None = None) -> Path:
    """Node `node`'s configuration: its own state directory, the shared store file and KEK."""
    cfg = tmp_path / f"{node}.toml"
    cfg.write_text(f"""
[relay]
domain = "{DOMAIN}"
state_dir = "{tmp_path / node}"
node = "{node}"
http_base_url = "{BASE_URL}"
[smtp]
listen = ["127.0.0.1:0"]
workers = 1
[delivery]
transport = "smtp"
smarthost = "127.0.0.1:{sink}"
tls = "off"
retry_base = "0.2s"
retry_max = "1s"
[dkim]
selector = "{selector}"
source = "store"
[rules]
unsubscribe_secret_source = "store"
max_unsolicited_per_order = 10
max_unsolicited_per_thread_per_day = 10
[store]
url = "sqlite:///{tmp_path / 'shared.db'}"
key_file = "{key_file or tmp_path / 'store.key'}"
[logging]
format = "json"
[http]
listen = "127.0.0.1:0"
[trust]
authenticate = "off"
""")
    return cfg


def cli(cfg: Path, *args: str, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["--config", str(cfg), *args, "--json"]) == 0, capsys.readouterr().err
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def unsubscribe_token(data: bytes) -> str:
    m = re.search(rb"<" + re.escape(BASE_URL.encode()) + rb"/unsubscribe/([a-z0-9.]+)>", data)
    assert m, data[:2000]
    return m.group(1).decode()


async def test_two_nodes_sign_with_the_same_key_and_make_the_same_tokens(tmp_path: Path, sink: Sink,
                                                                         capsys: Any) -> None:
    a, b = config(tmp_path, "mx-a", sink=sink.port), config(tmp_path, "mx-b", sink=sink.port)
    cli(a, "keys", "init", capsys=capsys)
    record = cli(a, "keys", "install", "dkim", capsys=capsys)
    cli(a, "keys", "install", "unsubscribe", capsys=capsys)
    zone = {f"shared._domainkey.{DOMAIN}": record["txt"]}
    world = provision(load(a))
    assert load(b).db_path == load(a).db_path

    received = []
    for cfg in (a, b):  # one after the other, on the same store file
        relay = Relay(load(cfg), config_path=cfg)
        await relay.start()
        try:
            code, _ = await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
                                        message(world.seller_email, world.buyer_alias, f"From {cfg.stem}"))
            assert code == 250
            received.append((await sink.wait_for(len(received) + 1))[-1].data)
        finally:
            await relay.stop(grace=2)
    for data in received:
        assert b"s=shared;" in re.sub(rb"\s", b"", data.split(b"\r\n\r\n")[0])
        assert dkimpy.verify(data, dnsfunc=dict_dnsfunc(zone))
    token_a, token_b = (unsubscribe_token(d) for d in received)
    assert token_a == token_b
    # the token is the stored secret's, exported by the operator
    cli(a, "keys", "export", "unsubscribe", "--out", str(tmp_path / "u.key"), capsys=capsys)
    secret = (tmp_path / "u.key").read_bytes()
    assert tokens.token_valid(secret, token_a, world.thread_id, world.buyer_id, world.seller_id)
    # nothing was made or kept on either node's disk
    for node in ("mx-a", "mx-b"):
        assert not (tmp_path / node / "dkim").exists() and not (tmp_path / node / tokens.SECRET_FILE).exists()


async def test_reload_takes_up_a_new_selector_from_the_store(tmp_path: Path, sink: Sink, capsys: Any) -> None:
    cfg = config(tmp_path, "mx-a", sink=sink.port)
    cli(cfg, "keys", "init", capsys=capsys)
    first = cli(cfg, "keys", "install", "dkim", capsys=capsys)
    cli(cfg, "keys", "install", "unsubscribe", capsys=capsys)
    world = provision(load(cfg))
    relay = Relay(load(cfg), config_path=cfg)
    await relay.start()
    try:
        assert relay.ctx is not None and relay.ctx.signer.selector == "shared"
        # a selector whose key is not in the store yet: the reload is refused, the old key stays
        config(tmp_path, "mx-a", sink=sink.port, selector="next")
        assert not await relay.reload()
        assert relay.ctx.signer.selector == "shared"
        second = cli(cfg, "keys", "install", "dkim", "--selector", "next", capsys=capsys)
        assert await relay.reload()
        assert relay.ctx.signer.selector == "next" and relay.worker is not None
        assert relay.worker.signer is relay.ctx.signer
        code, _ = await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
                                    message(world.seller_email, world.buyer_alias, "after the switch"))
        assert code == 250
        data = (await sink.wait_for(1))[0].data
        zone = {f"shared._domainkey.{DOMAIN}": first["txt"], f"next._domainkey.{DOMAIN}": second["txt"]}
        assert b"s=next;" in re.sub(rb"\s", b"", data.split(b"\r\n\r\n")[0])
        assert dkimpy.verify(data, dnsfunc=dict_dnsfunc(zone))
    finally:
        await relay.stop(grace=2)


def serve(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), "serve"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_node_without_the_kek_refuses_to_start(tmp_path: Path, capsys: Any) -> None:
    cfg = config(tmp_path, "mx-a")
    cli(cfg, "keys", "init", capsys=capsys)
    cli(cfg, "keys", "install", "dkim", capsys=capsys)
    cli(cfg, "keys", "install", "unsubscribe", capsys=capsys)
    kek = (tmp_path / "store.key").read_bytes()
    # no KEK file on this node
    r = serve(config(tmp_path, "mx-b", key_file=tmp_path / "mx-b" / "store.key"))
    assert r.returncode == 78, r.stderr
    assert "store.key_file" in r.stderr and "no such file" in r.stderr and "Traceback" not in r.stderr
    # another node's KEK: the stored keys do not open
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    other.chmod(0o600)
    r = serve(config(tmp_path, "mx-c", key_file=other))
    assert r.returncode == 78, r.stderr
    assert "cannot be opened" in r.stderr and "Traceback" not in r.stderr and kek.hex() not in r.stderr
    # the KEK, but a selector not installed: says which command installs it
    r = serve(config(tmp_path, "mx-d", selector="missing"))
    assert r.returncode == 78 and "relay keys install dkim" in r.stderr and "Traceback" not in r.stderr, r.stderr


async def test_relay_start_without_the_kek_is_a_config_error(tmp_path: Path, capsys: Any) -> None:
    """In a worker process (or an embedding program) the start itself refuses, as ConfigError."""
    from relay.errors import ConfigError

    cfg = config(tmp_path, "mx-a")
    relay = Relay(load(cfg))
    try:
        await relay.start()
    except ConfigError as exc:
        assert "store.key_file" in str(exc)
    else:
        raise AssertionError("started without the KEK")
    finally:
        await asyncio.wait_for(relay.stop(0), 10)
