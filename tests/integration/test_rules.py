"""Messaging rules end to end over real sockets: opt-out, replies, [Important], unsubscribe, limits, loops."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

from relay.cli import main
from relay.config import Settings
from relay.rules import tokens
from relay.rules.unsubscribe import unsubscribe_by_token
from relay.smtp import replies
from relay.store import audit, threads
from relay.store import rules as rules_store
from tests.support import (
    DOMAIN,
    Sink,
    World,
    dkim_ok,
    eventually,
    message,
    provision,
    send,
    send_expect,
    write,
)


def cli(settings: Settings, tmp_path: Path, *args: str, rules: str = "") -> dict[str, Any]:
    """Run `relay … --json` in this process (the loop is blocked meanwhile, so no relay log lands in stdout)."""
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{settings.relay.state_dir}"\n'
                   + (f"[rules]\n{rules}\n" if rules else ""))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["--config", str(cfg), *args, "--json"])
    assert status == 0, out.getvalue()
    return json.loads(out.getvalue().strip().splitlines()[-1])


def said(reply: Any) -> str:
    """What smtplib reports for one of our replies: enhanced status and text."""
    return f"{reply.status} {reply.text}"


def events(world: World, name: str | None = None) -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return [e for e in audit.iter_all(conn) if name is None or e.event == name]
    finally:
        conn.close()


def reasons(world: World) -> list[str]:
    return [e.reason for e in events(world)]


def from_seller(world: World, subject: str, body: str = "Hello.\r\n", **kw: Any) -> bytes:
    return message(world.seller_email, world.buyer_alias, subject, body, **kw)


async def seller_sends(relay: Any, world: World, data: bytes) -> tuple[int, str]:
    return await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias], data)


async def test_opted_out_buyer_refuses_unsolicited_but_gets_replies(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    out = cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    assert out["changed"] is True and out["opted_out_all"] is True

    code, text = await seller_sends(relay, world, from_seller(world, "New items in our shop!"))
    assert (code, text) == (550, said(replies.OPTED_OUT))
    assert "opted out" in text and "[Important]" in text

    # the buyer writes first; the seller's answer (In-Reply-To the id the seller saw) passes
    await send(port, world.buyer_email, [world.seller_alias],
               message(world.buyer_email, world.seller_alias, "Question", "Is it handmade?\r\n",
                       message_id="<q1@buyer.example>"))
    seen_by_seller = (await sink.wait_for(1))[0].message["Message-ID"]
    answer = from_seller(world, "Re: Question", "Yes, it is.\r\n", message_id="<a1@seller.example>",
                         headers={"In-Reply-To": seen_by_seller, "References": seen_by_seller})
    assert await seller_sends(relay, world, answer) == (250, "")
    delivered = (await sink.wait_for(2))[1]
    assert delivered.rcpt_tos == [world.buyer_email]
    assert delivered.message["In-Reply-To"] == "<q1@buyer.example>"

    # quoting only the seller's own earlier message is not a reply to the buyer
    own = from_seller(world, "Re: Re: Question", "And another thing.\r\n",
                      headers={"In-Reply-To": "<a1@seller.example>"})
    assert (await seller_sends(relay, world, own))[0] == 550
    got = reasons(world)
    assert got.count("rules.opted_out") >= 2 and "rules.reply" in got and "rules.buyer_message" in got

    assert cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "off")["opted_out_all"] is False
    assert (await seller_sends(relay, world, from_seller(world, "Shipped")))[0] == 250


async def test_justified_important_reaches_an_opted_out_buyer(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    cases = [
        ("[Important] Your shipping address", "The apartment number is missing.\r\n"),
        ("[重要] お届け先について", "ご住所の部屋番号を教えてください。\r\n"),
        ("[중요] 배송 확인", "배송지 주소를 확인해 주세요.\r\n"),
        ("［ＩＭＰＯＲＴＡＮＴ］ engraving", "Which font would you like for the engraving?\r\n"),
        ("=?UTF-8?B?" + __import__("base64").b64encode("[重要] 配達日".encode()).decode() + "?=",
         "配達日の日時指定をお願いします。\r\n"),
    ]
    for subject, body in cases:
        assert await seller_sends(relay, world, from_seller(world, subject, body)) == (250, ""), subject
    received = await sink.wait_for(len(cases))
    assert all(r.rcpt_tos == [world.buyer_email] for r in received)
    justified = events(world, "important.justified")
    assert len(justified) == len(cases)
    assert {c for e in justified for c in e.detail["categories"]} == {
        "customization", "delivery_scheduling", "shipping_address"}
    assert reasons(world).count("rules.critical_to_opted_out") == len(cases)
    assert not events(world, "important.unjustified")


async def test_unjustified_important_is_counted_then_the_bypass_is_lost(start_relay, sink: Sink,
                                                                       tmp_path: Path) -> None:
    limits = {"important_abuse_limit": 2, "max_unsolicited_per_order": 50, "max_unsolicited_per_thread_per_day": 50}
    relay = await start_relay(smarthost=sink.port, rules=limits)
    world = provision(relay.settings)
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "on")
    for i in range(3):  # more than 2: refused (the buyer opted out of what is not critical), audited and counted
        # (not critical, and not marketing either: the content policy would refuse that first)
        code, text = await seller_sends(relay, world, from_seller(world, f"[Important] Hello again {i}",
                                                                  "Just saying hello, have a nice week.\r\n"))
        assert (code, text) == (550, said(replies.IMPORTANT_UNJUSTIFIED))
    assert [e.reason for e in events(world, "message.rejected")] == ["rules.unjustified_to_opted_out"] * 3
    assert len(events(world, "important.unjustified")) == 3
    revoked = events(world, "important.bypass_revoked")
    assert len(revoked) == 1 and revoked[0].party_id == world.seller_id and revoked[0].detail["count"] == 3
    # from now on even a justified [Important] no longer passes the opt-out
    for subject, body in (("[Important] Another sale", "Buy now.\r\n"),
                          ("[Important] Your address", "The shipping address is incomplete.\r\n")):
        code, text = await seller_sends(relay, world, from_seller(world, subject, body))
        assert (code, text) == (550, said(replies.IMPORTANT_BYPASS_LOST))
    assert [e.reason for e in events(world, "message.rejected")].count("rules.important_bypass_lost") == 2
    rules_cfg = "important_abuse_limit = 2"
    shown = cli(relay.settings, tmp_path, "party", "show", world.seller_email, rules=rules_cfg)
    assert shown["important_unjustified"] == 4 and shown["important_bypass"] == "lost"
    assert cli(relay.settings, tmp_path, "party", "rules", str(world.seller_id), rules=rules_cfg)[
        "important_unjustified_total"] == 4
    # a buyer who did not opt out still gets marked mail, as ordinary unsolicited mail
    cli(relay.settings, tmp_path, "party", "optout", world.buyer_email, "off")
    assert (await seller_sends(relay, world, from_seller(world, "[Important] Your address",
                                                         "The shipping address is incomplete.\r\n")))[0] == 250
    assert len(await sink.wait_for(1)) == 1


async def test_unjustified_important_refused_when_configured(start_relay) -> None:
    relay = await start_relay(rules={"important_unjustified": "reject"})
    world = provision(relay.settings)
    code, text = await seller_sends(relay, world, from_seller(world, "[Important] Leave us a review"))
    assert (code, text) == (550, said(replies.IMPORTANT_UNJUSTIFIED))
    assert "rules.important_unjustified" in reasons(world)
    assert len(events(world, "important.unjustified")) == 1


async def test_unsubscribe_by_mailto_is_confirmed(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port, relay={"http_base_url": "https://market.example/mail"})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    assert await seller_sends(relay, world, from_seller(world, "Your order shipped")) == (250, "")
    first = (await sink.wait_for(1))[0]
    header = first.message["List-Unsubscribe"]
    assert first.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkim_ok(relay, first.data)
    signed = re.search(rb"h=([^;]+);", re.sub(rb"\r\n\s+", b"", first.data)).group(1).decode().lower()  # type: ignore[union-attr]
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
    https, mailto = re.findall(r"<([^>]+)>", header)
    assert https.startswith("https://market.example/mail/unsubscribe/")
    address = mailto.removeprefix("mailto:").split("?")[0]
    assert address.startswith("unsubscribe+") and address.endswith("@" + DOMAIN)

    request = message(world.buyer_email, address, "unsubscribe", "")
    # only the thread's buyer may use it; a forged token is no address at all
    assert (await send_expect(port, "mallory@evil.example", [address], request))[0] == 550
    code, text = await send_expect(port, world.seller_email, [address], request)
    assert (code, text) == (550, said(replies.NOT_AUTHORIZED))
    forged = re.sub(r"\.[a-z2-7]{20}@", "." + ("a" * 20 if "." + "a" * 20 not in address else "b" * 20) + "@", address)
    assert (await send_expect(port, world.buyer_email, [forged], request))[0] == 550
    # the buyer's request; an alias in the same transaction is deferred (never mixed with a relay mailbox)
    refused = await send(port, world.buyer_email, [address, world.seller_alias], request)
    assert {k: v[0] for k, v in refused.items()} == {world.seller_alias: 452}
    confirmation = (await sink.wait_for(2))[1]
    assert confirmation.rcpt_tos == [world.buyer_email] and confirmation.mail_from in ("", "<>")
    msg = confirmation.message
    assert msg["Auto-Submitted"] == "auto-replied" and msg["From"].addresses[0].addr_spec == f"postmaster@{DOMAIN}"
    assert "Kyoto Crafts" in msg.get_content() and world.seller_email not in confirmation.data.decode()
    assert dkim_ok(relay, confirmation.data)

    code, text = await seller_sends(relay, world, from_seller(world, "One more thing"))
    assert (code, text) == (550, said(replies.OPTED_OUT))
    got = reasons(world)
    for reason in ("unsubscribe.bad_token", "unsubscribe.not_buyer", "rules.unsubscribe_mail", "rules.optout_mail",
                   "rules.opted_out"):
        assert reason in got, reason
    conn = world.conn()
    try:
        assert rules_store.optout_scope(conn, world.buyer_id, world.seller_id) == "seller"
        # the one-click (HTTPS) path uses the same token: valid → applied (here: already), forged → None
        token = https.rsplit("/", 1)[1]
        secret = tokens.load_secret(relay.settings.relay.state_dir)
        assert await unsubscribe_by_token(relay.store, secret, token, via="https", now=0.0) is False
        forged_token = token[:-1] + ("q" if token[-1] != "q" else "r")
        assert await unsubscribe_by_token(relay.store, secret, forged_token, via="https", now=0.0) is None
    finally:
        conn.close()
    await eventually(lambda: "notice.delivered" in [e.event for e in events(world)])


async def test_limits_refuse_the_second_unsolicited_message_for_an_order(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)  # the thread has order ORD-1
    port = relay.addresses[0][1]
    assert await seller_sends(relay, world, from_seller(world, "Your order shipped")) == (250, "")
    code, text = await seller_sends(relay, world, from_seller(world, "Your order shipped (again)"))
    assert (code, text) == (550, said(replies.ORDER_LIMIT))
    conn = world.conn()
    try:
        write(conn, lambda c: threads.add_order(c, world.thread_id, "ORD-2"))
        write(conn, lambda c: threads.add_order(c, world.thread_id, "ORD-3"))
    finally:
        conn.close()
    # a message for another order (subject tag, or the latest order) is a new first message …
    assert await seller_sends(relay, world, from_seller(world, "About ORD-2: shipped")) == (250, "")
    # … until the per-thread daily limit (2) is used up
    code, text = await seller_sends(relay, world, from_seller(world, "ORD-3 shipped"))
    assert (code, text) == (550, said(replies.DAILY_LIMIT))
    # answers to a buyer message are not limited by these (rules.max_replies_per_buyer_message: 3)
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "Thanks"))
    seen = (await sink.wait_for(3))[2].message["Message-ID"]
    for i in range(3):
        answer = from_seller(world, f"Re: Thanks {i}", headers={"In-Reply-To": seen})
        assert await seller_sends(relay, world, answer) == (250, "")
    got = reasons(world)
    assert got.count("rules.unsolicited") == 2 and "rules.order_limit" in got and "rules.daily_limit" in got
    assert got.count("rules.reply") == 3
    assert len(await sink.wait_for(6)) == 6


async def test_loops_are_refused_and_hops_counted(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port, rules={"loop_max_hops": 3})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    buyer = world.buyer_email
    assert await send_expect(port, buyer, [world.seller_alias],
                             message(buyer, world.seller_alias, headers={"X-Relay-Hops": "2"})) == (250, "")
    got = (await sink.wait_for(1))[0].message
    assert got.get_all("X-Relay-Hops") == ["3"]
    code, text = await send_expect(port, buyer, [world.seller_alias],
                                   message(buyer, world.seller_alias, headers={"X-Relay-Hops": "3"}))
    assert (code, text) == (554, said(replies.LOOP_DETECTED))
    assert "rules.loop" in reasons(world)
    assert await seller_sends(relay, world, from_seller(world, "Fresh")) == (250, "")
    assert (await sink.wait_for(2))[1].message.get_all("X-Relay-Hops") == ["1"]


async def test_core_conversation_still_passes(start_relay, sink: Sink) -> None:
    """First contact, the buyer's answer, the seller's answer: the default limits let it all through."""
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    assert await seller_sends(relay, world, from_seller(world, "Your order")) == (250, "")
    await send(port, world.buyer_email, [world.seller_alias], message(world.buyer_email, world.seller_alias, "Re"))
    seen = (await sink.wait_for(2))[1].message["Message-ID"]
    # a reply as mail programs write it: In-Reply-To and References name the message answered
    answer = from_seller(world, "Re: Re", headers={"In-Reply-To": seen, "References": seen})
    assert await seller_sends(relay, world, answer) == (250, "")
    await asyncio.wait_for(sink.wait_for(3), 10)


async def test_seller_marks_no_response_needed_by_mail(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    await send(port, world.buyer_email, [world.seller_alias],
               message(world.buyer_email, world.seller_alias, "Thanks, all good!"))
    seen = (await sink.wait_for(1))[0].message["Message-ID"]
    mark = f"no-response-needed@{DOMAIN}"
    reply = message(world.seller_staff, mark, "Re: Thanks, all good!", headers={"In-Reply-To": seen})
    assert (await send_expect(port, world.buyer_email, [mark], reply))[0] == 550  # buyers cannot
    assert (await send_expect(port, "mallory@evil.example", [mark], reply))[0] == 550
    unquoted = message(world.seller_staff, mark, "Re: something")
    assert await send_expect(port, world.seller_staff, [mark], unquoted) == (550, said(replies.NO_BUYER_MESSAGE_QUOTED))
    assert await send_expect(port, world.seller_staff, [mark], reply) == (250, "")
    got = reasons(world)
    for reason in ("no_response.not_seller", "no_response.nothing_quoted", "rules.no_response_needed_mail"):
        assert reason in got, reason
    figures = cli(relay.settings, tmp_path, "metrics", "seller", world.seller_email)
    assert (figures["buyer_messages"], figures["no_response_needed"], figures["pending"]) == (1, 1, 0)
    assert len(sink.received) == 1  # nothing reached the buyer


async def test_cli_refusals_are_one_line_errors(start_relay, tmp_path: Path, capsys: Any) -> None:
    relay = await start_relay()
    world = provision(relay.settings)
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias], from_seller(world, "Hi"))
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{relay.settings.relay.state_dir}"\n')
    capsys.readouterr()
    for args, needle in ((["party", "optout", world.seller_email, "on"], "not a buyer"),
                         (["party", "optout", world.buyer_email, "on", "--seller", world.buyer_email], "not a seller"),
                         (["party", "vacation", world.buyer_email, "on"], "not a seller"),
                         (["party", "vacation", world.seller_email, "on", "--until", "2001-01-01"], "future"),
                         (["party", "vacation", world.seller_email, "off", "--until", "2099-01-01"], "--until"),
                         (["metrics", "seller", world.seller_email, "--since", "last week"], "not a date"),
                         (["message", "no-response-needed", "999"], "no such message"),
                         (["message", "no-response-needed", "1"], "not an accepted buyer message")):
        assert main(["--config", str(cfg), *args]) == 1, args
        # (the relay in this process may log to stderr meanwhile: look at the CLI's own lines)
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("relay: ")]
        assert len(err) == 1 and needle in err[0], (args, err)


async def test_one_click_unsubscribe_over_https_listener(start_relay, sink: Sink) -> None:
    """RFC 8058: the List-Unsubscribe-Post URL, POSTed (through the operator's reverse proxy) to the
    relay's HTTP listener, opts the buyer out of that seller."""
    relay = await start_relay(smarthost=sink.port, relay={"http_base_url": "https://market.example/mail"})
    world = provision(relay.settings)
    assert await seller_sends(relay, world, from_seller(world, "Your order shipped")) == (250, "")
    header = (await sink.wait_for(1))[0].message["List-Unsubscribe"]
    https = re.findall(r"<([^>]+)>", header)[0]
    path = "/" + https.split("/", 3)[3]  # what the reverse proxy forwards

    async def post(p: str, body: bytes) -> bytes:
        host, port = relay.http.address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"POST {p} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        answer = await reader.read()
        writer.close()
        return answer

    assert (await post(path, b"List-Unsubscribe=Nope")).startswith(b"HTTP/1.1 400")
    assert (await post(path[:-3] + "aaa", b"List-Unsubscribe=One-Click")).startswith(b"HTTP/1.1 404")
    assert (await post(path, b"List-Unsubscribe=One-Click")).startswith(b"HTTP/1.1 200")
    code, text = await seller_sends(relay, world, from_seller(world, "New arrivals this week"))
    assert code == 550 and "opted out" in text
