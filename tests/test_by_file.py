"""Views maintained by file: after a one-file edit, the file-local views and outputs are written by a
replace of exactly that file's rows (shown from Delta's commits and the run record), the result is
the one a full build gives, and `full=True` rebuilds everything."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from driver.api import content_fingerprint, open_session
from driver.delta_store import WRITE_OPERATIONS
from relspec.catalog import LOG_TABLES, RUNS_TABLE, DatasetCatalog
from relspec.runs import RunRecord, ViewOutcome, read_records
from relspec.summary import BuildSummary
from semantics.ids import file_id_for
from tests.conftest import build as build_with_options
from tests.conftest import query, run_cli, write_tree

TREE = {
    "pkg/__init__.py": "from pkg.base import helper\n",
    "pkg/base.py": "def helper(x):\n    return x + 1\n\n\nclass Base:\n    def run(self):\n        return helper(1)\n",
    "pkg/a.py": "from pkg.base import Base, helper\n\n\nclass A(Base):\n    pass\n\n\n"
                "def main():\n    A().run()\n    return helper(2)\n",
}
EDITED_A = TREE["pkg/a.py"] + "\n\ndef extra(y):\n    return y * 2\n"
# The views that read one file's rows at a time and are written (staged or published); own_bindings
# joins a file's bindings with its declarations and scope chains by ids of that file.
BY_FILE = {"definitions", "own_bindings", "cpg_props", "cpg_diagnostics"}
# The staged views that read, besides one file's rows, the rows credited to that file of a staged
# global view (local relative to it): a file's bindings and those its star imports bring (star_bindings,
# followed across files), and the resolution of its names among them. The IMPORTS edges of a file's
# imports (import_targets) and its INHERITS_FROM edges (class_bases) pass those views' rows on to
# cpg_edges alone, which updates by file: they are inlined into it.
RELATIVE = {"effective_bindings": "star_bindings", "binding_ranks": "star_bindings",
            "scope_candidates": "star_bindings", "name_resolution": "star_bindings", "reference_edges": "star_bindings"}


def build(root: Path, out: Path, **options: object) -> BuildSummary:
    """A build with staging tables: their by-file maintenance is what this module checks (a fixture
    this small has its staged views held in memory by default, see tests/test_memory_staging.py)."""
    return build_with_options(root, out, staging="delta", **options)


def _last_write(location: str) -> dict:
    """The latest commit that wrote rows (maintenance commits after it change none)."""
    return next(commit for commit in DeltaTable(location).history() if commit["operation"] in WRITE_OPERATIONS)


def _fingerprints(out: Path) -> dict[str, str]:
    session, tables = open_session(out)
    return {table: content_fingerprint(session, table) for table in tables if table not in LOG_TABLES}


def _latest_record(out: Path) -> RunRecord:
    from driver.delta_store import DeltaTableStore

    return read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))[-1]


def _latest_views(out: Path) -> dict[str, object]:
    return {outcome.view: outcome for outcome in _latest_record(out).views}


def test_one_file_edit_replaces_that_files_rows(tmp_path):
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    base_props = query(out, f"SELECT * FROM cpg_props WHERE file_id = '{file_id_for('pkg/base.py')}'")
    (root / "pkg/a.py").write_text(EDITED_A)
    summary = build(root, out)
    assert (summary.files_changed, summary.files_added, summary.files_removed, summary.files_reused) == (1, 0, 0, 2)
    assert summary.incremental

    a_id = file_id_for("pkg/a.py")
    catalog = DatasetCatalog(str(out))
    for view, location in (("definitions", catalog.staging_location("definitions")),
                           ("cpg_props", catalog.location("cpg_props"))):
        commit = _last_write(location)
        assert commit["operationParameters"]["predicate"] == f"file_id = '{a_id}'", view
        assert commit["operationMetrics"]["num_added_rows"] == _rows_of(location, a_id) > 0, view

    views = _latest_views(out)
    # (nothing to diagnose: cpg_diagnostics' output was reused; cpg_edges reads the staged global views
    # that resolve calls, imports and bases, and star_bindings)
    assert {name for name, outcome in views.items() if outcome.maintained == "by_file"} == BY_FILE - {
        "cpg_diagnostics"} | set(RELATIVE) | {"cpg_edges"}
    # the edit adds a function to a.py, no star import, class base or import: the global views' rows
    # credited to the other files are as they were, so only a.py's rows are replaced
    for location in [*map(catalog.staging_location, RELATIVE), catalog.location("cpg_edges")]:
        assert _last_write(location)["operationParameters"]["predicate"] == f"file_id = '{a_id}'", location
    assert views["cpg_diagnostics"].outcome == "reused"
    assert views["value_flow_fixpoint"].maintained == "full"
    # extra() is one FUNCTION more in a.py: its props are a.py's new rows, base.py's are untouched
    assert query(out, f"SELECT * FROM cpg_props WHERE file_id = '{file_id_for('pkg/base.py')}'") == base_props
    assert query(out, "SELECT count(*) AS n FROM cpg_nodes WHERE kind = 'FUNCTION' AND name = 'extra'") == [{"n": 1}]

    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)


STARS = {
    "pkg/__init__.py": "",
    "pkg/a.py": "def f():\n    return 1\n",
    "pkg/b.py": "from pkg.a import *\n\nf()\n",
    "pkg/c.py": "def g():\n    return 2\n",
}


def test_an_edit_replaces_the_rows_of_the_files_whose_global_rows_it_changed(tmp_path):
    """A function added to a.py is a name b.py's star import now binds: star_bindings' rows credited to
    b.py change, so effective_bindings (local relative to it) replaces the rows of a.py and b.py, and
    leaves c.py's; the result is the one a full build gives."""
    root, out = write_tree(tmp_path / "src", STARS), tmp_path / "out"
    build(root, out)
    (root / "pkg/a.py").write_text(STARS["pkg/a.py"] + "\n\ndef extra():\n    return 2\n")
    build(root, out)

    catalog = DatasetCatalog(str(out))
    a_id, b_id = file_id_for("pkg/a.py"), file_id_for("pkg/b.py")
    views = _latest_views(out)
    assert views["star_bindings"].maintained == "full" and views["effective_bindings"].maintained == "by_file"
    commit = _last_write(catalog.staging_location("effective_bindings"))
    assert commit["operationParameters"]["predicate"] == " OR ".join(f"file_id = '{file}'"
                                                                     for file in sorted((a_id, b_id)))
    # b.py's rows: its own binding (none: it binds by its star import only) and the two names it imports
    assert commit["operationMetrics"]["num_added_rows"] == _rows_of(catalog.staging_location("effective_bindings"),
                                                                    a_id) + 2
    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)
    # what the plan shows of it
    shown = run_cli("plan", root, "--out", out, "--staging", "delta").stdout
    assert ("star_bindings, when recomputed, is compared by file_id with the current release's rows: its by-file "
            "readers also recompute the files whose rows changed") in shown
    assert "local relative to star_bindings" in next(line for line in shown.splitlines()
                                                     if line.startswith("effective_bindings is maintained by file:"))
    assert "session profile incremental_build: " in shown
    # what `build --full` would run: every view recomputed whole, under the full build's profile
    whole = run_cli("plan", root, "--out", out, "--staging", "delta", "--full").stdout
    assert "session profile full_build: " in whole and " is maintained by file:" not in whole


