"""The Delta store's writes and reads: staging never stalls, writes keep the declared schema, and no
command of ours reads Delta through deltalake's pyarrow readers (which can abort the process at exit)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO, run_cli, write_tree
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake

from driver.delta_store import DeltaTableStore, newest_commits
from relspec.catalog import DatasetCatalog
from relspec.plan_signals import PlanExecution

# A Delta file past 2**20 rows holds two row groups; staging a join over its scan used to stall the
# Delta writer for good (0% CPU), whether it pulled DataFusion's stream directly or through a
# Python generator. It runs in a process of its own: a stalled writer cannot be interrupted.
STAGE_A_JOIN = """
import sys
import pyarrow as pa
from datafusion import SessionConfig, SessionContext
from deltalake import DeltaTable, write_deltalake
from driver.delta_store import DeltaTableStore, newest_commits
from relspec.catalog import DatasetCatalog
from relspec.plan_signals import PlanExecution

root, rows = sys.argv[1], int(sys.argv[2])
write_deltalake(f"{root}/source", pa.table({"id": pa.array(range(rows), pa.int64())}))
session = SessionContext(SessionConfig().with_target_partitions(1))
session.register_table("source", DeltaTable(f"{root}/source"))
frame = session.sql("SELECT a.id FROM source a JOIN source b ON a.id = b.id")
schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
print(DeltaTableStore(DatasetCatalog(root)).stage("joined", PlanExecution(session, frame), schema, "fingerprint",
                                                 "run").rows)
"""
TWO_ROW_GROUPS = 2**20 + 50_000
HANG_GUARD_SECONDS = 300  # not a speed bound: it turns a stall into a failure instead of a stuck run


def test_staging_a_join_over_a_two_row_group_scan_finishes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", STAGE_A_JOIN, str(tmp_path), str(TWO_ROW_GROUPS)],
                          capture_output=True, text=True, cwd=REPO, timeout=HANG_GUARD_SECONDS, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(TWO_ROW_GROUPS)]


def test_a_null_in_a_non_null_column_fails_the_write_before_it_commits(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    session = SessionContext()
    schema = pa.schema([pa.field("node_id", pa.string(), nullable=False)])
    store.overwrite("cpg_nodes", PlanExecution(session, session.sql("SELECT 'n:1' AS node_id")), schema)
    with pytest.raises(Exception, match="null"):
        store.overwrite("cpg_nodes", PlanExecution(session, session.sql(
            "SELECT 'n:2' AS node_id UNION ALL SELECT NULL")), schema)
    assert store.version("cpg_nodes") == 0
    assert store.read("cpg_nodes").to_pylist() == [{"node_id": "n:1"}]


def test_reads_and_registrations_have_plain_string_columns(tmp_path: Path) -> None:
    """DataFusion scans of Delta hand back string_view, which pyarrow kernels such as ``is_in`` lack
    and which makes joins over large files superlinear (see ``_register_plain``)."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    write_deltalake(store.catalog.location("cpg_edges"), pa.table({"kind": ["CALLS"], "confidence": [1.0]}))
    assert store.read("cpg_edges", columns=["kind"]).schema == pa.schema([pa.field("kind", pa.string())])
    write_deltalake(store.catalog.staging_location("view"), pa.table({"name": ["a", "b"]}))
    plain = pa.schema([pa.field("name", pa.string())])
    for registration in ("dataset", "delta"):
        session = SessionContext()
        store.register_staged(session, "view", registration)
        assert session.table("view").schema() == plain
        assert session.sql("SELECT count(*) AS n FROM view").to_arrow_table().to_pylist() == [{"n": 2}]
    store.register(session, "cpg_edges")
    assert session.table("cpg_edges").schema() == pa.schema([pa.field("kind", pa.string()),
                                                             pa.field("confidence", pa.float64())])
    assert "string_view" in str(session.table("delta.cpg_edges").schema())
    held = SessionContext()
    store.register(held, "cpg_edges", in_memory=True)  # read once, held in the session
    assert held.table("cpg_edges").schema() == session.table("cpg_edges").schema()
    assert held.sql("SELECT kind FROM cpg_edges").to_arrow_table().to_pylist() == [{"kind": "CALLS"}]


