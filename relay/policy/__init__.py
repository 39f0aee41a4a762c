"""Messaging policy: pure, synchronous checks of a message against config/policy.toml.

    policy = load_policy(Path("config/policy.toml"))
    report = check(raw, policy, own_addresses=aliases)
    if report.action == "reject": 550 5.7.1 + report.reject_category
    elif report.action == "hold": keep for an operator
    else: deliver apply(raw, report, policy)

No event loop, no network, no imports from relay.smtp / relay.pipeline / relay.store.
"""

from relay.policy.engine import AttachmentResult, Finding, Report, apply, check, explain, scan_text
from relay.policy.settings import Policy, PolicyConfigError, build_policy, load_policy

__all__ = [
    "AttachmentResult",
    "Finding",
    "Policy",
    "PolicyConfigError",
    "Report",
    "apply",
    "build_policy",
    "check",
    "explain",
    "load_policy",
    "scan_text",
]
