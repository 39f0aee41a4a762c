"""Thin aiosmtpd adapter: MAIL → syntax, RCPT → resolve the alias, DATA → pipeline → commit → reply.

Reads: relay.domain, smtp.max_recipients. Replies: all from replies.py; any unexpected
exception becomes 451 4.3.0 (aiosmtpd's default is a permanent 500 that leaks internals).
Audit reasons: rcpt.foreign_domain, rcpt.unknown_alias, rcpt.revoked_alias,
rcpt.own_alias, rcpt.sender_not_party, data.bare_line_ending, data.header_too_big, data.too_many_header_fields,
data.line_too_long, data.mime_too_deep, data.too_many_mime_parts, plus whatever the stages record.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.metrics import Metrics
from relay.model import Action, AliasTarget, Reply, Verdict
from relay.pipeline.context import Context
from relay.pipeline.runner import Pipeline
from relay.pipeline.stages import enqueue
from relay.pipeline.transit import CommitRefused, Transit
from relay.scan import is_crlf
from relay.smtp import replies, shape

log = structlog.get_logger("relay.smtp")

#: RFC 5321 §2.3.8: CR and LF only as CRLF. A bare one (or a NUL) is how SMTP smuggling
#: hides a second message; we refuse rather than guess (Postfix: smtpd_forbid_bare_newline).
def has_bare_line_ending(raw: bytes) -> bool:
    """A CR or LF that is not part of a CRLF, or a NUL (skipping searches: relay.scan.is_crlf)."""
    return b"\x00" in raw or not is_crlf(raw)


_LOCAL = r'[^\s<>()\[\]\\,;:@"\x00-\x1f\x7f]+'
_LABEL = r'[^\s<>()\[\]\\,;:@"\x00-\x1f\x7f.]+'
_PATH = re.compile(rf"^{_LOCAL}@(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])$")


def valid_address(address: str) -> bool:
    """Syntax of an SMTP path (RFC 5321 §4.1.2), permissive as MTAs are: no DNS, no special-use rules."""
    return len(address) <= 320 and bool(_PATH.match(address))


_SHAPE_REPLIES = {
    "data.header_too_big": replies.HEADER_TOO_BIG, "data.too_many_header_fields": replies.HEADER_TOO_BIG,
    "data.line_too_long": replies.LINE_TOO_LONG, "data.mime_too_deep": replies.MIME_TOO_COMPLEX,
    "data.too_many_mime_parts": replies.MIME_TOO_COMPLEX,
}


class RelayHandler:
    def __init__(self, ctx: Context, pipeline: Pipeline,
                 on_queued: Callable[[list[tuple[int, bytes]]], None] | None = None) -> None:
        self.ctx = ctx
        self.pipeline = pipeline
        self.on_queued = on_queued or (lambda items: None)
        self.domain = ctx.settings.relay.domain
        self.metrics: Metrics | None = ctx.extras.get("metrics")

    # -- hooks called by aiosmtpd --------------------------------------------------------
    async def handle_exception(self, error: Exception) -> str:
        log.error("unexpected error in SMTP session", exc_info=error)
        return str(replies.INTERNAL_ERROR)

    async def handle_PROXY(self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any) -> bool:
        """PROXY protocol header: believed only from an smtp.proxy_from peer (RelaySMTP.accept_proxy)."""
        accept = getattr(server, "accept_proxy", None)
        return bool(accept is not None and await accept(proxy_data))

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if address == "<>":  # the null reverse-path (RFC 5321 §4.5.5): bounces and notices
            address = ""
        if address and not valid_address(address):
            return str(replies.BAD_SENDER_SYNTAX)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.relay_targets = []  # type: ignore[attr-defined]
        return str(replies.SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        targets: list[AliasTarget] = getattr(envelope, "relay_targets", [])
        local, _, domain = address.rpartition("@")
        if domain.lower().rstrip(".") == self.domain and any(t.alias == local.lower() for t in targets):
            # The same alias again (any case): one recipient, one copy, one pipeline run. Like
            # Postfix, answer 250 to the repeat (RFC 5321 §3.3 does not forbid it) and keep the first.
            return str(replies.RECIPIENT_OK)
        if len(envelope.rcpt_tos) >= self.ctx.settings.smtp.max_recipients:
            return str(replies.TOO_MANY_RECIPIENTS)
        if not local or any(c in address for c in "\r\n\x00"):
            return str(replies.BAD_RECIPIENT_SYNTAX)
        peer = _peer(session)
        if domain.lower().rstrip(".") != self.domain:
            await self._audit_rcpt("rcpt.foreign_domain", peer, envelope.mail_from, address)
            return str(replies.RELAY_DENIED)
        # Relay-owned mailboxes (e.g. unsubscribe+<token>, registered by the rules stage) come before aliases.
        mailbox = self._mailbox(local)
        if mailbox is not None or getattr(envelope, "relay_mailbox", None) is not None:
            return await self._mailbox_rcpt(mailbox, envelope, address, local, peer)
        sender = (envelope.mail_from or "").lower()

        target, sender_party, other = await self.ctx.store.threads.resolve_recipient(local, sender)
        if target is None:
            await self._audit_rcpt("rcpt.unknown_alias", peer, envelope.mail_from, address)
            return str(replies.NO_SUCH_ALIAS)
        if target.revoked:
            await self._audit_rcpt("rcpt.revoked_alias", peer, envelope.mail_from, address, target)
            return str(replies.NO_SUCH_ALIAS)
        auth_party = getattr(session, "relay_party_id", None)
        if sender_party is not None and sender_party == target.party_id and auth_party in (None, sender_party):
            # A party writing to the alias that stands for them. Only a session authenticated as that
            # party is told so in as many words: to an unauthenticated MAIL FROM, a reply of its own
            # would confirm which real address is behind an alias. Everyone else gets the reply of
            # any other sender, which says what to do in both cases.
            await self._audit_rcpt("rcpt.own_alias", peer, envelope.mail_from, address, target)
            return str(replies.OWN_ALIAS if auth_party == sender_party else replies.NOT_OTHER_PARTY)
        if sender_party is None or sender_party != other or (auth_party is not None and auth_party != sender_party):
            # Deny early: the envelope sender is not the other party of this thread.
            await self._audit_rcpt("rcpt.sender_not_party", peer, envelope.mail_from, address, target)
            return str(replies.NOT_OTHER_PARTY)
        targets.append(target)
        envelope.relay_targets = targets  # type: ignore[attr-defined]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(replies.RECIPIENT_OK)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        targets: list[AliasTarget] = getattr(envelope, "relay_targets", [])
        peer = _peer(session)
        # Every log line of this transaction (stages included) carries the thread and the peer.
        with structlog.contextvars.bound_contextvars(thread=targets[0].thread_id if targets else None, peer=peer):
            return await self._data(session, envelope, targets, peer)

    async def _data(self, session: Session, envelope: Envelope, targets: list[AliasTarget], peer: str) -> str:
        raw = envelope.original_content or b""
        if has_bare_line_ending(raw):
            await self._audit_data("data.bare_line_ending", peer, envelope, targets)
            return str(replies.BARE_LINE_ENDING)
        too_much = shape.check(raw, self.ctx.settings.smtp)
        if too_much is not None:
            await self._audit_data(too_much, peer, envelope, targets)
            return str(_SHAPE_REPLIES[too_much])
        mailbox = getattr(envelope, "relay_mailbox", None)
        if mailbox is not None:
            reply = await mailbox.data(envelope, raw, peer)
            if reply.code == 250:
                self.on_queued([])
            return str(reply)
        now = self.ctx.clock()
        helo = session.host_name or ""
        shared: dict[str, Any] = {}  # what one check learns for all recipients of this DATA
        transits = [Transit(peer=peer, helo=helo, envelope_from=envelope.mail_from or "", rcpt=rcpt,
                            target=target, raw=raw, raw_file=getattr(envelope, "relay_raw_file", None),
                            received_at=now,
                            notes={**session_notes(session), "shared": shared})
                    for rcpt, target in zip(envelope.rcpt_tos, targets, strict=True)]
        started = time.perf_counter()
        for tx in transits:
            verdict = await self.pipeline.run(tx)
            if verdict.action in (Action.REJECT, Action.TEMPFAIL):
                return await self._refuse(tx, verdict)
        try:
            reply, ids = await enqueue.accept(self.ctx, transits)
        except CommitRefused as refused:  # a rule checked again in the commit (e.g. a limit others just used)
            return await self._refuse(refused.transit, refused.verdict)
        if ids:
            self.on_queued([(queue_id, tx.message) for tx, (_, queue_id) in zip(transits, ids, strict=True)
                            if not tx.held])
            for tx, (message_id, queue_id) in zip(transits, ids, strict=True):
                self._count(tx, "held" if tx.held else "ok")
                log.info("message accepted", message=message_id, queue=queue_id,
                         thread=tx.thread.id if tx.thread else None, direction=tx.direction.value,
                         size=len(raw), held=tx.held, ms=round((time.perf_counter() - started) * 1000, 2))
        else:
            for tx in transits:
                self._count(tx, "enqueue.store_unavailable")
        return str(reply)

    def _count(self, tx: Transit, reason: str) -> None:
        if self.metrics is not None:
            direction = tx.direction.value if tx.sender is not None else "unknown"
            self.metrics.messages.labels(direction, reason).inc()

    # -- relay-owned mailboxes (one per transaction, never mixed with aliases) ----------------
    def _mailbox(self, local: str) -> Any:
        return next((m for m in self.ctx.extras.get("mailboxes", ()) if m.claims(local)), None)

    async def _mailbox_rcpt(self, mailbox: Any, envelope: Envelope, address: str, local: str, peer: str) -> str:
        if mailbox is None or envelope.rcpt_tos:
            return str(replies.TOO_MANY_RECIPIENTS)  # the client sends the rest in another transaction
        reply = await mailbox.rcpt(envelope, local, peer)
        if reply.code == 250:
            envelope.relay_mailbox = mailbox  # type: ignore[attr-defined]
            envelope.rcpt_tos.append(address)
        return str(reply)

    # -- helpers -----------------------------------------------------------------------------
    async def _refuse(self, tx: Transit, verdict: Verdict) -> str:
        reply: Reply = verdict.reply or replies.INTERNAL_ERROR
        self._count(tx, verdict.reason)
        log.info("message refused", reason=verdict.reason, reply=f"{reply.code} {reply.status}",
                 thread=tx.target.thread_id, peer=tx.peer)
        if verdict.action is Action.REJECT:
            await enqueue.refuse(self.ctx, tx, verdict)
        else:
            await self._write_event("message.tempfailed", verdict.reason, thread_id=tx.target.thread_id,
                                    detail={**dict(verdict.detail), "reply": f"{reply.code} {reply.status}",
                                            "alias": tx.target.alias})
        return str(reply)

    async def _audit_rcpt(self, reason: str, peer: str, mail_from: str | None, rcpt: str,
                          target: AliasTarget | None = None) -> None:
        log.info("recipient refused", reason=reason, peer=peer)
        await self._write_event("rcpt.refused", reason, thread_id=target.thread_id if target else None,
                                detail={"peer": peer, "mail_from": mail_from or "", "rcpt": rcpt[:320]})

    async def _audit_data(self, reason: str, peer: str, envelope: Envelope, targets: list[AliasTarget]) -> None:
        log.info("data refused", reason=reason, peer=peer)
        await self._write_event("message.rejected", reason, thread_id=targets[0].thread_id if targets else None,
                                detail={"peer": peer, "mail_from": envelope.mail_from or "",
                                        "size": len(envelope.original_content or b"")})

    async def _write_event(self, event: str, reason: str, *, thread_id: int | None = None,
                           detail: dict[str, Any] | None = None) -> None:
        try:
            await self.ctx.store.audit.append(event, reason=reason, thread_id=thread_id, detail=detail or {})
        except Exception as exc:  # auditing a refusal must not turn it into a crash
            log.error("audit write failed", error=str(exc), reason=reason)


def session_notes(session: Session) -> dict[str, Any]:
    """What the SMTP session proved, for the stages: SMTP AUTH party, front-MTA peer."""
    return {"auth_party": getattr(session, "relay_party_id", None),
            "front_mta": bool(getattr(session, "relay_front_mta", False))}


def _peer(session: Session) -> str:
    """The client's address: as told by a trusted front MTA (XCLIENT, PROXY), else the TCP peer."""
    told = getattr(session, "relay_client_ip", None)
    if told:
        return str(told)
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")
