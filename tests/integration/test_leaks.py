"""Adversarial leak tests: a party writes a real address in every form we know, over real SMTP.

Both directions. The judge is tests/leakoracle.py, which shares no code with relay/: whatever the
sink receives must show no form of either party's address (the recipient's own only in To).
Text and HTML forms must be delivered with the writer's alias where the address was; an attachment
that carries an address is either delivered without it or refused with a 5xx, never a 4xx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from relay.store import audit
from tests.leakforms import CASES, Case, Parties
from tests.leakoracle import forms_found, normalize, views_of
from tests.support import NO_LIMITS, Sink, World, provision, send_expect

SELLER = "kenji.sato@gmail.com"
SELLER_STAFF = "kyoto.crafts.orders@outlook.com"
BUYER = "alice.wong@example.org"


@dataclass(frozen=True, slots=True)
class Direction:
    id: str
    seller_writes: bool


DIRECTIONS = [Direction("seller_to_buyer", True), Direction("buyer_to_seller", False)]


def parties_for(world: World, seller_writes: bool) -> tuple[Parties, str, str, str]:
    """(what the sender writes, its alias, the other's alias, the recipient's real address)."""
    if seller_writes:
        return (Parties(world.seller_email, "Kenji Sato", world.buyer_email, "Alice Wong", world.buyer_alias),
                world.seller_alias, world.buyer_alias, world.buyer_email)
    return (Parties(world.buyer_email, "Alice Wong", world.seller_email, "Kenji Sato", world.seller_alias),
            world.buyer_alias, world.seller_alias, world.seller_email)


@pytest.mark.parametrize("direction", DIRECTIONS, ids=lambda d: d.id)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_no_form_of_a_real_address_is_delivered(start_relay, sink: Sink, case: Case,
                                                      direction: Direction) -> None:
    relay = await start_relay(smarthost=sink.port, rules=NO_LIMITS)
    world = provision(relay.settings, seller_name="Kenji Sato", buyer_name="Alice Wong",
                      seller_email=SELLER, seller_staff=SELLER_STAFF, buyer_email=BUYER)
    parties, own_alias, other_alias, recipient = parties_for(world, direction.seller_writes)
    code, text = await send_expect(relay.addresses[0][1], parties.sender, [parties.to], case.build(parties))

    assert not 400 <= code < 500, (code, text)  # a leak we cannot rewrite is the same next time: 5xx
    if case.kind == "text":
        assert 200 <= code < 300, (code, text)  # text can always be rewritten: it must get through
    if not 200 <= code < 300:
        return
    delivered = (await sink.wait_for(1))[0]
    assert delivered.rcpt_tos == [recipient]
    leaks = forms_found(delivered.data, [SELLER, SELLER_STAFF, BUYER], allow_in_to=recipient)
    assert leaks == [], leaks
    # The egress check is the last line of defence, not the main one: for a text case the rewriter
    # must already have removed everything (an attachment it cannot edit is the egress's to strip).
    if case.kind == "text":
        conn = world.conn()
        try:
            reasons = [e.reason for e in audit.iter_all(conn)]
        finally:
            conn.close()
        assert not [r for r in reasons if r.startswith("egress.")], reasons
    if case.kind == "text" and case.alias_in is not None:
        places = [normalize(v.text) for v in views_of(delivered.data) if re.search(case.alias_in, v.where)]
        assert any(own_alias in t for t in places), "the writer's alias is not where the address was"
        if case.writes_other:
            assert any(other_alias in t for t in places), "the quoted party's alias is not where the address was"
