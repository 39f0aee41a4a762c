"""What counts as a seller's reply, what passes an opt-out, and limits that hold under concurrency.

Real daemon, real sockets, real clients: a reply answers (In-Reply-To/References) a recent buyer
message of its own thread, a few times at most; after an opt-out nothing else but justified
[Important] reaches the buyer; ten messages racing for a limit of one get one 250 and nine 5xx,
in one process and across smtp.workers = 2.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.app import Relay
from relay.config import load
from relay.model import Role
from relay.smtp import replies
from relay.store import messages as messages_repo
from relay.store import parties, threads
from tests.integration.test_rules import cli, events, from_seller, said, seller_sends
from tests.integration.test_workers import children, free_port, owner_of
from tests.support import (
    DOMAIN,
    Sink,
    World,
    make_settings,
    message,
    open_data,
    provision,
    read_reply,
    send,
    write,
)

DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked(tmp_path: Path, dkim_key: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Relay] = []

    async def _start(clock: Clock, **kwargs: Any) -> Relay:
        relay = Relay(make_settings(tmp_path / "state", dkim={"private_key": str(dkim_key)}, **kwargs), clock=clock)
        await relay.start()
        started.append(relay)
        return relay

    yield _start
    for relay in started:
        await relay.stop(grace=2)


async def buyer_writes(relay: Any, world: World, subject: str) -> str:
    """The buyer writes to the seller; returns the relay Message-ID the seller sees on it."""
    port = relay.addresses[0][1]
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, subject))
    return last_relay_id(world, "buyer_to_seller", world.thread_id)


def last_relay_id(world: World, direction: str, thread_id: int) -> str:
    conn = world.conn()
    try:
        rows = [m for m in messages_repo.of_thread(conn, thread_id) if m.direction == direction and m.state != "rejected"]
    finally:
        conn.close()
    assert rows[-1].relay_message_id
    return rows[-1].relay_message_id


def answer(world: World, subject: str, quoted: str, **kw: Any) -> bytes:
    return from_seller(world, subject, "Thanks for writing.\r\n", headers={"In-Reply-To": quoted, "References": quoted},
                       **kw)


def rejected(world: World) -> list[str]:
    return [e.reason for e in events(world, "message.rejected")]


def thread_rows(world: World) -> dict[str, int]:
    """Rows of the thread by state, queue rows, and rules facts: what a refused commit must not leave."""
    conn = world.conn()
    try:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM messages WHERE thread_id = ? AND direction ="
                                   " 'seller_to_buyer' GROUP BY state", (world.thread_id,)).fetchall())
        states["queue"] = conn.execute("SELECT COUNT(*) FROM queue q JOIN messages m ON m.id = q.message_id"
                                       " WHERE m.thread_id = ?", (world.thread_id,)).fetchone()[0]
        states["facts"] = conn.execute("SELECT COUNT(*) FROM message_rules WHERE thread_id = ? AND"
                                       " direction = 'seller_to_buyer'", (world.thread_id,)).fetchone()[0]
        return states
    finally:
        conn.close()


async def test_opted_out_buyer_gets_no_unsolicited_mail_inside_the_reply_window(start_relay, sink: Sink,
                                                                                tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    await buyer_writes(relay, world, "Is the bowl still available?")  # the reply window runs from here
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    for subject in ("Spring collection", "Re: Is the bowl still available?"):  # no In-Reply-To: not an answer
        assert await seller_sends(relay, world, from_seller(world, subject)) == (550, said(replies.OPTED_OUT))
    assert rejected(world) == ["rules.opted_out"] * 2
    await asyncio.sleep(0.3)
    assert [r.rcpt_tos for r in sink.received] == [[world.seller_email]]  # only the buyer's own message


async def test_quoted_ids_that_name_no_recent_buyer_message_of_the_thread_are_no_reply(clocked, sink: Sink,
                                                                                      tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    relay = await clocked(clock, smarthost=sink.port)
    world = provision(relay.settings)
    conn = world.conn()
    try:  # a second buyer of the same seller: another thread
        bob = write(conn, lambda c: parties.add(c, Role.BUYER, "Bob", ["bob@buyer.example"]))
        other, _ = write(conn, lambda c: threads.open_thread(c, bob.id, world.seller_id))
    finally:
        conn.close()
    port = relay.addresses[0][1]

    old = await buyer_writes(relay, world, "Old question")
    assert await seller_sends(relay, world, answer(world, "Re: Old question", old,
                                                   message_id="<s1@seller.example>")) == (250, "")
    seller_relay_id = last_relay_id(world, "seller_to_buyer", world.thread_id)
    await sink.wait_for(2)

    clock.now += 15 * DAY  # past rules.reply_window (14 days) for the old question
    await send(port, "bob@buyer.example", [f"{other.seller_alias}@{DOMAIN}"],
               message("bob@buyer.example", f"{other.seller_alias}@{DOMAIN}", "Bob's question"))
    bobs = last_relay_id(world, "buyer_to_seller", other.id)
    recent = await buyer_writes(relay, world, "New question")  # the buyer wrote today
    await sink.wait_for(4)
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")

    for quoted in (bobs, seller_relay_id, "<s1@seller.example>", old, "<unknown@relay.example>"):
        got = await seller_sends(relay, world, answer(world, "Re: question", quoted))
        assert got == (550, said(replies.OPTED_OUT)), quoted
    assert rejected(world) == ["rules.opted_out"] * 5
    # the genuine answer to today's question passes, also with the refused ids beside it in References
    data = from_seller(world, "Re: New question", headers={"In-Reply-To": recent,
                                                           "References": f"{old} {bobs} {recent}"})
    assert await seller_sends(relay, world, data) == (250, "")
    got = await sink.wait_for(5)
    assert got[4].rcpt_tos == [world.buyer_email] and len(sink.received) == 5


async def test_after_optout_replies_and_critical_pass_marked_marketing_does_not(start_relay, sink: Sink,
                                                                               tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    question = await buyer_writes(relay, world, "When will it ship?")
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    assert await seller_sends(relay, world, answer(world, "Re: When will it ship?", question)) == (250, "")
    address = from_seller(world, "[Important] Your delivery address",
                          "The shipping address has no apartment number; which one is it?\r\n")
    assert await seller_sends(relay, world, address) == (250, "")
    marketing = from_seller(world, "[Important] Our summer collection", "Have a look at our new bowls.\r\n")
    assert await seller_sends(relay, world, marketing) == (550, said(replies.IMPORTANT_UNJUSTIFIED))
    got = await sink.wait_for(3)
    await asyncio.sleep(0.3)
    assert len(sink.received) == 3
    assert [r.message["Subject"] for r in got[1:]] == ["Re: When will it ship?", "[Important] Your delivery address"]
    assert rejected(world) == ["rules.unjustified_to_opted_out"]
    assert len(events(world, "important.unjustified")) == 1  # still counted toward losing the bypass


async def test_one_buyer_message_takes_a_few_replies(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port, rules={"max_replies_per_buyer_message": 2})
    world = provision(relay.settings)
    first = await buyer_writes(relay, world, "Question")
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    for i in range(2):
        assert await seller_sends(relay, world, answer(world, f"Re: Question {i}", first)) == (250, "")
    # the third answer to the same message is no reply any more: to an opted-out buyer, refused
    assert await seller_sends(relay, world, answer(world, "Re: Question 2", first)) == (550, said(replies.OPTED_OUT))
    refusal = [e for e in events(world, "stage.rules") if e.reason == "rules.opted_out"]
    assert refusal[0].detail["reply_limit"] == 2 and refusal[0].detail["opted_out"] == "all"
    # the buyer's next message opens two more
    second = await buyer_writes(relay, world, "Another question")
    assert await seller_sends(relay, world, answer(world, "Re: Another question", second)) == (250, "")
    assert await seller_sends(relay, world, answer(world, "Re: Another", f"{first} {second}")) == (250, "")
    assert (await seller_sends(relay, world, answer(world, "Re: Another", second)))[0] == 550
    assert len(await sink.wait_for(6)) == 6


Session = tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]


async def sessions_at_data(port: int, world: World, n: int) -> list[Session]:
    opened = await asyncio.gather(*(open_data(port, world.seller_email, world.buyer_alias) for _ in range(n)))
    assert all(answer.startswith(b"354") for _, _, answer in opened), [answer for _, _, answer in opened]
    return list(opened)


async def race(world: World, sessions: list[Session], data: Callable[[int], bytes] | None = None) -> list[bytes]:
    """Sessions each at the end of DATA of a seller message (by default an unsolicited one); the
    terminators go out together."""
    for i, (_, writer, _) in enumerate(sessions):
        content = data(i) if data else from_seller(world, f"Care of your order {i}",
                                                   "Rinse the linen in cold water before the first use.\r\n")
        writer.write(content + b".\r\n")
    try:
        return list(await asyncio.gather(*(asyncio.wait_for(read_reply(r), 30) for r, _, _ in sessions)))
    finally:
        for _, writer, _ in sessions:
            writer.close()


async def test_concurrent_unsolicited_messages_cannot_exceed_the_order_limit(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port, rules={"max_unsolicited_per_order": 1})
    world = provision(relay.settings)
    answers = await race(world, await sessions_at_data(relay.addresses[0][1], world, 10))
    assert sorted(a[:3] for a in answers) == [b"250"] + [b"550"] * 9, answers
    assert sum(a.decode().strip() == str(replies.ORDER_LIMIT) for a in answers) == 9, answers
    await sink.wait_for(1)
    await asyncio.sleep(0.5)
    assert len(sink.received) == 1
    rows = thread_rows(world)
    assert (rows["rejected"], rows["queue"], rows["facts"]) == (9, 1, 1), rows
    assert rejected(world).count("rules.order_limit") == 9
    at_commit = [e for e in events(world, "stage.rules") if e.detail.get("at") == "commit"]
    assert at_commit, "every refusal came before the commit: the race was not run"


async def test_concurrent_replies_to_one_buyer_message_cannot_exceed_its_replies(start_relay, sink: Sink,
                                                                                 tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)  # max_replies_per_buyer_message = 3
    world = provision(relay.settings)
    question = await buyer_writes(relay, world, "Question")
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    sessions = await sessions_at_data(relay.addresses[0][1], world, 6)
    answers = await race(world, sessions, lambda i: answer(world, f"Re: Question ({i})", question))
    assert sorted(a[:3] for a in answers) == [b"250"] * 3 + [b"550"] * 3, answers
    assert sum(a.decode().strip() == str(replies.OPTED_OUT) for a in answers) == 3, answers
    assert len(await sink.wait_for(4)) == 4
    assert thread_rows(world)["facts"] == 3


async def test_concurrent_unsolicited_messages_across_two_worker_processes(tmp_path: Path, sink: Sink,
                                                                          dkim_key: Path) -> None:
    port = free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(
        f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\nmax_connections_per_ip = 100\n'
        f'[delivery]\ntransport = "smtp"\nsmarthost = "127.0.0.1:{sink.port}"\ntls = "off"\n'
        f'[dkim]\nselector = "test"\nprivate_key = "{dkim_key}"\n[logging]\nformat = "json"\n'
        '[trust]\nauthenticate = "off"\n[http]\nlisten = "127.0.0.1:0"\n'
        '[rules]\nmax_unsolicited_per_order = 1\n')
    world = provision(load(cfg))
    opened: list[Session] = []  # all closed at the end, the ones not kept for the race too
    log = open(tmp_path / "relay.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "relay", "--config", str(cfg), "serve"],
                            stderr=log, stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if len(children(proc.pid)) == 2:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    pass
            await asyncio.sleep(0.05)
        assert len(children(proc.pid)) == 2
        workers = children(proc.pid)
        # ten sessions, at least one served by each process (at most nine kept from one of them)
        kept: dict[int | None, list[Session]] = {pid: [] for pid in workers}
        for _ in range(200):  # (a worker still starting takes no connection yet: its sibling does)
            session = (await sessions_at_data(port, world, 1))[0]
            opened.append(session)
            owner = owner_of(port, session[1].get_extra_info("sockname")[1], workers)
            if owner in kept and len(kept[owner]) < 9:
                kept[owner].append(session)
            else:
                session[1].close()
                await asyncio.sleep(0.1)
            if sum(len(v) for v in kept.values()) == 10:
                break
        assert sorted(len(v) > 0 for v in kept.values()) == [True, True], {k: len(v) for k, v in kept.items()}
        answers = await race(world, [s for v in kept.values() for s in v])
        assert sorted(a[:3] for a in answers) == [b"250"] + [b"550"] * 9, answers
        assert sum(a.decode().strip() == str(replies.ORDER_LIMIT) for a in answers) == 9, answers
        await sink.wait_for(1)
    finally:
        for _, writer, _ in opened:
            writer.close()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        log.close()
    assert code == 0, (tmp_path / "relay.log").read_text()[-2000:]
    assert len(sink.received) == 1
    rows = thread_rows(world)
    assert (rows["queue"], rows["facts"]) == (1, 1), rows

