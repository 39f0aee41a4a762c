"""The relay-wide connection and rate counters (relay/smtp/counters.py) from tables: columns per
worker, a dead worker's connections cleared, the sliding minute, a full table, forked processes."""

from __future__ import annotations

import os

from relay.smtp.counters import PROBE, WINDOW, SharedCounters


def test_connections_count_across_slots_and_a_dead_slot_is_cleared() -> None:
    c = SharedCounters(slots=2)
    c.slot = 0
    assert c.connect("192.0.2.1", 10, 2) is None
    c.slot = 1
    assert c.connect("192.0.2.1", 10, 2) is None
    assert c.connect("192.0.2.1", 10, 2) == "per_ip"
    assert c.connect("192.0.2.1", 10, None) is None  # exempt: counted, not checked
    assert (c.connections("192.0.2.1"), c.total()) == (3, 3)
    assert c.connect("192.0.2.2", 3, 5) == "total"
    c.clear_slot(1)  # worker 1 died with two connections open
    assert (c.connections("192.0.2.1"), c.total()) == (1, 1)
    c.slot = 0
    c.disconnect("192.0.2.1")
    assert (c.connections("192.0.2.1"), c.total()) == (0, 0)


def test_move_recounts_under_the_proxied_client() -> None:
    c = SharedCounters()
    assert c.connect("127.0.0.1", 10, None) is None
    assert c.move("127.0.0.1", "203.0.113.7", 1)
    assert c.connect("127.0.0.1", 10, None) is None
    assert not c.move("127.0.0.1", "203.0.113.7", 1)  # over: still counted under the balancer
    assert (c.connections("127.0.0.1"), c.connections("203.0.113.7")) == (1, 1)


def test_message_rate_is_a_sliding_minute() -> None:
    c = SharedCounters()
    ip = "2001:db8::1"
    assert [c.allow_message(ip, 3, now=1000.0 + t) for t in (0, 10, 20, 30)] == [True, True, True, False]
    assert not c.allow_message(ip, 3, now=1059.5)  # the first is still within the minute
    assert c.allow_message(ip, 3, now=1060.0)  # second 1000 has left the window
    assert not c.allow_message(ip, 3, now=1060.5)
    assert c.allow_message(ip, 3, now=1000.0 + 10 * WINDOW)  # long idle: all forgotten
    assert c.allow_message("198.51.100.1", 1, now=1000.0)  # others have their own


def test_idle_entries_are_reused_and_a_full_table_lets_through_uncounted() -> None:
    c = SharedCounters(capacity=PROBE)
    for i in range(PROBE):
        assert c.connect(f"10.0.0.{i}", 10_000, 1) is None
    assert c.connect("10.0.1.1", 10_000, 1) is None  # no room: let through, not counted per address
    assert c.connections("10.0.1.1") == 0 and c.total() == PROBE + 1
    c.disconnect("10.0.0.5")
    assert c.connect("10.0.1.1", 10_000, 1) is None  # the idle entry is taken
    assert c.connect("10.0.1.1", 10_000, 1) == "per_ip"


def test_forked_workers_count_in_one_table() -> None:
    c = SharedCounters(slots=3)
    pids = []
    for slot in (1, 2):
        pid = os.fork()
        if pid == 0:
            c.slot = slot
            code = 0
            for _ in range(500):
                code |= c.connect("192.0.2.9", 10_000, None) is not None
                code |= not c.allow_message("192.0.2.9", 10_000)
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    assert c.connections("192.0.2.9") == 1000 and c.total() == 1000
    assert c.allow_message("192.0.2.9", 1001) and not c.allow_message("192.0.2.9", 1001)
