"""At logging.level = "debug" every line the daemon writes is still JSON (aiosmtpd's mail.log and
asyncio go through the same renderer), and no line carries a party's real address at any level."""

from __future__ import annotations

import asyncio
import json
import signal
import smtplib
from pathlib import Path

import pytest

from relay.config import settings_from_dict
from tests.daemon import Daemon, daemon_config, free_port
from tests.support import message, provision, smtp_send


@pytest.mark.parametrize("level", ["debug", "info"])
async def test_every_line_is_json_and_names_no_real_address(tmp_path: Path, dkim_key: Path, level: str) -> None:
    cfg = daemon_config(tmp_path / "state", dkim_key, smtp_port=free_port(), http_port=free_port(),
                        logging={"level": level, "format": "json"})
    world = provision(settings_from_dict(cfg))
    d = Daemon(tmp_path, cfg)
    try:
        await d.start_ready()
        body = f"Write to {world.seller_email} or {world.seller_staff.upper()} any time.\r\n"
        await asyncio.to_thread(smtp_send, d.smtp_port, world.seller_email, [world.buyer_alias],
                                message(world.seller_email, world.buyer_alias, body=body))
        # refused in the dialogue: the buyer's own address as sender to the buyer alias, and a stranger
        for sender in (world.buyer_email, "stranger@elsewhere.example"):
            with pytest.raises(smtplib.SMTPException):
                await asyncio.to_thread(smtp_send, d.smtp_port, sender, [world.buyer_alias],
                                        message(sender, world.buyer_alias))
        d.signal(signal.SIGTERM)
        assert await d.wait_exit() == 0
    finally:
        d.close()
    lines = d.log_path.read_text(encoding="utf-8").splitlines()
    assert lines
    events = []
    for line in lines:
        events.append(json.loads(line))  # every line, not only structlog's own
    if level == "debug":
        assert any(e.get("logger") == "mail.log" for e in events), "aiosmtpd's log is not routed"
    text = "\n".join(lines).lower()
    for address in (world.seller_email, world.seller_staff, world.buyer_email, "stranger@elsewhere.example"):
        assert address.lower() not in text, address
        assert address.split("@")[0].lower() + "@" not in text, address
