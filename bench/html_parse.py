"""HTML reading cost: parse + view (read_html), parse + rewrite (rewrite_html) and the policy's located
reading (HtmlDocument, which keeps where each character came from for redaction) on ordinary mail HTML
and on hostile markup, all by relay.message.html (lexbor).

Run: ``python -m bench.html_parse``. Prints figures only (never pass/fail).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from relay.message.contacts import AddressFinder
from relay.message.html import HtmlDocument, read_html, rewrite_html


def ordinary_mail(size: int = 100_000) -> str:
    """Outlook-shaped HTML: tables, styled spans, links, an image, a conditional comment, an address."""
    block = (
        '<tr><td style="padding:4px;font-family:Calibri,sans-serif"><p class=MsoNormal>'
        'Hello, the parcel left today. <b>Tracking</b>: <a href="https://track.example/?id=123">123</a>'
        '<span style="color:#1f497d"> &nbsp;Write to john@example.com if anything is wrong.</span></p>'
        '<img src="https://img.example/logo.png" alt="logo" width="80" height="20"></td></tr>\n'
        '<!--[if mso]><v:roundrect href="https://shop.example/" style="width:200px">Shop</v:roundrect>'
        "<![endif]-->\n"
    )
    head = "<!DOCTYPE html><html><head><title>Your order</title><style>p{margin:0}</style></head><body><table>"
    body = block * (size // len(block))
    return head + body + "</table></body></html>"


CASES: dict[str, str] = {
    "(a) 100 KB mail HTML": ordinary_mail(),
    "(b) 100 KB of <!--": "<!--" * 25_000,
    "(c) 10,000 nested <div>": "<div>" * 10_000 + "john@example.com",
    "(d) one tag, 50,000 attributes": "<p " + " ".join(f"a{i}" for i in range(50_000)) + ">",
    "(e) 1 MB of <a href=x>": "<a href=x>" * 100_000,
}


def timed(fn: Callable[[], object]) -> str:
    start = time.perf_counter()
    try:
        fn()
    except ValueError as exc:  # HtmlTooComplex: refused before parsing
        return f"{(time.perf_counter() - start) * 1000:8.1f} ms (refused: {exc})"
    return f"{(time.perf_counter() - start) * 1000:8.1f} ms"


def main() -> None:
    finder = AddressFinder({"john@example.com": "b7k2q9x4m1z8@relay.example"})
    for name, source in CASES.items():
        print(f"{name:34s} {len(source):>9,d} chars")
        print(f"  read_html                {timed(lambda s=source: read_html(s))}")  # type: ignore[misc]
        print(f"  rewrite_html             {timed(lambda s=source: rewrite_html(s, finder))}")  # type: ignore[misc]
        print(f"  policy HtmlDocument      {timed(lambda s=source: HtmlDocument(s))}")  # type: ignore[misc]


if __name__ == "__main__":
    main()
