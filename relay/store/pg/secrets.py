"""Shared keys on PostgreSQL: relay/store/secrets.py's put, get and names on a PgDatabase, each in
its own short transaction. Every node reads the same rows; relay/keys.py decrypts them with the
node's own copy of the key-encryption key.
"""

from __future__ import annotations

from relay.store.pg.db import PgDatabase
from relay.store.secrets import SecretInfo, SecretRow


class PgSecrets:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def put(self, name: str, version: int, nonce: bytes, data: bytes, created_at: float, node: str) -> bool:
        async with self._db.transaction() as conn:
            done = await conn.fetchval(
                "INSERT INTO secrets (name, version, nonce, data, created_at, node) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (name) DO UPDATE SET version = excluded.version, nonce = excluded.nonce,"
                " data = excluded.data, created_at = excluded.created_at, node = excluded.node"
                " WHERE excluded.version > secrets.version RETURNING true",
                name, version, nonce, data, created_at, node)
        return bool(done)

    async def get(self, name: str) -> SecretRow | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT name, version, nonce, data, created_at, node FROM secrets WHERE name = $1", name)
        if row is None:
            return None
        return SecretRow(row[0], int(row[1]), bytes(row[2]), bytes(row[3]), float(row[4]), row[5])

    async def names(self) -> list[SecretInfo]:
        async with self._db.connection() as conn:
            rows = await conn.fetch("SELECT name, version, created_at, node FROM secrets ORDER BY name")
        return [SecretInfo(r[0], int(r[1]), float(r[2]), r[3]) for r in rows]
