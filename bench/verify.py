"""Before measuring, one message through each target to a capturing sink: is it rewritten and DKIM-signed?

Reads the target's DKIM key (public value from its private key). Returns the problems found, so a
benchmark never compares a relay that signs with a peer that silently does not (or the reverse).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from typing import Any

import dkim

from bench.e2e import free_port
from bench.load import python_client
from bench.messages import SCENARIOS, Message
from bench.sink import CaptureSink
from bench.target_relay import DOMAIN


async def verify(target: Any) -> list[str]:
    cap = CaptureSink(free_port())
    await cap.start()
    try:
        await target.start(cap.port, recipients=1, sessions=1)
        try:
            message = Message(SCENARIOS["5k"], target.sender, target.recipients)
            sent = await python_client(target.port, message, 1, 1, reuse=False)
            if sent.accepted != 1:
                return [f"the message was refused: {sent.first_refusal}"]
            for _ in range(300):
                if cap.received:
                    break
                await asyncio.sleep(0.05)
        finally:
            await target.stop()
    finally:
        await cap.stop()
    if not cap.received:
        return ["nothing reached the smarthost within 15 s"]
    mail_from, rcpts, raw = cap.received[0]
    return check(raw, mail_from, rcpts, target.sender, target.real_recipients[0], target.public_txt())


def check(raw: bytes, mail_from: str, rcpts: list[str], sender: str, real_rcpt: str, txt: str | None) -> list[str]:
    """What is wrong with a delivered copy; `txt`: the signer's DKIM key record (None: not signed)."""
    problems = []
    if sender.encode() in raw or mail_from == sender:
        problems.append("the sender's real address was delivered")
    if rcpts != [real_rcpt]:
        problems.append(f"delivered to {rcpts}, not to the real recipient {real_rcpt}")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not str(msg.get("From", "")).rstrip(">").endswith("@" + DOMAIN):
        problems.append(f"From is {msg.get('From')!r}, not an alias at {DOMAIN}")
    if real_rcpt not in str(msg.get("To", "")):
        problems.append(f"To is {msg.get('To')!r}, not the real recipient")
    if txt is not None:  # a signing target
        if "DKIM-Signature" not in msg:
            problems.append("not DKIM-signed")
        elif not dkim.verify(raw, dnsfunc=lambda name, timeout=5: txt.encode()):
            problems.append("the DKIM signature does not verify (dkimpy)")
    return problems
