"""`cpgflow plan --json` shows each view's plan signals and estimated rows before a build runs it
(driver/plan_preview.py), through the real CLI over real Delta tables; counts derived by hand."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import build, run_cli, write_tree

# Scopes by hand: the module, function f and class C: 3 rows of ex_scopes.
SOURCE = {"a.py": "def f(x):\n    return x\n\n\nclass C:\n    pass\n"}


def _previews(*args: str | Path) -> dict[str, dict]:
    done = run_cli("plan", *args, "--json")
    assert done.returncode == 0, done.stderr
    return {view["name"]: view["preview"] for view in json.loads(done.stdout)["views"]}


def test_plan_json_shows_signals_before_any_build_and_estimates_once_tables_exist(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", SOURCE)
    before = _previews(root)
    parents = before["scope_parents"]  # SELECT id AS scope_id, parent_scope_id, scope_kind FROM ex_scopes
    assert parents["signals"]["tables_read"] == ["ex_scopes"]
    assert set(parents["signals"]["columns_read"]["ex_scopes"]) == {"id", "parent_scope_id", "scope_kind"}
    assert parents["estimate"] is None and parents["unknown"] == "reads ex_scopes: no table of it in the folder yet"
    fixpoint = before["value_flow_fixpoint"]
    assert fixpoint["signals"] is None and fixpoint["unknown"].startswith("a fixpoint program")
    assert all(preview["signals"] is not None for name, preview in before.items() if preview is not fixpoint
               and name != "class_ancestors")  # the other fixpoint program

    out = tmp_path / "out"
    build(root, out, staging="delta")  # staged views in tables: their readers are estimated over them
    after = _previews(root, "--out", out)
    estimate = after["scope_parents"]["estimate"]
    assert (estimate["rows"], estimate["rows_exact"]) == (3, True)  # a projection of the 3 scopes
    assert after["scope_chain"]["estimate"] is not None and after["scope_chain"]["unknown"] is None
