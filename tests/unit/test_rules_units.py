"""RFC 3834 recognition, loop hops, unsubscribe tokens and the response-time arithmetic, from tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.rules import automatic, tokens
from relay.rules.metrics import seller_metrics
from relay.store.metrics import ThreadMessage

H = 3600.0


@pytest.mark.parametrize(("headers", "subject", "reason"), [
    ([("auto-submitted", "auto-replied")], "Re: order", "auto-submitted"),
    ([("auto-submitted", "auto-generated; owner-email=x")], "", "auto-submitted"),
    ([("auto-submitted", "No")], "Re: order", None),
    ([("precedence", "bulk")], "", "precedence"),
    ([("precedence", "JUNK")], "", "precedence"),
    ([("precedence", "list")], "", "precedence"),
    ([("precedence", "first-class")], "", None),
    ([("x-autoreply", "yes")], "", "x-autoreply"),
    ([("x-autorespond", "vacation")], "", "x-autoreply"),
    ([("x-auto-response-suppress", "OOF, AutoReply")], "", "auto-response-suppress"),
    ([("x-auto-response-suppress", "DR, RN")], "", None),
    ([("content-type", 'multipart/report; report-type="delivery-status"; boundary=x')], "", "dsn"),
    ([("content-type", "multipart/report; report-type=disposition-notification; boundary=x")], "", "dsn"),
    ([("x-failed-recipients", "someone")], "", "dsn"),
    ([], "Out of Office: back on Monday", "vacation-subject"),
    ([], "Automatic reply: your order", "vacation-subject"),
    ([], "自動返信: ご注文について", "vacation-subject"),
    ([], "자동 응답: 주문", "vacation-subject"),
    ([], "Re: Out of office chair delivery", None),
    ([("content-type", "text/plain")], "Re: your order", None),
])
def test_automatic_reason(headers: list[tuple[str, str]], subject: str, reason: str | None) -> None:
    assert automatic.automatic_reason(headers, subject) == reason


@pytest.mark.parametrize(("headers", "hops"), [
    ([], 0),
    ([("x-relay-hops", "1")], 1),
    ([("x-relay-hops", "2"), ("x-relay-hops", "4")], 4),
    ([("x-relay-hops", "lots")], 0),
    ([("x-relay-hops", "99999999")], 0),
])
def test_hops(headers: list[tuple[str, str]], hops: int) -> None:
    assert automatic.hops(headers) == hops


def test_tokens_are_bound_to_thread_buyer_and_seller(tmp_path: Path) -> None:
    secret = tokens.load_secret(tmp_path)
    assert tokens.load_secret(tmp_path) == secret and (tmp_path / tokens.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    token = tokens.make_token(secret, 7, 2, 1)
    assert tokens.parse_token(token) == 7
    assert tokens.token_valid(secret, token, 7, 2, 1)
    assert tokens.token_valid(secret, token.upper(), 7, 2, 1)  # local parts may come back upper-cased
    assert not tokens.token_valid(secret, token, 7, 3, 1)
    assert not tokens.token_valid(secret, token, 8, 2, 1)
    assert not tokens.token_valid(b"other secret", token, 7, 2, 1)
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert not tokens.token_valid(secret, forged, 7, 2, 1)
    for bad in ("", "7", "7.", "x.abc", "0." + "a" * 20, "7." + "a" * 19):
        assert tokens.parse_token(bad) is None
    local = tokens.PREFIX + token
    assert len(local) <= 64 and tokens.token_of_local(local.upper()) == token
    assert tokens.token_of_local("k3abc") is None


def test_list_unsubscribe_headers() -> None:
    only_mail = tokens.list_unsubscribe_headers("relay.example", None, "7.abc")
    assert only_mail == [("List-Unsubscribe", "<mailto:unsubscribe+7.abc@relay.example?subject=unsubscribe>")]
    assert tokens.list_unsubscribe_headers("relay.example", "http://insecure.example", "7.abc") == only_mail
    both = dict(tokens.list_unsubscribe_headers("relay.example", "https://market.example/mail/", "7.abc"))
    assert both["List-Unsubscribe"].startswith("<https://market.example/mail/unsubscribe/7.abc>, <mailto:")
    assert both["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize(("ctype", "body", "ok"), [
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click", True),
    ("application/x-www-form-urlencoded; charset=utf-8", b"List-Unsubscribe=One-Click", True),
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=Other", False),
    ("application/x-www-form-urlencoded", b"", False),
    ("multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--x--\r\n', True),
    ("text/plain", b"List-Unsubscribe=One-Click", False),
])
def test_one_click_body(ctype: str, body: bytes, ok: bool) -> None:
    assert tokens.one_click_body_ok(ctype, body) is ok


def _m(mid: int, thread: int, direction: str, t: float, automatic: str | None = None, order: str | None = None,
       nrn: bool = False) -> ThreadMessage:
    return ThreadMessage(mid, thread, "buyer_to_seller" if direction == "b" else "seller_to_buyer", t, automatic,
                         order, nrn)


def test_metrics_arithmetic() -> None:
    msgs = [
        _m(1, 1, "b", 0), _m(2, 1, "b", 1 * H), _m(3, 1, "s", 2 * H),  # two clocks stopped by one answer
        _m(4, 1, "b", 10 * H), _m(5, 1, "s", 11 * H, automatic="auto-submitted"),  # auto-reply: no answer
        _m(6, 1, "s", 40 * H),  # late: 30 h
        _m(7, 2, "b", 20 * H, automatic="precedence"),  # ignored
        _m(8, 2, "b", 21 * H, order="V"),  # order placed on vacation: excluded
        _m(9, 2, "b", 22 * H, nrn=True),
        _m(10, 3, "b", 30 * H),  # unanswered at 60 h
        _m(11, 3, "b", 59 * H),  # pending at 60 h
        _m(12, 3, "s", 61 * H),  # after "now": not seen
    ]
    m = seller_metrics(msgs, {(2, "V"): 21 * H}, [(20 * H, 25 * H)], since=None, now=60 * H)
    assert (m.buyer_messages, m.no_response_needed, m.answered_within_24h, m.answered_late, m.unanswered,
            m.pending, m.excluded_vacation, m.automatic_ignored) == (6, 1, 2, 1, 1, 1, 1, 1)
    assert m.percent_within_24h == 50.0
    assert m.average_response_seconds == round((2 * H + 1 * H + 30 * H) / 3, 1)
    assert m.median_response_seconds == 2 * H
    later = seller_metrics(msgs, {}, [], since=25 * H, now=60 * H)
    assert (later.buyer_messages, later.unanswered, later.pending, later.percent_within_24h) == (2, 1, 1, 0.0)
    empty = seller_metrics([], {}, [], since=None, now=0)
    assert empty.percent_within_24h is None and empty.median_response_seconds is None


def test_rules_config_defaults_and_errors(tmp_path: Path) -> None:
    from relay import config
    from relay.pipeline.stages.rules import load_words

    s = config.load(Path(__file__).resolve().parents[2] / "config" / "relay.toml").rules
    assert (s.reply_window, s.max_unsolicited_per_order, s.important_unjustified, s.important_abuse_window,
            s.loop_max_hops) == (14 * 86400, 1, "deliver", 30 * 86400, 5)
    for text, needle in (('[rules]\nimportant_unjustified = "bounce"', "rules.important_unjustified"),
                         ('[rules]\nreply_window = "soon"', "rules.reply_window"),
                         ("[rules]\nimportant_markers = []", "rules.important_markers"),
                         ("[rules]\nmax_unsolicited_per_order = -1", "rules.max_unsolicited_per_order"),
                         ("[rules]\nloop_hops = 3", "rules.loop_hops: unknown key")):
        p = tmp_path / "r.toml"
        p.write_text(text)
        with pytest.raises(config.ConfigError, match=needle.replace(".", r"\.")):
            config.load(p)
    assert load_words(Path("config/critical.toml")).classify("your postcode")  # found from any directory
    with pytest.raises(config.ConfigError, match=r"rules\.critical_words"):
        load_words(tmp_path / "missing.toml")
