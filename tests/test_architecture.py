"""The architecture checks hold on the code base, and each one fires on a planted violation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from check_architecture import (
    PACKAGES,
    ROOT,
    check_delta_reads,
    check_join_logic,
    check_layering,
    check_node_types,
    check_policy_from_names,
    check_views_declared_once,
    violations,
)


def test_the_code_base_holds_every_rule() -> None:
    assert violations() == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text + "\n")


def test_layering_fires(tree: Path) -> None:
    _append(tree / "semantics/ids.py", "import hamilton")
    _append(tree / "relspec/catalog.py", "from deltalake import DeltaTable")
    assert sorted(check_layering(tree)) == [
        "relspec/catalog.py: imports deltalake, which relspec/ must not",
        "semantics/ids.py: imports hamilton, which semantics/ must not",
    ]


def test_join_logic_spelling_a_column_fires(tree: Path) -> None:
    _append(tree / "semantics/inference.py", 'FALLBACK_KEY = "file_id"')
    problems = check_join_logic(tree)
    assert len(problems) == 1 and "join logic spells column name 'file_id'" in problems[0]


def test_policy_from_names_fires(tree: Path) -> None:
    _append(tree / "relspec/catalog.py",
            'def infer_cache_hints(names):\n    return [n for n in names if n.startswith("cpg_")]')
    problems = check_policy_from_names(tree)
    assert len(problems) == 1 and "matches names with .startswith()" in problems[0]


def test_a_view_declared_twice_fires(tree: Path) -> None:
    _append(tree / "semantics/views/calls.py",
            'EXTRA = DeriveSpec(name="denotes", columns=(), doc="", inputs=(), sql="SELECT 1")')
    assert check_views_declared_once(tree) == ["view 'denotes' is declared 2 times"]


def test_an_untyped_node_fires(tree: Path) -> None:
    _append(tree / "dataflows/cpg.py", "def mystery(session):\n    return session")
    problems = check_node_types(tree)
    assert len(problems) == 1 and "node mystery has no artifact type" in problems[0]


def test_a_pyarrow_read_of_a_delta_table_fires(tree: Path) -> None:
    _append(tree / "driver/delta_store.py", "def rows(table):\n    return table.to_pyarrow_table()")
    _append(tree / "dataflows/cpg.py", "READER = DeltaTable.to_pyarrow_dataset")
    problems = sorted(check_delta_reads(tree))
    assert len(problems) == 2
    assert problems[0].startswith("dataflows/cpg.py:") and ".to_pyarrow_dataset()" in problems[0]
    assert problems[1].startswith("driver/delta_store.py:") and ".to_pyarrow_table()" in problems[1]
