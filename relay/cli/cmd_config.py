"""relay config check [FILE] [--json] — validate a configuration without starting anything.

Exit 0 when valid, 78 (EX_CONFIG) with every problem named by its key otherwise; the
same check `relay serve` and SIGHUP run. Warnings (a DKIM key not yet created, a metrics
listener off loopback) do not fail the check.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import TYPE_CHECKING, Any

from relay.cli.common import add_json, emit, group

if TYPE_CHECKING:
    from relay import config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    csub = group(sub, "config", "configuration")
    c = csub.add_parser("check", help="validate a configuration file (exit 78 when it is not valid)")
    c.add_argument("file", nargs="?", help="file to check (default: --config, $RELAY_CONFIG or config/relay.toml)")
    add_json(c)
    c.set_defaults(handler=check)


def warnings(s: config.Settings) -> list[str]:
    from relay import config

    out = []
    host, _ = config.split_hostport(s.http.listen)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if s.http.enabled and not loopback:
        out.append(f"http.listen: {s.http.listen} is not a loopback address; /metrics will be reachable from outside")
    return out


def check(args: argparse.Namespace) -> int:
    from relay import config, preflight

    path = config.resolve_path(args.file or args.config)
    result: dict[str, Any] = {"file": str(path)}
    s, errors, found = preflight.check(path)
    if s is None:
        result.update(ok=False, errors=errors)
        if args.json:
            emit(args, result)
        else:
            print(config_error_text(errors), file=sys.stderr)
        return config.EX_CONFIG
    result.update(ok=True, warnings=found + warnings(s), domain=s.relay.domain, smtp_listen=s.smtp.listen,
                  http_listen=s.http.listen if s.http.enabled else None, database=str(s.db_path))
    emit(args, result, "\n".join([f"{path}: ok", *(f"warning: {w}" for w in result["warnings"])]))
    return 0


def config_error_text(errors: list[str]) -> str:
    """What `config check` and `serve` print for a bad configuration (the same lines)."""
    return "relay: configuration error:\n" + "\n".join(errors)
