"""A refused DATA (too big, or over the in-flight memory bound) still reads to its end and answers.

Regression: the refusal path trimmed the buffer before looking for <CRLF>.<CRLF>, so when the last
chunk read held the terminator the session waited for data that would never come.
"""

from __future__ import annotations

import asyncio

from tests.support import NO_LIMITS, message, provision, send_raw


async def test_too_big_answers_even_when_the_terminator_is_in_the_last_chunk(start_relay) -> None:
    relay = await start_relay(smtp={"max_message_size": 100_000})
    world = provision(relay.settings)
    big = message(world.seller_email, world.buyer_alias, body=("x" * 76 + "\r\n") * 3000)
    answer = await send_raw(relay.addresses[0][1], world.seller_email, world.buyer_alias, big)
    assert answer.startswith(b"552")


async def test_over_the_memory_bound_every_session_gets_an_answer(start_relay) -> None:
    relay = await start_relay(smtp={"max_inflight_bytes": "8MiB"}, rules=NO_LIMITS)
    world = provision(relay.settings)
    body = ("y" * 76 + "\r\n") * 6_000  # ≈ 0.5 MB each (≈ 5 MB charged), no SIZE=: grows in flight
    data = message(world.buyer_email, world.seller_alias, body=body)
    answers = await asyncio.gather(*(send_raw(relay.addresses[0][1], world.buyer_email, world.seller_alias, data)
                                     for _ in range(6)))
    # every session is answered (accepted, or told to come back later); nothing stays reserved
    assert all(a[:3] in (b"250", b"452") for a in answers), answers
    assert relay.limits.inflight == 0
