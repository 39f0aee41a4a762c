"""The `relay` command: one module per command group, each registering its subcommands.

Exit status: 0 ok; 1 a refused request or a failure (one line on stderr); 64 a usage error
(unknown command or option, a missing or malformed argument: argparse's message and the usage
line); 78 a bad configuration; 141 the reader of the output went away (`relay audit tail | head`),
quietly. Every command that prints a result takes --json and then prints exactly one JSON object.

Starting is cheap (`relay --help` well under 0.2 s): this package and the command modules import
only the standard library at the top; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from relay.cli.common import CliError, run_command
from relay.errors import EX_CONFIG, EX_PIPE, EX_USAGE, ConfigError


class Parser(argparse.ArgumentParser):
    """argparse with the documented usage status (64, sysexits' EX_USAGE) instead of its own 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree; given the command line, only the branch it names is built in full
    (the other groups are listed with their help line, which is all `--help` shows of them)."""
    parser = Parser(prog="relay", description="Anonymizing buyer-seller mail relay")
    parser.add_argument("--config", help="configuration file (default: $RELAY_CONFIG or config/relay.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if argv is not None:
        sub.__dict__["_relay_only"] = _command_word(argv) or ""
    import relay.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"relay.cli.{info.name}")
            module.register(sub)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The first word of the command line that is not a global option or its value."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _quiet_pipe() -> int:
    # The reader is gone: whatever is still buffered for stdout can never be written, and Python
    # would say so at exit with a traceback-like message. Point stdout at /dev/null first.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EX_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        status = run_command(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return status
    except BrokenPipeError:
        return _quiet_pipe()
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
