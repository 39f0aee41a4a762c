"""rules: loops, auto-replies, opt-out, [Important], over-messaging, vacation replies, response-clock facts.

Reads: rules.* (reply_window, max_replies_per_buyer_message, max_unsolicited_*, important_*, loop_max_hops,
critical_words), relay.domain, relay.http_base_url, delivery.lifetime. Replies: 554 5.4.6 loop; 550 5.7.1
opted out, [Important] bypass lost, [Important] unjustified (configured, or to an opted-out buyer), order
limit, daily limit — a seller message's are given again at commit time (relay/store/seller_rules.admit).
Audit reasons: rules.loop|buyer_message|automatic|reply|unsolicited|critical|critical_to_opted_out|
unjustified_to_opted_out|opted_out|important_bypass_lost|important_unjustified|order_limit|daily_limit;
events important.justified|unjustified, important.bypass_revoked, vacation.replied|skipped.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from relay.config import ConfigError
from relay.model import Action, Direction, Party, Thread, Verdict
from relay.pipeline.context import Context
from relay.pipeline.headers import fields
from relay.pipeline.transit import CommitRefused, Transit
from relay.policy.critical import CriticalWords, find_marker, message_text, strip_markers
from relay.rules import automatic, mail, tokens
from relay.rules.no_response import NoResponseMailbox
from relay.rules.unsubscribe import UnsubscribeMailbox
from relay.smtp import replies
from relay.store import messages, seller_rules
from relay.store import rules as rules_store
from relay.store.interface import AdmitSeller, RecordFacts, VacationReply

_MSGID = re.compile(r"<[^<>\s]+>")
#: Above this size the text extraction and classification of a marked message leave the event loop.
OFFLOAD_BYTES = 32 * 1024
#: The reply of each refusal relay/store/seller_rules.decide can give.
_REFUSALS = {
    "rules.opted_out": replies.OPTED_OUT,
    "rules.important_bypass_lost": replies.IMPORTANT_BYPASS_LOST,
    "rules.unjustified_to_opted_out": replies.IMPORTANT_UNJUSTIFIED,
    "rules.order_limit": replies.ORDER_LIMIT,
    "rules.daily_limit": replies.DAILY_LIMIT,
}


def load_words(path: Path) -> CriticalWords:
    """The critical word lists; a relative path missing from the working directory is looked up in the source tree."""
    if not path.is_absolute() and not path.exists():
        packaged = Path(__file__).resolve().parents[3] / path
        path = packaged if packaged.exists() else path
    try:
        return CriticalWords.load(path)
    except ValueError as exc:
        raise ConfigError(f"rules.critical_words: {exc}") from None


class Rules:
    name: ClassVar[str] = "rules"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.settings.rules
        self.words = load_words(self.cfg.critical_words)
        self.limits = seller_rules.Limits(self.cfg.reply_window, self.cfg.max_replies_per_buyer_message,
                                          self.cfg.max_unsolicited_per_order,
                                          self.cfg.max_unsolicited_per_thread_per_day)
        # The app puts the secret from where rules.unsubscribe_secret_source says (a reload may replace it)
        secret = ctx.extras.get("unsubscribe_secret") or tokens.load_secret(ctx.settings.relay.state_dir)
        ctx.extras["unsubscribe_secret"] = secret
        ctx.extras.setdefault("mailboxes", []).extend([UnsubscribeMailbox(ctx, secret), NoResponseMailbox(ctx)])

    @property
    def secret(self) -> bytes:
        secret: bytes = self.ctx.extras["unsubscribe_secret"]
        return secret

    async def run(self, tx: Transit) -> Verdict:
        assert tx.thread is not None and tx.sender is not None and tx.recipient is not None
        all_fields = fields(tx.raw)
        hops = automatic.hops(all_fields)
        if hops >= self.cfg.loop_max_hops:
            return Verdict(Action.REJECT, replies.LOOP_DETECTED, "rules.loop", {"hops": hops})
        tx.extra_headers.append((automatic.HOPS_HEADER, str(hops + 1)))
        auto = automatic.automatic_reason(all_fields, tx.subject)
        quoted = list(dict.fromkeys(m for name, value in all_fields if name in ("in-reply-to", "references")
                                    for m in _MSGID.findall(value)))[-50:]
        if tx.direction is Direction.BUYER_TO_SELLER:
            return await self._from_buyer(tx, tx.thread, tx.sender, tx.recipient, auto, quoted)
        return await self._from_seller(tx, tx.thread, tx.sender, tx.recipient, auto, quoted)

    # -- buyer → seller: starts a response clock (unless automatic); vacation reply ---------------
    async def _from_buyer(self, tx: Transit, thread: Thread, buyer: Party, seller: Party, auto: str | None,
                          quoted: list[str]) -> Verdict:
        now = tx.received_at

        (order, how), vacation, replied = await self.ctx.store.rules.buyer_message_rules(
            thread.id, seller.id, tx.subject, quoted, now)
        self._facts(tx, "buyer", auto, order)
        if vacation is not None:
            if auto:  # RFC 3834 §2: never answer automatic mail
                tx.record("vacation.skipped", "rules.vacation_not_for_automatic", automatic=auto)
            elif not replied:
                self._vacation_reply(tx, thread, buyer, seller, vacation)
        detail: dict[str, Any] = {"order": order, "order_by": how}
        if auto:
            return Verdict.ok("rules.automatic", automatic=auto, **detail)
        return Verdict.ok("rules.buyer_message", **detail)

    def _vacation_reply(self, tx: Transit, thread: Thread, buyer: Party, seller: Party,
                        vacation: rules_store.Vacation) -> None:
        now, to = tx.received_at, tx.envelope_from.lower()
        msg_id, data = mail.vacation_reply(
            domain=self.ctx.settings.relay.domain, seller_name=seller.name,
            seller_alias=self.ctx.alias_address(thread.seller_alias), to=to, subject=tx.subject,
            in_reply_to=tx.orig_message_id, until=vacation.until_at, now=now)
        if self.ctx.signer is not None:
            data = self.ctx.signer.sign(data)
        reply = messages.Accepted(
            thread_id=thread.id, direction=Direction.SELLER_TO_BUYER.value, sender_id=seller.id,
            recipient_id=buyer.id, received_at=now, envelope_from="", rcpt_alias=thread.buyer_alias,
            subject=f"Auto-reply: {tx.subject}"[:998], original=data, delivered=data, orig_message_id=msg_id,
            relay_message_id=msg_id, out_envelope_from="", out_recipient=to,
            expires_at=now + self.ctx.settings.delivery.lifetime,
            events=(messages.PendingEvent("vacation.replied", "rules.vacation_reply",
                                          {"vacation": vacation.id, "until": vacation.until_at}),))

        tx.on_accept.append(VacationReply(vacation.id, thread.id, reply, rules_store.MessageFacts(
            thread.id, reply.direction, now, "vacation_reply", automatic="vacation-reply")))

    # -- seller → buyer: reply, or unsolicited under opt-out, [Important] and limits ----------------
    async def _from_seller(self, tx: Transit, thread: Thread, seller: Party, buyer: Party, auto: str | None,
                           quoted: list[str]) -> Verdict:
        cfg, now = self.cfg, tx.received_at
        token = tokens.make_token(self.secret, thread.id, buyer.id, seller.id)
        tx.extra_headers += tokens.list_unsubscribe_headers(self.ctx.settings.relay.domain,
                                                            self.ctx.settings.relay.http_base_url, token)
        marker = find_marker(tx.subject, cfg.important_markers)
        msg = seller_rules.SellerMessage(thread.id, buyer.id, seller.id, now, tuple(quoted), None, auto,
                                         marked=marker is not None)

        msg, how, prior, decision = await self.ctx.store.seller_rules.first_decision(
            msg, tx.subject, self.limits, abuse_since=now - cfg.important_abuse_window,
            abuse_limit=cfg.important_abuse_limit)
        detail: dict[str, Any] = {"order": msg.order_ref, "order_by": how}
        if auto:
            detail["automatic"] = auto
        if marker:
            detail.update(unjustified=prior, abuse_limit=cfg.important_abuse_limit)
        if marker and decision.kind != "reply":  # a marked reply is a reply: its marker is not judged
            important = await self._classify(tx, marker, prior)
            if important == "unjustified" and cfg.important_unjustified == "reject":
                return Verdict(Action.REJECT, replies.IMPORTANT_UNJUSTIFIED, "rules.important_unjustified", detail)
            msg = replace(msg, important=important)
            decision = await self.ctx.store.seller_rules.decide(msg, self.limits)
        if decision.refused:
            return self._refusal(decision, detail)
        # the early answer; the same decision is taken again inside the message's commit
        tx.on_accept.append(self._admit(tx, msg, decision, detail))
        return Verdict.ok(decision.reason, **detail, **decision.detail)

    def _admit(self, tx: Transit, msg: seller_rules.SellerMessage, early: seller_rules.Decision,
               detail: dict[str, Any]) -> AdmitSeller:
        """The commit-time check: the counts of concurrent messages (other sessions, other worker
        processes) are only final under the store's write lock, so the limits are checked there."""
        def refused(decision: seller_rules.Decision) -> CommitRefused:
            verdict = self._refusal(decision, {**detail, "at": "commit"})
            tx.record("stage.rules", verdict.reason, action=verdict.action.value, **dict(verdict.detail))
            return CommitRefused(tx, verdict)

        return AdmitSeller(msg, self.limits, early.kind, detail, refused)

    @staticmethod
    def _refusal(decision: seller_rules.Decision, detail: dict[str, Any]) -> Verdict:
        return Verdict(Action.REJECT, _REFUSALS[decision.reason], decision.reason, {**detail, **decision.detail})

    async def _classify(self, tx: Transit, marker: str, prior: int) -> str:
        """Classify a marked message; audit it; return "justified" or "unjustified"."""
        subject = strip_markers(tx.subject, self.cfg.important_markers)
        if len(tx.raw) > OFFLOAD_BYTES:
            body = await asyncio.to_thread(message_text, tx.raw)
        else:
            body = message_text(tx.raw)
        findings = self.words.classify(subject + "\n" + body)
        if findings:
            tx.record("important.justified", "rules.important_justified", marker=marker,
                      categories=[f.category for f in findings], words=[f.word for f in findings])
            return "justified"
        tx.record("important.unjustified", "rules.important_unjustified", marker=marker, count=prior + 1)
        limit = self.cfg.important_abuse_limit
        if prior <= limit < prior + 1:
            tx.record("important.bypass_revoked", "rules.important_abuse", count=prior + 1, limit=limit,
                      window_seconds=self.cfg.important_abuse_window)
        return "unjustified"

    def _facts(self, tx: Transit, kind: str, auto: str | None, order: str | None, important: str | None = None) -> None:
        assert tx.thread is not None
        facts = rules_store.MessageFacts(tx.thread.id, tx.direction.value, tx.received_at, kind, auto, order, important)
        tx.on_accept.append(RecordFacts(facts))
