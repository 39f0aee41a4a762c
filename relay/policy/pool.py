"""Run the policy check in worker processes (policy.workers > 0), beside the event loop.

The checks are pure CPU work; on a machine with spare cores they run in parallel with the
SMTP sessions instead of between them. Each worker loads the policy file once; the main
process sends the message bytes and gets the report and the edited message back.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from relay.policy import engine
from relay.policy.engine import Report
from relay.policy.settings import Policy, load_policy

_policy: Policy | None = None


def _init(path: str) -> None:
    global _policy
    _policy = load_policy(Path(path))


def check_and_apply(raw: bytes, own: Collection[str]) -> tuple[Report, bytes | None]:
    """check(); and apply() unless the message is refused or held (nothing to deliver yet)."""
    assert _policy is not None, "worker not initialised"
    return run(raw, _policy, own)


def run(raw: bytes, policy: Policy, own: Collection[str]) -> tuple[Report, bytes | None]:
    return engine.check_and_apply(raw, policy, own)


def make_pool(path: Path, workers: int) -> ProcessPoolExecutor:
    # "spawn": the daemon has threads (SQLite workers) by now, which fork must not copy.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init, initargs=(str(path),))
