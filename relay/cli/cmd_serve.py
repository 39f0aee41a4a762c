"""relay serve — run the daemon (migrates the store first); relay db migrate."""

from __future__ import annotations

import argparse
import sys

from relay.cli.common import add_json, emit, group, settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the relay daemon")
    p.set_defaults(handler=serve)
    dbsub = group(sub, "db", "store maintenance")
    m = dbsub.add_parser("migrate", help="apply pending migrations")
    add_json(m)
    m.set_defaults(handler=db_migrate)


def serve(args: argparse.Namespace) -> int:
    from relay import config, preflight, supervisor
    from relay import logging as relay_logging

    # Everything `relay config check` would refuse ends here, before anything starts: the same
    # lines, exit 78, never a traceback from deep inside the start.
    s, errors, _ = preflight.check(config.resolve_path(args.config))
    if s is None:
        raise config.ConfigError("\n".join(errors))
    relay_logging.configure(s.logging.level, s.logging.format, keep_domain=s.relay.domain)
    try:
        return supervisor.serve(s, config.resolve_path(args.config))
    except config.ListenError as exc:
        # One line naming the key and the address, exit 1: nothing else is left listening.
        print(f"relay: {exc}", file=sys.stderr)
        return 1


def db_migrate(args: argparse.Namespace) -> int:
    from relay.app import migrate_store

    s = settings(args)
    s.relay.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    applied = migrate_store(s.db_path)
    emit(args, {"applied": applied, "database": str(s.db_path)},
         "\n".join(f"applied {a}" for a in applied) or "store is up to date")
    return 0
