"""Threads (one buyer, one seller), their two aliases, and their orders."""

from __future__ import annotations

import re
import secrets
import sqlite3
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass

from relay.model import AliasTarget, Party, Role, Thread
from relay.store import audit
from relay.store import messages as messages_repo
from relay.store import parties as parties_repo
from relay.store.errors import Conflict, NotFound

ALPHABET = string.ascii_lowercase + string.digits
ALIAS_LENGTH = 16  # 36**16 ≈ 2**82.7: at least 80 bits from `secrets`
IMPORTED_ALIAS = re.compile(r"^[a-z0-9]{8,64}$")


def new_alias_local() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(ALIAS_LENGTH))


@dataclass(frozen=True, slots=True)
class Order:
    ref: str
    placed_at: float


def _thread(row: tuple[int, int, int, float], conn: sqlite3.Connection) -> Thread:
    tid, buyer_id, seller_id, created = row
    aliases = dict(conn.execute(
        "SELECT party_id, local FROM aliases WHERE thread_id = ? AND revoked_at IS NULL", (tid,)))
    return Thread(id=tid, buyer_id=buyer_id, seller_id=seller_id, buyer_alias=aliases.get(buyer_id, ""),
                  seller_alias=aliases.get(seller_id, ""), created_at=created)


def get(conn: sqlite3.Connection, thread_id: int) -> Thread:
    row = conn.execute("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE id = ?",
                       (thread_id,)).fetchone()
    if row is None:
        raise NotFound(f"no such thread: {thread_id}")
    return _thread(row, conn)


def _check_import(conn: sqlite3.Connection, local: str) -> str:
    local = local.strip().lower()
    if not IMPORTED_ALIAS.match(local):
        raise Conflict(f"alias {local!r} must be 8 to 64 characters of a-z and 0-9")
    if conn.execute("SELECT 1 FROM aliases WHERE local = ?", (local,)).fetchone():
        raise Conflict(f"alias {local!r} is taken")
    return local


def _fresh_alias(conn: sqlite3.Connection) -> str:
    while True:
        local = new_alias_local()
        if not conn.execute("SELECT 1 FROM aliases WHERE local = ?", (local,)).fetchone():
            return local


def open_thread(conn: sqlite3.Connection, buyer_id: int, seller_id: int, *, order: str | None = None,
                buyer_alias: str | None = None, seller_alias: str | None = None,
                now: float | None = None) -> tuple[Thread, bool]:
    """Open (or return) the thread of a buyer–seller pair; record `order` on it."""
    now = time.time() if now is None else now
    buyer = parties_repo.get(conn, buyer_id)
    seller = parties_repo.get(conn, seller_id)
    if buyer.role is not Role.BUYER:
        raise Conflict(f"party {buyer_id} is a {buyer.role.value}, not a buyer")
    if seller.role is not Role.SELLER:
        raise Conflict(f"party {seller_id} is a {seller.role.value}, not a seller")
    row = conn.execute("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE buyer_id = ? AND seller_id = ?",
                       (buyer_id, seller_id)).fetchone()
    created = row is None
    if created:
        b_local = _check_import(conn, buyer_alias) if buyer_alias else _fresh_alias(conn)
        s_local = _check_import(conn, seller_alias) if seller_alias else _fresh_alias(conn)
        if b_local == s_local:
            raise Conflict("the two aliases must differ")
        cur = conn.execute("INSERT INTO threads (buyer_id, seller_id, created_at) VALUES (?, ?, ?)",
                           (buyer_id, seller_id, now))
        tid = int(cur.lastrowid or 0)
        conn.executemany("INSERT INTO aliases (local, thread_id, party_id, created_at) VALUES (?, ?, ?, ?)",
                         [(b_local, tid, buyer_id, now), (s_local, tid, seller_id, now)])
        audit.append(conn, "thread.opened", reason="cli.thread_open", thread_id=tid,
                     detail={"buyer": buyer_id, "seller": seller_id,
                             "imported": bool(buyer_alias or seller_alias)}, ts=now)
        thread = get(conn, tid)
    else:
        assert row is not None
        thread = _thread(row, conn)
        for wanted, have in ((buyer_alias, thread.buyer_alias), (seller_alias, thread.seller_alias)):
            if wanted and wanted.strip().lower() != have:
                raise Conflict(f"thread {thread.id} already exists with other aliases")
    if order:
        add_order(conn, thread.id, order, now=now)
    return thread, created


