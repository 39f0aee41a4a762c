"""The benchmark: the relay (and with --peer postfix, Postfix + OpenDKIM) under the same load, side by side.

Reads nothing but its options. Per scenario and target: a fresh server and smarthost sink, a throughput
pass (messages/s until the sink has them all, CPU s per 1,000, peak RSS of all processes) and a latency
pass at half that rate (p50/p95/p99 from end of DATA to 250). Figures only: nothing passes or fails.

    python -m bench [--peer postfix [--peer-signing opendkim|none|both]] [--smoke] [--scenario 5k,100k,2m,10m] [--messages N] [--rounds N]
                    [--store sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.e2e import ROOT, free_port
from bench.load import LoadResult, python_client, smtp_source, smtp_source_path
from bench.messages import SCENARIOS, Message, Scenario
from bench.procs import RssSampler, cpu_seconds
from bench.report import describe_machine, print_table
from bench.sink import CountingSink


def pick_loader(args: argparse.Namespace, scenario: Scenario) -> str:
    """smtp-source where it sends unique messages (-l, 5 KB text); the Python client for prepared MIME."""
    if args.loader == "auto":
        native = smtp_source_path() and args.recipients == 1 and scenario.name == "5k"
        return "smtp-source" if native else "python"
    if args.loader == "smtp-source" and (not smtp_source_path() or args.recipients != 1):
        return "python"
    return str(args.loader)


async def settle(target: Any, sink: CountingSink, expected: int, timeout: float) -> bool:
    """Wait until the target's queue is empty and the sink has taken `expected` messages in all."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if sink.count >= expected and await target.pending() == 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def drive(target: Any, message: Message, scenario: Scenario, loader: str, count: int, sessions: int,
                args: argparse.Namespace, work: Path) -> LoadResult:
    if loader == "smtp-source":
        if scenario.name == "5k":
            return await smtp_source(target.port, message, count, sessions, reuse=args.reuse,
                                     size=scenario.size - 200, file=None)
        path = work / f"{scenario.name}.eml"
        path.write_bytes(message.file_text())
        return await smtp_source(target.port, message, count, sessions, reuse=args.reuse, size=None, file=path)
    return await python_client(target.port, message, count, sessions, reuse=args.reuse)


