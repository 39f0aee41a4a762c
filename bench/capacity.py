"""The store's cost per accepted message, on each backend (docs/capacity.md).

    python -m bench.capacity [--messages 300] [--store sqlite,postgresql] [--scenario 5k]

One relay in this process (smtp.workers = 1, delivery over SMTP to the bench's counting sink), a
buyer and a seller, N messages of the scenario (the throughput bench's 5 KB text by default) sent by
16 sessions and delivered; after a warm-up of 5. Per accepted-and-delivered message:

- statements (database round trips), by kind and table: SQLite's trace callback
  (relay/store/db.STATEMENT_TRACE), asyncpg's query logger on the pool (PgDatabase.statement_trace;
  BEGIN, COMMIT and the pool's reset on release are round trips too; COPY of large contents is not
  seen, and the 5 KB message has none);
- write transactions (the store's own count; SQLite's group commit puts several units in one);
- rows inserted per table (count(*) before and after), and on PostgreSQL rows updated and deleted
  (pg_stat_user_tables, read once the relay has disconnected, so its backends' statistics are in);
- bytes written: on PostgreSQL the WAL (pg_current_wal_lsn() difference) and what the server's
  processes wrote to storage (/proc/PID/io write_bytes over the postmaster's tree); on SQLite what
  this process wrote to storage (write_bytes: WAL, checkpoints into the database, content files —
  the load generator and the sink write nothing to disk) and the growth of the database file;
- on PostgreSQL, the server's CPU seconds per 1,000 messages (its share on a primary).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.e2e import free_port
from bench.load import python_client
from bench.messages import SCENARIOS, Message
from bench.procs import cpu_seconds, tree
from bench.sink import CountingSink

_TABLE = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|SELECT|BEGIN|COMMIT|ROLLBACK|"
                    r"SAVEPOINT|RELEASE|LOCK|PRAGMA|SET|RESET|CLOSE)\s*(\w+)?", re.I | re.S)


def kind_of(sql: str) -> str:
    """'INSERT queue', 'UPDATE messages', 'SELECT', 'BEGIN', … for one statement's text."""
    text = sql.strip()
    if text.upper().startswith("SELECT PG_ADVISORY_UNLOCK_ALL"):
        return "pool reset"
    m = _TABLE.match(text)
    if not m:
        return text.split(None, 1)[0].upper() if text else "?"
    verb = m.group(1).split()[0].upper()
    if verb in ("INSERT", "UPDATE", "DELETE"):
        return f"{verb} {m.group(2)}"
    if verb == "SELECT" and "pg_advisory_xact_lock" in text:
        return "SELECT (audit lock)"
    return verb


def io_by_process(pids: list[int]) -> dict[str, int]:
    """write_bytes per process kind (a PostgreSQL process's title: 'walwriter', 'relay … COMMIT', …)."""
    out: collections.Counter[str] = collections.Counter()
    for pid in pids:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    name = title.split(":", 1)[1].split()[0] if title.startswith("postgres:") else title.split()[0]
                    out[name] += int(line.split()[1])
        except (OSError, IndexError):
            continue
    return dict(out)


def io_bytes(pids: list[int]) -> int:
    return sum(io_by_process(pids).values())


def settings_for(state: Path, sink_port: int, url: str | None, key: Path) -> Any:
    from relay.config import settings_from_dict

    data: dict[str, Any] = {
        "relay": {"domain": "relay.example", "state_dir": str(state)},
        "smtp": {"listen": ["127.0.0.1:0"], "workers": 1, "max_connections_per_ip": 1000,
                 "max_messages_per_ip_per_minute": 100_000_000},
        "delivery": {"transport": "smtp", "smarthost": f"127.0.0.1:{sink_port}", "tls": "off"},
        "dkim": {"selector": "relay", "private_key": str(key)},
        "logging": {"level": "warning", "format": "json"},
        "http": {"listen": "127.0.0.1:0"},
        "trust": {"authenticate": "off"},
        "rules": {"max_unsolicited_per_order": 1_000_000, "max_unsolicited_per_thread_per_day": 1_000_000},
    }
    if url:
        data["store"] = {"url": url}
    return settings_from_dict(data)


async def _table_counts(store: Any, url: str | None, db_path: Path) -> dict[str, int]:
    if url:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            names = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in names}
        finally:
            await conn.close()
    conn2 = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in conn2.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                             " AND name NOT LIKE 'sqlite_%'")]
        return {t: conn2.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in names}
    finally:
        conn2.close()


