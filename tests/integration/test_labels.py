"""Operators' decisions as labels, over real SMTP and the real CLI: `relay message release|drop` on a
held message records a label row and a `message.labelled` event; `relay policy export-labels` writes
them in the training corpus's format, with no registered address (nor a phone number or messenger
ID) of either party in any text — checked by an oracle that reads what was sent with the standard
library's e-mail and HTML parsers —, and skips what retention or erasure cleared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from relay.store import audit, labels
from tests.integration.test_policy_e2e import POLICY
from tests.support import NO_LIMITS, Sink, World, eventually, message, provision, send_expect

KEYS = {"id", "lang", "text", "labels", "kind", "direction"}
PLACEHOLDER = re.compile(r"\[(?:email|phone|messenger)\]")


def hold_policy(tmp_path: Path) -> Path:
    text = POLICY.read_text()
    for category in ("marketing", "review", "contact"):
        text, n = re.subn(rf'(\[{category}\]\naction = )"\w+"', r'\1"hold"', text, count=1)
        assert n == 1
    p = tmp_path / "policy.toml"
    p.write_text(text)
    return p


def cli(world: World, tmp_path: Path, *args: str, user: str = "ops-aiko") -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "cli.toml"
    s = world.settings
    cfg.write_text(f'[relay]\ndomain = "{s.relay.domain}"\nstate_dir = "{s.relay.state_dir}"\n'
                   f'[dkim]\nselector = "{s.dkim.selector}"\nprivate_key = "{s.dkim_key_path}"\n'
                   '[audit]\nretention = "30d"\n')
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "USER": user})


def ok(r: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("p", "div", "br", "li", "tr", "h1", "h2", "h3"):  # a block starts a line
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def oracle_text(raw: bytes) -> str:
    """Subject and body of what was sent, read by the standard library (not the relay's model)."""
    msg = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain", "html"))
    assert body is not None
    content = body.get_content()
    if body.get_content_type() == "text/html":
        reader = _Text()
        reader.feed(content)
        content = "".join(reader.parts)
    return f"{msg['Subject']}\n{content}"


def squash(text: str) -> str:
    return " ".join(text.split())


def html_message(sender: str, to: str, subject: str, html: str) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n").encode() + html.encode()


async def test_decisions_become_labels_and_export_as_corpus(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port, policy={"path": str(hold_policy(tmp_path))}, rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    seller, buyer = world.seller_email, world.buyer_email
    sent: dict[str, bytes] = {
        # review, with the seller's own addresses in two cases (the parties' addresses are no finding)
        "review": message(seller, world.buyer_alias, "Thanks 1",
                          "If you are happy, please leave us a 5-star review!\r\n"
                          "Questions? Write to Shop@Seller.Example or STAFF@seller.example.\r\n"),
        # marketing and contact details, the buyer's address quoted
        "coupon": message(seller, world.buyer_alias, "Deal for you",
                          "Use coupon code SAVE10 for 10% off other products in my shop!\r\n"
                          "Call me on +1 (555) 123-4567 or LINE ID: shop_kyoto99, or reply to "
                          "ALICE@buyer.example.\r\n"),
        # the buyer, in Japanese, with a phone number and her own address
        "ja": message(buyer, world.seller_alias, "注文について",
                      f"こんにちは。電話は090-1234-5678です。{buyer} までメールください。\r\n"),
        # an HTML-only message, read as a browser shows it
        "html": html_message(seller, world.buyer_alias, "Your parcel",
                             "<html><body><p>Your parcel is on its way.</p><p>Please <b>leave us a review</b>"
                             " when it arrives!</p></body></html>\r\n"),
        # decided, then cleared by retention
        "old": message(seller, world.buyer_alias, "Thanks again",
                       "Please leave us a 5-star review, it helps a lot!\r\n"),
    }
    ids: dict[str, int] = {}
    for key, raw in sent.items():
        sender = buyer if key == "ja" else seller
        rcpt = world.seller_alias if key == "ja" else world.buyer_alias
        assert (await send_expect(port, sender, [rcpt], raw))[0] == 250
        conn = world.conn()
        ids[key] = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        state = conn.execute("SELECT state FROM messages WHERE id = ?", (ids[key],)).fetchone()[0]
        conn.close()
        assert state == "held", key

    # release: the hold's categories were no violation; $USER names the operator
    out = ok(cli(world, tmp_path, "message", "release", str(ids["review"]), "--json"))
    assert out["released"] == 1
    assert out["label"] == {"decision": "released", "categories": ["review"], "held_for": ["review"],
                            "corrected": False, "by": "ops-aiko"}
    # drop with a correction: marketing only (the contact details were the marketing's)
    out = ok(cli(world, tmp_path, "message", "drop", str(ids["coupon"]), "--label", "marketing",
                 "--reason", "coupon spam", "--by", "ops-kenji", "--json"))
    assert out["dropped"] == 1 and out["notice"] is True
    assert out["label"] == {"decision": "dropped", "categories": ["marketing"], "held_for": ["marketing", "contact"],
                            "corrected": True, "by": "ops-kenji"}
    out = ok(cli(world, tmp_path, "message", "drop", str(ids["ja"]), "--json"))
    assert out["label"]["categories"] == ["contact"] and out["label"]["corrected"] is False
    ok(cli(world, tmp_path, "message", "release", str(ids["html"]), "--json"))
    ok(cli(world, tmp_path, "message", "drop", str(ids["old"]), "--json"))
    # deciding again is refused, and records nothing
    r = cli(world, tmp_path, "message", "release", str(ids["review"]), "--json")
    assert r.returncode == 1 and "not held" in r.stderr

    conn = world.conn()
    try:
        row = labels.get(conn, ids["coupon"])
        assert row is not None and row.reason == "coupon spam" and row.decided_by == "ops-kenji"
        assert row.thread_id == world.thread_id and row.direction == "seller_to_buyer"
        assert labels.get(conn, ids["ja"]).direction == "buyer_to_seller"  # type: ignore[union-attr]
        assert len(labels.listing(conn)) == 5
        events = list(audit.iter_all(conn, event="message.labelled"))
    finally:
        conn.close()
    assert [e.message_id for e in events] == [ids[k] for k in ("review", "coupon", "ja", "html", "old")]
    assert [e.detail["decision"] for e in events] == ["released", "dropped", "dropped", "released", "dropped"]
    for e in events:  # neither the operator's note nor an address, nor any text of the message
        dumped = json.dumps(e.detail).lower()
        assert "@" not in dumped and "coupon spam" not in dumped and "save10" not in dumped
        assert e.pii_commit is None

    # retention clears the oldest decided message's content: its label exports nothing
    conn = world.conn()
    try:
        old = time.time() - 40 * 86400
        conn.execute("UPDATE messages SET received_at = ? WHERE id = ?", (old, ids["old"]))
        conn.execute("UPDATE queue SET created_at = ? WHERE message_id = ?", (old, ids["old"]))
    finally:
        conn.close()
    assert ok(cli(world, tmp_path, "retention", "run", "--json"))["blobs_cleared"] >= 1

    target = tmp_path / "labels.jsonl"
    r = cli(world, tmp_path, "policy", "export-labels", "--out", str(target), "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    summary = json.loads(r.stderr)
    assert summary == {"exported": 4, "skipped_cleared": 1, "skipped_uncategorised": 0, "out": str(target)}
    assert target.stat().st_mode & 0o777 == 0o600
    data = target.read_text("utf-8")
    lines = [json.loads(line) for line in data.splitlines()]
    by_id = {line["id"]: line for line in lines}
    assert set(by_id) == {f"op-{ids[k]}" for k in ("review", "coupon", "ja", "html")}
    for line in lines:
        assert set(line) == KEYS
        assert line["lang"] in ("en", "ja", "zh", "ko") and line["direction"] in ("seller", "buyer")
        assert set(line["labels"]) <= {"marketing", "review", "contact"}
        assert line["kind"] in ("operator.released", "operator.dropped")
    assert by_id[f"op-{ids['review']}"] | {"text": ""} == {"id": f"op-{ids['review']}", "lang": "en", "text": "",
                                                          "labels": [], "kind": "operator.released",
                                                          "direction": "seller"}
    coupon = by_id[f"op-{ids['coupon']}"]
    assert coupon["labels"] == ["marketing"] and coupon["kind"] == "operator.dropped"
    ja = by_id[f"op-{ids['ja']}"]
    assert (ja["lang"], ja["labels"], ja["direction"]) == ("ja", ["contact"], "buyer")
    assert by_id[f"op-{ids['html']}"]["labels"] == []

    # the oracle: no registered address of either party, in any case; no digits of a phone number;
    # no messenger ID
    registered = [world.seller_email, world.seller_staff, world.buyer_email]
    for line in lines:
        text = line["text"]
        for address in registered:
            assert address.lower() not in text.lower(), (line["id"], address)
            assert address.split("@")[0] + "@" not in text.lower()
        digits = re.sub(r"\D", "", text)
        assert "5551234567" not in digits and "09012345678" not in digits and "1234567" not in digits
        assert "shop_kyoto99" not in text.lower()
    # …and the texts are what was held: every piece between placeholders, in order, of the
    # message as the standard library reads it; the words around the contact details all there
    for key in ("review", "coupon", "ja", "html"):
        text = by_id[f"op-{ids[key]}"]["text"]
        expected = squash(oracle_text(sent[key]))
        at = 0
        for piece in PLACEHOLDER.split(text):
            piece = squash(piece)
            if piece:
                found = expected.find(piece, at)
                assert found >= 0, (key, piece, expected)
                at = found + len(piece)
        assert "From:" not in text and "Content-Type" not in text and "<p>" not in text
    assert squash(by_id[f"op-{ids['review']}"]["text"]) == (
        "Thanks 1 If you are happy, please leave us a 5-star review! Questions? Write to [email] or [email].")
    coupon_text = squash(coupon["text"])
    assert coupon_text.startswith("Deal for you Use coupon code SAVE10 for 10% off other products in my shop!")
    assert "[phone]" in coupon_text and coupon_text.endswith("or reply to [email].")
    assert squash(ja["text"]).startswith("注文について こんにちは。電話は[phone]です。[email] までメールください。")
    assert squash(by_id[f"op-{ids['html']}"]["text"]) == (
        "Your parcel Your parcel is on its way. Please leave us a review when it arrives!")

    # standard output without --out: the same lines; --since after every decision: none
    r = cli(world, tmp_path, "policy", "export-labels")
    assert r.returncode == 0 and r.stdout == data and "exported 4" in r.stderr and "skipped 1" in r.stderr
    r = cli(world, tmp_path, "policy", "export-labels", "--since", "2999-01-01", "--json")
    assert r.returncode == 0 and r.stdout == "" and json.loads(r.stderr)["exported"] == 0

    # the buyer's erasure clears every content of the thread: nothing left to export
    ok(cli(world, tmp_path, "party", "erase", world.buyer_email, "--json"))
    r = cli(world, tmp_path, "policy", "export-labels", "--json")
    assert r.returncode == 0 and r.stdout == ""
    assert json.loads(r.stderr) | {"out": None} == {"exported": 0, "skipped_cleared": 5, "skipped_uncategorised": 0,
                                                    "out": None}


async def test_label_arguments_are_checked(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port, policy={"path": str(hold_policy(tmp_path))}, rules=NO_LIMITS)
    world = provision(relay.settings)
    assert (await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias, "Thanks",
                                      "Please leave us a 5-star review!\r\n")))[0] == 250
    conn = world.conn()
    mid = conn.execute("SELECT id FROM messages WHERE state = 'held'").fetchone()[0]
    conn.close()
    for argv in (["message", "drop", str(mid), "--label", "spam"],
                 ["message", "drop", str(mid), "--label", "review,links"],
                 ["message", "release", str(mid), "--label", ""],
                 ["message", "release", str(mid), "--reason", ""],
                 ["message", "release", str(mid), "--by", "a\x07b"],
                 ["message", "release", str(mid), "--by", "x" * 65],
                 ["message", "release"],
                 ["message", "release", "one"],
                 ["policy", "export-labels", "--since", "last tuesday"],
                 ["policy", "export-labels", "--bogus"]):
        r = cli(world, tmp_path, *argv)
        assert r.returncode == 64, (argv, r.returncode, r.stderr)
        assert "usage:" in r.stderr
    conn = world.conn()
    try:
        assert labels.listing(conn) == []
        assert conn.execute("SELECT state FROM messages WHERE id = ?", (mid,)).fetchone()[0] == "held"
    finally:
        conn.close()
    # `none`: the operator says no category of the hold was the reason; a drop so labelled is kept
    # in the store but has no corpus label to export
    out = ok(cli(world, tmp_path, "message", "drop", str(mid), "--label", "none", "--json"))
    assert out["label"]["categories"] == [] and out["label"]["held_for"] == ["review"]
    r = cli(world, tmp_path, "policy", "export-labels", "--json")
    assert r.returncode == 0 and r.stdout == ""
    assert json.loads(r.stderr)["skipped_uncategorised"] == 1
    r = cli(world, tmp_path, "policy", "export-labels", "--out", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert r.returncode == 1 and "No such file" in r.stderr


async def test_an_operators_own_hold_is_no_label(start_relay, sink: Sink, tmp_path: Path) -> None:
    """`relay queue hold` keeps a message the policy passed: releasing it judges nothing."""
    sink.replies = ["451 4.3.0 try later"] * 50
    relay = await start_relay(smarthost=sink.port, policy={"path": str(hold_policy(tmp_path))}, rules=NO_LIMITS,
                              delivery={"retry_base": "1h", "retry_max": "1h"})
    world = provision(relay.settings)
    assert (await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
                              message(world.seller_email, world.buyer_alias, "Shipped", "It ships today.\r\n")))[0] == 250
    conn = world.conn()
    mid, qid = conn.execute("SELECT message_id, id FROM queue WHERE kind = 'message'").fetchone()
    conn.close()
    conn = world.conn()
    try:  # refused once, then waiting an hour: queued, and only the CLI moves it
        await eventually(lambda: conn.execute("SELECT state = 'queued' AND attempts = 1 FROM queue WHERE id = ?",
                                              (qid,)).fetchone()[0] == 1)
    finally:
        conn.close()
    ok(cli(world, tmp_path, "queue", "hold", str(qid), "--json"))
    out = ok(cli(world, tmp_path, "message", "release", str(mid), "--json"))
    assert out["released"] == 1 and out["label"] is None
    conn = world.conn()
    try:
        assert labels.listing(conn) == [] and not list(audit.iter_all(conn, event="message.labelled"))
    finally:
        conn.close()