async def measure(target: Any, scenario: Scenario, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    count = args.messages or (scenario.smoke_messages if args.smoke else scenario.messages)
    sessions = min(count, args.sessions or (scenario.smoke_sessions if args.smoke else scenario.sessions))
    loader = pick_loader(args, scenario)
    sink = CountingSink(free_port())
    await sink.start()
    out: dict[str, Any] = {"scenario": scenario.name, "target": target.name, "loader": loader,
                           "messages": count, "sessions": sessions}
    try:
        await target.start(sink.port, recipients=args.recipients, sessions=sessions)
        message = Message(scenario, target.sender, target.recipients)
        sampler = RssSampler(target.roots)
        sampler.start()
        warm = await python_client(target.port, message, min(5, count), min(5, sessions), reuse=args.reuse,
                                   first=10_000_000)
        await settle(target, sink, warm.accepted, 60)
        base = sink.count
        cpu0 = cpu_seconds(target.roots())
        server = getattr(target, "server_roots", list)()
        server_cpu0 = cpu_seconds(server)
        profiler = None
        if args.profile and target.name.startswith("relay"):
            from bench.profile import Profiler
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler = Profiler(args.profile / f"relay-{scenario.name}", target.roots())
            await profiler.start()
        t0 = time.perf_counter()
        load = await drive(target, message, scenario, loader, count, sessions, args, work)
        done = await settle(target, sink, base + load.accepted, max(120.0, 20 * load.seconds))
        elapsed = time.perf_counter() - t0
        if profiler:
            out["profile"] = await profiler.stop()
        out.update(accepted=load.accepted, refused=load.refused, first_refusal=load.first_refusal,
                   complete=done, seconds=round(elapsed, 3), sink=sink.count - base,
                   msgs_per_s=load.accepted / elapsed if elapsed else 0.0,
                   accept_per_s=load.accepted / load.seconds if load.seconds else 0.0,
                   cpu_per_1000=(cpu_seconds(target.roots()) - cpu0) / load.accepted * 1000 if load.accepted else None)
        if server and load.accepted:  # the database server's share of CPU s/1k
            out["server_cpu_per_1000"] = (cpu_seconds(server) - server_cpu0) / load.accepted * 1000
        if scenario.latency_pass and load.accepted and not args.no_latency:
            rate = 0.5 * out["msgs_per_s"]
            base = sink.count
            lat = await python_client(target.port, message, count, sessions, reuse=args.reuse, rate=rate,
                                      first=count)
            await settle(target, sink, base + lat.accepted, max(120.0, 20 * lat.seconds))
            q = statistics.quantiles(lat.latencies, n=100) if len(lat.latencies) > 1 else [0.0] * 99
            out.update(latency_rate=rate, p50_ms=q[49] * 1000, p95_ms=q[94] * 1000, p99_ms=q[98] * 1000,
                       latency_refused=lat.refused, first_refusal=out["first_refusal"] or lat.first_refusal)
        out["peak_rss_mib"] = await sampler.stop()
        out["peak_pss_mib"] = sampler.peak_pss
    except Exception as e:  # a target that cannot run this scenario is reported, not fatal
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        await target.stop()
        await sink.stop()
        if not args.workdir and target.work != work:
            # A round leaves its state behind (the relay keeps every message, Postfix its logs):
            # removed now, its dirty pages are not written back during the next target's round.
            await asyncio.to_thread(shutil.rmtree, target.work, True)
    return out


#: Figures whose value in every round the report prints beside the median.
ROUND_KEYS = ("msgs_per_s", "p99_ms")


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from interleaved rounds: the median of each figure, the rest from the first round."""
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = statistics.median(r[key] for r in runs if isinstance(r.get(key), float))
    row["rounds"] = len(runs)
    # the spread behind the medians: one noisy round moves a p99 by a factor of ten on a shared machine
    row["by_round"] = {key: [r[key] for r in runs if isinstance(r.get(key), float)] for key in ROUND_KEYS}
    return row


def default_workers() -> int:
    """One relay process per core, as a production relay on this machine would run (README,
    smtp.workers); Postfix's smtpd, cleanup and opendkim use every core too."""
    return max(1, min(os.cpu_count() or 1, 8))


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench.peer_postfix import PostfixTarget, unavailable
    from bench.target_relay import RelayTarget
    from bench.verify import verify

    root_dir = "/var/lib" if args.peer == "postfix" and os.geteuid() == 0 else None  # opendkim refuses /tmp
    work = Path(args.workdir or tempfile.mkdtemp(prefix="relay-bench-", dir=root_dir))
    work.mkdir(parents=True, exist_ok=True)
    targets: list[Any] = [RelayTarget(work, workers=args.workers, extra_config=args.relay_config, store=store)
                          for store in args.store]
    if args.peer == "postfix":
        why = unavailable()
        if why:
            print(f"peer: Postfix cannot run here ({why}); measuring the relay only")
        else:
            targets += [PostfixTarget(work, milter_socket=args.peer_milter, signing=signing)
                        for signing in {"opendkim": [True], "none": [False], "both": [True, False]}[args.peer_signing]]
    if args.profile:
        from bench.profile import available
        if not available():
            print("--profile: py-spy is not installed (pip install py-spy); not profiling")
            args.profile = None
    try:
        print(describe_machine(ROOT))
        for target in list(targets):
            try:
                problems = await verify(target)
            except Exception as e:  # it could not even start
                print(f"{target.describe()}: cannot run here ({type(e).__name__}: {e})")
                if not target.name.startswith("relay"):
                    print("measuring the relay only")
                    targets.remove(target)
                    continue
                raise
            signed = ", DKIM verifies" if target.public_txt() is not None else ""
            print(f"{target.describe()}: one message checked (rewritten{signed}): "
                  + ("ok" if not problems else "PROBLEM: " + "; ".join(problems)))
        rows = []
        for name in args.scenario:
            scenario = SCENARIOS[name]
            runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
            for _ in range(args.rounds):
                for target in targets:
                    runs[target.name].append(await measure(target, scenario, args, work))
            rows += [median_of(r) for r in runs.values()]
            print_table([r for r in rows if r["scenario"] == name], SCENARIOS, header=len(rows) == len(runs))
        return rows
    finally:
        for target in targets:
            if hasattr(target, "close"):
                target.close()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", choices=["none", "postfix"], default="none", help="also measure Postfix + OpenDKIM")
    ap.add_argument("--peer-milter", choices=["unix", "inet"], default="unix",
                    help="OpenDKIM socket (inet on loopback adds ~86 ms per message: TCP delayed ACKs)")
    ap.add_argument("--peer-signing", choices=["opendkim", "none", "both"], default="opendkim",
                    help="the peer signs through OpenDKIM, does not sign (the issue's 100 KB peer), or both, side by side")
    ap.add_argument("--smoke", action="store_true", help="a few dozen messages per scenario (CI)")
    ap.add_argument("--scenario", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    ap.add_argument("--messages", type=int, help="messages per pass (default: per scenario)")
    ap.add_argument("--sessions", type=int, help="parallel sessions (default: per scenario)")
    ap.add_argument("--recipients", type=int, default=1, help="recipients per message (>1: Python client)")
    ap.add_argument("--reuse", action="store_true", help="several messages per connection (smtp-source -d)")
    ap.add_argument("--loader", choices=["auto", "smtp-source", "python"], default="auto")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; figures are medians")
    ap.add_argument("--workers", type=int, default=default_workers(),
                    help="relay smtp.workers (default: one per CPU, at most 8, as README advises; 1 = no supervisor)")
    ap.add_argument("--relay-config", default="", metavar="TOML",
                    help='appended to the relay\'s relay.toml, e.g. $\'[trust]\\nauthenticate = "off"\'')
    ap.add_argument("--no-latency", action="store_true", help="skip the latency pass")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy the relay during each throughput pass (raw stacks in DIR, summary printed)")
    ap.add_argument("--store", default="sqlite", metavar="sqlite,postgresql",
                    help="the relay's store: sqlite, postgresql (a throwaway local cluster) or both, side by side")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--workdir", type=Path, help="keep state here (default: a temporary directory, removed)")
    args = ap.parse_args(argv)
    args.scenario = [s.strip() for s in args.scenario.split(",") if s.strip()]
    args.store = [s.strip() for s in args.store.split(",") if s.strip()]
    if not args.store or any(s not in ("sqlite", "postgresql") for s in args.store):
        ap.error("--store: sqlite, postgresql or sqlite,postgresql")
    for s in args.scenario:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
