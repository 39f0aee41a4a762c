"""The store the daemon serves from, chosen by store.url (settings.store_target, relay/store/url.py):
SQLite (the default: <relay.state_dir>/relay.db, or sqlite:///PATH) or a PostgreSQL server shared by
several nodes (postgresql://…).

Reads config: store.url, store.password_file, store.group_commit_max, store.busy_timeout,
store.checkpoint_interval (SQLite). open_store() builds the store; the caller awaits its open()
(PostgreSQL: connects the pool and applies pending migrations under their advisory lock) and close().
SQLite's file is migrated by migrate_file() before it is opened (relay/app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.store.interface import Store
from relay.store.url import PgTarget

if TYPE_CHECKING:
    from relay.config import Settings


def uses_postgresql(settings: Settings) -> bool:
    return isinstance(settings.store_target, PgTarget)


def open_store(settings: Settings, *, pool_size: int = 10) -> Store:
    """The store of `settings` (not yet opened). `pool_size`: PostgreSQL connections of this process."""
    target = settings.store_target
    if isinstance(target, PgTarget):
        from relay.store.pg.store import PgStore

        return PgStore.at(target, max_size=pool_size)
    from relay.store.sqlite import SqliteStore

    return SqliteStore.at(target.path, group_commit_max=settings.store.group_commit_max,
                          busy_timeout=settings.store.busy_timeout,
                          checkpoint_interval=settings.store.checkpoint_interval)
