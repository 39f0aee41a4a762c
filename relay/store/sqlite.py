"""The SQLite backend of the store's interface (relay/store/interface.py), on relay/store/db.py.

Each method runs the synchronous repository function of the same name: a write as one unit of the
writer's next group commit (Database.write), a short indexed lookup on the loop's own read
connection (Database.read), a long read (a content, a count or a listing over a table) on the
reader thread (Database.read_in_thread). Reads: store.*; nothing else.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.model import AliasTarget, Party, Role, Thread
from relay.store import accept as accept_repo
from relay.store import audit as audit_repo
from relay.store import audit_verify, blobfiles, interface
from relay.store import credentials as credentials_repo
from relay.store import erasure as erasure_repo
from relay.store import labels as labels_repo
from relay.store import messages as messages_repo
from relay.store import metrics as metrics_repo
from relay.store import parties as parties_repo
from relay.store import queue as queue_repo
from relay.store import retention as retention_repo
from relay.store import review as review_repo
from relay.store import rules as rules_repo
from relay.store import secrets as secrets_repo
from relay.store import seller_rules as seller_rules_repo
from relay.store import threads as threads_repo
from relay.store.accept import AcceptHook
from relay.store.audit import AuditEvent
from relay.store.audit_verify import Result
from relay.store.db import Database, connect_sync
from relay.store.errors import StoreUnavailable
from relay.store.labels import Label
from relay.store.messages import Accepted, MessageRow, Refused
from relay.store.metrics import ThreadMessage
from relay.store.queue import QueueItem, QueueStats
from relay.store.retention import BATCH
from relay.store.review import AliasRow, BlobRow, QueueRow
from relay.store.rules import MessageFacts, Vacation
from relay.store.secrets import SecretInfo, SecretRow
from relay.store.seller_rules import Decision, Limits, SellerMessage
from relay.store.threads import Order


class _Repo:
    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db


class SqliteParties(_Repo):
    async def party_at(self, address: str) -> Party | None:
        return await self._db.read(lambda conn: parties_repo.party_at(conn, address))

    async def add(self, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party:
        return await self._db.write(lambda conn: parties_repo.add(conn, role, name, emails, ref))

    async def get(self, party_id: int) -> Party:
        return await self._db.read(lambda conn: parties_repo.get(conn, party_id))

    async def find(self, key: str) -> Party:
        return await self._db.read(lambda conn: parties_repo.find(conn, key))

    async def by_address(self, address: str) -> int | None:
        return await self._db.read(lambda conn: parties_repo.by_address(conn, address))

    async def addresses_of(self, party_ids: list[int]) -> dict[int, tuple[str, ...]]:
        return await self._db.read(lambda conn: parties_repo.addresses_of(conn, party_ids))

    async def ensure(self, role: Role, name: str, emails: list[str], ref: str) -> tuple[Party, bool]:
        return await self._db.write(lambda conn: parties_repo.ensure(conn, role, name, emails, ref))

    async def update(
        self,
        party_id: int,
        *,
        name: str | None = None,
        emails: list[str] | None = None,
        status: str | None = None,
        now: float | None = None,
    ) -> tuple[Party, list[str]]:
        return await self._db.write(
            lambda conn: parties_repo.update(conn, party_id, name=name, emails=emails, status=status, now=now)
        )

    async def listing(self, role: Role | None = None, *, after: int = 0, limit: int = 1000) -> list[Party]:
        return await self._db.read_in_thread(
            lambda conn: parties_repo.listing(conn, role, after=after, limit=limit)
        )


class SqliteThreads(_Repo):
    async def resolve_recipient(
        self, local: str, sender: str
    ) -> tuple[AliasTarget | None, int | None, int | None]:
        return await self._db.read(lambda conn: threads_repo.resolve_recipient(conn, local, sender))

    async def resolve_message(
        self, local: str, quoted_ids: Sequence[str]
    ) -> tuple[Thread, Party, Party, dict[str, str]] | None:
        return await self._db.read(lambda conn: threads_repo.resolve_message(conn, local, quoted_ids))

    async def get(self, thread_id: int) -> Thread:
        return await self._db.read(lambda conn: threads_repo.get(conn, thread_id))

    async def open_thread(
        self,
        buyer_id: int,
        seller_id: int,
        *,
        order: str | None = None,
        buyer_alias: str | None = None,
        seller_alias: str | None = None,
        now: float | None = None,
    ) -> tuple[Thread, bool]:
        return await self._db.write(
            lambda conn: threads_repo.open_thread(
                conn,
                buyer_id,
                seller_id,
                order=order,
                buyer_alias=buyer_alias,
                seller_alias=seller_alias,
                now=now,
            )
        )

    async def add_order(self, thread_id: int, ref: str, *, now: float | None = None) -> bool:
        return await self._db.write(lambda conn: threads_repo.add_order(conn, thread_id, ref, now=now))

    async def orders(self, thread_id: int) -> list[Order]:
        return await self._db.read(lambda conn: threads_repo.orders(conn, thread_id))

    async def resolve_alias(self, local: str) -> AliasTarget | None:
        return await self._db.read(lambda conn: threads_repo.resolve_alias(conn, local))

    async def alias_of(self, thread_id: int, party_id: int) -> str | None:
        return await self._db.read(lambda conn: threads_repo.alias_of(conn, thread_id, party_id))

    async def revoke_alias(self, local: str, *, now: float | None = None) -> AliasTarget:
        return await self._db.write(lambda conn: threads_repo.revoke_alias(conn, local, now=now))

    async def threads_of(self, party_id: int) -> list[int]:
        return await self._db.read(lambda conn: threads_repo.threads_of(conn, party_id))

    async def listing(
        self, party_id: int | None = None, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[Thread, list[Order]]]:
        return await self._db.read_in_thread(
            lambda conn: threads_repo.listing(conn, party_id, after=after, limit=limit)
        )

    async def find_by_order(self, ref: str) -> list[tuple[Thread, list[Order]]]:
        return await self._db.read_in_thread(lambda conn: threads_repo.find_by_order(conn, ref))

    async def find_by_alias(self, local: str) -> tuple[Thread, list[Order], AliasTarget] | None:
        return await self._db.read(lambda conn: threads_repo.find_by_alias(conn, local))


class SqliteMessages(_Repo):
    async def write_large(
        self,
        contents: Sequence[bytes],
        files: Mapping[int, Path] | None = None,
        derived: Collection[int] = (),
    ) -> dict[int, str]:
        return await asyncio.to_thread(messages_repo.write_large, self._db.path, contents, files, derived)

    async def accept(
        self, rows: Sequence[Accepted], hooks: Sequence[Sequence[AcceptHook]]
    ) -> list[tuple[int, int]]:
        try:
            return await self._db.write(lambda conn: accept_repo.accept(conn, rows, hooks))
        finally:  # the content files written ahead that this transaction did not take
            blobfiles.forget_ahead([d for row in rows for d in row.digests.values()])

    async def get_blob(self, digest: str) -> bytes | None:
        return await self._db.read_in_thread(lambda conn: messages_repo.get_blob(conn, digest))

    async def small_blob(self, digest: str, below: int) -> tuple[int | None, bytes | None]:
        return await self._db.read_in_thread(lambda conn: messages_repo.small_blob(conn, digest, below))

    async def record_accepted(self, msg: Accepted) -> tuple[int, int]:
        return await self._db.write(lambda conn: messages_repo.record_accepted(conn, msg))

    async def record_refused(self, msg: Refused) -> int:
        return await self._db.write(lambda conn: messages_repo.record_refused(conn, msg))

    async def translate_ids(self, thread_id: int, recipient_id: int, ids: Iterable[str]) -> dict[str, str]:
        return await self._db.read(
            lambda conn: messages_repo.translate_ids(conn, thread_id, recipient_id, ids)
        )

    async def set_state(self, message_id: int, state: str, reason: str | None = None) -> None:
        return await self._db.write(lambda conn: messages_repo.set_state(conn, message_id, state, reason))

    async def get(self, message_id: int) -> MessageRow | None:
        return await self._db.read(lambda conn: messages_repo.get(conn, message_id))

    async def of_thread(self, thread_id: int) -> list[MessageRow]:
        return await self._db.read_in_thread(lambda conn: messages_repo.of_thread(conn, thread_id))


class SqliteQueue(_Repo):
    async def get(self, queue_id: int) -> QueueItem:
        return await self._db.read(lambda conn: queue_repo.get(conn, queue_id))

    async def listing(self, state: str | None = None, limit: int = 1000) -> list[QueueItem]:
        return await self._db.read_in_thread(lambda conn: queue_repo.listing(conn, state, limit))

    async def claim_due(
        self, now: float, limit: int, owner: str = "", lease: float = 300.0
    ) -> list[QueueItem]:
        return await self._db.write(lambda conn: queue_repo.claim_due(conn, now, limit, owner, lease))

    async def renew(self, held: list[tuple[int, int]], until: float) -> list[int]:
        return await self._db.write(lambda conn: queue_repo.renew(conn, held, until))

    async def next_due_at(
        self,
    ) -> float | None:
        return await self._db.read(lambda conn: queue_repo.next_due_at(conn))

    async def mark_delivered(self, item: QueueItem, now: float, response: str) -> bool:
        return await self._db.write(lambda conn: queue_repo.mark_delivered(conn, item, now, response))

    async def defer(
        self, item: QueueItem, now: float, next_at: float, error: str, *, ambiguous: bool = False
    ) -> bool:
        return await self._db.write(
            lambda conn: queue_repo.defer(conn, item, now, next_at, error, ambiguous=ambiguous)
        )

    async def bounce(
        self, item: QueueItem, now: float, reason: str, error: str, notice: tuple[str, str, bytes] | None
    ) -> int | None:
        return await self._db.write(lambda conn: queue_repo.bounce(conn, item, now, reason, error, notice))

    async def enqueue_notice(
        self,
        message_id: int,
        thread_id: int | None,
        now: float,
        recipient: str,
        envelope_from: str,
        data: bytes,
        lifetime: float = 5 * 86400,
    ) -> int:
        return await self._db.write(
            lambda conn: queue_repo.enqueue_notice(
                conn, message_id, thread_id, now, recipient, envelope_from, data, lifetime
            )
        )

    async def recover(self, now: float, owner: str | None = None, *, prefix: bool = False) -> int:
        return await self._db.write(lambda conn: queue_repo.recover(conn, now, owner, prefix=prefix))

    async def reclaim(self, now: float, node: str, alive: Callable[[int], bool]) -> int:
        return await self._db.write(lambda conn: queue_repo.reclaim(conn, now, node, alive))

    async def expired_leases(self, now: float) -> int:
        return await self._db.read_in_thread(lambda conn: queue_repo.expired_leases(conn, now))

    async def set_held(self, queue_id: int, held: bool, now: float, reason: str) -> QueueItem:
        return await self._db.write(lambda conn: queue_repo.set_held(conn, queue_id, held, now, reason))

    async def rows_of_message(self, message_id: int) -> list[QueueItem]:
        return await self._db.read_in_thread(lambda conn: queue_repo.rows_of_message(conn, message_id))

    async def release_message(self, message_id: int, now: float) -> int:
        return await self._db.write(lambda conn: queue_repo.release_message(conn, message_id, now))

    async def drop_message(
        self, message_id: int, now: float, reason: str, notice: tuple[str, str, bytes] | None
    ) -> int:
        return await self._db.write(
            lambda conn: queue_repo.drop_message(conn, message_id, now, reason, notice)
        )

    async def retry(self, queue_id: int | None, now: float) -> list[int]:
        return await self._db.write(lambda conn: queue_repo.retry(conn, queue_id, now))

    async def drop(self, queue_id: int, now: float, notice: tuple[str, str, bytes] | None) -> int | None:
        return await self._db.write(lambda conn: queue_repo.drop(conn, queue_id, now, notice))

    async def stats(
        self,
    ) -> QueueStats:
        return await self._db.read_in_thread(lambda conn: queue_repo.stats(conn))


class SqliteAudit(_Repo):
    async def append(
        self,
        event: str,
        *,
        reason: str = "",
        thread_id: int | None = None,
        party_id: int | None = None,
        message_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
        ts: float | None = None,
        pii: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        return await self._db.write(
            lambda conn: audit_repo.append(
                conn,
                event,
                reason=reason,
                thread_id=thread_id,
                party_id=party_id,
                message_id=message_id,
                detail=detail,
                ts=ts,
                pii=pii,
            )
        )

    async def events_after(
        self,
        after_seq: int = 0,
        *,
        limit: int = 1000,
        thread_id: int | None = None,
        party_id: int | None = None,
        event: str | None = None,
        since: float | None = None,
        message_id: int | None = None,
    ) -> list[AuditEvent]:
        return await self._db.read_in_thread(
            lambda conn: audit_repo.events_after(
                conn,
                after_seq,
                limit=limit,
                thread_id=thread_id,
                party_id=party_id,
                event=event,
                since=since,
                message_id=message_id,
            )
        )

    async def last_events(self, n: int, **filters: Any) -> list[AuditEvent]:
        return await self._db.read_in_thread(lambda conn: audit_repo.last_events(conn, n, **filters))

    async def events_in(self, seqs: list[int]) -> list[AuditEvent]:
        return await self._db.read_in_thread(lambda conn: audit_repo.events_in(conn, seqs))

    async def head(self) -> tuple[int, str]:
        return await self._db.read(lambda conn: audit_repo.head(conn))

    async def verify(self, batch: int = 5000) -> Result:
        return await self._db.read_in_thread(lambda conn: audit_verify.verify(conn, batch))

    async def check_events(self, events: list[dict[str, Any]]) -> list[str]:
        return await self._db.read_in_thread(lambda conn: audit_verify.check_events(conn, events))

    async def missing_anchors(self, anchors: list[str]) -> list[str]:
        return await self._db.read_in_thread(lambda conn: audit_verify.missing_anchors(conn, anchors))


class SqliteRules(_Repo):
    async def buyer_message_rules(
        self, thread_id: int, seller_id: int, subject: str, quoted: Sequence[str], now: float
    ) -> tuple[tuple[str | None, str], Vacation | None, bool]:
        return await self._db.read(
            lambda conn: rules_repo.buyer_message_rules(conn, thread_id, seller_id, subject, quoted, now)
        )

    async def unsubscribe_request(
        self, thread_id: int | None, valid: Callable[[Thread], bool], sender: str
    ) -> tuple[tuple[Thread, Party, Party] | None, int | None]:
        return await self._db.read(
            lambda conn: rules_repo.unsubscribe_request(conn, thread_id, valid, sender)
        )

    async def unsubscribe_by_token(
        self, thread_id: int | None, valid: Callable[[Thread], bool], *, via: str, now: float
    ) -> bool | None:
        return await self._db.write(
            lambda conn: rules_repo.unsubscribe_by_token(conn, thread_id, valid, via=via, now=now)
        )

    async def unsubscribe_by_mail(
        self,
        thread_id: int,
        buyer_id: int,
        seller_id: int,
        sender: str,
        local: str,
        subject: str,
        raw: bytes,
        now: float,
        *,
        automatic: str | None,
        notice: bytes | None,
        lifetime: float,
    ) -> None:
        return await self._db.write(
            lambda conn: rules_repo.unsubscribe_by_mail(
                conn,
                thread_id,
                buyer_id,
                seller_id,
                sender,
                local,
                subject,
                raw,
                now,
                automatic=automatic,
                notice=notice,
                lifetime=lifetime,
            )
        )

    async def no_response_by_mail(
        self,
        seller_id: int,
        quoted: Sequence[str],
        sender: str,
        local: str,
        subject: str,
        raw: bytes,
        now: float,
        *,
        peer: str,
    ) -> int | None:
        return await self._db.write(
            lambda conn: rules_repo.no_response_by_mail(
                conn, seller_id, quoted, sender, local, subject, raw, now, peer=peer
            )
        )

    async def set_optout(
        self, buyer_id: int, seller_id: int | None, on: bool, *, via: str, now: float
    ) -> bool:
        return await self._db.write(
            lambda conn: rules_repo.set_optout(conn, buyer_id, seller_id, on, via=via, now=now)
        )

    async def optout_scope(self, buyer_id: int, seller_id: int) -> str | None:
        return await self._db.read(lambda conn: rules_repo.optout_scope(conn, buyer_id, seller_id))

    async def optouts_of(self, buyer_id: int) -> list[int | None]:
        return await self._db.read(lambda conn: rules_repo.optouts_of(conn, buyer_id))

    async def vacations_of(self, seller_id: int) -> list[Vacation]:
        return await self._db.read(lambda conn: rules_repo.vacations_of(conn, seller_id))

    async def vacation_at(self, seller_id: int, t: float) -> Vacation | None:
        return await self._db.read(lambda conn: rules_repo.vacation_at(conn, seller_id, t))

    async def set_vacation(
        self, seller_id: int, on: bool, *, until: float | None, now: float
    ) -> Vacation | None:
        return await self._db.write(
            lambda conn: rules_repo.set_vacation(conn, seller_id, on, until=until, now=now)
        )

    async def has_vacation_reply(self, vacation_id: int, thread_id: int) -> bool:
        return await self._db.read(lambda conn: rules_repo.has_vacation_reply(conn, vacation_id, thread_id))

    async def claim_vacation_reply(self, vacation_id: int, thread_id: int, message_id: int) -> None:
        return await self._db.write(
            lambda conn: rules_repo.claim_vacation_reply(conn, vacation_id, thread_id, message_id)
        )

    async def record_facts(self, message_id: int, f: MessageFacts) -> None:
        return await self._db.write(lambda conn: rules_repo.record_facts(conn, message_id, f))

    async def order_of(
        self, thread_id: int, subject: str, quoted: Sequence[str], now: float
    ) -> tuple[str | None, str]:
        return await self._db.read(lambda conn: rules_repo.order_of(conn, thread_id, subject, quoted, now))

    async def unjustified_count(self, seller_id: int, since: float | None = None) -> int:
        return await self._db.read_in_thread(
            lambda conn: rules_repo.unjustified_count(conn, seller_id, since)
        )

    async def mark_no_response_needed(self, message_id: int, *, via: str, now: float) -> bool:
        return await self._db.write(
            lambda conn: rules_repo.mark_no_response_needed(conn, message_id, via=via, now=now)
        )

    async def record_relay_message(
        self,
        thread_id: int | None,
        sender_id: int,
        envelope_from: str,
        local: str,
        subject: str,
        raw: bytes,
        now: float,
        direction: str = "buyer_to_relay",
    ) -> int:
        return await self._db.write(
            lambda conn: rules_repo.record_relay_message(
                conn, thread_id, sender_id, envelope_from, local, subject, raw, now, direction
            )
        )

    async def quoted_buyer_message(self, seller_id: int, quoted: Sequence[str]) -> tuple[int, int] | None:
        return await self._db.read(lambda conn: rules_repo.quoted_buyer_message(conn, seller_id, quoted))


class SqliteSellerRules(_Repo):
    async def first_decision(
        self, msg: SellerMessage, subject: str, limits: Limits, *, abuse_since: float, abuse_limit: int
    ) -> tuple[SellerMessage, str, int, Decision]:
        return await self._db.read(
            lambda conn: seller_rules_repo.first_decision(
                conn, msg, subject, limits, abuse_since=abuse_since, abuse_limit=abuse_limit
            )
        )

    async def answerable(self, msg: SellerMessage, window: float) -> list[tuple[int, int]]:
        return await self._db.read(lambda conn: seller_rules_repo.answerable(conn, msg, window))

    async def decide(self, msg: SellerMessage, limits: Limits) -> Decision:
        return await self._db.read(lambda conn: seller_rules_repo.decide(conn, msg, limits))

    async def admit(self, msg: SellerMessage, limits: Limits, message_id: int) -> Decision:
        return await self._db.write(lambda conn: seller_rules_repo.admit(conn, msg, limits, message_id))

    async def unsolicited_count(
        self, thread_id: int, *, order_ref: str | None = None, since: float | None = None
    ) -> int:
        return await self._db.read_in_thread(
            lambda conn: seller_rules_repo.unsolicited_count(
                conn, thread_id, order_ref=order_ref, since=since
            )
        )


class SqliteReview(_Repo):
    async def aliases(self, thread_id: int) -> list[AliasRow]:
        return await self._db.read_in_thread(lambda conn: review_repo.aliases(conn, thread_id))

    async def blob(self, digest: str | None) -> BlobRow | None:
        return await self._db.read_in_thread(lambda conn: review_repo.blob(conn, digest))

    async def queue_rows(self, message_id: int) -> list[QueueRow]:
        return await self._db.read_in_thread(lambda conn: review_repo.queue_rows(conn, message_id))

    async def thread_events(self, thread_id: int, party_ids: tuple[int, ...]) -> list[AuditEvent]:
        return await self._db.read_in_thread(
            lambda conn: review_repo.thread_events(conn, thread_id, party_ids)
        )

    async def raw_events(self, seqs: list[int]) -> list[dict[str, object]]:
        return await self._db.read_in_thread(lambda conn: review_repo.raw_events(conn, seqs))


class SqliteRetention(_Repo):
    async def wipe_cleared(self) -> int:
        return await asyncio.to_thread(blobfiles.wipe_cleared, blobfiles.directory_of(self._db.path))

    async def clear_blobs(self, digests: list[str], now: float, reason: str) -> int:
        return await self._db.write(lambda conn: retention_repo.clear_blobs(conn, digests, now, reason))

    async def expired(self, cutoff: float, limit: int = BATCH) -> list[str]:
        return await self._db.read_in_thread(lambda conn: retention_repo.expired(conn, cutoff, limit))

    async def clear_expired(
        self, cutoff: float, now: float, limit: int = BATCH, candidates: list[str] | None = None
    ) -> tuple[int, int]:
        return await self._db.write(
            lambda conn: retention_repo.clear_expired(conn, cutoff, now, limit, candidates)
        )


class SqliteErasure(_Repo):
    async def quoting_contents(self, party_id: int) -> tuple[set[str], set[str]]:
        return await self._db.read_in_thread(lambda conn: erasure_repo.quoting_contents(conn, party_id))

    async def erase(
        self, party_id: int, now: float, scanned: tuple[set[str], set[str]] | None = None
    ) -> dict[str, Any]:
        return await self._db.write(lambda conn: erasure_repo.erase(conn, party_id, now, scanned))

    async def compact(self, addresses: list[str], *, vacuum: bool = False) -> tuple[bool, list[str]]:
        def run() -> tuple[bool, list[str]]:
            conn = connect_sync(self._db.path)  # its own: no transaction, no writer lock around a VACUUM
            try:
                return erasure_repo.compact(conn, addresses, vacuum=vacuum)
            finally:
                conn.close()

        return await asyncio.to_thread(run)


class SqliteLabels(_Repo):
    async def hold_findings(self, message_id: int) -> list[tuple[str, str, str]]:
        return await self._db.read(lambda conn: labels_repo.hold_findings(conn, message_id))

    async def held_by_policy(self, message_id: int) -> bool:
        return await self._db.read(lambda conn: labels_repo.held_by_policy(conn, message_id))

    async def has_label(self, message_id: int) -> bool:
        return await self._db.read(lambda conn: labels_repo.has_label(conn, message_id))

    async def record(
        self,
        message_id: int,
        decision: str,
        held_for: Sequence[str],
        categories: Sequence[str],
        *,
        corrected: bool,
        reason: str | None,
        by: str,
        now: float,
    ) -> Label:
        return await self._db.write(
            lambda conn: labels_repo.record(
                conn,
                message_id,
                decision,
                held_for,
                categories,
                corrected=corrected,
                reason=reason,
                by=by,
                now=now,
            )
        )

    async def get(self, message_id: int) -> Label | None:
        return await self._db.read(lambda conn: labels_repo.get(conn, message_id))

    async def listing(self, since: float | None = None) -> list[Label]:
        return await self._db.read_in_thread(lambda conn: labels_repo.listing(conn, since))

    async def release_with_label(
        self,
        message_id: int,
        now: float,
        held_for: Sequence[str],
        categories: Sequence[str],
        *,
        corrected: bool,
        reason: str | None,
        by: str,
    ) -> tuple[int, Label | None]:
        return await self._db.write(
            lambda conn: labels_repo.release_with_label(
                conn, message_id, now, held_for, categories, corrected=corrected, reason=reason, by=by
            )
        )

    async def drop_with_label(
        self,
        message_id: int,
        now: float,
        notice: tuple[str, str, bytes] | None,
        held_for: Sequence[str],
        categories: Sequence[str],
        *,
        corrected: bool,
        reason: str | None,
        by: str,
    ) -> tuple[int, Label | None]:
        return await self._db.write(
            lambda conn: labels_repo.drop_with_label(
                conn, message_id, now, notice, held_for, categories, corrected=corrected, reason=reason, by=by
            )
        )


class SqliteCredentials(_Repo):
    async def password_of_address(self, address: str) -> tuple[int | None, str | None]:
        return await self._db.read(lambda conn: credentials_repo.password_of_address(conn, address))

    async def set_password(self, party_id: int, password_hash: str, now: float | None = None) -> None:
        return await self._db.write(
            lambda conn: credentials_repo.set_password(conn, party_id, password_hash, now)
        )

    async def password_hash(self, party_id: int) -> str | None:
        return await self._db.read(lambda conn: credentials_repo.password_hash(conn, party_id))

    async def change_password(
        self, party_id: int, password_hash: str, *, reason: str = "cli", now: float | None = None
    ) -> None:
        return await self._db.write(
            lambda conn: credentials_repo.change_password(conn, party_id, password_hash, reason=reason, now=now)
        )


class SqliteMetrics(_Repo):
    async def thread_messages(self, seller_id: int) -> list[ThreadMessage]:
        return await self._db.read_in_thread(lambda conn: metrics_repo.thread_messages(conn, seller_id))

    async def order_times(self, seller_id: int) -> dict[tuple[int, str], float]:
        return await self._db.read_in_thread(lambda conn: metrics_repo.order_times(conn, seller_id))


class SqliteSecrets(_Repo):
    async def put(self, name: str, version: int, nonce: bytes, data: bytes, created_at: float, node: str) -> bool:
        return await self._db.write(
            lambda conn: secrets_repo.put(conn, name, version, nonce, data, created_at, node)
        )

    async def get(self, name: str) -> SecretRow | None:
        return await self._db.read(lambda conn: secrets_repo.get(conn, name))

    async def names(self) -> list[SecretInfo]:
        return await self._db.read(lambda conn: secrets_repo.names(conn))


class SqliteStore:
    """The store of one relay process on its SQLite file (relay.store.interface.Store)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.parties: interface.Parties = SqliteParties(db)
        self.threads: interface.Threads = SqliteThreads(db)
        self.messages: interface.Messages = SqliteMessages(db)
        self.queue: interface.Queue = SqliteQueue(db)
        self.audit: interface.Audit = SqliteAudit(db)
        self.rules: interface.Rules = SqliteRules(db)
        self.seller_rules: interface.SellerRules = SqliteSellerRules(db)
        self.review: interface.Review = SqliteReview(db)
        self.retention: interface.Retention = SqliteRetention(db)
        self.erasure: interface.Erasure = SqliteErasure(db)
        self.labels: interface.Labels = SqliteLabels(db)
        self.credentials: interface.Credentials = SqliteCredentials(db)
        self.metrics: interface.Metrics = SqliteMetrics(db)
        self.secrets: interface.Secrets = SqliteSecrets(db)
        self.failures: tuple[type[Exception], ...] = (StoreUnavailable, sqlite3.Error)

    @classmethod
    def at(
        cls,
        path: Path | str,
        *,
        group_commit_max: int = 256,
        busy_timeout: float = 10.0,
        checkpoint_interval: float = 0.25,
    ) -> SqliteStore:
        return cls(
            Database(
                path,
                group_commit_max=group_commit_max,
                busy_timeout=busy_timeout,
                checkpoint_interval=checkpoint_interval,
            )
        )

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def touch(self) -> None:
        await self.db.write(_touch)

    @property
    def transactions(self) -> int:
        return self.db.transactions

    @property
    def units(self) -> int:
        return self.db.units


def _touch(conn: Any) -> None:
    conn.execute("PRAGMA user_version")  # inside BEGIN IMMEDIATE … COMMIT: the write lock was ours


if TYPE_CHECKING:  # mypy holds the backend to the interface

    def _is_a_store(db: Database) -> interface.Store:
        return SqliteStore(db)
