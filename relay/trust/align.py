"""DMARC pieces (RFC 7489): organizational domains from the offline public-suffix list, relaxed
alignment, and the DMARC record lookup (for the audit only: our decision never depends on p=).

The list is the one bundled with the `publicsuffixlist` package (updated with each release;
nothing here touches the network).
"""

from __future__ import annotations

import functools
import re

from publicsuffixlist import PublicSuffixList

from relay.trust.dns import Resolver


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """example.co.uk for mail.example.co.uk; a public suffix itself stays as it is."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: same organizational domain."""
    if not domain or not from_domain:
        return False
    return org_domain(domain) == org_domain(from_domain)


_TAG = re.compile(r"\s*([a-z]+)\s*=\s*([^;]*)", re.I)


async def dmarc_policy(resolver: Resolver, from_domain: str) -> str:
    """p= of the domain's (or its organizational domain's) DMARC record, or "none-published"."""
    for name in dict.fromkeys([from_domain, org_domain(from_domain)]):
        records = [t for t in await resolver.txt(f"_dmarc.{name}") if re.match(r"^v=DMARC1\s*(;|$)", t, re.I)]
        if len(records) == 1:
            tags = {k.lower(): v.strip() for k, v in _TAG.findall(records[0])}
            if name != from_domain and "sp" in tags:
                return tags["sp"].lower()
            return tags.get("p", "invalid").lower()
    return "none-published"
