"""relay party add | show."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from relay.cli.cmd_rules import rules_summary
from relay.cli.common import (
    CliError,
    add_json,
    emit,
    group,
    normalize_address,
    on_store,
    read,
    settings,
    store,
)

if TYPE_CHECKING:
    from relay.model import Party


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "party", "buyers and sellers")
    add = psub.add_parser("add", help="register a buyer or a seller")
    add.add_argument("--role", required=True, choices=["buyer", "seller"])  # relay.model.Role
    add.add_argument("--email", required=True, action="append", help="a real address (repeatable)")
    add.add_argument("--name", required=True, help="display name (a seller's business name)")
    add.add_argument("--ref", help="the marketplace's own id for this party")
    add_json(add)
    add.set_defaults(handler=party_add)
    show = psub.add_parser("show", help="show a party (by id, ref or address)")
    show.add_argument("party")
    add_json(show)
    show.set_defaults(handler=party_show)


def party_dict(party: Party, thread_ids: list[int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"party": party.id, "role": party.role.value, "name": party.name,
                           "emails": list(party.emails), "status": party.status, "ref": party.ref}
    if thread_ids is not None:
        out["threads"] = thread_ids
    return out


def party_add(args: argparse.Namespace) -> int:
    from relay.model import Role

    name = " ".join(args.name.split())
    if not name:
        raise CliError("--name must not be empty")
    emails = [normalize_address(e) for e in args.email]
    party = on_store(args, lambda st: st.parties.add(Role(args.role), name, emails, args.ref))
    emit(args, party_dict(party), f"party {party.id}: {party.role.value} {party.name} <{', '.join(party.emails)}>")
    return 0


def party_show(args: argparse.Namespace) -> int:
    from relay.store import parties, threads

    with store(args) as conn:
        party = read(lambda: parties.find(conn, args.party))
        tids = threads.threads_of(conn, party.id)
        rules = rules_summary(conn, settings(args), party, time.time())  # opt-outs, vacation, [Important] counts
    d = party_dict(party, tids) | rules
    emit(args, d)
    return 0
