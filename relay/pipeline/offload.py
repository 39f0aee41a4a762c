"""Where a stage's CPU-heavy check runs: the policy's worker processes, a thread, or the loop.

Reads: policy.inline_max_bytes, policy.max_cpu_seconds (and the pool the content stage keeps).
Replies: a check over its CPU budget is 554 5.6.0 — the same bytes cost the same on every retry,
so never 4xx. Audit reason: <stage>.too_costly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.policy.pool import TooCostly, WorkerPool
from relay.smtp import replies

T = TypeVar("T")


async def run_check(ctx: Context, stage: str, size: int, thread_above: int,
                    in_worker: Callable[[WorkerPool], Awaitable[T]], here: Callable[[], T]) -> T | Verdict:
    """The check's result, or the refusal of a message whose check overran its budget.

    In a worker (with its budget) when there are workers and the message is over
    policy.inline_max_bytes; else in a thread above ``thread_above`` bytes; else on the loop."""
    pool: WorkerPool | None = ctx.extras.get("policy_pool")
    if pool is not None and size > ctx.settings.policy.inline_max_bytes:
        try:
            return await in_worker(pool)
        except TooCostly as exc:
            return Verdict(Action.REJECT, replies.TOO_COSTLY, f"{stage}.too_costly",
                           {"limit_seconds": ctx.settings.policy.max_cpu_seconds, "how": str(exc)})
    if size > thread_above:
        return await asyncio.to_thread(here)
    return here()
