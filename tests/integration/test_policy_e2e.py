"""The messaging policy through the real SMTP server: one test per action.

reject → 550 5.7.1 naming the category; redact → delivered with [removed]; strip → the attachment
is replaced by a notice; hold → 250, kept until `relay message release` (or `drop`, which tells the
sender); flag → delivered untouched and audited.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from relay.store import audit
from tests.support import NO_LIMITS, Sink, World, eventually, message, provision, send, send_expect

POLICY = Path(__file__).resolve().parents[2] / "config" / "policy.toml"


def events(world: World) -> list[audit.AuditEvent]:
    conn = world.conn()
    try:
        return list(audit.iter_all(conn))
    finally:
        conn.close()


def policy_with(tmp_path: Path, category: str, action: str) -> Path:
    """The shipped policy with one category's rules set to `action`, and the trained model off (so
    that the verdict is the rules')."""
    text = POLICY.read_text()
    text = re.sub(rf'(\[{category}\]\naction = )"\w+"', rf'\1"{action}"', text, count=1)
    text = text.replace('[model]\n', '[model]\nenabled = false\n', 1).replace('\nenabled = true\npath', '\npath', 1)
    p = tmp_path / "policy.toml"
    p.write_text(text)
    return p


def cli(world: World, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "cli.toml"
    s = world.settings
    cfg.write_text(f'[relay]\ndomain = "{s.relay.domain}"\nstate_dir = "{s.relay.state_dir}"\n'
                   f'[dkim]\nselector = "{s.dkim.selector}"\nprivate_key = "{s.dkim_key_path}"\n')
    return subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60)


async def test_reject_names_the_category(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    code, text = await send_expect(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
                                   message(world.seller_email, world.buyer_alias, "Deal",
                                           "See our new shop at hxxps://cheap-deals[.]example/sale\r\n"))
    assert code == 550 and "5.7.1" in text and "links to websites" in text
    assert "cheap-deals" not in text
    evs = events(world)
    assert any(e.event == "policy.finding" and e.detail["category"] == "links" for e in evs)
    assert any(e.event == "message.rejected" and e.reason == "content.links" for e in evs)


async def test_redact_contact_details(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "Your order",
                       "Your parcel ships Monday. Call me on +1 (555) 123-4567 or LINE ID: shop_kyoto99\r\n"))
    got = (await sink.wait_for(1))[0]
    body = got.message.get_body(("plain",)).get_content()
    assert "555" not in body and "shop_kyoto99" not in body and "[removed]" in body
    assert "ships Monday" in body
    assert any(e.event == "policy.finding" and e.detail["action"] == "redact" for e in events(world))


async def test_obfuscated_phone_numbers_and_messenger_ids_are_redacted(start_relay, sink: Sink) -> None:
    """Phone numbers written to dodge a pattern (fullwidth digits, kanji, Korean digit words,
    English words mixed with digits, O/l for 0/1, zero-width characters) and messenger IDs go
    the way the default policy's [contact] action says (redact); the order and tracking numbers
    of the same message stay."""
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    body = ("Order 123-1234567-1234567 shipped, tracking 9400 1000 0000 0000 0000 00.\r\n"
            "電話：０９０−１２３４−５６７８\r\n"
            "携帯 〇八〇・九八七六・五四三二\r\n"
            "공일공 삼삼삼삼 칠칠칠칠\r\n"
            "or zero seven seven zero zero nine oh oh 4 5 6\r\n"
            "or O9O-l357-2468 or 0\u200b7\u200b0\u200b-1122-3344\r\n"
            "ＬＩＮＥ ＩＤ：ｓｈｏｐ＿ｋｙｏｔｏ, 카톡 아이디: shop123\r\n")
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "Your order", body))
    got = (await sink.wait_for(1))[0]
    text = got.message.get_body(("plain",)).get_content()
    for leaked in ("５６７８", "五四三二", "칠칠칠칠", "nine oh oh", "2468", "3344", "ｓｈｏｐ", "shop123"):
        assert leaked not in text, text
    assert "123-1234567-1234567" in text and "9400 1000 0000 0000 0000 00" in text
    assert text.count("[removed]") >= 6
    rules = {e.detail["rule"] for e in events(world) if e.event == "policy.finding"}
    assert {"contact.phone", "contact.phone_words", "contact.messenger.line", "contact.messenger.kakao"} <= rules


async def test_tracking_and_delivery_details_pass_untouched(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    body = ("Your order 249-5551234-7654321 left today (USPS 9400 1000 0000 0000 0000 00).\r\n"
            "お問い合わせ番号は 1234-5678-9012 です。2024/03/15 14:00-16:00 にお届けします。\r\n"
            "订单号 202403150001，价格 ¥1,280。송장번호 123456789012, 12,900원.\r\n"
            "ISBN 978-4-06-123456-7, 〒150-0001.\r\n")
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "Shipped", body))
    got = (await sink.wait_for(1))[0]
    text = got.message.get_body(("plain",)).get_content()
    assert "[removed]" not in text and "249-5551234-7654321" in text and "1234-5678-9012" in text
    assert not [e for e in events(world) if e.event == "policy.finding"]