def _rows_of(location: str, file_id: str) -> int:
    """Rows of one file in the Delta table at ``location`` (a staging table has no reader of its own)."""
    from datafusion import SessionContext

    session = SessionContext()
    session.register_table("staged", DeltaTable(location))
    return session.sql(f"SELECT count(*) FROM staged WHERE file_id = '{file_id}'").to_arrow_table().column(0)[0].as_py()


def test_removed_file_leaves_no_rows(tmp_path):
    root = write_tree(tmp_path / "src", {**TREE, "pkg/extra.py": "import pkg.a\n\npkg.a.main()\n"})
    out = tmp_path / "out"
    build(root, out)
    (root / "pkg/extra.py").unlink()
    summary = build(root, out)
    assert (summary.files_changed, summary.files_added, summary.files_removed) == (0, 0, 1)
    gone = file_id_for("pkg/extra.py")
    for table in ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_points_to", "cpg_diagnostics"):
        assert query(out, f"SELECT count(*) AS n FROM {table} WHERE file_id = '{gone}'") == [{"n": 0}], table
    assert _rows_of(DatasetCatalog(str(out)).staging_location("definitions"), gone) == 0
    assert _latest_views(out)["cpg_props"].maintained == "by_file"
    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)


def test_full_rebuild_extracts_and_rewrites_everything(tmp_path):
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    (root / "pkg/a.py").write_text(EDITED_A)
    summary = build(root, out, full=True)
    assert summary.files_extracted == 3 and not summary.incremental
    written = {name: outcome for name, outcome in _latest_views(out).items() if outcome.maintained}
    assert written and all(outcome.maintained == "full" for outcome in written.values())
    assert "predicate" not in _last_write(DatasetCatalog(str(out)).location("cpg_props"))["operationParameters"]


