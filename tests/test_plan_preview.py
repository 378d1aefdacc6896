"""`cpgflow plan --json` shows each view's plan signals and estimated rows before a build runs it
(driver/plan_preview.py), through the real CLI over real Delta tables; counts derived by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from conftest import build, run_cli, write_tree

from driver.delta_store import DeltaTableStore
from relspec.catalog import DatasetCatalog
from relspec.releases import current_release

# Scopes by hand: the module, function f and class C: 3 rows of ex_scopes.
SOURCE = {"a.py": "def f(x):\n    return x\n\n\nclass C:\n    pass\n"}


def _views(*args: str | Path) -> dict[str, dict]:
    done = run_cli("plan", *args, "--json")
    assert done.returncode == 0, done.stderr
    return {view["name"]: view for view in json.loads(done.stdout)["views"]}


def _previews(*args: str | Path) -> dict[str, dict]:
    return {name: view["preview"] for name, view in _views(*args).items()}


def test_plan_json_shows_signals_before_any_build_and_estimates_once_tables_exist(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", SOURCE)
    views = _views(root)
    before = {name: view["preview"] for name, view in views.items()}
    parents = before["scope_parents"]  # SELECT id AS scope_id, parent_scope_id, scope_kind FROM ex_scopes
    assert parents["signals"]["tables_read"] == ["ex_scopes"]
    assert set(parents["signals"]["columns_read"]["ex_scopes"]) == {"id", "parent_scope_id", "scope_kind"}
    assert parents["estimate"] is None and parents["unknown"] == "reads ex_scopes, of which the folder holds no table"
    programs = {name for name, view in views.items() if view["fixpoint"] is not None}
    assert "value_flow_fixpoint" in programs
    assert all(before[name]["signals"] is None and before[name]["unknown"].startswith("a fixpoint program")
               for name in programs)
    assert all(preview["signals"] is not None for name, preview in before.items() if name not in programs)

    out = tmp_path / "out"
    build(root, out, staging="delta")  # staged views in tables: their readers are estimated over them
    after = _previews(root, "--out", out)
    estimate = after["scope_parents"]["estimate"]
    assert (estimate["rows"], estimate["rows_exact"]) == (3, True)  # a projection of the 3 scopes
    assert after["scope_chain"]["estimate"] is not None and after["scope_chain"]["unknown"] is None


def test_a_staged_table_of_other_columns_is_reported_not_a_traceback(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", SOURCE)
    out = tmp_path / "out"
    build(root, out, staging="delta")
    store = DeltaTableStore(DatasetCatalog(str(out)))
    run = current_release(store.releases()).run_id
    # what an older version could have left: scope_parents staged with other columns, by a released run
    store.stage("scope_parents", pa.table({"x": [1]}), pa.schema([("x", pa.int64())]), "old", run)
    previews = _previews(root, "--out", out)
    assert previews["scope_chain"]["signals"] is None
    assert previews["scope_chain"]["unknown"].startswith("cannot be planned: ")
    assert previews["scope_parents"]["estimate"]["rows"] == 3  # planned from ex_scopes, as before


def test_the_preview_plans_the_sort_a_whole_clustered_write_adds(tmp_path: Path) -> None:
    """A file-local view written whole to a Delta table is sorted by its file column in the plan the build
    runs (its data files then hold narrow ranges of files); the preview plans the same sort, and shows
    which column. A view that is not file-local, or is held in memory, is not sorted."""
    from relspec.catalog import RUNS_TABLE
    from relspec.runs import read_records

    root = write_tree(tmp_path / "src", SOURCE)
    out = tmp_path / "out"
    build(root, out, staging="delta")
    views = _views(root, "--out", out, "--staging", "delta")
    assert views["cpg_props"]["write_order"] == "file_id"  # published, file-local
    assert views["own_bindings"]["write_order"] == "file_id"  # staged, file-local (joins by ids of one file)
    # local relative to staged global views (call_edges, class_bases, import_targets, star_bindings)
    assert views["cpg_edges"]["write_order"] == "file_id"
    # local relative to a view computed inside its plan (nodes_external): never by file
    assert views["cpg_nodes"]["write_order"] is None
    assert views["scope_chain"]["write_order"] is None  # its rows belong to one file each, but it has no file column
    (record,) = read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))
    built = {outcome.view: outcome.planned.sort_keys for outcome in record.views if outcome.planned is not None
             and outcome.policy == views[outcome.view]["policy"]["cache"]}  # (a tiny view staged first is inlined now)
    assert [key.split("@")[0] for key in built["cpg_props"]] == ["file_id"] and built["cpg_nodes"] == ()
    assert [key.split("@")[0] for key in built["cpg_edges"]] == ["file_id"]
    assert [key.split("@")[0] for key in built["own_bindings"]] == ["file_id"]
    for name, keys in built.items():  # the preview plans what the build planned (a whole build: the first)
        if views[name]["preview"]["signals"] is not None:
            shown = views[name]["preview"]["signals"]["sort_keys"]
            assert [key.split("@")[0] for key in shown] == [key.split("@")[0] for key in keys], name
    held = _views(root, "--out", out, "--staging", "memory")
    assert held["own_bindings"]["write_order"] is None and held["cpg_props"]["write_order"] == "file_id"
