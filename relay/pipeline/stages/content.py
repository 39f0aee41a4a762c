"""content: the messaging policy — links, marketing, review requests, contact details, attachments.

Reads: policy.path (config/policy.toml, loaded at start and on reload), policy.workers,
policy.max_cpu_seconds. Replies: 550 5.7.1 naming the category in plain words (reject), 554 5.6.0
when the check overruns its CPU budget or a part cannot be read (HTML too complex for the parser);
otherwise the message continues, redacted, stripped (with a notice part), held for an operator
(hold) or only flagged. Audit reasons: content.<category> for the verdict, content.too_costly,
content.unreadable; policy.finding, policy.unreadable and policy.attachment_stripped events for
every finding (category, rule, part, offsets, action).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.offload import run_check
from relay.pipeline.transit import Transit
from relay.policy import Policy, load_policy
from relay.policy import pool as policy_pool
from relay.policy.links import tlds
from relay.policy.scanner import compile_in_background, dumps, scanner_for
from relay.smtp import replies

#: Without worker processes (policy.workers = 0), above this size the checks leave the event loop
#: for a thread (no CPU budget there: for tools and benchmarks).
OFFLOAD_BYTES = 128 * 1024


def compile_policy(path: Path) -> Policy:
    """Load a policy file, with the TLD list and the policy's hyperscan database (~0.5 s to compile;
    hyperscan lets go of the GIL meanwhile): for a reload, in a thread."""
    policy = load_policy(path)
    tlds()
    scanner_for(policy)
    return policy


def load(ctx: Context, policy: Policy | None = None) -> Policy:
    """Load the policy file named by policy.path (or take `policy`, compiled from it by
    compile_policy) and keep it for the stage. The hyperscan database of a policy loaded here
    compiles in a thread: the daemon need not wait for it (checks take the regex path until then)."""
    if policy is None:
        policy = load_policy(ctx.settings.policy.path)
        tlds()  # read the TLD list now, not during the first message
        compile_in_background(policy)
    ctx.extras["policy"] = policy
    old = ctx.extras.pop("policy_pool", None)
    if old is not None:
        old.shutdown()  # messages being checked by the old workers finish there
    settings = ctx.settings.policy
    if settings.workers:
        ctx.extras["policy_pool"] = policy_pool.WorkerPool(settings.path, settings.workers, settings.max_cpu_seconds,
                                                           scanner=lambda: dumps(policy))
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
        result = await run_check(self.ctx, self.name, len(source), OFFLOAD_BYTES,
                                 lambda pool: pool.check_and_apply(source, own, key=tx.relay_key),
                                 lambda: policy_pool.run(source, policy, own))
        if isinstance(result, Verdict):
            return result
        report, out = result
        for event in report.audit_events():
            record: dict[str, Any] = dict(event)
            name = record.pop("event")
            tx.record(name, f"content.{record.get('category', 'attachment')}", **record)
        if report.unreadable:  # (an HTML part the parser refuses: it would be refused at egress too)
            return Verdict(Action.REJECT, replies.UNREADABLE_CONTENT, "content.unreadable",
                           {"parts": report.unreadable[:5]})
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
