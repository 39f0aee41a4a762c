"""Shared keys (relay/keys.py): sealed under the KEK with the name as associated data; the secrets
repository of the SQLite store (relay/store/secrets.py) keeps versions and refuses a stale write."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay import keys
from relay.errors import ConfigError
from relay.store.migrate import migrate_file
from relay.store.sqlite import SqliteStore

KEK = bytes(range(32))
OTHER = bytes(range(1, 33))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    migrate_file(tmp_path / "r.db")
    async with SqliteStore.at(tmp_path / "r.db") as st:
        yield st


def test_round_trip_and_fresh_nonces() -> None:
    n1, c1 = keys.encrypt(KEK, "unsubscribe", b"secret bytes")
    n2, c2 = keys.encrypt(KEK, "unsubscribe", b"secret bytes")
    assert len(n1) == 12 and n1 != n2 and c1 != c2 and b"secret bytes" not in c1
    assert keys.decrypt(KEK, "unsubscribe", n1, c1) == keys.decrypt(KEK, "unsubscribe", n2, c2) == b"secret bytes"


def test_wrong_kek_is_a_clear_failure() -> None:
    nonce, sealed = keys.encrypt(KEK, "dkim/relay", b"PEM")
    with pytest.raises(keys.KeyDecryptError, match=r"cannot be opened with this node.s store\.key_file") as exc:
        keys.decrypt(OTHER, "dkim/relay", nonce, sealed)
    assert isinstance(exc.value, ConfigError)  # exit 78


@pytest.mark.parametrize("where", ["data", "tag", "nonce"])
def test_tampering_fails(where: str) -> None:
    nonce, sealed = keys.encrypt(KEK, "dkim/relay", b"-----BEGIN PRIVATE KEY-----")
    if where == "nonce":
        nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
    else:
        i = 0 if where == "data" else len(sealed) - 1
        sealed = sealed[:i] + bytes([sealed[i] ^ 0x80]) + sealed[i + 1:]
    with pytest.raises(keys.KeyDecryptError):
        keys.decrypt(KEK, "dkim/relay", nonce, sealed)


async def test_rows_swapped_between_names_do_not_open(store: SqliteStore) -> None:
    await keys.install(store.secrets, "dkim/a", b"key of a", kek=KEK, node="n1")
    await keys.install(store.secrets, "dkim/b", b"key of b", kek=KEK, node="n1")
    a, b = await store.secrets.get("dkim/a"), await store.secrets.get("dkim/b")
    assert a is not None and b is not None
    # someone with write access to the database puts b's sealed key under a's name
    assert await store.secrets.put("dkim/a", a.version + 1, b.nonce, b.data, a.created_at, a.node)
    with pytest.raises(keys.KeyDecryptError, match="'dkim/a'"):
        await keys.load(store.secrets, "dkim/a", kek=KEK)
    assert await keys.load(store.secrets, "dkim/b", kek=KEK) == b"key of b"


async def test_install_versions_and_refusals(store: SqliteStore) -> None:
    assert await keys.install(store.secrets, "unsubscribe", b"x" * 32, kek=KEK, node="mx-1", now=10.0) == 1
    with pytest.raises(keys.KeysError, match="in the store already"):
        await keys.install(store.secrets, "unsubscribe", b"y" * 32, kek=KEK, node="mx-2")
    assert await keys.install(store.secrets, "unsubscribe", b"y" * 32, kek=KEK, node="mx-2", replace=True) == 2
    assert await keys.load(store.secrets, "unsubscribe", kek=KEK) == b"y" * 32
    [info] = await store.secrets.names()
    assert (info.name, info.version, info.node) == ("unsubscribe", 2, "mx-2")
    row = await store.secrets.get("unsubscribe")
    assert row is not None and b"y" * 32 not in repr(row).encode() and "data" not in repr(row)
    # a writer that read version 1 (before the replacement) cannot write its version 2
    assert not await store.secrets.put("unsubscribe", 2, b"n" * 12, b"d", 11.0, "mx-3")
    assert (await keys.load(store.secrets, "unsubscribe", kek=KEK)) == b"y" * 32
    with pytest.raises(ConfigError, match="relay keys install dkim"):
        await keys.load(store.secrets, "dkim/none", kek=KEK)
    with pytest.raises(keys.KeysError, match="not a key name"):
        await keys.install(store.secrets, "Bad Name", b"", kek=KEK, node="n")


def test_kek_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "store.key"
    with pytest.raises(ConfigError, match=r"no such file.*relay keys init"):
        keys.load_kek(path)
    keys.init_kek(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    kek = keys.load_kek(path)
    assert len(kek) == 32
    with pytest.raises(keys.KeysError, match="exists"):
        keys.init_kek(path)
    assert keys.load_kek(path) == kek  # not replaced
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="mode 0644") as exc:
        keys.load_kek(path)
    assert kek.hex() not in str(exc.value)
    short = tmp_path / "short.key"
    short.write_bytes(b"k" * 16)
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="32 bytes, this file has 16"):
        keys.load_kek(short)