READER_RUNS = 3


def test_no_command_aborts_at_exit(tmp_path: Path) -> None:
    """Rebuilds read the last build (its file table, each edited file's rows, recursive views'
    inputs) and queries read every table: each command exits 0 with nothing from an abort."""
    source = write_tree(tmp_path / "src", {"pkg/__init__.py": "", "pkg/a.py": "def f():\n    return 1\n"})
    out = tmp_path / "out"
    for run in range(READER_RUNS):
        (source / "pkg/b.py").write_text(f"from pkg.a import f\n\n\ndef g{run}():\n    return f()\n")
        for args in (("build", source, "--out", out, "--jobs", "1", "-q"),
                     ("query", out, "SELECT kind, count(*) AS n FROM cpg_edges GROUP BY kind")):
            done = run_cli(*args)
            assert done.returncode == 0, done.stderr
            assert "terminate called" not in done.stderr, done.stderr


def _files_rows(paths: list[str]) -> pa.Table:
    count = len(paths)
    return pa.table({
        "file_id": [f"f:{path}" for path in paths], "path": paths, "module": [path[:-3] for path in paths],
        "content_hash": ["h"] * count, "size_bytes": [1] * count, "line_count": [1] * count,
        "encoding": ["utf-8"] * count, "extractor_version": ["v"] * count, "parsed": [True] * count,
    })


def _data_files(location: Path) -> list[Path]:
    return [path for path in location.iterdir() if path.suffix == ".parquet"]


