"""Rewriter throughput: µs per message for a 5 KB text, a 50 KB HTML and a 10 MB attachment mail.

Run: ``python bench/rewrite.py``. Prints figures only (never pass/fail).
"""

from __future__ import annotations

import base64
import os
import time

from relay.rewrite import RewritePlan, find_leaks, rewrite

PLAN = RewritePlan(
    from_addr="k3j4q9x2m7p1z8w5v6@relay.example",
    from_name="山田商店",
    to_addr="buyer@example.net",
    message_id="<n1@relay.example>",
    address_map={
        "taro.yamada@gmail.com": "k3j4q9x2m7p1z8w5v6@relay.example",
        "buyer@example.net": "b9c8d7e6f5g4h3j2k1@relay.example",
    },
    alias_domain="relay.example",
    translate_id=lambda i: i if i.endswith("@relay.example>") else None,
)

HEAD = (
    "Received: from mail-oi1-f170.google.com (mail-oi1-f170.google.com [209.85.167.170])\r\n"
    "\tby mx.relay.example (Postfix) with ESMTPS id 4F1\r\n\tfor <b9c8d7e6f5g4h3j2k1@relay.example>;"
    " Mon, 3 Mar 2025 10:00:00 +0000\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=gmail.com; s=20230601; h=to:subject;"
    " bh=abc; b=def\r\n"
    "From: Taro Yamada <taro.yamada@gmail.com>\r\n"
    "To: b9c8d7e6f5g4h3j2k1@relay.example\r\n"
    "Subject: =?UTF-8?B?5rOo5paH44Gr44Gk44GE44Gm?= order 1234\r\n"
    "Date: Mon, 3 Mar 2025 10:00:00 +0900\r\n"
    "Message-ID: <CAF=abc123@mail.gmail.com>\r\n"
    "In-Reply-To: <n0@relay.example>\r\nReferences: <n0@relay.example>\r\n"
    "X-Mailer: iPhone Mail (20D47)\r\nMIME-Version: 1.0\r\n"
)


def text_5k() -> bytes:
    line = "Thank you for your order. It ships tomorrow from our warehouse in Osaka.\r\n"
    body = line * 60 + "On Mon, 3 Mar 2025, Buyer <buyer@example.net> wrote:\r\n> Hello\r\n"
    return (HEAD + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def html_50k() -> bytes:
    row = "<tr><td>Item</td><td>1</td><td>&yen;1,200</td><td>in stock</td></tr>\r\n"
    html = (
        "<html><body><table>\r\n" + row * 700 + "</table><p>taro.yamada&#64;gmail.com</p></body></html>\r\n"
    )
    return (
        HEAD
        + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
        + "Content-Type: text/plain; charset=utf-8\r\n\r\nsee html\r\n--b\r\n"
        + "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + html
        + "--b--\r\n"
    ).encode()


def attachment_10m() -> bytes:
    blob = base64.encodebytes(os.urandom(7_500_000)).replace(b"\n", b"\r\n")
    return (
        HEAD.encode()
        + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\nInvoice attached. taro.yamada@gmail.com\r\n--m\r\n"
        + b'Content-Type: application/pdf; name="invoice.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + blob
        + b"--m--\r\n"
    )


def bench(name: str, raw: bytes, rounds: int) -> None:
    rewrite(raw, PLAN)
    t = time.perf_counter()
    for _ in range(rounds):
        out = rewrite(raw, PLAN).message
    per = (time.perf_counter() - t) / rounds
    t = time.perf_counter()
    leaks = find_leaks(out, ["taro.yamada@gmail.com"])
    leak_t = time.perf_counter() - t
    print(
        f"{name:<22} {len(raw):>10,} B  rewrite {per * 1e6:>9.1f} µs/msg"
        f"  find_leaks {leak_t * 1e6:>9.1f} µs  leaks={len(leaks)}"
    )


if __name__ == "__main__":
    bench("5 KB text", text_5k(), 2000)
    bench("50 KB HTML (QP)", html_50k(), 300)
    bench("10 MB + attachment", attachment_10m(), 10)