def test_a_rebuild_that_changes_most_files_recomputes_whole(tmp_path):
    """Two of the three files changed: past half of the files, replacing by file costs more than
    recomputing, and the policy says so."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    (root / "pkg/a.py").write_text(EDITED_A)
    (root / "pkg/base.py").write_text(TREE["pkg/base.py"] + "\n\nVALUE = 1\n")
    build(root, out)
    written = {name: outcome for name, outcome in _latest_views(out).items() if outcome.maintained}
    assert written["cpg_props"].maintained == "full" and written["definitions"].maintained == "full"
    from driver.factory import plan_driver

    policy = plan_driver(root, out).execute(["compiled_policy"])["compiled_policy"]
    assert policy.view_maintenance["cpg_props"].mode == "by_file"  # nothing changed since: one file's rows at most


CALLS_ACROSS = {
    "pkg/__init__.py": "",
    "pkg/a.py": "def f():\n    return 1\n",
    "pkg/b.py": "from pkg.a import f\n\nf()\n",
    "pkg/c.py": "def g():\n    return 2\n\n\ng()\n",
}
# The inlined global view cpg_nodes is local relative to, staged (as an incremental build on a large
# code base stages it when it pays: relspec/relative_staging.py) so that it can be compared.
RELATIVE_BASES = {"nodes_external": "delta_staging"}


def test_edges_of_an_unchanged_file_that_resolve_into_an_edited_one_are_replaced(tmp_path):
    """A line added above f() in a.py moves f: its node id (a hash of its span) changes, so b.py's call
    of f and its import of f now name another node. The rows credited to b.py of call_edges and
    import_targets change, so cpg_edges replaces the rows of a.py and b.py, not c.py's. b.py's name f
    refers to its own import binding, in b.py (a file's names resolve in its own scopes, and star imports
    are the only bindings other files bring): reference_edges replaces a.py's rows alone; so does
    cpg_nodes (relative to nodes_external, the external symbols, none of which changed). The result is a
    full build's."""
    root, out = write_tree(tmp_path / "src", CALLS_ACROSS), tmp_path / "out"
    build(root, out, cache_overrides=RELATIVE_BASES)
    (root / "pkg/a.py").write_text("X = 0\n\n\n" + CALLS_ACROSS["pkg/a.py"])
    build(root, out, cache_overrides=RELATIVE_BASES)

    views = _latest_views(out)
    assert {view: views[view].maintained for view in ("reference_edges", "cpg_edges", "cpg_nodes")} == dict.fromkeys(
        ("reference_edges", "cpg_edges", "cpg_nodes"), "by_file")
    catalog = DatasetCatalog(str(out))
    a_and_b = " OR ".join(f"file_id = '{file}'" for file in sorted(map(file_id_for, ("pkg/a.py", "pkg/b.py"))))
    a_only = f"file_id = '{file_id_for('pkg/a.py')}'"
    assert _last_write(catalog.location("cpg_edges"))["operationParameters"]["predicate"] == a_and_b
    assert _last_write(catalog.staging_location("reference_edges"))["operationParameters"]["predicate"] == a_only
    assert _last_write(catalog.location("cpg_nodes"))["operationParameters"]["predicate"] == a_only
    assert views["nodes_external"].compared_seconds > 0 and views["call_edges"].compared_seconds > 0
    shown = " ".join(run_cli("runs", out).stdout.split())
    assert "compared with the current release's rows, to find the files whose rows changed:" in shown

    fresh = tmp_path / "fresh"
    build(root, fresh)  # (its own policy: nothing staged for this)
    assert _fingerprints(out) == _fingerprints(fresh)


# Two names outside the code base: the module d.py imports (an IMPORTS edge) and the function it calls
# (a CALLS edge), so two EXTERNAL_SYMBOL nodes.
OUTSIDE = "import os\n\nos.getcwd()\n"


