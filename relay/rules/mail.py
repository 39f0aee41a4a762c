"""The relay's automatic mail for the rules: a seller's vacation reply, an unsubscribe confirmation.

Both carry Auto-Submitted: auto-replied (RFC 3834 §5) and go out with a null envelope sender,
so no responder answers them and they cannot start a loop. Neither names a real address.
Dates come from the caller's clock.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime


def _base(*, domain: str, from_name: str, from_addr: str, to: str, subject: str, now: float) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    local, _, host = from_addr.partition("@")
    msg["From"] = Address(from_name, local, host)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    msg["Message-ID"] = f"<auto.{secrets.token_hex(10)}@{domain}>"
    msg["Auto-Submitted"] = "auto-replied"
    return msg


def day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def vacation_reply(*, domain: str, seller_name: str, seller_alias: str, to: str, subject: str,
                   in_reply_to: str | None, until: float | None, now: float) -> tuple[str, bytes]:
    """(Message-ID, message) of the one automatic reply a buyer gets per thread while the seller is away."""
    subject = " ".join(subject.split())
    msg = _base(domain=domain, from_name=seller_name, from_addr=seller_alias, to=to,
                subject=f"Auto-reply: {subject}"[:200] if subject else "Auto-reply", now=now)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    back = f"is away until {day(until)}" if until else "is away at the moment"
    msg.set_content(
        f"{seller_name} {back} and will answer your message after returning.\n\n"
        "Your message has been delivered. Messages about your order's customization, delivery or\n"
        "shipping address still reach the seller.\n\n"
        "This is an automatic reply, sent once per conversation; please do not answer it.\n"
    )
    return str(msg["Message-ID"]), msg.as_bytes()


def unsubscribe_confirmation(*, domain: str, notice_from: str, to: str, seller_name: str, seller_alias: str,
                             now: float) -> bytes:
    msg = _base(domain=domain, from_name="Marketplace Mail", from_addr=f"{notice_from.split('@')[0]}@{domain}",
                to=to, subject=f"Unsubscribed from {seller_name}"[:200], now=now)
    msg.set_content(
        f"You will no longer receive messages from {seller_name} ({seller_alias})\n"
        "that are not critical to your orders.\n\n"
        "You will still receive the seller's answers to your own messages, and messages marked\n"
        "[Important] about an order's customization, delivery scheduling or shipping address.\n\n"
        "This is an automatic notice from the marketplace mail relay; please do not reply to it.\n"
    )
    return msg.as_bytes()
