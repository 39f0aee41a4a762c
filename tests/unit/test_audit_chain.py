"""The audit chain: thousands of events verify; each kind of tampering is detected and named."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.store import audit
from relay.store.audit_verify import missing_anchors, verify
from relay.store.db import connect_sync, run_in_transaction
from relay.store.migrate import MIGRATIONS_DIR, migrate

N = 3000


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chain") / "relay.db"
    conn = connect_sync(path)
    migrate(conn)

    def fill(c: sqlite3.Connection) -> None:
        for i in range(N):
            detail = {"i": i, "text": "日本語 ok", "size": i * 7}
            if i % 97 == 0:
                detail["mail_from"] = f"Someone{i}@Example.org"
            audit.append(c, f"test.event{i % 5}", reason="test.reason", thread_id=i % 11 or None,
                         message_id=i, detail=detail, ts=1_700_000_000.0 + i / 3)

    run_in_transaction(conn, [fill])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    shutil.copy(template, tmp_path / "relay.db")
    conn = connect_sync(tmp_path / "relay.db")
    yield conn
    conn.close()


def tamper(conn: sqlite3.Connection, *sql: tuple[str, tuple[object, ...]]) -> None:
    # A raw editor of the file: no foreign keys, no triggers of ours.
    conn.execute("BEGIN")
    for stmt, args in sql:
        conn.execute(stmt, args)
    conn.execute("COMMIT")


def test_thousands_of_events_verify(db: sqlite3.Connection) -> None:
    result = verify(db)
    assert result.ok and result.count == N and result.head_seq == N
    assert result.head_hash == audit.head(db)[1]
    # personal fields are kept beside the chain, not in the hashed detail
    row = db.execute("SELECT detail, pii_commit FROM audit_events WHERE seq = 1").fetchone()
    assert "Someone0" not in row[0] and row[1]
    assert audit.events_after(db, 0, limit=1)[0].detail["mail_from"] == "Someone0@Example.org"


@pytest.mark.parametrize("seq", [1, 2, 1500, N])
@pytest.mark.parametrize("column", ["ts", "event", "reason", "detail", "hash", "prev_hash", "thread_id"])
def test_one_byte_edit_is_named(db: sqlite3.Connection, seq: int, column: str) -> None:
    value = db.execute(f"SELECT {column} FROM audit_events WHERE seq = ?", (seq,)).fetchone()[0]
    if isinstance(value, float):
        new: object = value + 0.001
    elif isinstance(value, int) or value is None:
        new = (value or 0) + 1
    else:
        raw = bytearray(value.encode())
        pos = len(raw) // 2
        raw[pos] = ord("0") if raw[pos] != ord("0") else ord("1")
        new = raw.decode()
    tamper(db, (f"UPDATE audit_events SET {column} = ? WHERE seq = ?", (new, seq)))
    result = verify(db)
    assert not result.ok and result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (seq, "changed"), result.problem
    assert f"#{seq}" in result.problem.message


def test_edit_of_personal_data_is_named(db: sqlite3.Connection) -> None:
    tamper(db, ("UPDATE audit_pii SET data = replace(data, 'Someone97', 'Someone98') WHERE seq = 98", ()))
    result = verify(db)
    assert result.problem is not None and (result.problem.seq, result.problem.kind) == (98, "changed")


@pytest.mark.parametrize("seq", [1, 700, N - 1])
def test_deleted_event_is_named(db: sqlite3.Connection, seq: int) -> None:
    tamper(db, ("DELETE FROM audit_events WHERE seq = ?", (seq,)))
    result = verify(db)
    assert result.problem is not None and (result.problem.seq, result.problem.kind) == (seq, "removed")


def test_deleted_and_renumbered_is_named(db: sqlite3.Connection) -> None:
    tamper(db, ("DELETE FROM audit_events WHERE seq = 500", ()),
           ("UPDATE audit_events SET seq = -(seq - 1) WHERE seq > 500", ()),
           ("UPDATE audit_events SET seq = -seq WHERE seq < 0", ()))
    result = verify(db)
    assert result.problem is not None and (result.problem.seq, result.problem.kind) == (500, "removed")


@pytest.mark.parametrize(("a", "b"), [(10, 11), (1, 2), (300, 2000), (N - 1, N)])
def test_swapped_events_are_named(db: sqlite3.Connection, a: int, b: int) -> None:
    tamper(db, ("UPDATE audit_events SET seq = -1 WHERE seq = ?", (a,)),
           ("UPDATE audit_events SET seq = ? WHERE seq = ?", (a, b)),
           ("UPDATE audit_events SET seq = ? WHERE seq = -1", (b,)))
    result = verify(db)
    assert result.problem is not None and (result.problem.seq, result.problem.kind) == (a, "reordered")


def _insert_at(db: sqlite3.Connection, seq: int, *, forge_hash: bool) -> None:
    prev = db.execute("SELECT hash FROM audit_events WHERE seq = ?", (seq - 1,)).fetchone()
    prev_hash = prev[0] if prev else audit.GENESIS
    body = audit.canonical(seq, 1_700_000_500.0, "party.added", "forged", None, None, None, {"x": 1})
    digest = audit.chain_hash(prev_hash, body) if forge_hash else "f" * 64
    tamper(db, ("UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= ?", (seq,)),
           ("UPDATE audit_events SET seq = -seq WHERE seq < 0", ()),
           ("UPDATE audit_pii SET seq = -(seq + 1) WHERE seq >= ?", (seq,)),
           ("UPDATE audit_pii SET seq = -seq WHERE seq < 0", ()),
           ("INSERT INTO audit_events (seq, ts, event, reason, detail, prev_hash, hash)"
            " VALUES (?, 1700000500.0, 'party.added', 'forged', '{\"x\":1}', ?, ?)", (seq, prev_hash, digest)))


@pytest.mark.parametrize("forge_hash", [True, False])
@pytest.mark.parametrize("seq", [1, 1234])
def test_inserted_event_is_named(db: sqlite3.Connection, seq: int, forge_hash: bool) -> None:
    _insert_at(db, seq, forge_hash=forge_hash)
    result = verify(db)
    assert result.problem is not None and (result.problem.seq, result.problem.kind) == (seq, "inserted"), \
        result.problem


def test_secrets_never_stored(db: sqlite3.Connection) -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----"
    ev = run_in_transaction(db, [lambda c: audit.append(c, "x", detail={"password": "hunter2", "blob": pem,
                                                                         "nested": {"smtp_password": "pw"}})])
    assert ev[0][0]
    dumped = b"".join(r[0].encode() for r in db.execute("SELECT detail FROM audit_events"))
    assert b"hunter2" not in dumped and b"PRIVATE KEY" not in dumped and b'"pw"' not in dumped
    assert verify(db).ok


def test_migration_0011_keeps_the_chain_and_drops_the_hash_index(tmp_path: Path) -> None:
    """A store written before 0011 (hashes under UNIQUE) keeps every event, and the chain still
    verifies, once its table is copied without that index."""
    before = tmp_path / "before"
    before.mkdir()
    for sql in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(sql.name[:4]) < 11:
            shutil.copy(sql, before / sql.name)
    conn = connect_sync(tmp_path / "relay.db")
    migrate(conn, before)

    def fill(c: sqlite3.Connection) -> None:
        for i in range(200):
            audit.append(c, "test.event", thread_id=i % 3, party_id=i % 4, message_id=i,
                         detail={"i": i, "mail_from": f"s{i}@example.org"} if i % 10 == 0 else {"i": i})

    run_in_transaction(conn, [fill])
    rows = conn.execute("SELECT * FROM audit_events ORDER BY seq").fetchall()
    assert any(r[2] for r in conn.execute("PRAGMA index_list(audit_events)"))  # UNIQUE(hash) before

    assert min(m.version for m in migrate(conn)) == 11  # 0011 and what follows it
    assert conn.execute("SELECT * FROM audit_events ORDER BY seq").fetchall() == rows
    assert not any(r[2] for r in conn.execute("PRAGMA index_list(audit_events)"))  # no unique index left
    assert {r[1] for r in conn.execute("PRAGMA index_list(audit_events)")} == {
        "audit_thread", "audit_party", "audit_event_party"}
    assert verify(conn).ok and verify(conn).count == 200
    run_in_transaction(conn, [lambda c: audit.append(c, "test.after", detail={"n": 1})])
    assert verify(conn).ok and verify(conn).count == 201
    head = audit.head(conn)[1]
    assert missing_anchors(conn, [rows[5][9], "0" * 64, head]) == ["0" * 64]
    assert missing_anchors(conn, []) == []
    conn.close()
