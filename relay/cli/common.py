"""Helpers every command shares: settings, a store connection, output, one-line errors."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from email_validator import EmailNotValidError, validate_email

from relay import config
from relay.store.db import connect_sync, run_in_transaction
from relay.store.errors import StoreError
from relay.store.migrate import migrate

T = TypeVar("T")


class CliError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def run_command(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    return handler(args) or 0


def settings(args: argparse.Namespace) -> config.Settings:
    cached = getattr(args, "_settings", None)
    if cached is None:
        cached = config.load(args.config)
        args._settings = cached
    return cached


@contextmanager
def store(args: argparse.Namespace) -> Iterator[sqlite3.Connection]:
    s = settings(args)
    conn = connect_sync(s.db_path)
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def write(conn: sqlite3.Connection, unit: Callable[[sqlite3.Connection], T]) -> T:
    """Run one unit in its own transaction; StoreError becomes a one-line CLI error."""
    ((ok, value),) = run_in_transaction(conn, [unit])
    if not ok:
        if isinstance(value, StoreError):
            raise CliError(str(value))
        raise value
    return value


def read(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except StoreError as exc:
        raise CliError(str(exc)) from None


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str | None = None) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    else:
        print(text if text is not None else "\n".join(f"{k}: {v}" for k, v in obj.items()))


def group(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
          help: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommand set of a command group (`relay party …`), shared by every module that adds to it."""
    # Kept on the parser itself: a dict keyed by id(sub) returned stale groups when a later parser
    # reused the id of a collected one (main() called twice in one process).
    groups: dict[str, Any] = sub.__dict__.setdefault("_relay_groups", {})
    if name not in groups:
        parser = sub.add_parser(name, help=help)
        groups[name] = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")
    return groups[name]


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def normalize_address(address: str) -> str:
    """Validate a real address (syntax only, no DNS) and return it lower-cased."""
    if any(c in address for c in "\r\n\x00<>"):
        raise CliError(f"invalid address {address!r}: control or bracket characters")
    try:
        info = validate_email(address, check_deliverability=False, allow_smtputf8=True, test_environment=True)
    except EmailNotValidError as exc:
        raise CliError(f"invalid address {address!r}: {exc}") from None
    return info.normalized.lower()