def test_an_incremental_build_stages_an_inlined_base_once_to_measure_it(tmp_path, monkeypatch):
    """Nothing in a fixture this small saves a second: with the least saving that makes a base of
    unknown size worth measuring at zero, the first incremental build that changes a file stages the
    bases the outputs are relative to, and says why; a cold build and a build that changes nothing stage
    none of them (they update nothing by file)."""
    from relspec import relative_staging

    monkeypatch.setattr(relative_staging, "EXPLORE_MIN_SECONDS", 0.0)
    root, out = write_tree(tmp_path / "src", {**CALLS_ACROSS, "pkg/d.py": OUTSIDE}), tmp_path / "out"
    build(root, out)
    assert _latest_views(out)["nodes_external"].policy == "none"
    build(root, out)  # nothing changed: every view is reused, nothing is worth measuring
    assert _latest_views(out)["nodes_external"].policy == "none"
    (root / "pkg/c.py").write_text(CALLS_ACROSS["pkg/c.py"] + "\n\ndef h():\n    return 3\n")
    build(root, out)
    views = _latest_views(out)
    for base in RELATIVE_BASES:
        assert (views[base].policy, views[base].outcome) == ("delta_staging", "computed_staged"), base
    why = " ".join(run_cli("why", out, "nodes_external").stdout.split())
    assert "staged, not inlined, to measure it: cpg_nodes took" in why
    # a build that changes nothing keeps it staged (and reuses it)
    shown = " ".join(run_cli("plan", root, "--out", out, "--staging", "delta").stdout.split())
    assert "nodes_external: kept staged, though this build updates nothing by file" in shown
    # measured now, the next edit's plan weighs it against what its readers save (a few milliseconds
    # here, either way), and says so
    (root / "pkg/c.py").write_text(CALLS_ACROSS["pkg/c.py"])
    shown = " ".join(run_cli("plan", root, "--out", out, "--staging", "delta").stdout.split())
    line = shown[shown.index("nodes_external: staged, ") if "nodes_external: staged, " in shown
                 else shown.index("nodes_external: not staged"):][:500]
    assert line.startswith(("nodes_external: not staged for the update by file of cpg_nodes:",
                            "nodes_external: staged, not inlined, so that cpg_nodes can be"))
    assert f"(run {_latest_record(out).run_id} staged its 2 rows in" in line  # os and os.getcwd


def test_modules_added_one_build_at_a_time_build_each_time(tmp_path):
    """Each build adds one module (no import between them): its views are updated for that file
    alone. The fourth used to fail planning use_slots (read by name_resolution): with the file's id
    a constant of every scan, DataFusion's plan check rejected the sorted union under its window
    ("SanityCheckPlan ... does not satisfy order requirements", apache/datafusion#17372)."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    for index in range(5):
        (root / f"pkg/m{index}.py").write_text(f"def f{index}(x):\n    y = x\n    return y\n")
        summary = build(root, out)
        assert (summary.files_added, summary.incremental) == (1, True)
    assert {view for view, outcome in _latest_views(out).items() if outcome.maintained == "by_file"} >= \
        {"name_resolution", "binding_ranks"}
    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)


def _files_opened(outcome: ViewOutcome, table: str) -> list[int]:
    """The data files each scan of ``table`` in the view's executed plan opened."""
    assert outcome.executed is not None
    return [scan.files_opened or 0 for scan in outcome.executed.scans if scan.table == table]


def test_an_update_by_file_reads_only_the_data_files_its_files_may_be_in(tmp_path):
    """Modules added one build at a time: each by-file update appends its file's rows to the staged
    effective_bindings as a data file of their own, whose statistics name that file alone. After a
    one-file edit, binding_ranks (file-local relative to star_bindings) reads of effective_bindings only
    the data files whose range of file ids (in the Delta log) holds the edited file, not all of them
    as the Delta provider would; `cpgflow why` says why, and the output is a fresh build's."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    for index in range(4):
        (root / f"pkg/m{index}.py").write_text(f"def f{index}(x):\n    y = x\n    return y\n")
        build(root, out)
    (root / "pkg/a.py").write_text(EDITED_A)
    build(root, out)
    ranks = _latest_views(out)["binding_ranks"]
    assert ranks.maintained == "by_file"

    staged = DeltaTable(DatasetCatalog(str(out)).staging_location("effective_bindings"))
    actions = pa.table(staged.get_add_actions(flatten=True)).to_pylist()
    a_id = file_id_for("pkg/a.py")
    holding = [row for row in actions if row["min.file_id"] <= a_id <= row["max.file_id"]]
    assert len(actions) >= 5 and 1 <= len(holding) < len(actions)  # TREE's rows (a.py's rewritten), a module's each
    # binding_ranks reads effective_bindings twice (its ranks and its groups), each time as one Parquet
    # scan per data file kept, where the Delta provider's two scans opened every file
    assert _files_opened(ranks, "effective_bindings") == [1] * (2 * len(holding))

    why = run_cli("why", out, "binding_ranks")
    assert why.returncode == 0, why.stderr
    assert "binding_ranks: statistics reads effective_bindings by file_id" in why.stdout
    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)
