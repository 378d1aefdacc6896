"""Releases: readers read the current release only; a run that fails its data checks is quarantined,
not released; rollback, replay, fingerprints; the run's resolver guards the store it writes.

The code bases are two tiny hand-written ones: A (`a.py`), and B = A plus `b.py`, so every node of
A is a node of B (ids hash the path and span, and `a.py` does not change).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import assert_one_line_error, run_cli, write_tree
from datafusion import SessionContext

from driver.api import build_driver, open_session
from driver.delta_store import DeltaTableStore
from driver.lock import LOCK_FILE, BuildLock, FolderChanged, FolderLocked
from relspec.authority import ResolverIdentityError
from relspec.catalog import RUNS_TABLE, DatasetCatalog
from relspec.quarantine import DataCheck, density_in_history
from relspec.runs import read_records

A = {"a.py": "def f():\n    return 1\n\n\nf()\n"}
B = {**A, "b.py": "from a import f\n\n\ndef g():\n    return f()\n"}
FUNCTIONS_A = ["a.f"]
FUNCTIONS_B = ["a.f", "b.g"]
# Holds an output folder's build lock from another process (a lock is re-entrant within one) until killed.
HOLD_LOCK = """
import sys, time
from driver.lock import BuildLock
BuildLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def _functions(out: Path, run_id: str | None = None) -> list[str]:
    session, _ = open_session(out, run_id=run_id)
    rows = session.sql("SELECT qualname FROM cpg_nodes WHERE kind = 'FUNCTION' ORDER BY qualname").to_pylist()
    return [row["qualname"] for row in rows]


def _runs(out: Path) -> list:
    return read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))


