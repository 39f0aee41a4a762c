"""store.url → SQLite or PostgreSQL (relay/store/url.py), relay.node, and the password never shown."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from relay import config
from relay.errors import ConfigError
from relay.store.url import PgTarget, SqliteTarget, StoreUrlError, parse

SECRET = "s3cr3t-Pa55"


def test_absent_url_is_sqlite_in_state_dir(tmp_path: Path) -> None:
    assert parse(None, tmp_path) == SqliteTarget(tmp_path / "relay.db")
    s = config.settings_from_dict({"relay": {"state_dir": str(tmp_path)}})
    assert s.db_path == tmp_path / "relay.db"
    assert s.store_target == SqliteTarget(tmp_path / "relay.db")


@pytest.mark.parametrize(("url", "path"), [("sqlite:///var/lib/relay/r.db", "/var/lib/relay/r.db"),
                                           ("sqlite:data/r.db", "data/r.db"),
                                           ("SQLITE:///x%20y.db", "/x y.db")])
def test_sqlite_urls(url: str, path: str, tmp_path: Path) -> None:
    assert parse(url, tmp_path) == SqliteTarget(Path(path))
    s = config.settings_from_dict({"relay": {"state_dir": str(tmp_path)}, "store": {"url": url}})
    assert s.db_path == Path(path)


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:///x.db?mode=ro"])
def test_bad_sqlite_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUrlError, match=r"store\.url"):
        parse(url, tmp_path)


def test_postgresql_url(tmp_path: Path) -> None:
    t = parse(f"postgresql://relay:{SECRET}@db.internal:5433/relay?sslmode=verify-full", tmp_path)
    assert t == PgTarget("db.internal", 5433, "relay", "relay", SECRET, (("sslmode", "verify-full"),))
    assert t.dsn() == "postgresql://relay@db.internal:5433/relay?sslmode=verify-full"
    for shown in (t.dsn(), t.safe_url(), str(t), repr(t)):
        assert SECRET not in shown


def test_postgresql_variants(tmp_path: Path) -> None:
    t = parse("postgres://u%40x:p%2Fw@[::1]/d", tmp_path)
    assert isinstance(t, PgTarget)
    assert (t.host, t.port, t.user, t.password, t.dbname) == ("::1", 5432, "u@x", "p/w", "d")
    assert t.dsn() == "postgresql://u%40x@[::1]:5432/d"
    sock = parse("postgresql://relay@/relay?host=/run/postgresql", tmp_path)
    assert isinstance(sock, PgTarget) and sock.host == "/run/postgresql" and sock.password is None


def test_password_file(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text(SECRET + "\nignored\n")
    t = parse("postgresql://relay@db/relay", tmp_path, f)
    assert isinstance(t, PgTarget) and t.password == SECRET
    s = config.settings_from_dict({"store": {"url": "postgresql://relay@db/relay", "password_file": str(f)}})
    assert s.store_target == t
    with pytest.raises(StoreUrlError, match="use one") as exc:
        parse(f"postgresql://relay:{SECRET}@db/relay", tmp_path, f)
    assert SECRET not in str(exc.value)
    with pytest.raises(StoreUrlError, match="file not found"):
        parse("postgresql://relay@db/relay", tmp_path, tmp_path / "missing")
    with pytest.raises(StoreUrlError, match="only for a postgresql"):
        parse("sqlite:///x.db", tmp_path, f)


BAD = [
    (f"mysql://relay:{SECRET}@db/relay", "unsupported scheme 'mysql'"),
    (f"relay:{SECRET}@db/relay", "unsupported scheme"),
    (f"{SECRET}", "unsupported scheme '(none)'"),
    (f"postgresql://relay:{SECRET}@db:99999/relay", "port"),
    (f"postgresql://relay:{SECRET}@db:5x/relay", "port"),
    (f"postgresql://relay:{SECRET}@db/", "name the database"),
    (f"postgresql://relay:{SECRET}@/relay", "name the server"),
    (f"postgresql://relay@db/relay?password={SECRET}", "password_file"),
    (f"postgresql://relay:{SECRET}@db/relay?sslmod=require", "unknown parameter 'sslmod'"),
    (f"postgresql://relay:{SECRET}@db/relay#{SECRET}", "fragment"),
]


@pytest.mark.parametrize(("url", "message"), BAD)
def test_bad_urls_never_show_the_password(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUrlError) as exc:
        parse(url, tmp_path)
    assert message in str(exc.value)
    assert SECRET not in str(exc.value)
    # the configuration's own errors (what `relay config check` and `serve` print), and pydantic's
    with pytest.raises(ConfigError) as cexc:
        config.settings_from_dict({"store": {"url": url}}, "relay.toml")
    assert "relay.toml: store.url: " in str(cexc.value) and SECRET not in str(cexc.value)
    with pytest.raises(ValidationError) as vexc:
        config.Settings.model_validate({"store": {"url": url}})
    assert SECRET not in str(vexc.value) and SECRET not in repr(vexc.value)


def test_settings_repr_hides_the_url() -> None:
    s = config.settings_from_dict({"store": {"url": f"postgresql://relay:{SECRET}@db/relay"}})
    assert SECRET not in repr(s) and SECRET not in repr(s.store) and SECRET not in str(s.store_target)


def test_relay_node() -> None:
    assert config.settings_from_dict({}).relay.node == socket.gethostname()
    assert config.settings_from_dict({"relay": {"node": "mx-2.eu"}}).relay.node == "mx-2.eu"
    for bad in ("a:b", "", "two words"):
        with pytest.raises(ConfigError, match=r"relay\.node"):
            config.settings_from_dict({"relay": {"node": bad}})


def test_serve_takes_a_postgresql_store(tmp_path: Path) -> None:
    """The daemon runs on PostgreSQL (relay/store/open.py): preflight checks only what it can read
    here (the password file), never showing the password."""
    from relay import preflight

    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path}"\n[store]\nurl = "postgresql://relay:{SECRET}@db/relay"\n'
                   f'password_file = "{tmp_path / "missing"}"\n')
    settings, errors, _ = preflight.check(cfg)
    assert settings is None and SECRET not in "\n".join(errors)
    assert [e.split(": ")[1] for e in errors] == ["store.password_file"]
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path}"\n[store]\nurl = "postgresql://relay@db/relay"\n')
    assert preflight.check(cfg)[1] == []
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path}"\n[store]\nurl = "sqlite:///{tmp_path}/r.db"\n')
    assert preflight.check(cfg)[1] == []
