"""relay party optout | vacation | rules; relay message no-response-needed; relay metrics seller.

Reads: rules.important_abuse_limit, rules.important_abuse_window. Every change is audited
(optout.on|off, vacation.on|off, message.no_response_needed). DATE: "2026-12-01" or an ISO
date-time; without a zone it is UTC.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, quoted, settings

if TYPE_CHECKING:
    from relay.config import Settings
    from relay.model import Party, Role
    from relay.store.interface import Store
    from relay.store.rules import Vacation


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "party", "buyers and sellers")
    p = psub.add_parser("optout", help="opt a buyer out of non-critical seller messages (or back in)")
    p.add_argument("party")
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("--seller", help="only this seller (default: every seller)")
    add_json(p)
    p.set_defaults(handler=party_optout)
    p = psub.add_parser("vacation", help="a seller's vacation: automatic replies, orders left out of metrics")
    p.add_argument("party")
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("--until", help="DATE the seller is back (the vacation ends by itself then)")
    add_json(p)
    p.set_defaults(handler=party_vacation)
    p = psub.add_parser("rules", help="opt-outs, vacation and [Important] counts of a party")
    p.add_argument("party")
    add_json(p)
    p.set_defaults(handler=party_rules)

    msub = group(sub, "message", "relayed messages")
    p = msub.add_parser("no-response-needed", help="mark a buyer message as needing no answer")
    p.add_argument("message", type=int)
    add_json(p)
    p.set_defaults(handler=message_no_response_needed)

    ksub = group(sub, "metrics", "figures")
    p = ksub.add_parser("seller", help="a seller's response times")
    p.add_argument("party")
    p.add_argument("--since", help="only buyer messages from this DATE on")
    p.add_argument("--at", help="compute as of this DATE (default: now)")
    add_json(p)
    p.set_defaults(handler=metrics_seller)


def parse_when(text: str) -> float:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"not a date: {quoted(text)} (expected e.g. 2026-12-01 or 2026-12-01T09:00:00+09:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def _party(st: Store, key: str, role: Role) -> Party:
    party = await st.parties.find(key)
    if party.role is not role:
        raise CliError(f"party {party.id} is a {party.role.value}, not a {role.value}")
    return party


async def rules_summary(st: Store, s: Settings, party: Party, now: float) -> dict[str, Any]:
    """The rules state of a party (also shown by `relay party show`)."""
    from relay.model import Role

    if party.role is Role.BUYER:
        scopes = await st.rules.optouts_of(party.id)
        return {"opted_out_all": None in scopes, "opted_out_sellers": [sid for sid in scopes if sid is not None]}
    window = s.rules.important_abuse_window
    recent = await st.rules.unjustified_count(party.id, now - window)
    vacation = await st.rules.vacation_at(party.id, now)
    return {
        "vacation": None if vacation is None else {"since": iso(vacation.started_at), "until": iso(vacation.until_at)},
        "important_unjustified": recent,
        "important_unjustified_total": await st.rules.unjustified_count(party.id),
        "important_abuse_limit": s.rules.important_abuse_limit,
        "important_abuse_window_days": round(window / 86400, 2),
        "important_bypass": "lost" if recent > s.rules.important_abuse_limit else "kept",
    }


def party_optout(args: argparse.Namespace) -> int:
    from relay.model import Role

    on = args.state == "on"
    s = settings(args)

    async def work(st: Store) -> tuple[Party, Party | None, dict[str, Any]]:
        buyer = await _party(st, args.party, Role.BUYER)
        seller = await _party(st, args.seller, Role.SELLER) if args.seller else None
        changed = await st.rules.set_optout(buyer.id, seller.id if seller else None, on, via="cli", now=time.time())
        d = {"party": buyer.id, "optout": args.state, "seller": seller.id if seller else None, "changed": changed}
        return buyer, seller, d | await rules_summary(st, s, buyer, time.time())

    buyer, seller, d = on_store(args, work)
    changed = d["changed"]
    emit(args, d, f"party {buyer.id}: opt-out {args.state}" + (f" for seller {seller.id}" if seller else "")
         + ("" if changed else " (unchanged)"))
    return 0


def party_vacation(args: argparse.Namespace) -> int:
    from relay.model import Role

    on = args.state == "on"
    if args.until and not on:
        raise CliError("--until goes with `on`")
    until = parse_when(args.until) if args.until else None

    async def work(st: Store) -> tuple[Party, Vacation | None]:
        seller = await st.parties.find(args.party)
        if seller.role is not Role.SELLER:
            raise CliError(f"party {seller.id} is a {seller.role.value}, not a {Role.SELLER.value}")
        return seller, await st.rules.set_vacation(seller.id, on, until=until, now=time.time())

    seller, vac = on_store(args, work)
    d = {"party": seller.id, "vacation": args.state, "until": iso(vac.until_at) if vac else None}
    emit(args, d, f"party {seller.id}: vacation {args.state}" + (f" until {d['until']}" if d["until"] else ""))
    return 0


def party_rules(args: argparse.Namespace) -> int:
    s = settings(args)

    async def work(st: Store) -> dict[str, Any]:
        party = await st.parties.find(args.party)
        return {"party": party.id, "role": party.role.value} | await rules_summary(st, s, party, time.time())

    emit(args, on_store(args, work))
    return 0


def message_no_response_needed(args: argparse.Namespace) -> int:
    changed = on_store(args, lambda st: st.rules.mark_no_response_needed(args.message, via="cli", now=time.time()))
    emit(args, {"message": args.message, "no_response_needed": True, "changed": changed},
         f"message {args.message}: no response needed" + ("" if changed else " (already marked)"))
    return 0


def metrics_seller(args: argparse.Namespace) -> int:
    from relay.model import Role
    from relay.rules.metrics import seller_metrics
    from relay.store.metrics import ThreadMessage

    since = parse_when(args.since) if args.since else None
    now = parse_when(args.at) if args.at else time.time()

    async def work(st: Store) -> tuple[Party, list[ThreadMessage], dict[tuple[int, str], float],
                                       list[tuple[float, float | None]]]:
        seller = await _party(st, args.party, Role.SELLER)
        vacations = [(v.started_at, v.end) for v in await st.rules.vacations_of(seller.id)]
        return seller, await st.metrics.thread_messages(seller.id), await st.metrics.order_times(seller.id), vacations

    seller, rows, orders, vacations = on_store(args, work)
    figures = seller_metrics(rows, orders, vacations, since=since, now=now)
    d = {"party": seller.id, "since": iso(since), "at": iso(now)} | figures.as_dict()
    emit(args, d)
    return 0