def add_order(conn: sqlite3.Connection, thread_id: int, ref: str, *, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    cur = conn.execute("INSERT OR IGNORE INTO orders (thread_id, ref, placed_at) VALUES (?, ?, ?)",
                       (thread_id, ref, now))
    if cur.rowcount:
        audit.append(conn, "order.recorded", reason="cli.order", thread_id=thread_id,
                     detail={"order": ref}, ts=now)
    return bool(cur.rowcount)


def orders(conn: sqlite3.Connection, thread_id: int) -> list[Order]:
    return [Order(r, p) for r, p in conn.execute(
        "SELECT ref, placed_at FROM orders WHERE thread_id = ? ORDER BY placed_at, id", (thread_id,))]


def resolve_alias(conn: sqlite3.Connection, local: str) -> AliasTarget | None:
    row = conn.execute(
        "SELECT a.local, a.thread_id, a.party_id, p.role, a.revoked_at FROM aliases a"
        " JOIN parties p ON p.id = a.party_id WHERE a.local = ?", (local.lower(),)).fetchone()
    if row is None:
        return None
    return AliasTarget(alias=row[0], thread_id=row[1], party_id=row[2], role=Role(row[3]),
                       revoked=row[4] is not None)


def alias_of(conn: sqlite3.Connection, thread_id: int, party_id: int) -> str | None:
    """The live alias standing for `party_id` in the thread."""
    row = conn.execute("SELECT local FROM aliases WHERE thread_id = ? AND party_id = ? AND revoked_at IS NULL",
                       (thread_id, party_id)).fetchone()
    return row[0] if row else None


def revoke_alias(conn: sqlite3.Connection, local: str, *, now: float | None = None) -> AliasTarget:
    target = resolve_alias(conn, local)
    if target is None:
        raise NotFound(f"no such alias: {local}")
    if target.revoked:
        raise Conflict(f"alias {target.alias} is already revoked")
    now = time.time() if now is None else now
    conn.execute("UPDATE aliases SET revoked_at = ? WHERE local = ?", (now, target.alias))
    audit.append(conn, "alias.revoked", reason="cli.alias_revoke", thread_id=target.thread_id,
                 party_id=target.party_id, detail={"alias": target.alias}, ts=now)
    return target


def _with_orders(conn: sqlite3.Connection, rows: list[tuple[int, int, int, float]]) -> list[tuple[Thread, list[Order]]]:
    """Threads (their live aliases) and their orders from thread rows, in three queries."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    live: dict[tuple[int, int], str] = {}
    for tid, pid, local in conn.execute(
            f"SELECT thread_id, party_id, local FROM aliases WHERE thread_id IN ({marks}) AND revoked_at IS NULL", ids):
        live[(tid, pid)] = local
    placed: dict[int, list[Order]] = {tid: [] for tid in ids}
    for tid, ref, at in conn.execute(
            f"SELECT thread_id, ref, placed_at FROM orders WHERE thread_id IN ({marks}) ORDER BY placed_at, id", ids):
        placed[tid].append(Order(ref, at))
    return [(Thread(id=tid, buyer_id=b, seller_id=s, buyer_alias=live.get((tid, b), ""),
                    seller_alias=live.get((tid, s), ""), created_at=created), placed[tid])
            for tid, b, s, created in rows]


def listing(conn: sqlite3.Connection, party_id: int | None = None, *, after: int = 0,
            limit: int = 1000) -> list[tuple[Thread, list[Order]]]:
    """Threads with an id above `after` (of one party, buyer or seller, or all), by id, at most
    `limit`, each with its orders: one page."""
    if party_id is None:
        rows = conn.execute("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE id > ? ORDER BY id LIMIT ?",
                            (after, limit)).fetchall()
    else:
        rows = conn.execute("SELECT id, buyer_id, seller_id, created_at FROM threads"
                            " WHERE id > ? AND (buyer_id = ? OR seller_id = ?) ORDER BY id LIMIT ?",
                            (after, party_id, party_id, limit)).fetchall()
    return _with_orders(conn, rows)


def find_by_order(conn: sqlite3.Connection, ref: str) -> list[tuple[Thread, list[Order]]]:
    """The threads on which this order reference was recorded (normally one), by id."""
    rows = conn.execute("SELECT id, buyer_id, seller_id, created_at FROM threads WHERE id IN"
                        " (SELECT thread_id FROM orders WHERE ref = ?) ORDER BY id", (ref,)).fetchall()
    return _with_orders(conn, rows)


def find_by_alias(conn: sqlite3.Connection, local: str) -> tuple[Thread, list[Order], AliasTarget] | None:
    """The thread of an alias (live or revoked), its orders, and what the alias stands for."""
    target = resolve_alias(conn, local)
    if target is None:
        return None
    thread = get(conn, target.thread_id)
    return thread, orders(conn, thread.id), target


def threads_of(conn: sqlite3.Connection, party_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM threads WHERE buyer_id = ? OR seller_id = ? ORDER BY id", (party_id, party_id))]


# -- the SMTP side's lookups (each one read, several indexed lookups) ---------------------------------
def resolve_recipient(conn: sqlite3.Connection, local: str,
                      sender: str) -> tuple[AliasTarget | None, int | None, int | None]:
    """RCPT: the alias's target, the party registered at `sender` (None for the null sender or an
    unknown one) and the other party of the alias's thread. For an unknown or revoked alias only the
    target (or None) is looked up."""
    target = resolve_alias(conn, local)
    if target is None or target.revoked:
        return target, None, None
    thread = get(conn, target.thread_id)
    other = thread.seller_id if target.party_id == thread.buyer_id else thread.buyer_id
    return target, parties_repo.by_address(conn, sender) if sender else None, other


def resolve_message(conn: sqlite3.Connection, local: str,
                    quoted_ids: Sequence[str]) -> tuple[Thread, Party, Party, dict[str, str]] | None:
    """DATA (the resolve stage): the alias's thread, sender and recipient, and the quoted Message-IDs
    translated for the recipient; None when the alias is gone or revoked."""
    t = resolve_alias(conn, local)
    if t is None or t.revoked:
        return None
    thread = get(conn, t.thread_id)
    recipient = parties_repo.get(conn, t.party_id)
    other = thread.seller_id if t.party_id == thread.buyer_id else thread.buyer_id
    ids = messages_repo.translate_ids(conn, thread.id, recipient.id, quoted_ids) if quoted_ids else {}
    return thread, parties_repo.get(conn, other), recipient, ids
