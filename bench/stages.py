"""Per-stage CPU cost of the pipeline, in-process: CPU-ms per message for each stage, per scenario.

Runs resolve … sign (the daemon's fixed order, whatever this tree's order is) on the bench's 5 KB,
100 KB and 2 MB messages, from a registered seller to a buyer alias, with the policy and egress
checks in this process (policy.workers = 0) so their CPU is counted here. CPU time is the process's
(threads included), per stage, median of N runs. Figures only; nothing passes or fails.

Run: ``PYTHONPATH=. python -m bench.stages [--runs N] [--scenario 5k,100k,2m]`` (PYTHONPATH picks the
tree to measure: run it from another worktree to compare two commits).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.messages import SCENARIOS, Message
from relay.app import build_stages, load_signer
from relay.model import Action, AliasTarget, Role
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit
from relay.store.sqlite import SqliteStore
from tests.support import NO_LIMITS, make_settings, provision


async def measure(scenario: str, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp) / "state", rules=NO_LIMITS, policy={"workers": 0})
        world = provision(settings)
        store = SqliteStore.at(settings.db_path)
        await store.open()
        try:
            ctx = Context(settings=settings, store=store, signer=load_signer(settings, create=True))
            stages = build_stages(ctx)
            if "policy" in ctx.extras:  # the steady state: the policy's hyperscan database compiled
                from relay.policy.scanner import scanner_for

                scanner_for(ctx.extras["policy"])
            raw = Message(SCENARIOS[scenario], world.seller_email, [world.buyer_alias]).wire(1)
            target = AliasTarget(world.buyer_alias.split("@")[0], world.thread_id, world.buyer_id, Role.BUYER)
            per_stage: dict[str, list[float]] = {s.name: [] for s in stages}
            for _ in range(runs):
                tx = Transit(peer="127.0.0.1", helo="bench", envelope_from=world.seller_email,
                             rcpt=world.buyer_alias, target=target, raw=raw)
                for stage in stages:
                    began = time.process_time()
                    verdict = await stage.run(tx)
                    per_stage[stage.name].append((time.process_time() - began) * 1000)
                    if verdict.action not in (Action.CONTINUE, Action.HOLD):
                        raise SystemExit(f"{scenario}: stage {stage.name} answered {verdict.reason}")
            return {name: statistics.median(v) for name, v in per_stage.items()}
        finally:
            await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--scenario", default="5k,100k,2m")
    args = ap.parse_args()
    for name in args.scenario.split(","):
        figures = asyncio.run(measure(name, args.runs))
        total = sum(figures.values())
        cells = "  ".join(f"{stage} {ms:6.2f}" for stage, ms in figures.items())
        print(f"{name:>5}: total {total:7.2f} CPU-ms/message   {cells}")


if __name__ == "__main__":
    main()
