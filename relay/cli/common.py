"""Helpers every command shares: settings, the store (on_store), output, one-line errors.

Imported on every `relay …` run, `--help` included: only the standard library at the top; the
configuration schema, the store and the validators are imported by the helper that needs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from relay import config
    from relay.store.interface import Store

T = TypeVar("T")


class CliError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def run_command(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    return handler(args) or 0


def settings(args: argparse.Namespace) -> config.Settings:
    from relay import config

    cached = getattr(args, "_settings", None)
    if cached is None:
        cached = config.load(args.config)
        args._settings = cached
    return cached


def on_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the daemon's store (the one store.url names, relay/store/open.py) through the
    same async methods the daemon uses (on SQLite the same group-commit writer, queued on the
    daemon's write lock), in one event loop for this command. SQLite's file is migrated first;
    PostgreSQL applies pending migrations when the store opens. A store's refusal (StoreError) or
    its being unavailable becomes a one-line CLI error; a bad store.url a configuration error."""
    import asyncio

    from relay.errors import EX_CONFIG
    from relay.store.errors import StoreError, StoreUnavailable
    from relay.store.open import open_store
    from relay.store.url import SqliteTarget, StoreUrlError

    s = settings(args)
    try:
        target = s.store_target
    except StoreUrlError as exc:
        raise CliError(str(exc), EX_CONFIG) from None
    if isinstance(target, SqliteTarget):
        from relay.store.migrate import migrate_file

        migrate_file(target.path)

    async def run() -> T:
        store = open_store(s, pool_size=2)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run())
        # called from inside a running loop (a test, a program embedding the CLI): a loop of its own
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()
    except (StoreError, StoreUnavailable) as exc:
        raise CliError(str(exc)) from None


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str | None = None) -> None:
    if getattr(args, "json", False):
        import orjson

        sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    else:
        print(text if text is not None else "\n".join(f"{k}: {plain(v)}" for k, v in obj.items()))


def plain(value: Any) -> str:
    """A value as an operator reads it: no Python reprs (`['a']`, `None`, `datetime.datetime(…)`)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(plain(v) for v in value) or "-"
    return str(value)


def quoted(text: str) -> str:
    """A string in double quotes with its invisible characters escaped as \\uXXXX (what a hostile
    sender hides in a word shows), not a Python repr."""

    def one(c: str) -> str:
        if c in '"\\':
            return "\\" + c
        if c.isprintable():
            return c
        return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"

    return '"' + "".join(one(c) for c in text) + '"'


def group(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
          help: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommand set of a command group (`relay party …`), shared by every module that adds to it.

    When the command line names another group (`sub._relay_only`, set by build_parser), this one
    is listed but its subcommands are not built: argparse's parsers cost about a millisecond each,
    which was a third of `relay --help`.
    """
    # Kept on the parser itself: a dict keyed by id(sub) returned stale groups when a later parser
    # reused the id of a collected one (main() called twice in one process).
    groups: dict[str, Any] = sub.__dict__.setdefault("_relay_groups", {})
    if name not in groups:
        parser = sub.add_parser(name, help=help)
        only = sub.__dict__.get("_relay_only")
        if only is not None and only != name:
            groups[name] = _Unbuilt()
        else:
            groups[name] = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")
    return groups[name]


class _Unbuilt:
    """Takes every call a command module makes on the subcommands of a group not asked for."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: self


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def normalize_address(address: str) -> str:
    """Validate a real address (syntax only, no DNS) and return it lower-cased."""
    from email_validator import EmailNotValidError, validate_email

    if any(c in address for c in "\r\n\x00<>"):
        raise CliError(f"invalid address {quoted(address)}: control or bracket characters")
    try:
        info = validate_email(address, check_deliverability=False, allow_smtputf8=True, test_environment=True)
    except EmailNotValidError as exc:
        raise CliError(f"invalid address {quoted(address)}: {exc}") from None
    return info.normalized.lower()
