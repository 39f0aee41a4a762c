"""The relay as a real subprocess (`python -m relay serve`) for lifecycle and crash tests.

A Daemon writes its TOML config, starts the process with NOTIFY_SOCKET pointing at an
AF_UNIX datagram socket the test owns, and waits for READY=1 — the same handshake systemd does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml(data: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(f"[{section}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in values.items()) + "\n"
                   for section, values in data.items())


def daemon_config(state_dir: Path, dkim_key: Path, *, smtp_port: int, http_port: int = 0,
                  smarthost: int | None = None, **overrides: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "relay": {"domain": "relay.example", "state_dir": str(state_dir)},
        # one process unless a test asks for workers (the default, "auto", is one per CPU)
        "smtp": {"listen": [f"127.0.0.1:{smtp_port}"], "shutdown_timeout": "10s", "workers": 1},
        "delivery": {"transport": "maildir", "retry_base": "0.2s", "retry_max": "0.5s"},
        "dkim": {"selector": "test", "private_key": str(dkim_key)},
        "logging": {"format": "json", "level": "info"},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        # load tests send many unsolicited seller messages in one thread: lift the over-messaging rules
        "rules": {"max_unsolicited_per_order": 1_000_000, "max_unsolicited_per_thread_per_day": 1_000_000},
        # the provisioned domains have no DNS (sender authentication has its own tests)
        "trust": {"authenticate": "off"},
    }
    if smarthost is not None:
        data["delivery"].update({"transport": "smtp", "smarthost": f"127.0.0.1:{smarthost}", "tls": "off",
                                 "connect_timeout": "2s", "command_timeout": "5s"})
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return data


class Daemon:
    def __init__(self, workdir: Path, config: dict[str, Any], *, abstract: bool = False) -> None:
        self.workdir = workdir
        self.config_path = workdir / "relay.toml"
        self.write_config(config)
        self.log_path = workdir / "relay.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # sun_path is short (108 bytes): keep the socket out of pytest's long tmp paths.
        self._sockdir = Path(tempfile.mkdtemp(prefix="relay-notify-"))
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:  # systemd's own choice since v254: "@name" in NOTIFY_SOCKET
            name = f"relay-test-{os.getpid()}-{secrets.token_hex(4)}"
            self.notify.bind("\0" + name)
            self.notify_env = "@" + name
        else:
            self.notify.bind(str(self._sockdir / "notify.sock"))
            self.notify_env = str(self._sockdir / "notify.sock")
        self.notify.setblocking(False)
        self.messages: list[str] = []  # every sd_notify datagram received, in order

    def write_config(self, config: dict[str, Any]) -> None:
        self.config = config
        self.config_path.write_text(toml(config))

    @property
    def smtp_port(self) -> int:
        return int(self.config["smtp"]["listen"][0].rsplit(":", 1)[1])

    def start(self, env: dict[str, str] | None = None, *, new_session: bool = False) -> None:
        """`new_session`: the relay leads its own process group (kill_group() then takes its workers too)."""
        full_env = {**os.environ, "NOTIFY_SOCKET": self.notify_env, "PYTHONPATH": str(ROOT),
                    **(env or {})}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(self.config_path), "serve"],
                                         cwd=self.workdir, env=full_env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=new_session)

    def drain_notify(self) -> list[str]:
        new = []
        while True:
            try:
                new.append(self.notify.recv(4096).decode())
            except BlockingIOError:
                break
        self.messages.extend(new)
        return new

    async def wait_notify(self, key: str, timeout: float = 20.0) -> str:
        """Wait for a datagram containing the line `key` (e.g. READY=1); return the datagram."""
        deadline = time.monotonic() + timeout
        seen = len(self.messages)
        while time.monotonic() < deadline:
            self.drain_notify()
            for msg in self.messages[seen:]:
                if key in msg.split("\n"):
                    return msg
            seen = len(self.messages)
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"relay exited with {self.proc.returncode}:\n{self.log_tail()}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {key} from the relay within {timeout}s:\n{self.log_tail()}")

    async def start_ready(self, env: dict[str, str] | None = None, *, new_session: bool = False) -> None:
        self.start(env, new_session=new_session)
        await self.wait_notify("READY=1")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"relay did not exit within {timeout}s:\n{self.log_tail()}")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def kill_group(self) -> None:
        """SIGKILL the relay's whole process group (started with new_session=True), workers and all."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        self.kill()
        self.notify.close()
        shutil.rmtree(self._sockdir, ignore_errors=True)
