"""The README stays true: no link leaves the repository, no table row is repeated, the commands
table names every command of the argparse tree (and nothing else), one production example."""

from __future__ import annotations

import re
from pathlib import Path

from relay.cli import build_parser
from tests.integration.test_cli_polish import command_paths

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def test_links_stay_in_the_repository() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = _outside_code(doc.read_text(encoding="utf-8"))
        targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<(https?://[^>]+)>", text)
        targets += re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, flags=re.M)
        for target in targets:
            assert not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I), f"{doc.name}: external link {target}"
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
            assert path.exists(), f"{doc.name}: {target} does not exist"


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def _rows(text: str) -> list[str]:
    return [line.strip() for line in _outside_code(text).splitlines()
            if line.startswith("|") and not re.fullmatch(r"\|[\s:|-]+\|", line.strip())]


def test_no_table_row_is_repeated() -> None:
    rows = _rows(README)
    assert len(rows) == len(set(rows)), sorted({r for r in rows if rows.count(r) > 1})
    # nor the same key twice (a second row for `rules.reply_window` with other words)
    keys = [_cells(r)[0] for r in rows]
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


def test_commands_table_matches_the_cli() -> None:
    section = README[README.index("## Commands"):]
    section = section[:section.index("\n## ", 1)]
    named = set()
    for row in _rows(section)[1:]:
        for cell in re.findall(r"`relay ([^`]+)`", _cells(row)[0]):
            named.add(" ".join(w for w in cell.split() if re.fullmatch(r"[a-z][a-z-]*", w)))
    paths = {" ".join(p) for p in command_paths(build_parser())}
    missing = {p for p in paths if not any(n == p or n.startswith(p + " ") for n in named)}
    assert not missing, f"commands missing from the README table: {sorted(missing)}"
    unknown = {n for n in named if not any(n == p or n.startswith(p + " ") for p in paths)}
    assert not unknown, f"README names commands the CLI does not have: {sorted(unknown)}"


def test_one_production_example() -> None:
    examples = [p.name for p in (ROOT / "config").glob("*.toml") if "production" in p.name]
    assert examples == ["relay.production.toml"]
    assert "config/relay.production.toml" in README