async def _pg_stats(url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        tables = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in await conn.fetch(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")}
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        return {"lsn": lsn, "tables": tables, "size": size}
    finally:
        await conn.close()


async def _wal_diff(url: str, a: str, b: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", b, a))
    finally:
        await conn.close()


async def measure(backend: str, n: int, scenario: str, work: Path, cluster: Any) -> dict[str, Any]:
    from relay import dkim
    from relay.app import Relay
    from relay.model import Role
    from relay.store import db as sqlite_db
    from relay.store.pg.db import PgDatabase

    key = work / "dkim.pem"
    if not key.exists():
        dkim.generate_rsa_key(key, 2048)
    url = cluster.create_database(f"cap_{int(time.time() * 1000)}") if backend == "postgresql" else None
    state = work / f"state-{backend}"
    sink = CountingSink(free_port())
    await sink.start()
    statements: collections.Counter[str] = collections.Counter()
    counting = False

    def trace(sql: str) -> None:
        if counting:
            statements[kind_of(sql)] += 1

    sqlite_db.STATEMENT_TRACE = trace
    PgDatabase.statement_trace = trace
    relay = Relay(settings_for(state, sink.port, url, key))
    await relay.start()
    try:
        store = relay.store
        buyer = await store.parties.add(Role.BUYER, "Buyer", ["buyer0@buyer.example"])
        seller = await store.parties.add(Role.SELLER, "Shop", ["shop0@seller.example"])
        thread, _ = await store.threads.open_thread(buyer.id, seller.id, order="ORD-1")
        message = Message(SCENARIOS[scenario], "buyer0@buyer.example", [f"{thread.seller_alias}@relay.example"])
        port = relay.addresses[0][1]
        warm = await python_client(port, message, 5, 5, reuse=False, first=10_000_000)
        while sink.count < warm.accepted:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        db_path = relay.settings.db_path
        rows0 = await _table_counts(store, url, db_path)
        pg0 = await _pg_stats(url) if url else None
        server = [int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])] if url else []
        io0 = io_bytes(tree(server)) if url else io_bytes([_self_pid()])
        by0 = io_by_process(tree(server))
        cpu0 = cpu_seconds(server) if url else 0.0
        size0 = _files_size(db_path) if not url else 0
        tx0 = store.transactions
        units0 = getattr(store, "units", tx0)
        counting = True
        t0 = time.perf_counter()
        load = await python_client(port, message, n, min(16, n), reuse=False)
        while sink.count < warm.accepted + load.accepted or await _pending(store, url, db_path):
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(0.3)  # the last delivery's bookkeeping
        counting = False
        io1 = io_bytes(tree(server)) if url else io_bytes([_self_pid()])
        by1 = io_by_process(tree(server))
        cpu1 = cpu_seconds(server) if url else 0.0
        tx1, units1 = store.transactions, getattr(store, "units", store.transactions)
        rows1 = await _table_counts(store, url, db_path)
    finally:
        if url in _conns:
            await _conns.pop(url).close()
        await relay.stop(grace=5)
        await sink.stop()
        sqlite_db.STATEMENT_TRACE = None
        PgDatabase.statement_trace = None
    m = load.accepted
    out: dict[str, Any] = {"backend": backend, "messages": m, "seconds": round(elapsed, 2),
                           "statements_per_msg": round(sum(statements.values()) / m, 2),
                           "by_kind": {k: round(v / m, 2) for k, v in statements.most_common()},
                           "write_transactions_per_msg": round((tx1 - tx0) / m, 3),
                           "units_per_msg": round((units1 - units0) / m, 3),
                           "rows_inserted_per_msg": {t: round((rows1[t] - rows0.get(t, 0)) / m, 2)
                                                     for t in sorted(rows1) if rows1[t] != rows0.get(t, 0)},
                           "storage_bytes_per_msg": round((io1 - io0) / m)}
    if url:
        await asyncio.sleep(1.0)
        pg1 = await _pg_stats(url)
        assert pg0 is not None
        out["wal_bytes_per_msg"] = round(await _wal_diff(url, pg0["lsn"], pg1["lsn"]) / m)
        out["db_growth_bytes_per_msg"] = round((pg1["size"] - pg0["size"]) / m)
        out["rows_updated_per_msg"] = {t: round((v[1] - pg0["tables"].get(t, (0, 0, 0))[1]) / m, 2)
                                       for t, v in sorted(pg1["tables"].items())
                                       if v[1] != pg0["tables"].get(t, (0, 0, 0))[1]}
        out["rows_deleted_per_msg"] = {t: round((v[2] - pg0["tables"].get(t, (0, 0, 0))[2]) / m, 2)
                                       for t, v in sorted(pg1["tables"].items())
                                       if v[2] != pg0["tables"].get(t, (0, 0, 0))[2]}
        out["storage_bytes_per_msg_by_process"] = {k: round((v - by0.get(k, 0)) / m) for k, v in by1.items()
                                                   if v != by0.get(k, 0)}
        out["server_cpu_s_per_1k"] = round((cpu1 - cpu0) / m * 1000, 3)
    else:
        out["db_growth_bytes_per_msg"] = round((_files_size(db_path) - size0) / m)
    return out


def _self_pid() -> int:
    import os

    return os.getpid()


def _files_size(db_path: Path) -> int:
    return sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal")) if p.exists())


_conns: dict[str, Any] = {}


async def _pending(store: Any, url: str | None, db_path: Path) -> int:
    if url:  # one connection (a new one per poll forks a backend, whose CPU would count as the server's)
        import asyncpg

        if url not in _conns:
            _conns[url] = await asyncpg.connect(url)
        return int(await _conns[url].fetchval("SELECT count(*) FROM queue WHERE state IN ('queued', 'sending')"))
    conn2 = sqlite3.connect(db_path, timeout=10)
    try:
        return int(conn2.execute("SELECT count(*) FROM queue WHERE state IN ('queued', 'sending')").fetchone()[0])
    finally:
        conn2.close()


def main(argv: list[str] | None = None) -> None:
    import json

    ap = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--store", default="sqlite,postgresql")
    ap.add_argument("--scenario", default="5k", choices=sorted(SCENARIOS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cluster = None
    rows = []
    with tempfile.TemporaryDirectory(prefix="relay-capacity-") as tmp:
        try:
            for backend in args.store.split(","):
                if backend == "postgresql" and cluster is None:
                    from tests.pgcluster import PgCluster

                    cluster = PgCluster().start()
                row = asyncio.run(measure(backend, args.messages, args.scenario, Path(tmp), cluster))
                rows.append(row)
                print(json.dumps(row, indent=1), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
