"""The throwaway PostgreSQL of the tests (tests/pgcluster.py): loopback only, fsync on, a database
per test, removed at the end."""

from __future__ import annotations

from pathlib import Path

from tests.pgcluster import PgCluster, find_bindir


def test_binaries_found() -> None:
    bindir = find_bindir()
    assert (bindir / "postgres").exists() and (bindir / "initdb").exists()


def test_cluster_listens_on_loopback_only_with_fsync(pg_cluster: PgCluster) -> None:
    settings = pg_cluster.psql("SELECT name || '=' || setting FROM pg_settings WHERE name IN"
                               " ('listen_addresses', 'fsync', 'port', 'unix_socket_directories') ORDER BY name")
    assert settings.split() == ["fsync=on", "listen_addresses=127.0.0.1", f"port={pg_cluster.port}",
                                f"unix_socket_directories={pg_cluster.root}"]


def test_each_test_gets_its_own_database(pg_cluster: PgCluster, pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[1]
    assert pg_url.startswith(f"postgresql://relay@127.0.0.1:{pg_cluster.port}/")
    pg_cluster.psql("CREATE TABLE t (x int)", dbname=name)
    assert pg_cluster.psql("SELECT current_database()", dbname=name).strip() == name


def test_start_and_stop_removes_everything() -> None:
    with PgCluster() as cluster:
        root = cluster.root
        assert root is not None and (root / "data" / "PG_VERSION").exists()
        assert cluster.psql("SELECT 1").strip() == "1"
    assert not Path(root).exists()
