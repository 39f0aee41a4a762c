"""relay party password PARTY: set the party's SMTP AUTH password (submission listener).

The password is read from a prompt (twice) or, with --password-stdin, from the first line of
standard input; it is stored only as a scrypt hash (relay/trust/passwords.py). Audited as
party.password_set.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from relay.cli.common import CliError, add_json, emit, group, on_store

if TYPE_CHECKING:
    from relay.model import Party
    from relay.store.interface import Store

MIN_LENGTH = 12


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "party", "buyers and sellers")
    cmd = psub.add_parser("password", help="set a party's SMTP AUTH password (submission listener)")
    cmd.add_argument("party", help="id, ref or address")
    cmd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_json(cmd)
    cmd.set_defaults(handler=party_password)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal to ask for the password on; give it with --password-stdin")
        try:
            password = getpass.getpass("New password: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise CliError("no password given") from None
        if again != password:
            raise CliError("the passwords do not match")
    if len(password) < MIN_LENGTH:
        raise CliError(f"the password must have at least {MIN_LENGTH} characters")
    return password


def party_password(args: argparse.Namespace) -> int:
    from relay.trust import passwords

    async def work(st: Store) -> Party:
        party = await st.parties.find(args.party)  # an unknown party is refused before the prompt
        hashed = passwords.hash_password(_read_password(args))
        await st.credentials.change_password(party.id, hashed, reason="cli")
        return party

    party = on_store(args, work)
    emit(args, {"party": party.id, "password": "set"}, f"party {party.id}: password set")
    return 0
