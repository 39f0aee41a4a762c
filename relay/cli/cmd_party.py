"""relay party add | show | list | update.

`party add --ref REF` is idempotent: the same role, ref, name and addresses again print the
existing party (exit 0); other details for an existing ref are refused (exit 1), and
`party update` changes them. Audit: party.added, party.updated (which fields, never their values).
"""

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
    plain,
    settings,
)

if TYPE_CHECKING:
    from relay.model import Party
    from relay.store.interface import Store

#: parties read per call when listing
PAGE = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "party", "buyers and sellers")
    add = psub.add_parser("add", help="register a buyer or a seller (with --ref: once per ref)")
    add.add_argument("--role", required=True, choices=["buyer", "seller"])  # relay.model.Role
    add.add_argument("--email", required=True, action="append", help="a real address (repeatable)")
    add.add_argument("--name", required=True, help="display name (a seller's business name)")
    add.add_argument("--ref", help="the marketplace's own id for this party; the same ref again returns the party")
    add_json(add)
    add.set_defaults(handler=party_add)
    show = psub.add_parser("show", help="show a party (by id, ref or address)")
    show.add_argument("party")
    add_json(show)
    show.set_defaults(handler=party_show)
    ls = psub.add_parser("list", help="list parties (by id)")
    ls.add_argument("--role", choices=["buyer", "seller"])
    add_json(ls)
    ls.set_defaults(handler=party_list)
    up = psub.add_parser("update", help="change a party's name, addresses or status")
    up.add_argument("party", help="party id, ref or address")
    up.add_argument("--name", help="the new display name")
    up.add_argument("--email", action="append", help="the new addresses, replacing all (repeatable; the first is"
                                                     " where notices go)")
    up.add_argument("--status", choices=["active", "suspended"], help="a suspended party's mail is refused")
    add_json(up)
    up.set_defaults(handler=party_update)


def party_dict(party: Party, thread_ids: list[int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"party": party.id, "role": party.role.value, "name": party.name,
                           "emails": list(party.emails), "status": party.status, "ref": party.ref}
    if thread_ids is not None:
        out["threads"] = thread_ids
    return out


def _one_line(party: Party) -> str:
    return f"party {party.id}: {party.role.value} {party.name} <{', '.join(party.emails)}>"


def _name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise CliError("--name must not be empty")
    return name


def party_add(args: argparse.Namespace) -> int:
    from relay.model import Role

    name = _name(args.name)
    emails = [normalize_address(e) for e in args.email]
    role = Role(args.role)

    async def work(st: Store) -> tuple[Party, bool]:
        if args.ref is None:
            return await st.parties.add(role, name, emails), True
        return await st.parties.ensure(role, name, emails, args.ref)

    party, created = on_store(args, work)
    emit(args, party_dict(party) | {"created": created},
         _one_line(party) + ("" if created else " (exists already)"))
    return 0


def party_show(args: argparse.Namespace) -> int:
    s = settings(args)

    async def work(st: Store) -> dict[str, Any]:
        party = await st.parties.find(args.party)
        tids = await st.threads.threads_of(party.id)
        rules = await rules_summary(st, s, party, time.time())  # opt-outs, vacation, [Important] counts
        return party_dict(party, tids) | rules

    emit(args, on_store(args, work))
    return 0


def party_list(args: argparse.Namespace) -> int:
    from relay.model import Role

    role = Role(args.role) if args.role else None

    async def work(st: Store) -> list[Party]:
        out: list[Party] = []
        while page := await st.parties.listing(role, after=out[-1].id if out else 0, limit=PAGE):
            out += page
        return out

    found = on_store(args, work)
    text = "\n".join(f"{p.id:>7} {p.role.value:<6} {p.status:<9} ref={plain(p.ref)} {p.name}"
                     f" <{', '.join(p.emails)}>" for p in found) or "no parties"
    emit(args, {"count": len(found), "parties": [party_dict(p) for p in found]}, text)
    return 0


def party_update(args: argparse.Namespace) -> int:
    name = _name(args.name) if args.name is not None else None
    emails = [normalize_address(e) for e in args.email] if args.email else None
    if name is None and emails is None and args.status is None:
        raise CliError("nothing to change: give --name, --email or --status")

    async def work(st: Store) -> tuple[Party, list[str]]:
        party = await st.parties.find(args.party)
        return await st.parties.update(party.id, name=name, emails=emails, status=args.status)

    party, changed = on_store(args, work)
    emit(args, party_dict(party) | {"changed": changed},
         _one_line(party) + f", {party.status}" + (f" (changed: {', '.join(changed)})" if changed else " (unchanged)"))
    return 0
