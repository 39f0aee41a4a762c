"""relay dkim keygen|show — write a key under the state dir; print the DNS TXT record of the key in use
(with dkim.source = "store", of the key sealed in the store: `relay keys install dkim` puts it there).

keygen refuses to replace an existing key (that would break every signature until DNS follows):
it says to use `show` for the record, or a new selector to rotate.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from relay.cli.common import CliError, add_json, emit, group, settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dsub = group(sub, "dkim", "DKIM keys")
    kg = dsub.add_parser("keygen", help="generate a 2048-bit RSA key and print its DNS TXT record")
    kg.add_argument("--selector", help="selector for the new key (default: dkim.selector)")
    kg.add_argument("--ed25519", action="store_true", help="generate an Ed25519 key instead (RFC 8463)")
    kg.add_argument("--force", action="store_true", help="overwrite an existing key file")
    add_json(kg)
    kg.set_defaults(handler=keygen)
    sh = dsub.add_parser("show", help="print the DNS TXT record of the key in use (and of the Ed25519 key, if any)")
    sh.add_argument("--selector", help="another selector's key under the state dir (default: dkim.selector)")
    add_json(sh)
    sh.set_defaults(handler=show)


def _key_path(args: argparse.Namespace, selector: str, ed25519: bool = False) -> Path:
    s = settings(args)
    if ed25519:
        return s.relay.state_dir / "dkim" / f"{selector}.ed25519.pem"
    if selector != s.dkim.selector:
        return s.relay.state_dir / "dkim" / f"{selector}.pem"
    return s.dkim_key_path


def keygen(args: argparse.Namespace) -> int:
    from relay import dkim

    s = settings(args)
    selector = args.selector or s.dkim.selector
    path = _key_path(args, selector, args.ed25519)
    if path.exists() and not args.force:
        raise CliError(f"{path} exists: `relay dkim show` prints its DNS record; to rotate, make a key with a new "
                       f"selector (`relay dkim keygen --selector NEW`), publish it, then set dkim.selector")
    if args.ed25519:
        # The signer signs Ed25519 with s=<selector>-ed, beside the RSA key's own record.
        txt = dkim.generate_ed25519_key(path, overwrite=args.force)
        selector = f"{selector}-ed"
    else:
        txt = dkim.generate_rsa_key(path, overwrite=args.force)
    record = dkim.txt_record(selector, s.relay.domain, txt)
    emit(args, {"selector": selector, "domain": s.relay.domain, "key_file": str(path),
                "name": f"{selector}._domainkey.{s.relay.domain}", "txt": txt, "record": record},
         f"wrote {path}\npublish this DNS record:\n{record}")
    return 0


def _record(args: argparse.Namespace, selector: str, path: Path) -> dict[str, Any]:
    from relay import dkim

    s = settings(args)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path} does not exist: `relay dkim keygen` makes it (or `relay serve` on first start)") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {(exc.strerror or str(exc)).lower()}") from None
    try:
        txt = dkim.public_txt_from_private(pem)
    except dkim.DKIMKeyError as exc:
        raise CliError(f"{path}: {exc}") from None
    return {"selector": selector, "name": f"{selector}._domainkey.{s.relay.domain}", "txt": txt,
            "record": dkim.txt_record(selector, s.relay.domain, txt), "key_file": str(path)}


def _stored_record(args: argparse.Namespace, selector: str) -> dict[str, Any]:
    """dkim.source = "store": the record of the key sealed in the store (opened with store.key_file)."""
    from relay import dkim, keys
    from relay.cli.cmd_keys import on_secrets

    s = settings(args)
    kek = keys.load_kek(s.store_key_path)
    name = keys.dkim_name(selector)

    async def work(secrets_: Any) -> bytes:
        row = await secrets_.get(name)
        if row is None:
            raise CliError(f"no key {name!r} in the store: `relay keys install dkim --selector {selector}`")
        return keys.decrypt(kek, name, row.nonce, row.data)

    try:
        txt = dkim.public_txt_from_private(on_secrets(args, work))
    except dkim.DKIMKeyError as exc:
        raise CliError(f"stored key {name!r}: {exc}") from None
    return {"selector": selector, "name": f"{selector}._domainkey.{s.relay.domain}", "txt": txt,
            "record": dkim.txt_record(selector, s.relay.domain, txt), "key": f"store:{name}"}


def show(args: argparse.Namespace) -> int:
    s = settings(args)
    selector = args.selector or s.dkim.selector
    if s.dkim.source == "store":
        records = [_stored_record(args, selector)]
    else:
        records = [_record(args, selector, _key_path(args, selector))]
    if s.dkim.ed25519_key is not None and not args.selector:
        records.append(_record(args, f"{selector}-ed", s.dkim.ed25519_key))
    emit(args, {"domain": s.relay.domain, "records": records}, "\n".join(r["record"] for r in records))
    return 0
