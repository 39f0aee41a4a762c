"""Benchmark scenarios and the messages they send (5 KB text, 100 KB HTML + image, 2 MB PDF, 10 MB).

Reads nothing; every message is built deterministically (seeded noise, so nothing compresses)
in wire form: CRLF line ends, no line starting with ".", no link, address or phone number in text.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

#: an ordinary shipping update: sentences drawn at random (seeded), wrapped at `width`; the messaging
#: policy (rules and model) passes it, as it must pass what a seller really writes
_SENTENCES = (
    "The parcel left our warehouse this morning and should arrive within three working days.",
    "Please keep the original packaging until you have checked every item in the box.",
    "Thank you for your patience while we prepared the order.",
    "It was packed with care and wrapped twice against the rain.",
    "The carrier usually delivers in the afternoon on weekdays.",
    "If nobody is home, the courier leaves a card and tries again the next day.",
    "The engraving was checked against the text you confirmed before it went into the box.",
    "I measured the length twice, so the size should match what you asked for.",
    "The lid fits tightly, so lift it gently the first time you open it.",
    "Wash it by hand in lukewarm water and let it dry away from the heater.",
    "If anything arrived damaged, reply to this message with a photo and I will sort it out.",
    "The invoice is in the parcel, in the envelope under the tissue paper.",
    "Customs forms were filled in and attached to the outside of the box.",
    "I hope it reaches you in good time for the weekend.",
    "Let me know here if the delivery address needs to change before it arrives.",
    "The tracking page for your order shows each step as the parcel moves.",
)


def _text_lines(size: int, seed: int, width: int = 72) -> list[str]:
    rnd = random.Random(seed)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.extend(rnd.choice(_SENTENCES).split())
    lines: list[str] = []
    line: list[str] = []
    for w in words:
        if line and sum(len(x) + 1 for x in line) + len(w) > width:
            lines.append(" ".join(line))
            line = []
        line.append(w)
    if line:
        lines.append(" ".join(line))
    return lines


def _b64_lines(data: bytes) -> str:
    import base64

    enc = base64.b64encode(data).decode("ascii")
    return "\r\n".join(enc[i:i + 76] for i in range(0, len(enc), 76))


def noise_png(side: int, seed: int = 1) -> bytes:
    """A real, decodable RGB PNG of random pixels (about 3 × side² bytes)."""
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + rnd.randbytes(3 * side) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def noise_pdf(size: int, seed: int = 2) -> bytes:
    """A valid one-page PDF: a line of text and a DeviceRGB image of noise, about `size` bytes."""
    side = max(8, int((size / 3) ** 0.5))
    pixels = zlib.compress(random.Random(seed).randbytes(3 * side * side), 1)
    content = b"BT /F1 18 Tf 72 720 Td (Invoice and delivery note) Tj ET q 400 0 0 400 100 200 cm /Im1 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8"
        b" /Filter /FlateDecode /Length %d >>\nstream\n" % (side, side, len(pixels)) + pixels + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def plain(size: int) -> tuple[str, str]:
    """(extra headers, body) of a text/plain message of about `size` bytes."""
    body = "\r\n".join(["Hello,", "", *_text_lines(size - 280, 3), "", "Best wishes"])
    return 'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n', body


def html_with_image(size: int) -> tuple[str, str]:
    """multipart/alternative: text + multipart/related(HTML, inline PNG referenced by cid:), about `size`."""
    img = noise_png(max(8, int((size * 0.3 / 4) ** 0.5)))
    paras = _text_lines(int(size * 0.55), 4, width=160)
    html = "\r\n".join(["<html><body>", *(f"<p>{p}</p>" for p in paras),
                        '<p><img src="cid:photo1@buyer.example" alt="photo" width="400"></p>', "</body></html>"])
    text = "\r\n".join(_text_lines(int(size * 0.1), 5))
    body = ("--alt\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n" + text + "\r\n"
            "--alt\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n"
            "--rel\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\r\n" + html + "\r\n"
            "--rel\r\nContent-Type: image/png; name=\"photo.png\"\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-ID: <photo1@buyer.example>\r\nContent-Disposition: inline; filename=\"photo.png\"\r\n\r\n"
            + _b64_lines(img) + "\r\n--rel--\r\n--alt--\r\n")
    return 'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt"\r\n', body


def pdf_attachment(size: int) -> tuple[str, str]:
    """multipart/mixed: a short text and a PDF of about 3/4 × `size` (so the message is about `size`)."""
    pdf = noise_pdf(int(size * 0.74))
    text = "\r\n".join(["Hello,", "", *_text_lines(600, 6), "", "The invoice is attached."])
    body = ("--mix\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n" + text + "\r\n"
            "--mix\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\r\n" + _b64_lines(pdf) + "\r\n--mix--\r\n")
    return 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="mix"\r\n', body


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    size: int
    build: Callable[[int], tuple[str, str]]
    messages: int
    sessions: int
    smoke_messages: int
    smoke_sessions: int
    latency_pass: bool = True


SCENARIOS = {s.name: s for s in (
    Scenario("5k", "5 KB plain text", 5_000, plain, 2000, 20, 60, 10),
    Scenario("100k", "100 KB HTML + inline image", 100_000, html_with_image, 1000, 20, 30, 10),
    Scenario("2m", "2 MB PDF attachment", 2_000_000, pdf_attachment, 100, 20, 10, 5),
    Scenario("10m", "10 MB, all sessions at once", 10_000_000, pdf_attachment, 50, 50, 5, 5, latency_pass=False),
)}


class Message:
    """One scenario's message for one sender/recipient pair; `wire(n)` makes copy n unique (Message-ID)."""

    def __init__(self, scenario: Scenario, sender: str, recipients: list[str]) -> None:
        extra, body = scenario.build(scenario.size)
        self.sender, self.recipients = sender, recipients
        self._head = (f"From: <{sender}>\r\nTo: {', '.join(f'<{r}>' for r in recipients)}\r\n"
                      f"Subject: bench {scenario.name}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n")
        self._rest = (extra + "\r\n" + body).encode()
        if not self._rest.endswith(b"\r\n"):
            self._rest += b"\r\n"

    def wire(self, n: int) -> bytes:
        """The DATA payload of copy n (CRLF, no dot-stuffing needed), ending in CRLF, without the final '.'."""
        return self._head.encode() + f"Message-ID: <bench.{n}@buyer.example>\r\n".encode() + self._rest

    def file_text(self) -> bytes:
        """The message as a file for `smtp-source -F` (LF line ends: smtp-source appends CRLF to each line)."""
        return self.wire(0).replace(b"\r\n", b"\n")
