"""Start-up failures over real sockets: a listen address in use ends the daemon at once, with one
line naming the key and the address, exit 1, and nothing of it left listening."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon import ROOT, daemon_config, free_port, toml
from tests.dkimtools import rsa_pem


def _occupy(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _cert(tmp_path: Path) -> tuple[str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("relay.example")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return str(cert_file), str(key_file)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("busy", ["smtp", "submission", "http"])
def test_listen_address_in_use(tmp_path: Path, busy: str, workers: int) -> None:
    ports = {"smtp": free_port(), "submission": free_port(), "http": free_port()}
    key = tmp_path / "dkim.pem"
    key.write_bytes(rsa_pem())
    cert_file, key_file = _cert(tmp_path)
    cfg = daemon_config(tmp_path / "state", key, smtp_port=ports["smtp"], http_port=ports["http"],
                        smtp={"workers": workers, "submission_listen": [f"127.0.0.1:{ports['submission']}"]},
                        tls={"cert_file": cert_file, "key_file": key_file}, policy={"workers": 0})
    path = tmp_path / "relay.toml"
    path.write_text(toml(cfg))
    keys = {"smtp": "smtp.listen", "submission": "smtp.submission_listen", "http": "http.listen"}
    holder = _occupy(ports[busy])
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "relay", "--config", str(path), "serve"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        elapsed = time.monotonic() - started
        assert proc.returncode == 1, proc.stderr
        assert elapsed < 30
        assert "Traceback" not in proc.stderr
        plain = []
        for line in proc.stderr.splitlines():
            try:
                json.loads(line)
            except ValueError:
                plain.append(line)
        assert plain == [f"relay: {keys[busy]} 127.0.0.1:{ports[busy]}: address already in use"]
        for name, port in ports.items():
            if name != busy:
                assert not _listening(port), f"{name} port left listening"
    finally:
        holder.close()
