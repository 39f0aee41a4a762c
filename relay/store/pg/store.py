"""The PostgreSQL backend of the store's interface (relay/store/interface.py), for several relay
nodes sharing one database.

Each write method is one short READ COMMITTED transaction on the pool (PgDatabase.transaction);
reads run on a pooled connection, those that must see one state across statements in a read-only
REPEATABLE READ transaction (PgDatabase.snapshot). Where a rule reads and then acts, the row it
depends on is locked first (seller limits: the thread's row, pg/seller_rules.py; a vacation reply:
the vacation's row, pg/accept.py; an operator's queue change: the queue row). The audit chain is
appended under its advisory lock, taken last in a unit (pg/audit.py). Refusals are the SQLite
store's (NotFound, Conflict, the hooks' own exceptions); a lost server is StoreUnavailable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from relay.store import interface
from relay.store.errors import StoreUnavailable
from relay.store.pg.audit import PgAudit
from relay.store.pg.db import CONNECTION_ERRORS, PgDatabase
from relay.store.pg.messages import PgMessages
from relay.store.pg.parties import PgParties
from relay.store.pg.queue import PgQueue
from relay.store.pg.reads import PgCredentials, PgLabels, PgMetrics, PgReview
from relay.store.pg.retention import PgErasure, PgRetention
from relay.store.pg.rules import PgRules
from relay.store.pg.secrets import PgSecrets
from relay.store.pg.seller_rules import PgSellerRules
from relay.store.pg.threads import PgThreads
from relay.store.url import PgTarget


class PgStore:
    """The store of one relay process on a shared PostgreSQL database (relay.store.interface.Store)."""

    def __init__(self, db: PgDatabase, *, migrate: bool = True) -> None:
        self.db = db
        self.migrate_on_open = migrate
        self.parties: interface.Parties = PgParties(db)
        self.threads: interface.Threads = PgThreads(db)
        self.messages: interface.Messages = PgMessages(db)
        self.queue: interface.Queue = PgQueue(db)
        self.audit: interface.Audit = PgAudit(db)
        self.rules: interface.Rules = PgRules(db)
        self.seller_rules: interface.SellerRules = PgSellerRules(db)
        self.review: interface.Review = PgReview(db)
        self.retention: interface.Retention = PgRetention(db)
        self.erasure: interface.Erasure = PgErasure(db)
        self.labels: interface.Labels = PgLabels(db)
        self.credentials: interface.Credentials = PgCredentials(db)
        self.metrics: interface.Metrics = PgMetrics(db)
        self.secrets: interface.Secrets = PgSecrets(db)
        errors = tuple(e for e in CONNECTION_ERRORS if issubclass(e, Exception))
        self.failures: tuple[type[Exception], ...] = (StoreUnavailable, asyncpg.PostgresError, *errors)

    @classmethod
    def at(cls, target: PgTarget, *, min_size: int = 1, max_size: int = 10, migrate: bool = True) -> PgStore:
        return cls(PgDatabase(target, min_size=min_size, max_size=max_size), migrate=migrate)

    async def open(self) -> None:
        await self.db.open()
        if self.migrate_on_open:
            await self.db.migrate()

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> PgStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def touch(self) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("SELECT txid_current()")  # assigns a transaction id: the server takes writes

    @property
    def transactions(self) -> int:
        """Write transactions committed by this process (no group commit here: one per unit)."""
        return self.db.transactions

    @property
    def units(self) -> int:
        return self.db.transactions


if TYPE_CHECKING:  # mypy holds the backend to the interface

    def _is_a_store(db: PgDatabase) -> interface.Store:
        return PgStore(db)
