"""The trained policy model through the real SMTP server, with a small model trained here from a
tiny corpus (not the shipped one): between `low` and `high` a message is held (250, not
delivered, in the hold queue); above `high` it is refused 550 naming the category."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from relay.policy import build_policy, check, train
from tests.support import NO_LIMITS, Sink, message, provision, send_expect
from tests.unit.policy.test_model import BAD, tiny_corpus

POLICY = Path(__file__).resolve().parents[2] / "config" / "policy.toml"
HELD_BODY = "Thanks for your order.\r\n" + BAD["review"][1] + "\r\n"
REFUSED_BODY = "Your parcel left today. " + BAD["marketing"][0] + "\r\n"


def probability(raw: bytes, model: Path, category: str) -> float:
    data = tomllib.loads(POLICY.read_text())
    for rules in ("review", "marketing"):  # flag only, as in the relay below: the verdicts are the model's
        data[rules]["action"] = "flag"
    data["model"] = {"enabled": True, "path": str(model),
                     **{c: {"high": 1.0, "low": 0.0} for c in ("marketing", "review", "contact")}}
    found = [f for f in check(raw, build_policy(data)).findings if f.rule == f"model.{category}"]
    return float(re.match(r"model score ([0-9.]+)", found[0].detail).group(1))  # type: ignore[union-attr]


async def test_model_holds_between_thresholds_and_refuses_above(start_relay, sink: Sink, tmp_path: Path) -> None:
    model = tmp_path / "model.npz"
    assert train.main(["--corpus", str(tiny_corpus(tmp_path / "c.jsonl")), "--out", str(model), "--bits", "14", "--floor", "1"]) == 0
    # (the exact bytes the relay will check: subject and body as message() writes them)
    held = message("s@x.example", "b@x.example", "Thanks", HELD_BODY)
    refused = message("s@x.example", "b@x.example", "News", REFUSED_BODY)
    p_review = probability(held, model, "review")
    p_marketing = probability(refused, model, "marketing")
    assert 0 < p_review < 1 and p_marketing > 0
    assert probability(held, model, "marketing") < p_marketing / 4
    text = POLICY.read_text()
    # the phrase rules only flag here, so that the verdicts are the model's
    text = re.sub(r'(\[(?:review|marketing)\]\naction = )"\w+"', r'\1"flag"', text)
    text = text.replace('enabled = true\npath = ""', f'enabled = true\npath = "{model}"', 1)
    text = re.sub(r'(?m)^review = \{.*\}$',
                  f'review = {{ high = {(1 + p_review) / 2!r}, low = {p_review / 2!r}, action = "reject" }}', text)
    text = re.sub(r'(?m)^marketing = \{.*\}$',
                  f'marketing = {{ high = {p_marketing / 2!r}, low = {p_marketing / 4!r}, action = "reject" }}', text)
    text = re.sub(r'(?m)^contact = \{.*\}$', 'contact = { high = 1.0, low = 1.0, action = "reject" }', text)
    pol = tmp_path / "policy.toml"
    pol.write_text(text)
    relay = await start_relay(smarthost=sink.port, policy={"path": str(pol)}, rules=NO_LIMITS)
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    code, _ = await send_expect(port, world.seller_email, [world.buyer_alias],
                                message(world.seller_email, world.buyer_alias, "Thanks", HELD_BODY))
    assert code == 250
    code, reply = await send_expect(port, world.seller_email, [world.buyer_alias],
                                    message(world.seller_email, world.buyer_alias, "News", REFUSED_BODY))
    assert code == 550 and "5.7.1" in reply and "marketing" in reply
    conn = world.conn()
    held_rows = conn.execute("SELECT id FROM messages WHERE state = 'held'").fetchall()
    queue = conn.execute("SELECT state FROM queue").fetchall()
    conn.close()
    assert len(held_rows) == 1 and [r[0] for r in queue] == ["held"]
    assert sink.received == []
