"""Reading a stored message for people: decoded headers (RFC 2047), text parts in their charsets.

Never raises on malformed mail: what cannot be decoded is shown with replacement characters.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from email.message import Message
from typing import Any

HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")


def _header(msg: Message, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # a malformed header the parser could not fold into an object
        raw = msg.get_all(name, failobj=None) if hasattr(msg, "get_all") else None
        value = raw[0] if raw else None
    if value is None:
        return None
    return " ".join(str(value).split())


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def read(data: bytes) -> dict[str, Any]:
    """Headers, readable text and the list of attachments of one message."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    headers = {h: v for h in HEADERS if (v := _header(msg, h)) is not None}
    plain: list[str] = []
    htmls: list[str] = []
    attachments: list[dict[str, Any]] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        disposition = (part.get_content_disposition() or "").lower()
        if ctype.startswith("text/") and disposition != "attachment" and not filename:
            (htmls if ctype == "text/html" else plain).append(_text_of(part))
            continue
        payload = part.get_payload(decode=True)
        attachments.append({"filename": filename, "content_type": ctype,
                            "size": len(payload) if isinstance(payload, bytes) else 0})
    text = "\n".join(plain) if plain else "\n".join(_strip_html(h) for h in htmls)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return {"headers": headers, "text": text, "attachments": attachments}