async def test_redact_inside_html_and_refuse_html_too_complex_to_read(start_relay, sink: Sink) -> None:
    """HTML is redacted in its DOM (a phone number split by tags); HTML the parser would read in
    super-linear time is refused for good (554 5.6.0, never 4xx), before any stage delivers it unread."""
    relay = await start_relay(smarthost=sink.port, rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]

    def html_message(subject: str, markup: str) -> bytes:
        plain = message(world.seller_email, world.buyer_alias, subject, "-\r\n")
        return plain.replace(b"text/plain", b"text/html").split(b"\r\n\r\n")[0] + b"\r\n\r\n" + markup.encode()

    await send(port, world.seller_email, [world.buyer_alias],
               html_message("Your order", "<p>Ships Monday. Call me on 090-<b>1234</b>-5678 today.</p>\r\n"))
    got = (await sink.wait_for(1))[0]
    body = got.message.get_body(("html",)).get_content()
    assert "1234" not in body and "5678" not in body and "[removed]" in body and "Ships Monday" in body
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias],
                                   html_message("Deep", "<div>\r\n" * 5_000 + "hello\r\n"))
    assert code == 554 and text.startswith("5.6.0")
    assert any(e.event == "message.rejected" and e.reason == "content.unreadable" for e in events(world))


async def test_strip_forbidden_attachment(start_relay, sink: Sink) -> None:
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    exe = base64.encodebytes(b"MZ\x90\x00" + b"\x00" * 200).decode().replace("\n", "\r\n")
    image = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(image, "PNG")
    png = base64.encodebytes(image.getvalue()).decode().replace("\n", "\r\n")
    raw = (f"From: {world.seller_email}\r\nTo: {world.buyer_alias}\r\nSubject: photos\r\n"
           "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
           "Here are the photos of your engraving.\r\n--b1\r\nContent-Type: image/png; name=photo.png\r\n"
           "Content-Disposition: attachment; filename=photo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{png}--b1\r\nContent-Type: image/png; name=invoice.png\r\n"
           "Content-Disposition: attachment; filename=invoice.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{exe}--b1--\r\n").encode()
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias], raw)
    msg = (await sink.wait_for(1))[0].message
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert "photo.png" in names and "invoice.png" not in names
    texts = " ".join(p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain")
    assert "invoice.png" in texts  # the notice says which file was removed
    assert any(e.event == "policy.attachment_stripped" for e in events(world))


async def test_hold_then_release_and_drop(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port, policy={"path": str(policy_with(tmp_path, "review", "hold"))},
                              rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    for n in (1, 2):
        code, _ = await send_expect(port, world.seller_email, [world.buyer_alias],
                                    message(world.seller_email, world.buyer_alias, f"Thanks {n}",
                                            "If you are happy, please leave us a 5-star review!\r\n"))
        assert code == 250
    conn = world.conn()
    held = [r[0] for r in conn.execute("SELECT id FROM messages WHERE state = 'held' ORDER BY id")]
    conn.close()
    assert len(held) == 2 and sink.received == []
    r = cli(world, tmp_path, "message", "release", str(held[0]), "--json")
    assert r.returncode == 0, r.stderr
    relay.worker.notify()
    got = await sink.wait_for(1)
    assert got[0].message["Subject"] == "Thanks 1"
    r = cli(world, tmp_path, "message", "drop", str(held[1]), "--json")
    assert r.returncode == 0, r.stderr
    relay.worker.notify()
    notice = (await sink.wait_for(2))[1]
    assert notice.rcpt_tos == [world.seller_email] and "Thanks 2" in notice.message["Subject"]
    assert world.buyer_email not in notice.data.decode()
    names = [e.event for e in events(world)]
    assert "message.held" in names and "message.released" in names and "message.dropped" in names


async def test_flag_delivers_and_audits(start_relay, sink: Sink, tmp_path: Path) -> None:
    relay = await start_relay(smarthost=sink.port, policy={"path": str(policy_with(tmp_path, "marketing", "flag"))})
    world = provision(relay.settings)
    body = "Use coupon code SAVE10 for 10% off other products in my shop!\r\n"
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "News", body))
    got = (await sink.wait_for(1))[0]
    assert "SAVE10" in got.message.get_content()
    await eventually(lambda: any(e.event == "policy.finding" and e.detail["action"] == "flag" for e in events(world)))


