"""authenticate: the header From must be proven by an aligned DKIM pass or an aligned SPF pass.

Reads: trust.authenticate, trust.front_mta (Authentication-Results from the front MTA), dns.*.
Replies: 550 5.7.1 (spoofed; no bounce), 451 4.7.0 (DNS failure or no front-MTA results).
Audit reasons: authenticate.pass, authenticate.smtp_auth, authenticate.spoofed,
authenticate.dns_tempfail, authenticate.front_mta_no_results (details: spf, dkim, dmarc policy).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from relay.model import Action, Verdict
from relay.pipeline.context import Context
from relay.pipeline.headers import fields
from relay.pipeline.transit import Transit
from relay.smtp import replies
from relay.trust import align, dkimcheck, spf
from relay.trust.dns import DnsTempError, Resolver
from relay.trust.evidence import Evidence, from_authentication_results


class Authenticate:
    name: ClassVar[str] = "authenticate"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.mode = ctx.settings.trust.authenticate
        self.front = ctx.settings.trust.front_mta
        self.timeout = ctx.settings.dns.timeout
        self.resolver: Resolver = ctx.extras.setdefault("resolver", Resolver(ctx.settings.dns))

    async def run(self, tx: Transit) -> Verdict:
        if self.mode == "off":
            return Verdict.ok()
        assert tx.sender is not None and tx.facts is not None
        if tx.notes.get("auth_party") == tx.sender.id:
            return Verdict.ok("authenticate.smtp_auth")  # SMTP AUTH as this very party
        from_domain = tx.facts.from_addresses[0].rpartition("@")[2].rstrip(".")
        shared: dict[str, Any] = tx.notes.get("shared", {})  # one DATA, several recipients: check once
        ev = shared.get("authenticate")
        if ev is None:
            header = fields(tx.raw)
            if tx.notes.get("front_mta") and self.front is not None:
                values = [v for n, v in header if n == "authentication-results"]
                ev = from_authentication_results(values, self.front.authserv_id, from_domain)
                if ev is None:
                    return Verdict(Action.TEMPFAIL, replies.DNS_TEMPFAIL, "authenticate.front_mta_no_results")
            else:
                ev = await self._check(tx, from_domain, [v for n, v in header if n == "dkim-signature"])
            shared["authenticate"] = ev
        verdict, why = ev.decide()
        detail = {**ev.audit(), "how": why, "client": tx.peer}
        if verdict == "pass":
            return Verdict.ok("authenticate.pass", **detail)
        if verdict == "temperror":
            return Verdict(Action.TEMPFAIL, replies.DNS_TEMPFAIL, "authenticate.dns_tempfail", detail)
        return Verdict(Action.REJECT, replies.SPOOFED, "authenticate.spoofed", detail)

    async def _check(self, tx: Transit, from_domain: str, dkim_headers: list[str]) -> Evidence:
        envelope_domain = (tx.envelope_from.rpartition("@")[2] or tx.helo).lower().rstrip(".")
        spf_check = spf.check_host(self.resolver, tx.peer, tx.envelope_from, tx.helo)
        if dkim_headers:
            dkim_check = dkimcheck.verify_all(self.resolver, tx.raw, dkim_headers, self.timeout)
            spf_result, dkim_results = await asyncio.gather(spf_check, dkim_check)
        else:
            # Nothing to verify: awaited directly, a check answered from the DNS cache never leaves
            # the loop (gather's tasks would wait two loop turns behind every other session's work).
            spf_result, dkim_results = await spf_check, []
        ev = Evidence(from_domain, spf=spf_result, spf_domain=envelope_domain, dkim=dkim_results)
        try:
            ev.policy = await align.dmarc_policy(self.resolver, from_domain)
        except DnsTempError:
            ev.policy = "temperror"  # audit only: the decision never depends on p=
        return ev
