"""DKIM key rotation as an operator does it: `relay dkim keygen --selector NEW`, publish, switch
dkim.selector. Mail signed before and after verifies with Perl Mail::DKIM (not dkimpy) and with the
relay's own inbound verifier, each against the records served by a local DNS server."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relay.app import load_signer
from relay.config import DnsSection, load
from relay.pipeline.headers import fields
from relay.trust import dkimcheck
from relay.trust.dns import Resolver
from tests.dkimtools import dkimproxy_verify, dns_server, tool
from tests.support import message

DOMAIN = "relay.example"


def keygen(cfg: Path, *args: str) -> dict[str, str]:
    r = subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), "dkim", "keygen", *args, "--json"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    out: dict[str, str] = json.loads(r.stdout)
    return out


@pytest.mark.skipif(tool("dkimproxy-verify") is None, reason="dkimproxy-verify (libmail-dkim-perl) not installed")
def test_rotation_old_and_new_selector_verify(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "relay.toml"

    def config(selector: str) -> None:
        cfg.write_text(f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{state}"\n[dkim]\nselector = "{selector}"\n')

    config("2026a")
    old = keygen(cfg)
    new = keygen(cfg, "--selector", "2026b")
    assert new["selector"] == "2026b" and Path(new["key_file"]).exists()
    data = message("Shop <shop@seller.example>", "x@relay.example")
    signed_old = load_signer(load(cfg)).sign(data)
    config("2026b")  # the switch
    signed_new = load_signer(load(cfg)).sign(data)
    assert b"s=2026a;" in signed_old.replace(b" ", b"") and b"s=2026b;" in signed_new.replace(b" ", b"")
    zone = old["record"] + "\n" + new["record"] + "\n"
    with dns_server(zone) as (port, resolver):
        for signed, selector in ((signed_old, "2026a"), (signed_new, "2026b")):
            results = re.findall(r"^verify result: (.*)$", dkimproxy_verify(signed, port), flags=re.M)
            assert results[:1] == ["pass"], results
            assert (f"{selector}._domainkey.{DOMAIN}.", "TXT") in resolver.queries
            ours = Resolver(DnsSection(nameservers=["127.0.0.1"], port=port, timeout=3))
            headers = [v for n, v in fields(signed) if n == "dkim-signature"]
            assert asyncio.run(dkimcheck.verify_all(ours, signed, headers, 3)) == [(DOMAIN, "pass")]
