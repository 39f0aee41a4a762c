"""The relay under test: a `python -m relay serve` subprocess with DKIM on, SQLite synchronous=FULL and a smarthost.

store="postgresql": the relay serves from a throwaway PostgreSQL cluster instead (tests/pgcluster.py:
fsync on, loopback, on this same machine), one fresh database per start, provisioned through PgStore;
the cluster is started on first use and stopped by close().

Writes its own relay.toml (smtp, delivery to the sink, dkim key, store) in a fresh directory per start
and provisions one buyer with one thread per recipient; everything else is the installed defaults.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.dns import LocalDns
from bench.dns import available as dns_available
from bench.e2e import ROOT, free_port
from bench.procs import tree
from bench.sink import wait_port

DOMAIN = "relay.example"


def _ours(pid: int, work: Path) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return str(work).encode() in fh.read()
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies (Linux), so no relay outlives an interrupted run."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RelayTarget:

    def __init__(self, base: Path, *, workers: int | None = None, extra_config: str = "",
                 store: str = "sqlite") -> None:
        self.base, self.workers, self.extra_config = base, workers, extra_config
        self.store = store
        self.name = "relay" if store == "sqlite" else "relay-pg"
        self._cluster: Any = None
        self._pg_url = ""
        self._pg_db = ""
        self._pg_conn: Any = None
        self.key = base / "relay-dkim" / "relay.pem"
        self.port = 0
        self.sender = self.sender_alias = ""
        self.recipients: list[str] = []
        self.real_recipients: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._runs = 0
        self.work = base
        self._dns: LocalDns | None = None

    def describe(self) -> str:
        n = self.workers or 1
        return (f"relay (python -m relay serve, {n} worker{'s' if n > 1 else ''}, store {self.store}"
                + (", a local PostgreSQL cluster with fsync on)" if self.store == "postgresql" else ")"))

    def public_txt(self) -> str:
        from relay.dkim import public_txt_from_private
        return public_txt_from_private(self.key.read_bytes())

    async def start(self, sink_port: int, *, recipients: int, sessions: int) -> None:
        from relay.dkim import generate_rsa_key

        self._runs += 1
        self.work = self.base / f"{self.name}-{self._runs}"
        self.work.mkdir(parents=True)
        if not self.key.exists():
            self.key.parent.mkdir(parents=True, exist_ok=True)
            generate_rsa_key(self.key, 2048)
        self.port = free_port()
        dns = ""
        if dns_available() and "[dns]" not in self.extra_config:  # sender authentication: SPF from loopback
            self._dns = LocalDns()
            self._dns.start()
            dns = f'[dns]\nnameservers = ["127.0.0.1"]\nport = {self._dns.port}\n'
        # the metrics listener on an ephemeral port: a fixed one collides with any other relay running
        http = "" if "[http]" in self.extra_config else '[http]\nlisten = "127.0.0.1:0"\n'
        smtp_extra, extra = _take_section(self.extra_config, "smtp")
        if self.store == "postgresql":
            if self._cluster is None:
                from tests.pgcluster import PgCluster

                self._cluster = await asyncio.to_thread(PgCluster().start)
            self._pg_db = f"bench_{self._runs}"
            self._pg_url = await asyncio.to_thread(self._cluster.create_database, self._pg_db)
            extra += f'[store]\nurl = "{self._pg_url}"\n'
        cfg = self.work / "relay.toml"
        cfg.write_text(
            f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{self.work / "state"}"\n'
            f'[smtp]\nlisten = ["127.0.0.1:{self.port}"]\nmax_connections = {sessions + 50}\n'
            f'max_connections_per_ip = {sessions + 50}\nmax_messages_per_ip_per_minute = 100000000\n'
            + (f"workers = {self.workers}\n" if self.workers else "") + smtp_extra
            + f'[delivery]\ntransport = "smtp"\nsmarthost = "127.0.0.1:{sink_port}"\ntls = "off"\n'
            f'[dkim]\nselector = "relay"\nprivate_key = "{self.key}"\n'
            f'[logging]\nlevel = "warning"\nformat = "json"\n{dns}{http}{extra}')
        if self.store == "postgresql":
            await self._provision_pg(cfg, recipients)
        else:
            self._provision(cfg, recipients)
        self._proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=open(self.work / "relay.log", "wb"),
                                      preexec_fn=_die_with_parent)
        try:
            await wait_port(self.port, 60)
        except TimeoutError:
            raise RuntimeError(f"the relay did not start: {self.log_tail()}") from None

    def _provision(self, cfg: Path, recipients: int) -> None:
        from relay.config import load
        from relay.model import Role
        from relay.store import parties, threads
        from relay.store.db import connect_sync, run_in_transaction
        from relay.store.migrate import migrate

        settings = load(cfg)
        conn = connect_sync(settings.db_path)
        migrate(conn)
        self.sender = "buyer0@buyer.example"
        self.recipients, self.real_recipients = [], []

        def unit(c: sqlite3.Connection) -> None:
            buyer = parties.add(c, Role.BUYER, "Buyer Zero", [self.sender])
            for i in range(recipients):
                seller = parties.add(c, Role.SELLER, f"Shop {i}", [f"shop{i}@seller.example"])
                t, _ = threads.open_thread(c, buyer.id, seller.id, order=f"ORD-{i}")
                self.recipients.append(f"{t.seller_alias}@{DOMAIN}")
                self.real_recipients.append(f"shop{i}@seller.example")
                if i == 0:
                    self.sender_alias = f"{t.buyer_alias}@{DOMAIN}"

        run_in_transaction(conn, [unit])
        conn.close()

    async def _provision_pg(self, cfg: Path, recipients: int) -> None:
        from relay.config import load
        from relay.model import Role
        from relay.store.open import open_store

        store = open_store(load(cfg), pool_size=2)
        await store.open()  # migrates the new database
        try:
            self.sender = "buyer0@buyer.example"
            self.recipients, self.real_recipients = [], []
            buyer = await store.parties.add(Role.BUYER, "Buyer Zero", [self.sender])
            for i in range(recipients):
                seller = await store.parties.add(Role.SELLER, f"Shop {i}", [f"shop{i}@seller.example"])
                t, _ = await store.threads.open_thread(buyer.id, seller.id, order=f"ORD-{i}")
                self.recipients.append(f"{t.seller_alias}@{DOMAIN}")
                self.real_recipients.append(f"shop{i}@seller.example")
                if i == 0:
                    self.sender_alias = f"{t.buyer_alias}@{DOMAIN}"
        finally:
            await store.close()

    def roots(self) -> list[int]:
        """The relay's process (and its children); on PostgreSQL also the server's postmaster (and its
        backends): CPU s/1k and memory count the database's share too, as SQLite's is in the relay."""
        pids = [self._proc.pid] if self._proc and self._proc.poll() is None else []
        return pids + self.server_roots() if pids else pids

    def server_roots(self) -> list[int]:
        """The PostgreSQL server's postmaster (none on SQLite)."""
        if self._cluster is not None and self._cluster.root is not None:
            try:
                return [int((self._cluster.root / "data" / "postmaster.pid").read_text().split()[0])]
            except (OSError, ValueError, IndexError):
                pass
        return []

    async def pending(self) -> int:
        """Queue rows not yet delivered (or given up)."""
        if self.store == "postgresql":
            # one connection for the run: a new one every poll would fork a server backend each time,
            # whose CPU would count as the relay's (the postmaster's reaped children are in roots)
            import asyncpg

            if self._pg_conn is None:
                self._pg_conn = await asyncpg.connect(self._pg_url)
            return int(await self._pg_conn.fetchval(
                "SELECT count(*) FROM queue WHERE state IN ('queued', 'sending')"))

        def count() -> int:
            conn = sqlite3.connect(self.work / "state" / "relay.db", timeout=10)
            try:
                row = conn.execute("SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'sending')").fetchone()
                return int(row[0])
            finally:
                conn.close()
        return await asyncio.to_thread(count)

    def log_tail(self) -> str:
        try:
            return (self.work / "relay.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    async def stop(self) -> None:
        """Terminate the relay and whatever it started (worker processes, a policy process pool)."""
        if self._proc and self._proc.poll() is None:
            family = [p for p in tree([self._proc.pid]) if p != self._proc.pid]
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for _ in range(50):
                family = [p for p in family if os.path.exists(f"/proc/{p}") and _ours(p, self.work)]
                if not family:
                    break
                await asyncio.sleep(0.1)
            for pid in family:
                os.kill(pid, signal.SIGKILL)
        self._proc = None
        if self._dns:
            self._dns.stop()
            self._dns = None
        if self._pg_conn is not None:
            await self._pg_conn.close()
            self._pg_conn = None
        if self._cluster is not None and self._pg_db:
            await asyncio.to_thread(self._cluster.drop_database, self._pg_db)
            self._pg_db = ""

    def close(self) -> None:
        """Stop the PostgreSQL cluster, if one was started."""
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None


def _take_section(toml: str, name: str) -> tuple[str, str]:
    """(the keys of [name] in `toml`, the rest): --relay-config may set [smtp] keys, which must go
    into the [smtp] table the bench writes (TOML refuses a table declared twice)."""
    taken: list[str] = []
    rest: list[str] = []
    inside = False
    for line in toml.splitlines(keepends=True):
        if line.strip().startswith("["):
            inside = line.strip() == f"[{name}]"
            if inside:
                continue
        (taken if inside else rest).append(line)
    kept = "".join(taken)
    return (kept if kept.endswith("\n") or not kept else kept + "\n"), "".join(rest)
