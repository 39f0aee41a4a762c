"""Dispute review over the real server: transcript (text, JSON, mbox) and the export bundle.

The content stage (attachment stripping) is built by another issue; until it is merged, its
findings are represented by a generic `stage.content` event appended to the thread's message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mailbox
import os
import stat
import subprocess
import sys
import zipfile
from email.header import Header
from pathlib import Path

from relay.store import audit
from tests.support import World, eventually, maildir_messages, message, provision, send_expect, write

SUBJECT_JA = "ご注文の発送について"
BODY_JA = "アリス様\r\n明日発送いたします。\r\nFrom here on, please use this thread.\r\n"


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    cfg = state.parent / "relay.toml"
    if not cfg.exists():
        cfg.write_text(f'[relay]\ndomain = "relay.example"\nstate_dir = "{state}"\n')
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args],
                          capture_output=True, timeout=60)


def japanese_message(world: World) -> bytes:
    subject = Header(SUBJECT_JA, "utf-8").encode()
    body = BODY_JA.encode("iso-2022-jp")
    return (f"From: Kyoto Crafts <{world.seller_email}>\r\nTo: {world.buyer_alias}\r\nSubject: {subject}\r\n"
            "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: 7bit\r\n\r\n").encode() + body


def with_attachment(world: World) -> bytes:
    pdf = base64.encodebytes(b"%PDF-1.4\n% invoice\n").decode().replace("\n", "\r\n")
    return (f"From: Alice <{world.buyer_email}>\r\nTo: {world.seller_alias}\r\nSubject: Re: delivery\r\n"
            "Date: Sun, 22 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\nThanks, see the invoice.\r\n--b1\r\n"
            'Content-Type: application/pdf; name="invoice.pdf"\r\nContent-Disposition: attachment;'
            f' filename="invoice.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}--b1--\r\n').encode()


async def three_messages(start_relay) -> tuple[World, Path]:
    relay = await start_relay()
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    assert (await send_expect(port, world.seller_email, [world.buyer_alias], japanese_message(world)))[0] == 250
    assert (await send_expect(port, world.buyer_email, [world.seller_alias], with_attachment(world)))[0] == 250
    forged = message("stranger@elsewhere.example", world.buyer_alias, subject="Pay here instead")
    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias], forged)
    assert code == 550
    await eventually(lambda: len(maildir_messages(relay.settings)) == 2)
    conn = world.conn()
    try:
        await eventually(lambda: conn.execute("SELECT count(*) FROM messages WHERE state = 'delivered'")
                         .fetchone()[0] == 2)
        mid = conn.execute("SELECT id FROM messages WHERE direction = 'buyer_to_seller'").fetchone()[0]
        # stands in for the content stage's finding (issue: messaging policy)
        write(conn, lambda c: audit.append(c, "stage.content", reason="content.attachment_stripped",
                                           thread_id=world.thread_id, message_id=mid,
                                           detail={"filename": "invoice.exe", "type": "application/x-dosexec"}))
        # what the transcript relies on: an event that names a message names the message's thread
        assert conn.execute("SELECT count(*) FROM audit_events WHERE message_id IS NOT NULL").fetchone()[0] >= 8
        assert conn.execute("SELECT count(*) FROM audit_events e JOIN messages m ON m.id = e.message_id"
                            " WHERE e.thread_id IS NOT m.thread_id").fetchone()[0] == 0
    finally:
        conn.close()
    return world, relay.settings.relay.state_dir


async def test_transcript_shows_everything(start_relay) -> None:
    world, state = await three_messages(start_relay)
    r = cli(state, "thread", "transcript", str(world.thread_id))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.count("══ Message ") == 3
    assert SUBJECT_JA in out and "明日発送いたします。" in out  # RFC 2047 subject, ISO-2022-JP body
    assert world.seller_email in out and world.buyer_email in out and world.buyer_alias in out
    assert "REFUSED 550 5.7.1 (authorize.header_from_not_party)" in out
    assert "stage.authorize authorize.header_from_not_party" in out
    assert "Pay here instead" in out and "stranger@elsewhere.example" in out  # the refused message as received
    assert "stage.content content.attachment_stripped filename=invoice.exe" in out
    assert "[attachment] invoice.pdf application/pdf" in out
    assert out.count("delivered after 1 attempt(s)") == 2
    assert "delivery.delivered ok" in out and "thread.opened" in out and "order.recorded" in out

    j = json.loads(cli(state, "thread", "transcript", str(world.thread_id), "--format", "json").stdout)
    assert [m["state"] for m in j["messages"]] == ["delivered", "delivered", "rejected"]
    first = j["messages"][0]
    assert first["received"]["headers"]["Subject"] == SUBJECT_JA
    assert first["delivered"]["headers"]["From"].endswith(f"<{world.seller_alias}>")
    assert first["recipient"]["address"] == world.buyer_email
    assert j["messages"][2]["refused"] == {"reason": "authorize.header_from_not_party", "reply": "550 5.7.1"}

    raw = cli(state, "thread", "transcript", str(world.thread_id), "--format", "mbox").stdout
    assert raw.startswith(b"From shop@seller.example ")
    assert raw.count(b"\nFrom ") + 1 == 5  # received + delivered twice, received once for the refused one
    assert b"\r" not in raw and b"X-Relay-Transcript: thread 1, message 3, as received; refused" in raw
    assert b"\n>From here on" in raw  # mboxrd quoting of a body line starting with "From "
    box = state.parent / "t.mbox"
    box.write_bytes(raw)
    mb = mailbox.mbox(box, create=False)
    try:
        subjects = [m["Subject"] for m in mb]
    finally:
        mb.close()
    assert len(subjects) == 5 and subjects[-1] == "Pay here instead"
    missing = cli(state, "thread", "transcript", "99")
    assert missing.returncode == 1 and missing.stderr.decode().strip() == "relay: no such thread: 99"


async def test_export_bundle(start_relay, tmp_path: Path) -> None:
    world, state = await three_messages(start_relay)
    out = tmp_path / "dispute.zip"
    r = cli(state, "thread", "export", str(world.thread_id), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"README.txt", "transcript.txt", "transcript.json", "transcript.mbox", "audit.jsonl"} <= names
        assert {"messages/0001-received.eml", "messages/0001-delivered.eml", "messages/0002-received.eml",
                "messages/0002-delivered.eml", "messages/0003-received.eml"} <= names
        assert b"Pay here instead" in z.read("messages/0003-received.eml")
        events = [json.loads(line) for line in z.read("audit.jsonl").splitlines()]
        assert "relay audit verify --bundle" in z.read("README.txt").decode()
    for ev in events:
        assert hashlib.sha256((ev["prev_hash"] + "\n" + ev["canonical"]).encode()).hexdigest() == ev["hash"]
    assert {"message.rejected", "stage.content", "delivery.delivered"} <= {e["event"] for e in events}
    ok = cli(state, "audit", "verify", "--bundle", str(out), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True

    # a bundle whose event was altered does not match the chain
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "audit.jsonl":
                data = data.replace(b"authorize.header_from_not_party", b"authorize.ok_after_all__________")
            zout.writestr(name, data)
    r = cli(state, "audit", "verify", "--bundle", str(bad), "--json")
    assert r.returncode == 1 and "does not match" in json.loads(r.stdout)["message"]