def test_rows_kept_at_a_write_are_registered_without_reading_the_table_back(tmp_path: Path) -> None:
    """What `extraction_tables` does for a table the policy reads into memory: the registration takes
    the rows just written. Proven by removing the table's data files first: a read would fail."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = tmp_path / "extract" / "ex_files"
    store.replace_files("ex_files", _files_rows(["b.py", "a.py"]), None, keep=True)
    for path in _data_files(location):
        path.unlink()
    session = SessionContext()
    store.register(session, "ex_files", in_memory=True)
    assert session.sql("SELECT path FROM ex_files").to_arrow_table().column(0).to_pylist() == ["a.py", "b.py"]
    # kept once: a second registration reads the table, which now has no data file
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        store.register(SessionContext(), "ex_files", in_memory=True)


def test_rows_kept_at_a_by_file_replace_are_the_whole_tables_rows(tmp_path: Path) -> None:
    """An incremental build replaces some files' rows; the table it keeps for an in-memory
    registration is every row the table now holds (the other files' rows and the new ones), and it
    is registered without a read (the data files are gone). A replace that changes nothing keeps the
    table as it is, at the version of its rows."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = tmp_path / "extract" / "ex_files"
    store.replace_files("ex_files", _files_rows(["a.py", "b.py", "c.py"]), None)
    edited = _files_rows(["b.py", "d.py"]).set_column(3, "content_hash", pa.array(["new", "new"]))
    version = store.replace_files("ex_files", edited, ["f:b.py", "f:d.py"], keep=True)
    assert version == 1
    same = store.replace_files("ex_files", edited, ["f:b.py", "f:d.py"], keep=True)  # nothing changed: no write
    assert same == 1 and store.version("ex_files") == 1
    for path in _data_files(location):
        path.unlink()
    session = SessionContext()
    store.register(session, "ex_files", in_memory=True)
    held = session.sql("SELECT path, content_hash FROM ex_files ORDER BY path").to_arrow_table().to_pylist()
    assert held == [{"path": "a.py", "content_hash": "h"}, {"path": "b.py", "content_hash": "new"},
                    {"path": "c.py", "content_hash": "h"}, {"path": "d.py", "content_hash": "new"}]


def test_rows_kept_of_an_older_version_are_never_registered(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    store.replace_files("ex_files", _files_rows(["a.py"]), None, keep=True)
    store.replace_files("ex_files", _files_rows(["c.py"]), None)  # a later write, not kept
    assert store.version("ex_files") == 1
    session = SessionContext()
    store.register(session, "ex_files", in_memory=True)
    assert session.sql("SELECT path FROM ex_files").to_arrow_table().column(0).to_pylist() == ["c.py"]
    at_first = SessionContext()
    store.replace_files("ex_files", _files_rows(["d.py"]), None, keep=True)  # version 2, kept
    store.register(at_first, "ex_files", version=0, in_memory=True)  # another version: read from the table
    assert at_first.sql("SELECT path FROM ex_files").to_arrow_table().column(0).to_pylist() == ["a.py"]


def test_metadata_follows_commits_made_by_other_handles(tmp_path: Path) -> None:
    """The store keeps one handle per table for its metadata and brings it up to date on each use:
    a commit made outside the store (maintenance opens tables itself) is seen at once."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    store.replace_files("ex_files", _files_rows(["a.py"]), None)
    assert store.version("ex_files") == 0
    assert store.statistics("ex_files")[0] == 1
    write_deltalake(store.catalog.location("ex_files"), _files_rows(["b.py", "c.py"]), mode="append")
    assert store.version("ex_files") == 1
    assert store.statistics("ex_files")[:1] == (3,)


def test_a_registration_keeps_reading_its_snapshot_while_the_stores_handle_moves_on(tmp_path: Path) -> None:
    """The store registers its one handle per table in sessions: a session must go on reading the
    snapshot it was registered at after the store writes again and brings the handle up to date."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    store.replace_files("ex_files", _files_rows(["a.py"]), None)
    session = SessionContext()
    store.register(session, "ex_files")
    store.replace_files("ex_files", _files_rows(["b.py", "c.py"]), None)  # overwrites: version 1
    assert store.version("ex_files") == 1  # (the handle read the new commit)
    assert session.sql("SELECT path FROM ex_files").to_arrow_table().column(0).to_pylist() == ["a.py"]
    later = SessionContext()
    store.register(later, "ex_files")
    assert sorted(later.sql("SELECT path FROM ex_files").to_arrow_table().column(0).to_pylist()) == ["b.py", "c.py"]


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file URI"])
def test_the_stores_handle_reads_the_log_only_when_a_commit_came_after_it(tmp_path: Path, as_uri: bool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A handle is brought up to date (a read of the log) only when the log holds the commit after its
    version; one made behind the store's back is seen at the next ask (an output named by a path or by
    a ``file://`` URI, in a folder whose name has a space)."""
    folder = tmp_path / "my out"
    store = DeltaTableStore(DatasetCatalog(folder.as_uri() if as_uri else str(folder)))
    store.replace_files("ex_files", _files_rows(["a.py"]), None)
    assert store.version("ex_files") == 0
    updates: list[int] = []
    update = DeltaTable.update_incremental
    monkeypatch.setattr(DeltaTable, "update_incremental", lambda table: updates.append(1) or update(table))
    for _ in range(3):
        assert store.version("ex_files") == 0
    assert updates == []  # nothing committed since: no read of the log
    write_deltalake(store.catalog.location("ex_files"), _files_rows(["b.py"]), mode="append")  # not the store
    assert store.version("ex_files") == 1
    assert updates == [1]
    assert store.version("ex_files") == 1 and updates == [1]
    assert sorted(store.read("ex_files", ["path"]).column(0).to_pylist()) == ["a.py", "b.py"]


def test_a_table_holds_a_released_version_through_maintenance_and_a_restore_to_it(tmp_path: Path) -> None:
    """A release names a table's version after its build's maintenance, which may be a compaction.
    Its rows are the write's before it: later compactions and vacuums keep them, a write does not,
    and a restore to the released version brings them back (Delta's operations, by hand)."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = store.catalog.location("ex_files")
    for paths in (["a.py"], ["b.py"], ["c.py"]):
        write_deltalake(location, _files_rows(paths), mode="append")  # versions 0-2: three data files
    DeltaTable(location).optimize.compact()  # version 3: one file, the same rows; a release names it
    assert store.holds_version("ex_files", 3)
    table = DeltaTable(location)
    table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)  # versions 4, 5
    table.optimize.compact()  # nothing left to compact: no commit, or one that keeps the rows
    assert DeltaTable(location).version() > 3
    assert store.holds_version("ex_files", 3)  # maintenance since: the same rows
    assert store.holds_version("ex_files", 2)  # the write the compaction kept the rows of
    assert not store.holds_version("ex_files", 1)  # version 1 held two of the three rows
    write_deltalake(location, _files_rows(["d.py"]), mode="append")
    assert not store.holds_version("ex_files", 3)  # a write since: other rows
    store.restore("ex_files", 3)
    assert store.holds_version("ex_files", 3)  # restored to the compaction, whose rows are version 2's write
    assert sorted(store.read("ex_files").column("path").to_pylist()) == ["a.py", "b.py", "c.py"]


def test_a_replays_pinned_tables_report_their_pinned_versions_metadata(tmp_path: Path) -> None:
    """A replay reads its pinned extraction tables from the recorded output at the recorded versions:
    their version and statistics (which its policy weighs) are those versions', not the scratch's."""
    from driver.replay import PinnedTableStore

    source = DeltaTableStore(DatasetCatalog(str(tmp_path / "out")))
    source.replace_files("ex_files", _files_rows(["a.py"]), None)
    source.replace_files("ex_files", _files_rows(["a.py", "b.py", "c.py"]), None)
    pinned = PinnedTableStore(DatasetCatalog(str(tmp_path / "scratch")), source, {"ex_files": 0})
    assert pinned.version("ex_files") == 0
    assert pinned.statistics("ex_files")[0] == 1  # version 0's one row, not version 1's three
    assert pinned.holds_version("ex_files", 0)
    assert pinned.version("cpg_nodes") is None  # not pinned: the scratch's own, which has none


def test_a_failed_extraction_write_stops_the_build_before_the_files_table(tmp_path: Path) -> None:
    """The extraction tables are written (two at a time on a small code base) before the files
    table, which marks their rows as current: one that cannot be written fails the build, the
    files table is never written, nothing is released and the spool is removed."""
    from conftest import build

    from driver.storage import SPOOL_FOLDER

    root = write_tree(tmp_path / "src", {"pkg/__init__.py": "", "pkg/a.py": "def f():\n    return g()\n"})
    out = tmp_path / "out"
    write_deltalake(str(out / "extract" / "ex_calls"), pa.table({"x": [1]}))  # a schema no write may replace
    with pytest.raises(Exception, match=r"(?i)schema"):
        build(root, out)
    assert not (out / "extract" / "ex_files").exists()
    assert not (out / "_releases").exists()
    assert not (out / SPOOL_FOLDER / "extraction").exists()


CREDITED = pa.schema([pa.field("file_id", pa.string()), pa.field("name", pa.string()),
                      pa.field("score", pa.float64())])


def _changes_between(tmp_path: Path, before: dict, after: dict, schema: pa.Schema = CREDITED):
    """What `staged_changes` finds between two staged results of one view (the second written over the first)."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    store.stage("credited", pa.table(before, schema=CREDITED), CREDITED, "first", "run")
    version = store.staged_version("credited")
    store.stage("credited", pa.table(after, schema=schema), schema, "second", "run")
    return store.staged_changes(SessionContext(), "credited", version, "file_id")


def test_staged_changes_are_the_files_whose_rows_differ_as_multisets(tmp_path):
    before = {"file_id": ["a", "a", "b", "c", "d"], "name": ["x", "y", None, "z", "w"],
              "score": [1.0, 1.0, 0.5, 2.0, 1.0]}
    # a: the same rows in another order; b: its NULL name kept; c: one row twice (a multiset change);
    # d: a value changed; e: new
    after = {"file_id": ["a", "a", "b", "c", "c", "d", "e"], "name": ["y", "x", None, "z", "z", "w", "v"],
             "score": [1.0, 1.0, 0.5, 2.0, 2.0, 1.5, 1.0]}
    assert _changes_between(tmp_path, before, after) == frozenset({"c", "d", "e"})


def test_staged_changes_are_unknown_when_a_row_credits_no_file(tmp_path):
    """A NULL file is no file a reader's rows can be replaced by: the changes are unknown."""
    before = {"file_id": ["a", "b"], "name": ["x", "y"], "score": [1.0, 1.0]}
    after = {"file_id": ["a", None], "name": ["x", "y"], "score": [1.0, 1.0]}
    assert _changes_between(tmp_path, before, after) is None


def test_staged_changes_are_unknown_when_the_schema_changed(tmp_path):
    row = {"file_id": ["a"], "name": ["x"], "score": [1.0]}
    changed = pa.schema([CREDITED.field("file_id"), CREDITED.field("name"), pa.field("score", pa.int64())])
    assert _changes_between(tmp_path, row, {**row, "score": [1]}, changed) is None


def test_newest_commits_pages_through_the_whole_log_newest_first(tmp_path: Path) -> None:
    """Read a few commits at a time, each commit comes once, newest first, down to the table's
    creation: 75 commits take three pages (8, then 64, then the rest)."""
    location = str(tmp_path / "t")
    for value in range(75):
        write_deltalake(location, pa.table({"v": [value]}), mode="overwrite")
    assert [commit["version"] for commit in newest_commits(DeltaTable(location))] == list(range(74, -1, -1))


def _three_files(location: str) -> None:
    """A table of three data files (one append each) whose ``file_id`` ranges are a..c, d..f and x..z;
    the third file's ``owner`` column has no value, so no statistics."""
    for ids in (["a", "c"], ["d", "f"], ["x", "z"]):
        rows = pa.table({"file_id": ids, "owner": pa.array([None, None] if ids[0] == "x" else ids, pa.string()),
                         "n": [1, 2]})
        write_deltalake(location, rows, mode="append")


@pytest.mark.parametrize(("column", "values", "expected"), [
    ("file_id", ["b"], {"a", "c"}),  # inside the first file's range (though no row holds it)
    ("file_id", ["e", "y"], {"d", "f", "x", "z"}),  # one value in each of two files
    ("file_id", ["g"], set()),  # in no file's range: nothing is read
    ("owner", ["b"], {"a", "c", "x", "z"}),  # the third file has no statistics of owner: it may hold any
])
def test_a_table_registered_by_its_files_statistics_reads_only_the_files_that_may_hold_the_values(
        tmp_path: Path, column: str, values: list[str], expected: set[str]) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = str(tmp_path / "t")
    _three_files(location)
    session = SessionContext()
    files = store.register_files_holding(session, "t", location, column, values)
    assert files == len(expected) // 2
    assert set(session.sql("SELECT file_id FROM t").to_arrow_table().column(0).to_pylist()) == expected
    assert session.table("t").schema() == pa.schema([("file_id", pa.string()), ("owner", pa.string()),
                                                     ("n", pa.int64())])


def test_a_table_in_a_folder_whose_name_the_log_escapes_is_read_by_statistics_all_the_same(tmp_path: Path) -> None:
    """The Delta log and `file_uris()` escape a space as %20; the files are found where they are."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = str(tmp_path / "an output" / "t")
    _three_files(location)
    session = SessionContext()
    assert store.register_files_holding(session, "t", location, "file_id", ["e"]) == 1
    assert sorted(session.sql("SELECT file_id FROM t").to_arrow_table().column(0).to_pylist()) == ["d", "f"]


def test_a_table_is_not_registered_by_statistics_when_every_file_may_hold_the_values(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = str(tmp_path / "t")
    _three_files(location)
    session = SessionContext()
    assert store.register_files_holding(session, "t", location, "file_id", ["a", "e", "y"]) is None
    assert not session.table_exist("t")
