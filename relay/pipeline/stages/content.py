"""content: the messaging policy — links, marketing, review requests, contact details, attachments.

Reads: policy.path (config/policy.toml, loaded at start and on reload), policy.workers,
policy.max_cpu_seconds. Replies: 550 5.7.1 naming the category in plain words (reject), 554 5.6.0
when the check overruns its CPU budget; otherwise the message continues, redacted,
stripped (with a notice part), held for an operator (hold) or only flagged.
Audit reasons: content.<category> for the verdict, content.too_costly; policy.finding and
policy.attachment_stripped events for every finding (category, rule, part, offsets, action).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.transit import Transit
from relay.policy import Policy, load_policy
from relay.policy import pool as policy_pool
from relay.policy.links import tlds
from relay.smtp import replies

#: policy.workers = 0 (no worker processes): above this size the checks leave the event loop
#: for a thread. No size is safe inline (5 KB of unclosed tags once cost 0.2 s), hence the pool.
OFFLOAD_BYTES = 128 * 1024


def load(ctx: Context) -> Policy:
    """Load the policy file named by policy.path and keep it for the stage."""
    policy = load_policy(ctx.settings.policy.path)
    tlds()  # read the TLD list now, not during the first message
    ctx.extras["policy"] = policy
    old = ctx.extras.pop("policy_pool", None)
    if old is not None:
        old.shutdown()  # messages being checked by the old workers finish there
    settings = ctx.settings.policy
    if settings.workers:
        ctx.extras["policy_pool"] = policy_pool.WorkerPool(settings.path, settings.workers, settings.max_cpu_seconds)
    return policy


class Content:
    name: ClassVar[str] = "content"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        if "policy" not in ctx.extras:
            load(ctx)

    async def run(self, tx: Transit) -> Verdict:
        assert tx.thread is not None and tx.sender is not None and tx.recipient is not None
        policy: Policy = self.ctx.extras["policy"]
        # Our aliases, and the parties' own addresses (the rewriter turns those into aliases
        # afterwards), are not "contact details that move the conversation off the platform".
        own = {self.ctx.alias_address(a) for a in (tx.thread.buyer_alias, tx.thread.seller_alias) if a}
        own.update(tx.sender.emails)
        own.update(tx.recipient.emails)
        source = tx.message or tx.raw
        pool = self.ctx.extras.get("policy_pool")
        if pool is not None and len(source) > self.ctx.settings.policy.inline_max_bytes:
            try:
                report, out = await pool.check_and_apply(source, own, key=tx.relay_key)
            except policy_pool.TooCostly as exc:
                # The same bytes cost the same CPU on every retry: refuse for good, never 4xx.
                return Verdict(Action.REJECT, replies.TOO_COSTLY, "content.too_costly",
                               {"limit_seconds": self.ctx.settings.policy.max_cpu_seconds, "how": str(exc)})
        elif len(source) > OFFLOAD_BYTES:
            report, out = await asyncio.to_thread(policy_pool.run, source, policy, own)
        else:
            report, out = policy_pool.run(source, policy, own)
        for event in report.audit_events():
            record: dict[str, Any] = dict(event)
            name = record.pop("event")
            tx.record(name, f"content.{record.get('category', 'attachment')}", **record)
        if report.action == "reject":
            category = next((f.category for f in report.findings if f.action == "reject"), "policy")
            return Verdict(Action.REJECT, replies.reject_policy(report.reject_category or "policy violation"),
                           f"content.{category}", {"findings": len(report.findings)})
        if report.action == "hold":
            category = next((f.category for f in report.findings if f.action == "hold"), "policy")
            return Verdict(Action.HOLD, None, f"content.{category}", {"findings": len(report.findings)})
        if out is not None and out != source:  # an unchanged copy would only cost memory until the end
            tx.message = out
        if report.findings or any(a.action == "strip" for a in report.attachments):
            return Verdict.ok(f"content.{report.action}", findings=len(report.findings))
        return Verdict.ok()
