"""bench --relay-config: [smtp] keys join the bench's own [smtp] table (TOML refuses a second one)."""

from __future__ import annotations

import tomllib

from bench.target_relay import _take_section


def test_smtp_keys_join_the_bench_table_and_the_rest_is_kept() -> None:
    extra = '[trust]\nauthenticate = "off"\n[smtp]\nspool_concurrency = 1\nworkers = 2\n[policy]\nworkers = 0'
    smtp, rest = _take_section(extra, "smtp")
    assert smtp == "spool_concurrency = 1\nworkers = 2\n"
    assert "[smtp]" not in rest and 'authenticate = "off"' in rest and "[policy]\nworkers = 0" in rest
    doc = tomllib.loads('[smtp]\nlisten = ["127.0.0.1:2525"]\n' + smtp + "[delivery]\ntls = \"off\"\n" + rest)
    assert doc["smtp"] == {"listen": ["127.0.0.1:2525"], "spool_concurrency": 1, "workers": 2}
    assert doc["trust"] == {"authenticate": "off"} and doc["policy"] == {"workers": 0}


def test_without_an_smtp_table_nothing_moves() -> None:
    assert _take_section('[trust]\nauthenticate = "off"\n', "smtp") == ("", '[trust]\nauthenticate = "off"\n')
    smtp, _ = _take_section("[smtp]\nspool_concurrency = 3", "smtp")  # no final newline: one is added
    assert smtp == "spool_concurrency = 3\n"
