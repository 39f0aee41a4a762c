"""Three relay nodes on one PostgreSQL database (issue 23): real `relay serve` processes, real
sockets, one shared smarthost.

- A per-order limit holds across nodes: 9 unsolicited seller messages for one order, 3 sessions
  on each node, final dots sent together: one 250, eight 550 (the order-limit reply).
- Load: N buyer messages spread over the three nodes at once; mid-load one node is SIGKILLed
  (its whole process group) and never restarted. Every message that got a 250 from any node is
  delivered by the two others; the dead node's claims come back when their lease runs out
  (delivery.lease_seconds = 3 s). A message may be delivered twice only if the dead node was
  sending it when it died (the sink took it, the 250 never got recorded): those are counted,
  printed, and must be among the rows it held 'sending' at that moment.
- The audit chain, one for all nodes, verifies.
"""

from __future__ import annotations

import asyncio
import collections
import re
import smtplib
import threading
import time
from pathlib import Path

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.config import settings_from_dict
from relay.model import Role
from relay.smtp import replies
from relay.store.open import open_store
from tests.daemon import Daemon, daemon_config, free_port
from tests.support import DOMAIN, Sink, _SinkHandler, message, open_data, read_reply

MESSAGES = 150
SENDERS = 9  # client threads; message n goes to node n % 3
CONCURRENCY = 4  # delivery.concurrency of each node: the most the dead node can have in flight
LEASE = 3.0
KILL_AFTER = MESSAGES // 3  # 250s seen before the SIGKILL
NODES = ("mx-1", "mx-2", "mx-3")
VICTIM = 1  # mx-2
ID = re.compile(rb"multinode-id-(\d+)")
BODY = "Rinse the linen in cold water before the first use.\r\nReference multinode-id-{n}.\r\n"


