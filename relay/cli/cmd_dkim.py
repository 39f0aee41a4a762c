"""relay dkim keygen [--selector S] — write a key under the state dir and print the DNS record."""

from __future__ import annotations

import argparse

from relay.cli.common import CliError, add_json, emit, group, settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dsub = group(sub, "dkim", "DKIM keys")
    kg = dsub.add_parser("keygen", help="generate a 2048-bit RSA key and print its DNS TXT record")
    kg.add_argument("--selector", help="selector for the new key (default: dkim.selector)")
    kg.add_argument("--ed25519", action="store_true", help="generate an Ed25519 key instead (RFC 8463)")
    kg.add_argument("--force", action="store_true", help="overwrite an existing key file")
    add_json(kg)
    kg.set_defaults(handler=keygen)


def keygen(args: argparse.Namespace) -> int:
    from relay import dkim

    s = settings(args)
    selector = args.selector or s.dkim.selector
    if args.ed25519:
        path = s.relay.state_dir / "dkim" / f"{selector}.ed25519.pem"
    elif args.selector and args.selector != s.dkim.selector:
        path = s.relay.state_dir / "dkim" / f"{selector}.pem"
    else:
        path = s.dkim_key_path
    if path.exists() and not args.force:
        raise CliError(f"{path} exists; use --force to replace it")
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
