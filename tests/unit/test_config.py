from pathlib import Path

import pytest

from relay import config
from relay.cli import main


def test_defaults_load_from_the_embedded_file() -> None:
    s = config.load(Path(__file__).resolve().parents[2] / "config" / "relay.toml")
    assert s.smtp.listen == ["127.0.0.1:2525"]
    assert s.delivery.transport == "maildir"
    assert s.maildir_path == Path("var/outbox")
    assert s.db_path == Path("var/relay.db")


@pytest.mark.parametrize(("text", "needle"), [
    ('[smtp]\nlisten = ["127.0.0.1:99999"]', "smtp.listen"),
    ('[relay]\ndomain = "not a domain"', "relay.domain"),
    ('[delivery]\ntransport = "pigeon"', "delivery.transport"),
    ('[delivery]\ntransport = "smtp"', "delivery.smarthost"),
    ('[smtp]\nmax_message_size = "ten"', "smtp.max_message_size"),
    ('[smtp]\nlisten_on = 1', "smtp.listen_on: unknown key"),
    ('[audit]\nretention = "soon"', "audit.retention"),
    ('[store]\ngroup_commit_window = "2ms"', "store.group_commit_window: unknown key"),  # never read; removed
    ("[relay\n", "not valid TOML"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "relay.toml"
    p.write_text(text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(p)
    assert needle in str(exc.value)


def test_cli_exits_78_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "relay.toml"
    p.write_text('[smtp]\nmax_connections = -1\n')
    assert main(["--config", str(p), "db", "migrate"]) == 78
    assert "smtp.max_connections" in capsys.readouterr().err


def test_env_variable_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "x.toml"
    p.write_text('[relay]\ndomain = "mail.example"\n')
    monkeypatch.setenv("RELAY_CONFIG", str(p))
    assert config.load().relay.domain == "mail.example"


@pytest.mark.parametrize(("value", "seconds"), [("30d", 2592000), ("24h", 86400), ("90s", 90), (15, 15),
                                                ("250ms", 0.25)])
def test_durations(value: object, seconds: float) -> None:
    assert config.parse_duration(value) == seconds


def test_production_example_enforces_authentication() -> None:
    s = config.load(Path(__file__).resolve().parents[2] / "config" / "relay.production.toml")
    assert s.trust.authenticate == "enforce" and s.delivery.tls == "required"
    assert s.smtp.submission_listen and s.tls.cert_file is not None
    assert config.load(Path(__file__).resolve().parents[2] / "config" / "relay.toml").trust.authenticate == "off"


def test_tls_and_trust_cross_checks(tmp_path: Path) -> None:
    import pytest

    bad = [
        {"tls": {"cert_file": "c.pem"}},
        {"tls": {"cert_file": "c", "key_file": "k", "require_tls": ["127.0.0.1:9"]}},
        {"smtp": {"submission_listen": ["127.0.0.1:587"]}},
        {"trust": {"proxy_protocol": ["127.0.0.1:2525"]}},
        {"trust": {"proxy_protocol": ["127.0.0.1:2525"], "front_mta": {"addresses": ["127.0.0.1"], "authserv_id": "x"}}},
        {"smtp": {"proxy_from": ["not-a-network"]}},
        {"trust": {"authenticate": "maybe"}},
        {"trust": {"front_mta": {"addresses": ["not-an-ip"], "authserv_id": "x"}}},
    ]
    for data in bad:
        with pytest.raises(config.ConfigError):
            config.settings_from_dict(data)


@pytest.mark.parametrize(("workers", "spool", "inflight", "per_spool", "per_inflight"), [
    (1, 2, "512MiB", 2, 512 << 20),
    (2, 2, "512MiB", 1, 256 << 20),
    (4, 2, "1GiB", 1, 256 << 20),   # every worker may hold one large message
    (3, 7, "300MiB", 2, 100 << 20),
])
def test_memory_bounds_are_shared_out_among_workers(tmp_path: Path, workers: int, spool: int, inflight: str,
                                                    per_spool: int, per_inflight: int) -> None:
    from relay.smtp.limits import Limits

    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[smtp]\nworkers = {workers}\nspool_concurrency = {spool}\nmax_inflight_bytes = "{inflight}"\n')
    s = config.load(cfg)
    limits = Limits.from_settings(s)
    assert (limits.spool_concurrency, limits.max_inflight) == (per_spool, per_inflight)


def test_workers_default_to_one_per_cpu_at_most_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for cpus, want in ((1, 1), (2, 2), (8, 8), (32, 8)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert config.settings_from_dict({}).smtp.workers == want
        assert config.settings_from_dict({"smtp": {"workers": "auto"}}).smtp.workers == want
    assert config.settings_from_dict({"smtp": {"workers": 3}}).smtp.workers == 3
    for bad in (0, -1, "many", 65, True):
        with pytest.raises(config.ConfigError, match=r"smtp\.workers"):
            config.settings_from_dict({"smtp": {"workers": bad}})
