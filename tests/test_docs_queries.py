"""Every example query of docs/queries.md, run through the CLI on the resolution fixture, with the
answer worked out by hand from the fixture's source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from driver.cli import main as cli_main

DOCS = Path(__file__).resolve().parent.parent / "docs" / "queries.md"
QUERY = re.compile(r"```sql\n-- query: (?P<name>[\w-]+)\n(?P<sql>.*?)```", re.S)


def documented_queries() -> dict[str, str]:
    return {match["name"]: match["sql"] for match in QUERY.finditer(DOCS.read_text())}


def run(built: Path, name: str, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert cli_main(["query", str(built), documented_queries()[name], "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_documented_query_is_checked_here() -> None:
    assert set(documented_queries()) == {
        "who-calls", "unused-functions", "import-graph", "subclasses", "diagnostics", "confidence", "points-to",
    }


def test_points_to(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`item = Item(name)` in shop.items.build holds an instance of Item; `same` is
    `from .money import identity as same`."""
    assert run(built, "points-to", capsys) == [
        {"name": "item", "value_kind": "INSTANCE", "value": "shop.items.Item"},
        {"name": "same", "value_kind": "FUNCTION", "value": "shop.money.identity"},
    ]


def test_who_calls(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(built, "who-calls", capsys) == [
        {"caller": "shop.items.Item.price", "path": "shop/items.py", "line": 14, "confidence": 1.0},  # one target
        {"caller": "shop.items.cached", "path": "shop/items.py", "line": 35, "confidence": 1.0},
    ]


def test_unused_functions(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # build, cached, wrapped, bump, outer, shadow: nothing calls them; inner is returned by outer
    # (a reference to the name its def binds); label is a staticmethod nothing calls; make likewise
    assert [row["qualname"] for row in run(built, "unused-functions", capsys)] == [
        "shop.items.Item.label", "shop.items.Item.make", "shop.items.build", "shop.items.bump",
        "shop.items.cached", "shop.items.outer", "shop.items.shadow", "shop.items.wrapped",
    ]


def test_import_graph(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(built, "import-graph", capsys) == [
        {"importer": "shop", "imported": "shop.money"},
        {"importer": "shop.items", "imported": "functools"},
        {"importer": "shop.items", "imported": "os.path"},
        {"importer": "shop.items", "imported": "shop.base"},
        {"importer": "shop.items", "imported": "shop.money"},
        {"importer": "shop.money", "imported": "math"},
    ]


def test_subclasses(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(built, "subclasses", capsys) == [
        {"qualname": "shop.base.Timestamped", "depth": 1},
        {"qualname": "shop.items.Item", "depth": 2},
    ]


def test_diagnostics(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(built, "diagnostics", capsys) == []


def test_confidence(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run(built, "confidence", capsys)
    by_rule = {(row["kind"], row["resolver"]): row["edges"] for row in rows}
    assert by_rule[("INHERITS_FROM", "inherits.name.definition")] == 1
    assert by_rule[("CALLS", "calls.points_to")] == 6  # touch, price, to_cents twice, validate, save
    assert by_rule[("IMPORTS", "imports.reexport")] == 1
    assert all(0 < row["mean_confidence"] <= 1 for row in rows)