def test_policy_check_cli(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hi\r\n\r\n"
                    b"Visit www.example-shop.com or call 090-1234-5678\r\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(POLICY.read_text().replace('[links]\naction = "reject"', '[links]\naction = "vaporize"', 1))
    r = subprocess.run([sys.executable, "-m", "relay", "--config", str(tmp_path / "none.toml"), "policy", "check",
                        str(eml), "--policy", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 78 and "links" in r.stderr  # a bad policy file names the key
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path}"\n')
    r = subprocess.run([sys.executable, "-m", "relay", "--config", str(cfg), "policy", "check", str(eml)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("verdict: reject") and "links." in r.stdout and "contact." in r.stdout
    assert "example-shop.com" in r.stdout  # operators see what matched


async def test_checks_in_worker_processes(start_relay, sink: Sink) -> None:
    """policy.workers = 1: the same verdicts come back from a separate process."""
    relay = await start_relay(smarthost=sink.port, policy={"workers": 1})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    code, text = await send_expect(port, world.seller_email, [world.buyer_alias],
                                   message(world.seller_email, world.buyer_alias, "x", "Go to www.example-shop.com\r\n"))
    assert code == 550 and "links" in text
    await send(port, world.seller_email, [world.buyer_alias],
               message(world.seller_email, world.buyer_alias, "y", "Call 090-1234-5678 any time\r\n"))
    got = (await sink.wait_for(1))[0]
    assert "[removed]" in got.message.get_content() and "1234" not in got.message.get_content()


async def test_metadata_scrubbed_after_relay(start_relay, sink: Sink) -> None:
    """A JPEG with GPS EXIF and a PDF with an author go through the relay: metadata gone, files intact."""
    from tests.unit.policy.fixtures import docx, gps_exif, image, pdf

    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    jpeg = image("JPEG", exif=gps_exif())
    doc = pdf("Engraving proof", author="Taro Yamada")
    word = docx("Size chart", author="Taro Yamada")
    parts = []
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    for name, ctype, data in (("photo.jpg", "image/jpeg", jpeg), ("proof.pdf", "application/pdf", doc),
                              ("sizes.docx", docx_type, word)):
        b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
        parts.append(f"--b1\r\nContent-Type: {ctype}; name={name}\r\nContent-Disposition: attachment; filename={name}\r\n"
                     f"Content-Transfer-Encoding: base64\r\n\r\n{b64}")
    raw = (f"From: {world.seller_email}\r\nTo: {world.buyer_alias}\r\nSubject: proof\r\n"
           "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
           "--b1\r\nContent-Type: text/plain\r\n\r\nThe proof of your engraving.\r\n" + "".join(parts) + "--b1--\r\n").encode()
    await send(relay.addresses[0][1], world.seller_email, [world.buyer_alias], raw)
    msg = (await sink.wait_for(1))[0].message
    files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert set(files) == {"photo.jpg", "proof.pdf", "sizes.docx"}
    img = Image.open(io.BytesIO(files["photo.jpg"]))
    img.load()  # still decodes
    exif = img.getexif()
    assert 0x8825 not in exif and 0x013B not in exif  # no GPS, no artist
    assert b"Taro Yamada" not in files["proof.pdf"] and b"Taro Yamada" not in files["photo.jpg"]
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(files["proof.pdf"]))
    assert "Engraving proof" in reader.pages[0].extract_text()
    assert not (reader.metadata or {}).get("/Author")
    import zipfile

    with zipfile.ZipFile(io.BytesIO(files["sizes.docx"])) as z:
        assert b"Taro Yamada" not in z.read("docProps/core.xml")
        assert b"Size chart" in z.read("word/document.xml")


async def test_transcript_shows_a_stripped_attachment_and_a_refusal(start_relay, sink: Sink, tmp_path: Path) -> None:
    """A dispute view of a thread: one message with an attachment the policy removed, one refused."""
    relay = await start_relay(smarthost=sink.port)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    exe = base64.encodebytes(b"MZ\x90\x00" + b"\x00" * 200).decode().replace("\n", "\r\n")
    raw = (f"From: {world.seller_email}\r\nTo: {world.buyer_alias}\r\nSubject: Your invoice\r\n"
           "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
           "The invoice is attached.\r\n--b1\r\nContent-Type: application/pdf; name=invoice.pdf\r\n"
           "Content-Disposition: attachment; filename=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{exe}--b1--\r\n").encode()
    await send(port, world.seller_email, [world.buyer_alias], raw)
    await sink.wait_for(1)
    code, _ = await send_expect(port, world.buyer_email, [world.seller_alias],
                                message(world.buyer_email, world.seller_alias, "Re: Your invoice",
                                        "Pay me at www.my-own-shop.com instead\r\n"))
    assert code == 550
    await eventually(lambda: "delivery.delivered" in [e.event for e in events(world)])
    r = cli(world, tmp_path, "thread", "transcript", str(world.thread_id))
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "policy.attachment_stripped" in text and "invoice.pdf" in text
    assert "content.links" in text and "550" in text
    assert "Your invoice" in text and "Re: Your invoice" in text
