"""The `relay` command: one module per command group, each registering its subcommands.

Exit status: 0 ok, 1 a refused request or failure, 2 usage, 78 bad configuration.
Every command that prints a result takes --json and then prints exactly one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from relay.cli.common import CliError, run_command
from relay.config import EX_CONFIG, ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="Anonymizing buyer-seller mail relay")
    parser.add_argument("--config", help="configuration file (default: $RELAY_CONFIG or config/relay.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import relay.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"relay.cli.{info.name}")
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except ConfigError as exc:
        print(f"relay: configuration error:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except CliError as exc:
        if getattr(args, "json", False):
            import orjson

            sys.stdout.write(orjson.dumps({"error": str(exc)}).decode() + "\n")
        print(f"relay: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
