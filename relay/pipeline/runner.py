"""Runs the stages in their fixed order for one transit; a crash becomes 451 4.3.0.

Records: a stage that returns a non-"ok" verdict leaves an audit event `stage.<name>` with
its reason; a crash is logged with its traceback and audited as `<stage>.crashed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import structlog

from relay.model import Action, Verdict
from relay.pipeline.transit import Transit
from relay.smtp import replies

log = structlog.get_logger("relay.pipeline")


class Stage(Protocol):
    name: ClassVar[str]

    async def run(self, tx: Transit) -> Verdict: ...


class Pipeline:
    def __init__(self, stages: Sequence[Stage], observe: Callable[[str, float], None] | None = None) -> None:
        self.stages = tuple(stages)
        #: called with (stage name, seconds) after each stage (metrics: policy and DKIM time)
        self.observe = observe

    async def run(self, tx: Transit) -> Verdict:
        for stage in self.stages:
            started = time.perf_counter()
            try:
                verdict = await stage.run(tx)
            except Exception:
                log.exception("stage crashed", stage=stage.name, rcpt_alias=tx.target.alias)
                reason = f"{stage.name}.crashed"
                tx.record("stage." + stage.name, reason)
                return Verdict(Action.TEMPFAIL, replies.INTERNAL_ERROR, reason)
            finally:
                if self.observe is not None:
                    self.observe(stage.name, time.perf_counter() - started)
            if verdict.action is Action.CONTINUE:
                if verdict.reason != "ok":
                    tx.record("stage." + stage.name, verdict.reason, **dict(verdict.detail))
                continue
            tx.record("stage." + stage.name, verdict.reason, action=verdict.action.value, **dict(verdict.detail))
            if verdict.action is Action.HOLD:
                tx.held = True
                continue
            return verdict
        return Verdict.ok()