class _SlowHandler(_SinkHandler):
    """The shared smarthost; it takes 0.1 s over each DATA, so that deliveries are in flight when a
    node dies (one killed during that pause is a message the sink keeps but its sender never sees
    acknowledged)."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.1)
        return await super().handle_DATA(server, session, envelope)


class SlowSink(Sink):
    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(_SlowHandler(self), enable_SMTPUTF8=True, hostname="sink.test"),
            host="127.0.0.1", port=0, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]


def delivered(sink: Sink) -> collections.Counter[int]:
    return collections.Counter(int(m.group(1)) for r in sink.received for m in [ID.search(r.data)] if m)


async def _race_the_order_limit(nodes: list[Daemon], seller: str, buyer_alias: str) -> list[bytes]:
    """9 sessions (3 per node) at the end of DATA of an unsolicited seller message; the dots go out together."""
    sessions = await asyncio.gather(*(open_data(nodes[i % 3].smtp_port, seller, buyer_alias) for i in range(9)))
    assert all(answer.startswith(b"354") for _, _, answer in sessions), [a for _, _, a in sessions]
    for i, (_, writer, _) in enumerate(sessions):
        writer.write(message(seller, buyer_alias, f"Care of your order {i}", BODY.format(n=f"race-{i}")) + b".\r\n")
    try:
        return list(await asyncio.gather(*(asyncio.wait_for(read_reply(r), 30) for r, _, _ in sessions)))
    finally:
        for _, writer, _ in sessions:
            writer.close()


async def test_three_nodes_share_the_queue_and_survive_a_sigkilled_node(tmp_path: Path, dkim_key: Path,
                                                                        pg_store_url: str) -> None:
    started = time.monotonic()
    sink = SlowSink()
    await sink.start()
    configs = [daemon_config(tmp_path / name / "state", dkim_key, smtp_port=free_port(), smarthost=sink.port,
                             relay={"node": name}, store={"url": pg_store_url},
                             delivery={"concurrency": CONCURRENCY, "lease_seconds": f"{LEASE}s",
                                       "connect_timeout": "1s"},
                             rules={"max_unsolicited_per_order": 1})
               for name in NODES]
    # provisioned once, through the shared store
    store = open_store(settings_from_dict(configs[0]), pool_size=2)
    await store.open()
    seller = await store.parties.add(Role.SELLER, "Kyoto Crafts", ["shop@seller.example"])
    alice = await store.parties.add(Role.BUYER, "Alice", ["alice@buyer.example"])
    bob = await store.parties.add(Role.BUYER, "Bob", ["bob@buyer.example"])
    load_thread, _ = await store.threads.open_thread(alice.id, seller.id, order="ORD-1")
    race_thread, _ = await store.threads.open_thread(bob.id, seller.id, order="ORD-2")
    load_alias = f"{load_thread.seller_alias}@{DOMAIN}"  # alice → the seller
    race_alias = f"{race_thread.buyer_alias}@{DOMAIN}"  # the seller → bob
    db = await asyncpg.connect(pg_store_url)  # the shared database, as an operator sees it

    nodes: list[Daemon] = []
    for name, cfg in zip(NODES, configs, strict=True):
        (tmp_path / name).mkdir(exist_ok=True)
        nodes.append(Daemon(tmp_path / name, cfg))
    try:
        await asyncio.gather(*(d.start_ready(new_session=True) for d in nodes))
        ready = time.monotonic()

        # --- the per-order limit, across nodes
        answers = await _race_the_order_limit(nodes, "shop@seller.example", race_alias)
        assert sorted(a[:3] for a in answers) == [b"250"] + [b"550"] * 8, answers
        assert sum(a.decode().strip() == str(replies.ORDER_LIMIT) for a in answers) == 8, answers
        assert await db.fetchval("SELECT COUNT(*) FROM messages WHERE thread_id = $1 AND state <> 'rejected'",
                                 race_thread.id) == 1

        # --- load over the three nodes; one is SIGKILLed midway
        acked: dict[int, str] = {}  # message → the node that answered 250
        refused: set[int] = set()  # no 250: the dead node, or cut off by its death
        lock = threading.Lock()
        next_id = iter(range(MESSAGES))
        enough = threading.Event()
        dead = threading.Event()

        def sender() -> None:
            while True:
                with lock:
                    n = next(next_id, None)
                if n is None:
                    return
                if n >= KILL_AFTER + 15 and not dead.is_set():
                    dead.wait(10)  # the rest of the load goes out after the kill
                node = nodes[n % 3]
                data = message("alice@buyer.example", load_alias, f"Linen care {n}", BODY.format(n=n))
                try:
                    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=20) as client:
                        client.ehlo("client.test")
                        client.sendmail("alice@buyer.example", [load_alias], data)
                    with lock:
                        acked[n] = NODES[n % 3]
                        if len(acked) >= KILL_AFTER:
                            enough.set()
                except (OSError, smtplib.SMTPException):
                    with lock:
                        refused.add(n)

        load_started = time.monotonic()
        threads = [asyncio.create_task(asyncio.to_thread(sender)) for _ in range(SENDERS)]
        assert await asyncio.to_thread(enough.wait, 30), "the load did not get going"
        victim = nodes[VICTIM]
        victim.kill_group()
        killed_at = time.monotonic()
        with lock:
            before_kill = len(acked)
        dead.set()
        # what the dead node held at that moment (its leases have LEASE seconds left at most)
        held = await db.fetch("SELECT q.id, m.subject, q.lease_until FROM queue q JOIN messages m ON m.id = q.message_id"
                              " WHERE q.state = 'sending' AND q.claimed_by LIKE $1", f"{NODES[VICTIM]}:%")
        inflight = {int(s.rsplit(" ", 1)[1]) for _, s, _ in held if s and s.startswith("Linen care ")}
        await asyncio.gather(*threads)
        load_seconds = time.monotonic() - load_started

        # every 250 is delivered by the two nodes left
        deadline = time.monotonic() + 30
        while True:
            got = delivered(sink)
            busy = await db.fetchval("SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'sending')")
            if set(acked) <= set(got) and busy == 0:
                break
            assert time.monotonic() < deadline, (sorted(set(acked) - set(got))[:20], busy,
                                                 [d.log_tail(5) for d in nodes])
            await asyncio.sleep(0.1)
        drained = time.monotonic() - killed_at
        assert all(d.proc is not None and d.proc.poll() is None for i, d in enumerate(nodes) if i != VICTIM)

        got = delivered(sink)
        duplicates = {n: c for n, c in got.items() if c > 1}
        recovered = await db.fetchval("SELECT COUNT(*) FROM audit_events WHERE event = 'delivery.recovered'")
        by_node = collections.Counter(acked.values())
        print(f"\nmultinode: {MESSAGES} sent, {len(acked)} got 250 ({dict(by_node)}), {len(refused)} refused "
              f"or cut off by the SIGKILL of {NODES[VICTIM]} ({len(refused & set(got))} of those delivered anyway); "
              f"{len(held)} rows held by it at its death, {recovered} recovered after their lease; "
              f"{len(duplicates)} duplicated ({sum(duplicates.values()) - len(duplicates)} extra copies); "
              f"accepted {before_kill / (killed_at - load_started):.0f} msgs/s with three nodes up, "
              f"{len(acked) / load_seconds:.0f} msgs/s over the whole load ({load_seconds:.1f}s); "
              f"drained {drained:.1f}s after the kill; nodes ready in {ready - started:.1f}s")
        assert set(acked) <= set(got), "a message that got a 250 was lost"
        assert set(got) <= set(range(MESSAGES)), "something was delivered that was never sent"
        assert len(acked) > MESSAGES // 2 and by_node[NODES[VICTIM]] > 0
        # each duplicate was being sent by the dead node when it died
        assert set(duplicates) <= inflight, (duplicates, inflight)
        assert len(duplicates) <= CONCURRENCY and len(held) <= CONCURRENCY
        assert recovered >= len(held)
        # its rows were taken back by the others' sweepers once their lease ran out, and delivered by them
        for qid, _, lease_until in held:
            (reason, ts, detail), = await db.fetch("SELECT reason, ts, detail FROM audit_events"
                                                  " WHERE event = 'delivery.recovered' AND detail::jsonb->>'queue' = $1",
                                                  str(qid))
            assert reason == "delivery.lease_expired" and ts >= lease_until and NODES[VICTIM] in detail
            state, owner = await db.fetchrow("SELECT state, claimed_by FROM queue WHERE id = $1", qid)
            assert state == "delivered" and not owner.startswith(f"{NODES[VICTIM]}:"), (state, owner)
        # after its death, every send to it was refused at the client
        assert not any(n % 3 == VICTIM and n >= KILL_AFTER + 15 for n in acked)
        # nothing delivered twice by the living: the dead node's rows were taken back only after their lease
        assert all(c == 2 for c in duplicates.values())

        # the audit chain, one for all nodes, is whole
        result = await store.audit.verify()
        assert result.ok, result
        assert time.monotonic() - started < 90
    finally:
        for d in nodes:
            d.close()
        await db.close()
        await store.close()
        await sink.stop()
