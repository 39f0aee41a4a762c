"""Who takes the next connection among worker processes (relay/smtp/shared.py): the table of turns."""

from __future__ import annotations

import asyncio
import socket

import pytest

from relay.smtp.shared import SLACK, STALE, Balance, Shared, SharedListener

NOW = 1000.0
FRESH, OLD = NOW - 0.01, NOW - STALE - 0.01
ABSENT = None

# (mine, siblings as (sessions, stamped) or ABSENT, may I take one more?)
TURNS = [
    (0, [], True),                                 # alone
    (5, [ABSENT], True),                           # the sibling is not serving (starting, stopping, dead)
    (0, [(0, FRESH)], True),
    (SLACK, [(0, FRESH)], True),                   # a little ahead is fine
    (SLACK + 1, [(0, FRESH)], False),              # further ahead: the sibling takes it
    (10, [(9, FRESH)], True),
    (12, [(10, FRESH)], False),
    (12, [(10, OLD)], True),                       # the sibling's loop has not turned: busy or stuck
    (12, [(10, OLD), (11, FRESH)], True),          # compared with the least loaded fresh sibling
    (12, [(10, OLD), (3, FRESH)], False),
    (4, [(30, FRESH), (3, FRESH), (9, FRESH)], True),
    (5, [(30, FRESH), (3, FRESH), (9, FRESH)], False),
    (5, [ABSENT, ABSENT, (3, OLD)], True),
]


@pytest.mark.parametrize("mine, siblings, expected", TURNS)
def test_my_turn(mine: int, siblings: list[tuple[int, float] | None], expected: bool) -> None:
    balance = Balance(len(siblings) + 1)
    for slot, sibling in enumerate(siblings, start=1):
        if sibling is not None:
            balance.publish(slot, *sibling)
    balance.publish(0, mine, NOW)
    assert balance.my_turn(0, mine, NOW) is expected


def test_slots_start_absent_and_cleared_slots_stop_counting() -> None:
    balance = Balance(3)
    assert not balance.serving()
    balance.publish(2, 7, NOW)
    assert balance.serving()
    assert balance.slots()[2] == (7, NOW)
    assert not balance.my_turn(0, 9, NOW)
    balance.clear(2)  # the supervisor saw that worker die
    assert not balance.serving() and balance.my_turn(0, 9, NOW)


async def test_listener_leaves_connections_to_a_less_loaded_sibling_then_takes_them() -> None:
    """In one process, playing worker 0 of two: while the sibling is less loaded and alive, the
    listener does not accept; once the sibling goes quiet (STALE), it does."""
    shared = Shared(2)
    shared.slot = 0
    listener_sock = socket.socket()
    listener_sock.bind(("127.0.0.1", 0))
    listener_sock.listen(8)
    listener_sock.setblocking(False)
    shared.sockets["x"] = listener_sock
    greeted: list[asyncio.Transport] = []

    class Greeter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            greeted.append(transport)
            transport.write(b"220 hi\r\n")

    mine = [SLACK + 1]
    shared.balance.publish(1, 0)  # a fresh sibling with no sessions
    listener = shared.listen("x", Greeter, lambda: mine[0])
    assert isinstance(listener, SharedListener)
    port = listener_sock.getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), STALE / 2)
        assert greeted == []
        # the sibling stops stamping its slot (stuck in a long step): this worker takes the connection
        assert await asyncio.wait_for(reader.readline(), 2 * STALE + 1) == b"220 hi\r\n"
        assert len(greeted) == 1
        assert shared.balance.slots()[0][0] == mine[0]  # published its own count
        writer.close()
    finally:
        listener.close()
        for t in greeted:
            t.close()
    assert shared.balance.slots()[0][0] == -1  # a closed worker is no longer counted