def _fingerprint(out: Path) -> dict[str, str]:
    done = run_cli("fingerprint", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _build(root: Path, out: Path):
    return build_driver(root, out, jobs=1).execute(["build_summary"])["build_summary"]


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    return write_tree(tmp_path / "a", A), write_tree(tmp_path / "b", B)


def test_readers_read_the_release_not_the_latest_versions(trees: tuple[Path, Path], tmp_path: Path) -> None:
    code_a, code_b = trees
    out = tmp_path / "out"
    assert _build(code_a, out).release == 1
    # B's outputs written but never released (the run stops before its checks): invisible
    build_driver(code_b, out, jobs=1).execute(["published_cpg"])
    assert DeltaTableStore(DatasetCatalog(str(out))).version("cpg_nodes") == 1
    assert _functions(out) == FUNCTIONS_A
    summary = _build(code_b, out)  # starts from the release: the leftover versions are restored first
    assert "cpg_nodes" in summary.restored and "ex_files" in summary.restored
    assert summary.release == 2 and _functions(out) == FUNCTIONS_B


def _with_dangling_edge(out: Path) -> object:
    """The released edges plus one whose endpoints are no node, as a frame an override can publish."""
    session, _ = open_session(out)
    edges = session.sql("SELECT * FROM cpg_edges").to_arrow_table()
    bad = {name: [None] for name in edges.column_names} | {
        "edge_id": ["e:dangling"], "kind": ["CALLS"], "src": ["n:nowhere"], "dst": ["n:nothing"],
        "file_id": [edges.column("file_id")[0].as_py()], "confidence": [1.0], "resolver": ["test"]}
    rows = pa.concat_tables([edges, pa.table(bad, schema=edges.schema)])
    return SessionContext().from_arrow(rows)


def test_the_dangling_endpoint_check_counts_each_edge_with_an_end_that_is_no_node_once() -> None:
    """By hand: nodes a and b; e1 a->b holds, e2 has only its destination dangling, e3 only its
    source, e4 both: three edges dangle, e2 first by id; with only e1 none does."""
    from dataflows.release import DANGLING_ENDPOINTS_SQL

    def check(edges: list[tuple[str, str, str]]) -> list[dict]:
        session = SessionContext()
        session.from_arrow(pa.table({"node_id": ["a", "b"]}), "cpg_nodes")
        columns = zip(*edges, strict=True)
        session.from_arrow(pa.table(dict(zip(("edge_id", "src", "dst"), map(list, columns), strict=True))), "cpg_edges")
        return session.sql(DANGLING_ENDPOINTS_SQL).to_arrow_table().to_pylist()

    assert check([("e1", "a", "b"), ("e2", "a", "x"), ("e3", "y", "b"), ("e4", "y", "z")]) == [
        {"n": 3, "example": "e2"}]
    assert check([("e3", "y", "b")]) == [{"n": 1, "example": "e3"}]  # the source side alone
    assert check([("e2", "a", "x")]) == [{"n": 1, "example": "e2"}]  # the destination side alone
    assert check([("e1", "a", "b")]) == [{"n": 0, "example": None}]


def test_a_run_that_fails_its_checks_is_quarantined_kept_and_dropped(trees: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    code_a, code_b = trees
    out = tmp_path / "out"
    _build(code_a, out)
    released = _fingerprint(out)
    dr = build_driver(code_b, out, jobs=1)
    summary = dr.execute(["build_summary"], overrides={"cpg_edges": _with_dangling_edge(out)})["build_summary"]
    assert summary.status == "quarantined" and summary.release == 0
    assert summary.message.startswith("quarantined: edges.dangling_endpoint (cpg_edges): 1 edge(s) with an "
                                      "endpoint that is no node, e.g. e:dangling")
    run_id = summary.run_id
    # not released: readers read A; the run is recorded as quarantined, with why
    assert _functions(out) == FUNCTIONS_A and _fingerprint(out) == released
    assert [(run.status, run.message) for run in _runs(out)][-1] == ("quarantined", summary.message)
    why = run_cli("why", out, "run", "--run", run_id)
    assert why.returncode == 0, why.stderr
    assert "data check FAILED edges.dangling_endpoint (cpg_edges): 1 edge(s)" in why.stdout
    assert "data check passed files.module_missing (cpg_nodes)" in why.stdout
    listed = run_cli("quarantine", out)
    assert listed.returncode == 0 and run_id in listed.stdout and "edges.dangling_endpoint" in listed.stdout
    # its tables are kept: readable by run id
    assert _functions(out, run_id) == FUNCTIONS_B
    dangling = "SELECT count(*) AS n FROM cpg_edges e WHERE NOT EXISTS (SELECT 1 FROM cpg_nodes WHERE node_id = e.src)"
    bad = run_cli("query", out, "--run", run_id, "-f", "json", dangling)
    assert json.loads(bad.stdout) == [{"n": 1}]
    # replaying it computes the true edges: cpg_edges differs from what it published, nothing else
    replayed = run_cli("replay", out, run_id)
    assert replayed.returncode == 1
    assert "cpg_edges: DIFFERENT rows" in replayed.stdout and "cpg_nodes: same rows" in replayed.stdout
    assert replayed.stderr.strip() == f"error: replay of run {run_id} differs from what it published: cpg_edges"
    dropped = run_cli("quarantine", out, "--drop")
    assert dropped.returncode == 0 and "dropped: 1 run(s)" in dropped.stdout
    assert "no quarantined run with tables kept" in run_cli("quarantine", out).stdout
    assert _fingerprint(out) == released
    assert _build(code_b, out).status == "released" and _functions(out) == FUNCTIONS_B


def test_a_build_far_outside_the_folders_history_is_quarantined_by_the_cli(trees: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    """Three releases of A set the history; A plus a file of 2,000 comment lines has about 300 times
    fewer nodes and edges per line (a.py: 5 lines; the new module adds a MODULE node and its scope),
    far under a third of the median: quarantined, exit status 4, one line saying why."""
    code_a = trees[0]
    out = tmp_path / "out"
    for _ in range(3):
        assert run_cli("build", code_a, "--out", out, "-j", "1", "-q").returncode == 0
    (code_a / "notes.py").write_text("# a note\n" * 2000)
    done = run_cli("build", code_a, "--out", out, "-j", "1", "-q")
    assert done.returncode == 4
    assert_one_line_error(done.stderr)
    assert "quarantined: rows.outside_history (cpg_nodes)" in done.stderr
    assert "readers still read the previous release" in done.stderr
    assert len(run_cli("releases", out).stdout.splitlines()) == 3 and _functions(out) == FUNCTIONS_A


def test_rollback_makes_an_earlier_release_current_and_the_next_build_starts_from_it(
        trees: tuple[Path, Path], tmp_path: Path) -> None:
    code_a, code_b = trees
    out, clean_a, clean_b = tmp_path / "out", tmp_path / "clean_a", tmp_path / "clean_b"
    _build(code_a, clean_a)
    _build(code_b, clean_b)
    first = _build(code_a, out).run_id
    _build(code_b, out)
    done = run_cli("rollback", out, "--to", first)
    assert done.returncode == 0 and f"the tables of run {first} are current again" in done.stdout
    assert _fingerprint(out) == _fingerprint(clean_a) and _functions(out) == FUNCTIONS_A
    listed = run_cli("releases", out).stdout.splitlines()
    assert len(listed) == 3 and f"rollback to run {first}" in listed[2] and listed[2].endswith("(current)")
    again = _build(code_b, out)
    assert again.release == 4 and _fingerprint(out) == _fingerprint(clean_b)
    unknown = run_cli("rollback", out, "--to", "nosuchrun")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: no release of run 'nosuchrun'")
    assert len(unknown.stderr.splitlines()) == 1


def test_replay_of_an_old_run_after_later_builds_reproduces_it_and_writes_nothing(
        trees: tuple[Path, Path], tmp_path: Path) -> None:
    code_a, code_b = trees
    out = tmp_path / "out"
    first = _build(code_a, out).run_id
    _build(code_b, out)
    before = (_fingerprint(out), run_cli("releases", out).stdout, len(_runs(out)))
    done = run_cli("replay", out, first, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pinned"]["ex_files"] == 0  # A's files table, not B's (version 1)
    assert {check["name"]: check["matches"] for check in report["outputs"]} == {
        "cpg_diagnostics": True, "cpg_edges": True, "cpg_nodes": True, "cpg_points_to": True, "cpg_props": True}
    assert all(check["matches"] for check in report["plans"])  # same policy, same plans
    assert (_fingerprint(out), run_cli("releases", out).stdout, len(_runs(out))) == before


def test_the_same_code_base_has_the_same_fingerprint_whatever_the_folder_and_jobs(
        trees: tuple[Path, Path], tmp_path: Path) -> None:
    code_a, code_b = trees
    one, two = tmp_path / "one", tmp_path / "two"
    build_driver(code_b, one, jobs=1).execute(["build_summary"])
    build_driver(code_b, two, jobs=2).execute(["build_summary"])
    assert _fingerprint(one) == _fingerprint(two)
    _build(code_a, two)
    assert _fingerprint(one)["cpg_nodes"] != _fingerprint(two)["cpg_nodes"]


def test_a_foreign_resolver_given_through_the_pipeline_stops_the_run(trees: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    dr = build_driver(trees[0], out, jobs=1)
    stranger = DeltaTableStore(DatasetCatalog(str(out)))  # the same folder, another resolver
    with pytest.raises(ResolverIdentityError, match="dataset_readiness"):
        dr.execute(["build_summary"], overrides={"table_store": stranger})
    assert not (out / "extract").exists() and not (out / "_releases").exists()


def test_the_size_check_weighs_density_against_history() -> None:
    # under 3 earlier releases: nothing to compare with
    assert density_in_history("cpg_edges", 10, 100, [2.0, 2.0]).passed
    # median of [1.0, 1.2, 0.9] is 1.0: 1.0/3 .. 3.0 rows per line pass, 0.2 and 4.0 fail
    history = [1.0, 1.2, 0.9]
    assert density_in_history("cpg_edges", 100, 100, history).passed
    low = density_in_history("cpg_edges", 20, 100, history)
    assert low == DataCheck("rows.outside_history", "cpg_edges", False,
                            "0.200 rows per line against 0.333..3.000 (the median 1.000 of the last 3 releases, "
                            "divided or multiplied by 3)")
    assert not density_in_history("cpg_edges", 400, 100, history).passed
    # only the last 5 releases count: the old 100.0s are forgotten
    assert density_in_history("cpg_edges", 100, 100, [100.0, 100.0, 1.0, 1.0, 1.0, 1.0, 1.0]).passed


def test_a_driver_planned_before_another_build_released_refuses_to_run(trees: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    """Two drivers for one folder in one process: planning does not hold the folder, so neither waits
    for the other; the one executed second was planned on a release that is no longer current."""
    code_a, code_b = trees
    out = tmp_path / "out"
    stale = build_driver(code_a, out, jobs=1)
    build_driver(code_b, out, jobs=1).execute(["build_summary"])
    with pytest.raises(FolderChanged, match="since this build was planned on release 0"):
        stale.execute(["build_summary"])
    assert len(DeltaTableStore(DatasetCatalog(str(out))).releases()) == 1 and _functions(out) == FUNCTIONS_B
    assert _build(code_a, out).release == 2  # planned again, it runs


def test_a_lock_knows_whether_anyone_held_the_folder_since_it_let_it_go(tmp_path: Path) -> None:
    """What lets a build keep the table handles it opened while planning: its lock taken again with
    no holder in between is undisturbed; after another process held the folder, it is not."""
    out = tmp_path / "out"
    lock = BuildLock(str(out))
    lock.acquire()
    assert not lock.undisturbed  # a first acquisition knows nothing of before
    lock.release()
    lock.acquire()
    assert lock.undisturbed
    lock.release()
    subprocess.run([sys.executable, "-c", "import sys; from driver.lock import BuildLock; "
                    "lock = BuildLock(sys.argv[1]); lock.acquire(); lock.release()", str(out)], check=True,
                   cwd=Path(__file__).resolve().parents[1])
    lock.acquire()
    assert not lock.undisturbed
    lock.release()
    other = BuildLock(str(out))  # another lock of this process in between
    other.acquire()
    other.release()
    lock.acquire()
    assert not lock.undisturbed
    lock.release()


def test_a_lock_inside_a_lock_held_throughout_is_undisturbed(tmp_path: Path) -> None:
    """The CLI holds the folder for a whole build; the driver's lock inside it, let go after planning
    and taken again to execute, knows no one else held the folder meanwhile, unless another lock of
    the process did."""
    out = str(tmp_path / "out")
    with BuildLock(out):
        inner = BuildLock(out)
        inner.acquire()
        inner.release()
        inner.acquire()
        assert inner.undisturbed
        inner.release()
        with BuildLock(out):
            pass
        inner.acquire()
        assert not inner.undisturbed
        inner.release()


def test_a_build_plans_and_executes_with_one_store(trees: tuple[Path, Path], tmp_path: Path) -> None:
    """The lock holder forgets the store's Delta handles when the folder was disturbed: it must be the
    store the execution reads and writes through."""
    from driver.authority import BuildLockHolder

    driver = build_driver(trees[0], tmp_path / "out", jobs=1)
    (holder,) = [adapter for adapter in driver.adapter.adapters if isinstance(adapter, BuildLockHolder)]
    assert holder.store is driver.config["table_store"]


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An output folder with a release of code base A, whose lock another process holds: (folder, its pid)."""
    out = tmp_path / "out"
    _build(write_tree(tmp_path / "held", A), out)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield out, holder.pid
    finally:
        holder.kill()
        holder.wait()


def _written(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_python_api_with_lock_timeout_0_fails_at_once_while_another_build_holds_the_folder(
        trees: tuple[Path, Path], lock_holder: tuple[Path, int]) -> None:
    _, code_b = trees
    out, holder = lock_holder
    before = _written(out)
    with pytest.raises(FolderLocked) as raised:
        build_driver(code_b, out, jobs=1, lock_timeout=0)
    message = str(raised.value)
    assert message.startswith(f"another build (pid {holder} since ") and message.endswith(f") is writing {out}")
    assert len(message.splitlines()) == 1
    assert _written(out) == before and LOCK_FILE in before  # the lock file too: the holder wrote it
    assert len(DeltaTableStore(DatasetCatalog(str(out))).releases()) == 1 and _functions(out) == FUNCTIONS_A


def test_a_rebuild_scans_for_its_checks_only_the_tables_it_changed(trees: tuple[Path, Path], tmp_path: Path) -> None:
    """The endpoint and module checks read cpg_edges, cpg_nodes and ex_files: when a rebuild leaves
    them as the current release names them, that release's passed checks stand; when it changes
    them, they are scanned again."""
    code_a, code_b = trees
    out = tmp_path / "out"
    _build(code_a, out)
    unchanged = build_driver(code_a, out, jobs=1).execute(["data_checks"])["data_checks"]
    details = {check.code: (check.passed, check.detail) for check in unchanged}
    assert details["edges.dangling_endpoint"] == (
        True, "cpg_edges and cpg_nodes unchanged since release 1, which passed this check")
    assert details["files.module_missing"] == (
        True, "cpg_nodes and ex_files unchanged since release 1, which passed this check")
    changed = build_driver(code_b, out, jobs=1).execute(["data_checks"])["data_checks"]
    details = {check.code: (check.passed, check.detail) for check in changed}
    assert details["edges.dangling_endpoint"] == (True, "every endpoint is a node")
    assert details["files.module_missing"] == (True, "every file has its MODULE node")
