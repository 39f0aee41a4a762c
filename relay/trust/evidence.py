"""What the sender's authentication proved, and the one rule we apply to it.

A message claiming a registered address passes only with an aligned DKIM pass or an aligned
SPF pass (relaxed alignment), whatever DMARC policy the From domain publishes or lacks.
A DNS failure that could have changed the outcome is "temperror" (451), never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import authres

from relay.trust.align import aligned


@dataclass
class Evidence:
    from_domain: str
    source: str = "local"  # or "front_mta"
    spf: str = "none"
    spf_domain: str = ""
    dkim: list[tuple[str, str]] = field(default_factory=list)
    dmarc: str | None = None  # the front MTA's DMARC result; locally: not computed
    policy: str | None = None  # the published p= (audit only)

    def decide(self) -> tuple[str, str]:
        """("pass", how) | ("temperror", why) | ("fail", why)."""
        for domain, result in self.dkim:
            if result == "pass" and aligned(domain, self.from_domain):
                return "pass", "dkim_aligned"
        if self.spf == "pass" and aligned(self.spf_domain, self.from_domain):
            return "pass", "spf_aligned"
        if self.dmarc == "pass":
            return "pass", "dmarc"
        if self.spf == "temperror" or self.dmarc == "temperror" or any(r == "temperror" for _, r in self.dkim):
            return "temperror", "dns"
        return "fail", "not_aligned"

    def audit(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "from_domain": self.from_domain, "spf": self.spf,
                               "spf_domain": self.spf_domain, "dkim": [f"{d}={r}" for d, r in self.dkim]}
        if self.dmarc is not None:
            out["dmarc"] = self.dmarc
        if self.policy is not None:
            out["dmarc_policy"] = self.policy
        return out


def _domain(value: str) -> str:
    return value.rpartition("@")[2].strip().lower().rstrip(".")


def from_authentication_results(values: Sequence[str], authserv_id: str, from_domain: str) -> Evidence | None:
    """Evidence from the topmost Authentication-Results field with our front MTA's authserv-id.

    `values` are the field values in header order (top first). Fields with another authserv-id are
    skipped; below the first match nothing more is read (a sender can forge any number of them).
    """
    for value in values:
        try:
            header = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + value)
        except Exception:  # authres raises its own zoo of syntax errors
            continue
        if str(header.authserv_id).lower() != authserv_id.lower():
            continue
        ev = Evidence(from_domain, source="front_mta")
        for r in header.results:
            props = {(p.type.lower(), p.name.lower()): str(p.value) for p in r.properties}
            method, result = str(r.method).lower(), str(r.result).lower()
            if method == "spf":
                ev.spf = result
                ev.spf_domain = _domain(props.get(("smtp", "mailfrom")) or props.get(("smtp", "helo"), ""))
            elif method == "dkim":
                d = props.get(("header", "d")) or _domain(props.get(("header", "i"), ""))
                ev.dkim.append((d.lower(), result))
            elif method == "dmarc":
                if _domain(props.get(("header", "from"), from_domain)) != from_domain:
                    continue  # about some other From than the one we check
                ev.dmarc = result if result in ("pass", "temperror") else "fail"
        return ev
    return None
