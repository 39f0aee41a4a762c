"""relay keys init|install|list|export — the keys the nodes share through the store (relay/keys.py).

init makes the key-encryption key file (store.key_file) and refuses to replace one; install seals
a DKIM key or the unsubscribe secret into the store (an existing file's, or a new one) and refuses
to replace a stored key without --force; list shows names, versions, dates and nodes, never key
material; export writes one key to a new 0600 file, the only command that ever outputs a key.
A missing or unusable key-encryption key is a configuration error (exit 78). Works on the store
store.url names: SQLite, or PostgreSQL (relay/store/pg/secrets.py) for the nodes sharing it.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from relay.cli.common import CliError, add_json, emit, group, on_store, settings

if TYPE_CHECKING:
    from relay.store.interface import Secrets

T = TypeVar("T")


def on_secrets(args: argparse.Namespace, work: Callable[[Secrets], Awaitable[T]]) -> T:
    """Run `work` on the store's secrets: the SQLite store's (on_store), or PostgreSQL's when
    store.url names one (PgSecrets; the schema is migrated first, as on_store does for SQLite)."""
    import asyncio

    from relay.errors import EX_CONFIG
    from relay.store.url import SqliteTarget, StoreUrlError

    try:
        target = settings(args).store_target
    except StoreUrlError as exc:
        raise CliError(str(exc), EX_CONFIG) from None
    if isinstance(target, SqliteTarget):
        return on_store(args, lambda st: work(st.secrets))
    from relay.store.errors import StoreUnavailable
    from relay.store.pg.db import PgDatabase
    from relay.store.pg.secrets import PgSecrets

    async def run() -> T:
        async with PgDatabase(target, min_size=1, max_size=1) as db:
            await db.migrate()
            return await work(PgSecrets(db))

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run())
        from concurrent.futures import ThreadPoolExecutor  # inside a running loop (a test): a loop of its own

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()
    except StoreUnavailable as exc:
        raise CliError(str(exc)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ksub = group(sub, "keys", "keys shared by the nodes through the store, encrypted with store.key_file")
    p = ksub.add_parser("init", help="make the key-encryption key file (store.key_file); never replaces one")
    add_json(p)
    p.set_defaults(handler=init)
    inst = ksub.add_parser("install", help="seal a key into the store")
    isub = inst.add_subparsers(dest="keys_install", required=True, metavar="KEY")
    d = isub.add_parser("dkim", help="the DKIM RSA key of a selector: --from PEM, else the existing key file,"
                                     " else a new 2048-bit key")
    d.add_argument("--selector", help="selector of the key (default: dkim.selector)")
    d.add_argument("--from", dest="source", metavar="PEM", help="the RSA private key to store")
    d.add_argument("--force", action="store_true", help="replace the stored key (breaks signatures until DNS follows)")
    add_json(d)
    d.set_defaults(handler=install_dkim)
    u = isub.add_parser("unsubscribe", help="the unsubscribe secret: --from FILE, else <state_dir>/unsubscribe.key"
                                            " if present (links already sent keep working), else a new one")
    u.add_argument("--from", dest="source", metavar="FILE", help="the secret to store (at least 32 bytes)")
    u.add_argument("--force", action="store_true", help="replace the stored secret (links already sent stop working)")
    add_json(u)
    u.set_defaults(handler=install_unsubscribe)
    ls = ksub.add_parser("list", help="the stored keys: name, version, when, which node (never the keys)")
    add_json(ls)
    ls.set_defaults(handler=list_keys)
    ex = ksub.add_parser("export", help="write one stored key, decrypted, to a new file (mode 0600)")
    ex.add_argument("name", help="the key's name (`relay keys list`), e.g. dkim/relay or unsubscribe")
    ex.add_argument("--out", required=True, type=Path, help="a new file (never overwritten)")
    add_json(ex)
    ex.set_defaults(handler=export)


def init(args: argparse.Namespace) -> int:
    from relay import keys

    path = settings(args).store_key_path
    try:
        keys.init_kek(path)
    except keys.KeysError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{path}: cannot create: {(exc.strerror or str(exc)).lower()}") from None
    emit(args, {"key_file": str(path), "created": True},
         f"wrote {path} (mode 0600): copy it to store.key_file on every node; it never goes into the database")
    return 0


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"{what} {path}: cannot read: {(exc.strerror or str(exc)).lower()}") from None


def _install(args: argparse.Namespace, name: str, data: bytes) -> int:
    from relay import keys

    s = settings(args)
    kek = keys.load_kek(s.store_key_path)  # ConfigError: exit 78

    async def work(secrets_: Secrets) -> int:
        return await keys.install(secrets_, name, data, kek=kek, node=s.relay.node, replace=args.force)

    try:
        return on_secrets(args, work)
    except keys.KeysError as exc:
        raise CliError(str(exc)) from None


def install_dkim(args: argparse.Namespace) -> int:
    from relay import dkim, keys

    s = settings(args)
    selector = args.selector or s.dkim.selector
    if args.selector and not dkim._SELECTOR.fullmatch(selector):
        raise CliError(f"not a DKIM selector: {selector!r}")
    default_file = s.dkim_key_path if selector == s.dkim.selector else s.relay.state_dir / "dkim" / f"{selector}.pem"
    if args.source:
        origin, pem = args.source, _read(Path(args.source), "--from")
    elif default_file.exists():
        origin, pem = str(default_file), _read(default_file, "key file")
    else:
        origin, pem = "new", dkim.new_rsa_pem()
    try:
        dkim.Signer(s.relay.domain, selector, pem)  # what the daemon will do with it: an RSA key it can use
        txt = dkim.public_txt_from_private(pem)
    except dkim.DKIMKeyError as exc:
        raise CliError(f"{origin}: {exc}") from None
    name = keys.dkim_name(selector)
    version = _install(args, name, pem)
    record = dkim.txt_record(selector, s.relay.domain, txt)
    emit(args, {"name": name, "version": version, "from": origin, "selector": selector, "txt": txt, "record": record},
         f"stored {name} version {version} ({'a new key' if origin == 'new' else 'from ' + origin})\n"
         f"publish this DNS record:\n{record}")
    return 0


def install_unsubscribe(args: argparse.Namespace) -> int:
    import secrets

    from relay import keys
    from relay.rules.tokens import MIN_SECRET_BYTES, SECRET_FILE

    s = settings(args)
    existing = s.relay.state_dir / SECRET_FILE
    if args.source:
        origin, data = args.source, _read(Path(args.source), "--from")
    elif existing.exists():
        origin, data = str(existing), _read(existing, "secret file")
    else:
        origin, data = "new", secrets.token_bytes(MIN_SECRET_BYTES)
    if len(data) < MIN_SECRET_BYTES:
        raise CliError(f"{origin}: the secret is {len(data)} bytes, at least {MIN_SECRET_BYTES} are needed")
    version = _install(args, keys.UNSUBSCRIBE, data)
    emit(args, {"name": keys.UNSUBSCRIBE, "version": version, "from": origin},
         f"stored {keys.UNSUBSCRIBE} version {version} ({'a new secret' if origin == 'new' else 'from ' + origin})")
    return 0


def list_keys(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from relay.store.secrets import SecretInfo

    async def work(secrets_: Secrets) -> list[SecretInfo]:
        return await secrets_.names()

    infos = on_secrets(args, work)
    rows: list[dict[str, Any]] = [
        {"name": i.name, "version": i.version, "node": i.node,
         "created": datetime.fromtimestamp(i.created_at, UTC).isoformat(timespec="seconds")} for i in infos]
    text = "\n".join(f"{r['name']}  version {r['version']}  {r['created']}  {r['node']}" for r in rows)
    emit(args, {"keys": rows}, text or "no keys in the store")
    return 0


def export(args: argparse.Namespace) -> int:
    from relay import keys

    s = settings(args)
    kek = keys.load_kek(s.store_key_path)
    try:
        keys.check_name(args.name)
    except keys.KeysError as exc:
        raise CliError(str(exc)) from None

    async def work(secrets_: Secrets) -> bytes:
        row = await secrets_.get(args.name)
        if row is None:
            raise CliError(f"no key {args.name!r} in the store (`relay keys list` shows the names)")
        return keys.decrypt(kek, row.name, row.nonce, row.data)  # KeyDecryptError: exit 78

    data = on_secrets(args, work)
    try:
        keys.export_file(args.out, data)
    except keys.KeysError as exc:
        raise CliError(str(exc)) from None
    emit(args, {"name": args.name, "out": str(args.out)}, f"wrote {args.name} to {args.out} (mode 0600)")
    return 0
