"""The store as the rest of the relay sees it: async repositories, one per aggregate.

Stages, the delivery worker, the rules' mailboxes, the HTTP side and retention hold a Store and call
its methods; they never see a connection or SQL. Naming: each method is named after the synchronous
function of relay/store/<module>.py that does the work on SQLite, takes the same arguments without
`conn` and returns the same type (store.queue.claim_due(now, limit, owner, lease) is
queue.claim_due(conn, now, limit, owner, lease)). Where a caller needs several lookups or several
writes that commit together, that is one method (store.messages.accept, store.threads.resolve_message,
store.rules.unsubscribe_by_mail …), one read or one transaction, never a sequence of calls.

Every write method is atomic and durable when it returns (SQLite: one unit of a group commit,
relay/store/db.py); a failing one leaves nothing behind and raises (StoreUnavailable when the store
cannot take writes at all). Reads see committed data. Which reads run inline and which off the loop is
the backend's business. relay/store/sqlite.py is the SQLite backend; a PostgreSQL one implements the
same protocols (relay/store/pg/).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from relay.model import AliasTarget, Party, Role, Thread
from relay.store.accept import AcceptHook, AdmitSeller, RecordFacts, VacationReply
from relay.store.audit import AuditEvent
from relay.store.audit_verify import Result
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

__all__ = ["AcceptHook", "AdmitSeller", "RecordFacts", "Store", "VacationReply"]


class Parties(Protocol):
    async def party_at(self, address: str) -> Party | None: ...
    async def add(self, role: Role, name: str, emails: list[str], ref: str | None = None) -> Party: ...
    async def get(self, party_id: int) -> Party: ...
    async def find(self, key: str) -> Party: ...
    async def by_address(self, address: str) -> int | None: ...
    async def addresses_of(self, party_ids: list[int]) -> dict[int, tuple[str, ...]]: ...
    async def ensure(self, role: Role, name: str, emails: list[str], ref: str) -> tuple[Party, bool]: ...
    async def update(
        self,
        party_id: int,
        *,
        name: str | None = None,
        emails: list[str] | None = None,
        status: str | None = None,
        now: float | None = None,
    ) -> tuple[Party, list[str]]: ...
    async def listing(self, role: Role | None = None, *, after: int = 0, limit: int = 1000) -> list[Party]: ...


class Threads(Protocol):
    async def resolve_recipient(
        self, local: str, sender: str
    ) -> tuple[AliasTarget | None, int | None, int | None]: ...
    async def resolve_message(
        self, local: str, quoted_ids: Sequence[str]
    ) -> tuple[Thread, Party, Party, dict[str, str]] | None: ...
    async def get(self, thread_id: int) -> Thread: ...
    async def open_thread(
        self,
        buyer_id: int,
        seller_id: int,
        *,
        order: str | None = None,
        buyer_alias: str | None = None,
        seller_alias: str | None = None,
        now: float | None = None,
    ) -> tuple[Thread, bool]: ...
    async def add_order(self, thread_id: int, ref: str, *, now: float | None = None) -> bool: ...
    async def orders(self, thread_id: int) -> list[Order]: ...
    async def resolve_alias(self, local: str) -> AliasTarget | None: ...
    async def alias_of(self, thread_id: int, party_id: int) -> str | None: ...
    async def revoke_alias(self, local: str, *, now: float | None = None) -> AliasTarget: ...
    async def threads_of(self, party_id: int) -> list[int]: ...
    async def listing(
        self, party_id: int | None = None, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[Thread, list[Order]]]: ...
    async def find_by_order(self, ref: str) -> list[tuple[Thread, list[Order]]]: ...
    async def find_by_alias(self, local: str) -> tuple[Thread, list[Order], AliasTarget] | None: ...


class Messages(Protocol):
    async def write_large(
        self,
        contents: Sequence[bytes],
        files: Mapping[int, Path] | None = None,
        derived: Collection[int] = (),
    ) -> dict[int, str]:
        """Contents of blobfiles.FILE_BYTES and more written (and fsynced) before the commit, outside
        the write lock; their digests by id() for Accepted.digests (relay/store/messages.write_large).
        accept() forgets what its rows did not take."""
        ...

    async def accept(
        self, rows: Sequence[Accepted], hooks: Sequence[Sequence[AcceptHook]]
    ) -> list[tuple[int, int]]: ...
    async def get_blob(self, digest: str) -> bytes | None: ...
    async def small_blob(self, digest: str, below: int) -> tuple[int | None, bytes | None]: ...
    async def record_accepted(self, msg: Accepted) -> tuple[int, int]: ...
    async def record_refused(self, msg: Refused) -> int: ...
    async def translate_ids(
        self, thread_id: int, recipient_id: int, ids: Iterable[str]
    ) -> dict[str, str]: ...
    async def set_state(self, message_id: int, state: str, reason: str | None = None) -> None: ...
    async def get(self, message_id: int) -> MessageRow | None: ...
    async def of_thread(self, thread_id: int) -> list[MessageRow]: ...


class Queue(Protocol):
    async def get(self, queue_id: int) -> QueueItem: ...
    async def listing(self, state: str | None = None, limit: int = 1000) -> list[QueueItem]: ...
    async def claim_due(
        self, now: float, limit: int, owner: str = "", lease: float = 300.0
    ) -> list[QueueItem]: ...
    async def renew(self, held: list[tuple[int, int]], until: float) -> list[int]: ...
    async def next_due_at(
        self,
    ) -> float | None: ...
    async def mark_delivered(self, item: QueueItem, now: float, response: str) -> bool: ...
    async def defer(
        self, item: QueueItem, now: float, next_at: float, error: str, *, ambiguous: bool = False
    ) -> bool: ...
    async def bounce(
        self, item: QueueItem, now: float, reason: str, error: str, notice: tuple[str, str, bytes] | None
    ) -> int | None: ...
    async def enqueue_notice(
        self,
        message_id: int,
        thread_id: int | None,
        now: float,
        recipient: str,
        envelope_from: str,
        data: bytes,
        lifetime: float = 5 * 86400,
    ) -> int: ...
    async def recover(self, now: float, owner: str | None = None, *, prefix: bool = False) -> int: ...
    async def reclaim(self, now: float, node: str, alive: Callable[[int], bool]) -> int: ...
    async def expired_leases(self, now: float) -> int: ...
    async def set_held(self, queue_id: int, held: bool, now: float, reason: str) -> QueueItem: ...
    async def rows_of_message(self, message_id: int) -> list[QueueItem]: ...
    async def release_message(self, message_id: int, now: float) -> int: ...
    async def drop_message(
        self, message_id: int, now: float, reason: str, notice: tuple[str, str, bytes] | None
    ) -> int: ...
    async def retry(self, queue_id: int | None, now: float) -> list[int]: ...
    async def drop(self, queue_id: int, now: float, notice: tuple[str, str, bytes] | None) -> int | None: ...
    async def stats(
        self,
    ) -> QueueStats: ...


class Audit(Protocol):
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
    ) -> AuditEvent: ...
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
    ) -> list[AuditEvent]: ...
    async def last_events(self, n: int, **filters: Any) -> list[AuditEvent]: ...
    async def events_in(self, seqs: list[int]) -> list[AuditEvent]: ...
    async def head(self) -> tuple[int, str]: ...
    async def verify(self, batch: int = 5000) -> Result: ...
    async def check_events(self, events: list[dict[str, Any]]) -> list[str]: ...
    async def missing_anchors(self, anchors: list[str]) -> list[str]: ...


class Rules(Protocol):
    async def buyer_message_rules(
        self, thread_id: int, seller_id: int, subject: str, quoted: Sequence[str], now: float
    ) -> tuple[tuple[str | None, str], Vacation | None, bool]: ...
    async def unsubscribe_request(
        self, thread_id: int | None, valid: Callable[[Thread], bool], sender: str
    ) -> tuple[tuple[Thread, Party, Party] | None, int | None]: ...
    async def unsubscribe_by_token(
        self, thread_id: int | None, valid: Callable[[Thread], bool], *, via: str, now: float
    ) -> bool | None: ...
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
    ) -> None: ...
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
    ) -> int | None: ...
    async def set_optout(
        self, buyer_id: int, seller_id: int | None, on: bool, *, via: str, now: float
    ) -> bool: ...
    async def optout_scope(self, buyer_id: int, seller_id: int) -> str | None: ...
    async def optouts_of(self, buyer_id: int) -> list[int | None]: ...
    async def vacations_of(self, seller_id: int) -> list[Vacation]: ...
    async def vacation_at(self, seller_id: int, t: float) -> Vacation | None: ...
    async def set_vacation(
        self, seller_id: int, on: bool, *, until: float | None, now: float
    ) -> Vacation | None: ...
    async def has_vacation_reply(self, vacation_id: int, thread_id: int) -> bool: ...
    async def claim_vacation_reply(self, vacation_id: int, thread_id: int, message_id: int) -> None: ...
    async def record_facts(self, message_id: int, f: MessageFacts) -> None: ...
    async def order_of(
        self, thread_id: int, subject: str, quoted: Sequence[str], now: float
    ) -> tuple[str | None, str]: ...
    async def unjustified_count(self, seller_id: int, since: float | None = None) -> int: ...
    async def mark_no_response_needed(self, message_id: int, *, via: str, now: float) -> bool: ...
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
    ) -> int: ...
    async def quoted_buyer_message(self, seller_id: int, quoted: Sequence[str]) -> tuple[int, int] | None: ...


class SellerRules(Protocol):
    async def first_decision(
        self, msg: SellerMessage, subject: str, limits: Limits, *, abuse_since: float, abuse_limit: int
    ) -> tuple[SellerMessage, str, int, Decision]: ...
    async def answerable(self, msg: SellerMessage, window: float) -> list[tuple[int, int]]: ...
    async def decide(self, msg: SellerMessage, limits: Limits) -> Decision: ...
    async def admit(self, msg: SellerMessage, limits: Limits, message_id: int) -> Decision: ...
    async def unsolicited_count(
        self, thread_id: int, *, order_ref: str | None = None, since: float | None = None
    ) -> int: ...


class Review(Protocol):
    async def aliases(self, thread_id: int) -> list[AliasRow]: ...
    async def blob(self, digest: str | None) -> BlobRow | None: ...
    async def queue_rows(self, message_id: int) -> list[QueueRow]: ...
    async def thread_events(self, thread_id: int, party_ids: tuple[int, ...]) -> list[AuditEvent]: ...
    async def raw_events(self, seqs: list[int]) -> list[dict[str, object]]: ...


class Retention(Protocol):
    async def wipe_cleared(self) -> int:
        """Zero and remove the content files that clearing set aside (after its commit); off the loop."""
        ...

    async def clear_blobs(self, digests: list[str], now: float, reason: str) -> int: ...
    async def expired(self, cutoff: float, limit: int = BATCH) -> list[str]: ...
    async def clear_expired(
        self, cutoff: float, now: float, limit: int = BATCH, candidates: list[str] | None = None
    ) -> tuple[int, int]: ...


class Erasure(Protocol):
    async def quoting_contents(self, party_id: int) -> tuple[set[str], set[str]]: ...
    async def erase(
        self, party_id: int, now: float, scanned: tuple[set[str], set[str]] | None = None
    ) -> dict[str, Any]: ...
    async def compact(self, addresses: list[str], *, vacuum: bool = False) -> tuple[bool, list[str]]:
        """After erase(): no old version of what it rewrote may survive in the store's files (SQLite:
        the WAL checkpointed and emptied, VACUUM when needed); (completed, files still holding an
        address). Runs outside any transaction, off the loop."""
        ...


class Labels(Protocol):
    async def hold_findings(self, message_id: int) -> list[tuple[str, str, str]]: ...
    async def held_by_policy(self, message_id: int) -> bool: ...
    async def has_label(self, message_id: int) -> bool: ...
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
    ) -> Label: ...
    async def get(self, message_id: int) -> Label | None: ...
    async def listing(self, since: float | None = None) -> list[Label]: ...
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
    ) -> tuple[int, Label | None]: ...
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
    ) -> tuple[int, Label | None]: ...


class Credentials(Protocol):
    async def password_of_address(self, address: str) -> tuple[int | None, str | None]: ...
    async def set_password(self, party_id: int, password_hash: str, now: float | None = None) -> None: ...
    async def password_hash(self, party_id: int) -> str | None: ...
    async def change_password(
        self, party_id: int, password_hash: str, *, reason: str = "cli", now: float | None = None
    ) -> None: ...


class Metrics(Protocol):
    async def thread_messages(self, seller_id: int) -> list[ThreadMessage]: ...
    async def order_times(self, seller_id: int) -> dict[tuple[int, str], float]: ...


class Secrets(Protocol):
    """Shared keys as ciphertext (relay/keys.py encrypts and decrypts them)."""

    async def put(self, name: str, version: int, nonce: bytes, data: bytes, created_at: float, node: str) -> bool:
        """Written when `version` is newer than the stored one; False: someone else's was newer or equal."""
        ...

    async def get(self, name: str) -> SecretRow | None: ...
    async def names(self) -> list[SecretInfo]: ...


class Store(Protocol):
    """One relay process's store: the repositories, and its lifecycle."""

    parties: Parties
    threads: Threads
    messages: Messages
    queue: Queue
    audit: Audit
    rules: Rules
    seller_rules: SellerRules
    review: Review
    retention: Retention
    erasure: Erasure
    labels: Labels
    credentials: Credentials
    metrics: Metrics
    secrets: Secrets
    #: What a failed call raises besides a repository's own refusals (NotFound, Conflict): StoreUnavailable
    #: and the backend driver's errors (SQLite: sqlite3.Error), for `except store.failures`.
    failures: tuple[type[Exception], ...]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def touch(self) -> None:
        """A real write transaction that changes nothing (health check: the store takes writes)."""
        ...

    @property
    def transactions(self) -> int:
        """Transactions committed by this process (group commits count once)."""
        ...

    @property
    def units(self) -> int:
        """Units of work committed by this process (one per write method call)."""
        ...
