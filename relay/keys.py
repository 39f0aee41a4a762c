"""Keys shared by the relay nodes, kept in the store encrypted with a key-encryption key (KEK).

The KEK is a file every node has (store.key_file, default <state_dir>/store.key: 32 random bytes,
mode 0600, made by `relay keys init`); it is never in the database, and the database never holds a
key in the clear. Each key is sealed with AES-256-GCM under the KEK, a fresh random 96-bit nonce,
and the key's name as associated data: a row copied under another name, a changed byte, or another
KEK fails to open (KeyDecryptError), never yields a wrong key.

Names: "dkim/<selector>" (an RSA private key, PEM) and "unsubscribe" (the HMAC secret of
relay/rules/tokens.py). Reads config: store.key_file, relay.state_dir, relay.node, dkim.*.
Errors never contain key material: ConfigError (exit 78) for a missing or unusable KEK, a key
missing from the store or one the KEK cannot open; KeysError for a refused change.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay.errors import ConfigError

if TYPE_CHECKING:
    from relay.config import Settings
    from relay.dkim import Signer
    from relay.store.interface import Secrets

KEK_BYTES = 32
NONCE_BYTES = 12
UNSUBSCRIBE = "unsubscribe"
_NAME = re.compile(r"[a-z][a-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


class KeysError(Exception):
    """A refused change of the shared keys (the key exists, someone changed it meanwhile)."""


class KeyDecryptError(ConfigError):
    """A stored key that the KEK cannot open: another KEK, or the row was altered."""


def dkim_name(selector: str) -> str:
    return f"dkim/{selector}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise KeysError(f"not a key name: {name!r} (expected e.g. dkim/<selector> or unsubscribe)")
    return name


# --------------------------------------------------------------------------- the KEK file


def kek_path(settings: Settings) -> Path:
    return settings.store_key_path


def init_kek(path: Path) -> None:
    """Write a new KEK at `path` (0600, fsynced, directory too); KeysError when a file is there:
    replacing it would make every stored key unreadable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeysError(f"{path} exists: it opens the keys already stored; copy it to the other nodes,"
                        " never replace it") from None
    try:
        os.write(fd, secrets.token_bytes(KEK_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_kek(path: Path) -> bytes:
    """The KEK at `path`; ConfigError (what is wrong and what to do, never the bytes) otherwise."""
    where = f"store.key_file: {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file: the keys in the store cannot be opened without it; copy it"
                          " from another node (or, on the first node, run `relay keys init`)") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {(exc.strerror or str(exc)).lower()}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: not a file")
        if st.st_mode & 0o077:
            raise ConfigError(f"{where}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; chmod 600")
        data = os.read(fd, KEK_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEK_BYTES:
        raise ConfigError(f"{where}: a key-encryption key is {KEK_BYTES} bytes, this file has "
                          f"{'more' if len(data) > KEK_BYTES else len(data)}")
    return data


# --------------------------------------------------------------------------- sealing


def encrypt(kek: bytes, name: str, data: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with tag) of `data` under `kek`, bound to `name`."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, AESGCM(kek).encrypt(nonce, data, name.encode("utf-8"))


def decrypt(kek: bytes, name: str, nonce: bytes, sealed: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(nonce, sealed, name.encode("utf-8"))
    except (InvalidTag, ValueError):
        raise KeyDecryptError(f"stored key {name!r} cannot be opened with this node's store.key_file: another"
                              " key-encryption key than the one it was installed with, or the row was"
                              " altered") from None


# --------------------------------------------------------------------------- the store


async def install(secrets_: Secrets, name: str, data: bytes, *, kek: bytes, node: str, replace: bool = False,
                  now: float | None = None) -> int:
    """Store `data` as `name` (sealed); its version (1, or one more than the one replaced).
    KeysError when `name` exists and not `replace`, or when another node changed it meanwhile."""
    check_name(name)
    current = await secrets_.get(name)
    if current is not None and not replace:
        raise KeysError(f"{name} is in the store already (version {current.version}, installed by"
                        f" {current.node}); replacing it breaks what was signed or sent with it")
    version = 1 if current is None else current.version + 1
    nonce, sealed = encrypt(kek, name, data)
    if not await secrets_.put(name, version, nonce, sealed, time.time() if now is None else now, node):
        raise KeysError(f"{name} was changed by another node meanwhile; look again (`relay keys list`)")
    return version


async def load(secrets_: Secrets, name: str, *, kek: bytes) -> bytes:
    """The key `name`, opened; ConfigError when it is not in the store or the KEK cannot open it."""
    row = await secrets_.get(name)
    if row is None:
        raise ConfigError(f"no key {name!r} in the store: install it with `relay keys install"
                          f" {'unsubscribe' if name == UNSUBSCRIBE else 'dkim'}`")
    return decrypt(kek, name, row.nonce, row.data)


async def dkim_signer(settings: Settings, secrets_: Secrets, *, kek: bytes | None = None) -> Signer:
    """The signer of dkim.selector with its RSA key from the store (dkim.source = "store");
    dkim.ed25519_key, when set, is still read from its file."""
    from relay import dkim

    pem = await load(secrets_, dkim_name(settings.dkim.selector), kek=kek or load_kek(kek_path(settings)))
    try:
        ed_key = settings.dkim.ed25519_key.read_bytes() if settings.dkim.ed25519_key else None
        return dkim.Signer(settings.relay.domain, settings.dkim.selector, pem, ed_key)
    except OSError as exc:
        raise ConfigError(f"dkim.ed25519_key: cannot read: {(exc.strerror or str(exc)).lower()}") from None
    except dkim.DKIMKeyError as exc:
        raise ConfigError(f"stored key {dkim_name(settings.dkim.selector)!r}: {exc}") from None


async def unsubscribe_secret(settings: Settings, secrets_: Secrets, *, kek: bytes | None = None) -> bytes:
    """The unsubscribe secret from the store (rules.unsubscribe_secret_source = "store")."""
    from relay.rules.tokens import MIN_SECRET_BYTES

    data = await load(secrets_, UNSUBSCRIBE, kek=kek or load_kek(kek_path(settings)))
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"stored key {UNSUBSCRIBE!r} is {len(data)} bytes, at least {MIN_SECRET_BYTES}"
                          " are needed")
    return data


def export_file(path: Path, data: bytes) -> None:
    """Write an exported key to a new file, mode 0600 from the start; KeysError when `path` exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeysError(f"{path} exists; choose another --out (a key file is never overwritten)") from None
    except OSError as exc:
        raise KeysError(f"{path}: cannot create: {(exc.strerror or str(exc)).lower()}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
