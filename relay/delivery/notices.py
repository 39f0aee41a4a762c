"""The relay's own short notices to a sender's registered address (bounces, drops).

A notice names the alias the sender wrote to and never the recipient's real address or
the remote server's text (which often quotes the real address). It is sent with a null
envelope sender (RFC 5321 §4.5.5) and Auto-Submitted: auto-replied (RFC 3834), so it
cannot start a loop.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

REASONS = {
    "delivery.rejected": "the recipient's mail system refused it",
    "delivery.expired": "it could not be delivered for too long and the relay gave up",
    "queue.dropped": "an operator removed it from the delivery queue",
    "policy.dropped": "an operator refused it after review",
}


def build_notice(*, domain: str, notice_from: str, to: str, alias: str, subject: str, received_at: float,
                 reason: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address("Mail Delivery System", notice_from.split("@")[0], domain)
    msg["To"] = to
    msg["Subject"] = f"Undelivered: {subject}"[:200] if subject else "Undelivered message"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<notice.{secrets.token_hex(10)}@{domain}>"
    msg["Auto-Submitted"] = "auto-replied"
    when = format_datetime(datetime.fromtimestamp(received_at, UTC))
    msg.set_content(
        f"Your message to {alias}\n"
        f"sent on {when}\n"
        f"with the subject \"{subject}\"\n"
        f"was not delivered: {REASONS.get(reason, 'it could not be delivered')}.\n\n"
        "This is an automatic notice from the marketplace mail relay; please do not reply to it.\n"
    )
    return msg.as_bytes()
