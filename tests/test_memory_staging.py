"""Staged views of a small code base are held in memory for the run, not written to staging tables:
decided by the policy from the size of the code base, shown from what ran (the run record, the
folder on disk) and giving the same tables as staging in Delta does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build, run_cli, write_tree

from driver.api import build_driver, content_fingerprint, open_session
from driver.authority import NOT_STAGED_REASON, ONE_COMMIT_REASON
from driver.delta_store import DeltaTableStore
from driver.factory import plan_driver
from driver.options import BuildOptionError
from relspec.catalog import EXTRACT_TABLES, LOG_TABLES, RUNS_TABLE, DatasetCatalog
from relspec.costs import input_rows
from relspec.policy import (
    ROWS_PER_SOURCE_BYTE,
    MaterializationStrategy,
    TableStats,
    compile_registration,
    compile_workload,
    memory_staging_max_rows,
    workload_rows,
)
from relspec.runs import read_records
from tests.test_policy import _cache, _pipeline

MACHINE = 16 * 2**30  # the memory of the machine the registrations below are compiled for
# a medium code base: staged views held in memory, extraction tables read through the Delta provider
MEDIUM = {"ex_flows": TableStats(rows=150_000, files=1, bytes=1, version=0)}

TREE = {
    "pkg/__init__.py": "from pkg.base import helper\n",
    "pkg/base.py": "def helper(x):\n    return x + 1\n\n\nclass Base:\n    def run(self):\n        return helper(1)\n",
    "pkg/a.py": "from pkg.base import Base, helper\n\n\nclass A(Base):\n    pass\n\n\n"
                "def main():\n    A().run()\n    return helper(2)\n",
}


def _last_record(out: Path):
    return read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))[-1]


def _fingerprints(out: Path) -> dict[str, str]:
    session, tables = open_session(out)
    return {table: content_fingerprint(session, table) for table in tables if table not in LOG_TABLES}


def test_a_small_code_base_stages_in_memory_and_gets_the_same_tables(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    in_memory, in_delta = tmp_path / "memory", tmp_path / "delta"
    build(root, in_memory)
    build(root, in_delta, staging="delta")
    staged = {outcome.view: outcome.outcome for outcome in _last_record(in_memory).views
              if outcome.policy == "delta_staging"}
    assert staged and set(staged.values()) == {"computed_in_memory"}
    assert not (in_memory / "_staging").exists()  # no staging table was written
    assert (in_delta / "_staging" / "value_flow_fixpoint").exists()
    assert _fingerprints(in_memory) == _fingerprints(in_delta)


def _registration(ir, policies, stats: dict[str, TableStats], source_bytes: int, staging: str = "auto",
                  memory: int = MACHINE) -> MaterializationStrategy:
    return compile_registration(ir, policies, compile_workload(stats, source_bytes, staging, memory=memory))  # type: ignore[arg-type]


def test_the_policy_holds_views_in_memory_by_the_size_of_the_code_base() -> None:
    ir, plan, graph = _pipeline()
    policies = _cache(ir, plan, graph, workload=compile_workload(MEDIUM, 0, memory=MACHINE))  # value_flows staged

    def registrations(stats: dict[str, TableStats], source_bytes: int, staging: str = "auto") -> set[str]:
        return {choice.registration for choice in _registration(ir, policies, stats, source_bytes, staging)
                .registration.values()}

    rows, how = workload_rows({}, 1_000_000)  # a first build: estimated at one row per 20 bytes of source
    assert rows == 1_000_000 * ROWS_PER_SOURCE_BYTE == 50_000 and "estimated from 1,000,000 bytes" in how
    rows, how = workload_rows({"ex_flows": TableStats(rows=70_000, files=1, bytes=1, version=0)}, 200_000)
    assert rows == 80_000 and "70,000 measured by the last build, plus 200,000 bytes" in how
    assert registrations({}, 1_000_000) == {"memory"}  # 50,000 rows: the small tier
    # 150,000 rows: the medium tier, under MEMORY_STAGING_MAX_ROWS: staged views in memory, sources in Delta
    assert registrations({}, 3_000_000) == {"memory", "delta"}
    assert registrations({}, 16_000_000) == {"delta", "dataset"}  # 800,000 rows: staging tables
    large = {"ex_flows": TableStats(rows=800_000, files=1, bytes=1, version=0)}
    assert registrations(large, 0) == {"delta", "dataset"}  # what the last build measured wins
    small = {"ex_flows": TableStats(rows=99_999, files=1, bytes=1, version=0)}
    assert registrations(small, 0) == {"memory"}
    assert registrations(small, 20) == {"memory", "delta"}  # one more row: its sources out of the small tier
    below = {"ex_flows": TableStats(rows=799_999, files=1, bytes=1, version=0)}
    assert registrations(below, 0) == {"memory", "delta"}
    assert registrations(below, 20) == {"delta", "dataset"}  # one more row: staging tables
    assert registrations(small, 0, "delta") == {"delta", "dataset"}
    assert registrations(large, 0, "memory") == {"memory", "delta"}  # the staged views in memory ...
    forced = _registration(ir, policies, large, 0, "memory").registration
    assert {forced[name].registration for name in EXTRACT_TABLES} == {"delta"}  # ... not a large base's sources
    chosen = _registration(ir, policies, {}, 1_000_000).registration["value_flows"]
    assert chosen.confidence.score < 1.0 and "estimated from 1,000,000 bytes" in chosen.confidence.evidence[0]
    assert "under 800,000 rows" in chosen.confidence.evidence[0]
    assert {_registration(ir, policies, small, 0).registration[name].registration
            for name in EXTRACT_TABLES} == {"memory"}
    assert {_registration(ir, policies, MEDIUM, 0).registration[name].registration
            for name in EXTRACT_TABLES} == {"delta"}


def test_a_machine_with_little_memory_holds_fewer_views_in_memory() -> None:
    """A build holding its views peaks at ~480 MiB plus 1,800 bytes a row of its largest table; the
    threshold keeps that within half of the machine's memory: (1 GiB - 480 MiB) / 1,800 bytes is
    316,902 rows on a 2 GiB machine, 18,641 on a 1 GiB one, none on 512 MiB."""
    assert memory_staging_max_rows(16 * 2**30) == memory_staging_max_rows(4 * 2**30) == 800_000
    assert memory_staging_max_rows(2 * 2**30) == 316_902
    assert memory_staging_max_rows(2**30) == 18_641 and memory_staging_max_rows(2**29) == 0
    ir, plan, graph = _pipeline()
    policies = _cache(ir, plan, graph, workload=compile_workload(MEDIUM, 0, memory=MACHINE))
    stats = {"ex_flows": TableStats(rows=400_000, files=1, bytes=1, version=0)}
    roomy = _registration(ir, policies, stats, 0, memory=16 * 2**30).registration["value_flows"]
    tight = _registration(ir, policies, stats, 0, memory=2 * 2**30).registration["value_flows"]
    assert (roomy.registration, tight.registration) == ("memory", "delta")
    assert ("not under 316,902 rows (of 800,000: a build holding more would reach over 50% of this machine's "
            "2,147,483,648 bytes of memory)") in " ".join(tight.confidence.evidence)
    assert compile_workload(stats, 0, "auto", memory=16 * 2**30).staged_in_memory
    assert not compile_workload(stats, 0, "auto", memory=2 * 2**30).staged_in_memory


def test_a_rebuild_counts_only_the_rows_it_keeps_of_the_last_build() -> None:
    """The last build's 70,000 rows count for the share of its source kept unchanged: none of them on a
    full rebuild (every row is written again, at the estimate of the source extracted), half of them
    when half its source is kept (the other half counted at the estimate of what is extracted again)."""
    measured = {"ex_flows": TableStats(rows=70_000, files=1, bytes=1, version=0)}
    rows, how = workload_rows(measured, 1_000_000, kept=0.0)
    assert rows == 50_000 and "every file extracted again" in how
    rows, how = workload_rows(measured, 200_000, kept=0.5)
    assert rows == 35_000 + 10_000 and "35,000 measured by the last build in files kept (50% of its source)" in how
    assert workload_rows(measured, 0)[0] == 70_000  # nothing changed: every row kept


def test_the_manifest_says_what_share_of_the_last_build_it_keeps(tmp_path: Path) -> None:
    """Two files of 10 and 30 bytes, one of 50 over the size cap (40) and one that does not parse: the
    last two count for nothing (a row or two each, whatever their size). A first build keeps nothing,
    an unchanged rebuild all, an edit of the 10-byte one 30 / 40 of the source, a full rebuild
    (--full) nothing; the registration's evidence on the full rebuild counts none of the last build's
    rows, at a lower confidence."""
    root = write_tree(tmp_path / "src", {"a.py": "x = 1    \n", "b.py": "y = 2" + " " * 24 + "\n",
                                         "big.py": "z = 3" + " " * 44 + "\n", "bad.py": "def (:\n"})
    out = tmp_path / "out"

    def planned(**options) -> tuple[float, tuple[str, ...], float]:
        done = plan_driver(root, out, jobs=1, max_file_bytes=40, **options).execute(["file_manifest",
                                                                                     "materialization"])
        chosen = done["materialization"].registration["ex_flows"]
        return done["file_manifest"].kept_share, chosen.confidence.evidence, chosen.confidence.score

    assert planned()[0] == 0.0
    build(root, out, max_file_bytes=40)
    kept, _, score = planned()
    assert kept == 1.0 and score == 1.0
    (root / "a.py").write_text("x = 2    \n")
    assert planned()[0] == 0.75
    kept, evidence, score = planned(full=True)
    assert kept == 0.0 and "every file extracted again" in evidence[0] and score < 1.0


def _scanned_sources(out: Path) -> set[str]:
    """The extraction tables some view of the last run scanned as Delta (parquet) files."""
    return {scan.table for outcome in _last_record(out).views if outcome.executed
            for scan in outcome.executed.scans if scan.table in EXTRACT_TABLES}


def test_a_small_code_base_reads_its_extraction_tables_from_memory(tmp_path: Path) -> None:
    """From what ran: the small build's views scanned no extraction table's files, the same build
    with Delta staging (and so Delta sources) scanned them."""
    root = write_tree(tmp_path / "src", TREE)
    in_memory, in_delta = tmp_path / "memory", tmp_path / "delta"
    build(root, in_memory)
    build(root, in_delta, staging="delta")
    assert _scanned_sources(in_memory) == set()
    assert {"ex_references", "ex_flows"} <= _scanned_sources(in_delta)
    # what the next compile reads of a view's inputs still counts the tables it read from memory
    record, graph = _last_record(in_memory), _pipeline()[2]
    assert graph.sources["top_packages"] == ("ex_modules",) and not graph.inputs("top_packages")
    assert input_rows([record], graph)["top_packages"] == (record.run_id, record.source_rows["ex_modules"])
    assert record.source_rows["ex_modules"] == 3  # pkg, pkg.base, pkg.a: the modules of TREE
    # a fixpoint's input is its largest input, not their sum: each of its queries reads a few of them
    # (and an input inlined into it, such as value_flows, counts as the tables it reads: ex_flows)
    fixpoint, made = "value_flow_fixpoint", {outcome.view: outcome.rows for outcome in record.views}
    assert made["value_flows"] is None and "ex_flows" not in graph.sources[fixpoint]
    inputs = [*(made[name] for name in graph.inputs(fixpoint) if made[name] is not None),
              *(record.source_rows[name] for name in (*graph.sources[fixpoint], *graph.sources["value_flows"]))]
    assert input_rows([record], graph)[fixpoint] == (record.run_id, max(inputs)) and max(inputs) < sum(inputs)
    planned = json.loads(run_cli("plan", root, "--json").stdout)["policy"]["sources"]
    assert set(planned) == set(EXTRACT_TABLES) and planned["ex_flows"]["registration"] == "memory"


def test_a_rebuild_in_memory_reuses_the_outputs_and_leaves_no_staging_table(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    build(root, out, staging="delta")  # a folder that has staging tables from an earlier build
    assert (out / "_staging").exists() and any((out / "_staging").iterdir())
    build(root, out)
    record = _last_record(out)
    assert {outcome.outcome for outcome in record.views if outcome.policy == "delta_output"} == {"reused"}
    removed = {entry.dataset for entry in record.maintenance if entry.decision.reasons == (NOT_STAGED_REASON,)}
    assert "value_flow_fixpoint" in removed
    assert not any((out / "_staging").iterdir())  # the tables no view is staged in any more went


def test_maintenance_leaves_tables_a_build_just_made_unmeasured(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    build(root, out)
    fresh = {entry.dataset for entry in _last_record(out).maintenance
             if entry.decision.reasons == (ONE_COMMIT_REASON,)}
    assert {"cpg_nodes", "cpg_edges", "ex_files"} <= fresh


def test_a_bad_staging_choice_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    with pytest.raises(BuildOptionError, match="staging"):
        build_driver(root, tmp_path / "out", staging="disk")  # type: ignore[arg-type]
    done = run_cli("build", root, "--out", tmp_path / "out", "--staging", "disk")
    assert done.returncode != 0 and "disk" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_old_runs_leave_the_history_with_their_rows_but_the_kept_releases_runs_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a history of 2 runs (a quarter more is 2), the fourth build finds 3 recorded and drops the
    oldest: from the run table, the calibration and the provenance tables. A run a kept release names
    (the last two) would stay."""
    import driver.authority

    monkeypatch.setattr(driver.authority, "RUN_RETENTION", 2)
    root = write_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    store = DeltaTableStore(DatasetCatalog(str(out)))
    for edit in range(4):
        if edit == 3:
            before = [run.run_id for run in read_records(store.read(RUNS_TABLE))]
        (root / "pkg" / "a.py").write_text(TREE["pkg/a.py"] + f"\n\ndef extra_{edit}(y):\n    return y\n")
        build(root, out)
    runs = [run.run_id for run in read_records(store.read(RUNS_TABLE))]
    assert len(before) == 3 and runs[:2] == before[1:] and len(runs) == 3  # the oldest went; the fourth came after
    for name in ("provenance_decisions", "provenance_evidence", "provenance_edges", "cpg_calibration"):
        assert set(store.read(name, columns=["run_id"]).column("run_id").to_pylist()) == set(runs), name
    (decision,) = [d for d in read_records(store.read(RUNS_TABLE))[-1].decisions
                   if d.decision_type == "run_retention"]
    assert decision.decision_value == "1 runs dropped" and decision.evidence[-1] == f"dropped: {before[0]}"
    assert {release.run_id for release in store.releases()[-2:]} <= set(runs)


def test_a_rebuild_after_an_edit_in_memory_equals_a_fresh_build(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(root, out)
    (root / "pkg" / "a.py").write_text(TREE["pkg/a.py"] + "\n\ndef extra(y):\n    return helper(y)\n")
    summary = build(root, out)
    assert summary.incremental and summary.files_extracted == 1
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)


def test_a_view_inlined_for_passing_rows_on_gives_the_tables_staging_gives(tmp_path: Path) -> None:
    """value_flows (`SELECT ... FROM ex_flows`) is inlined into its readers on a build with staging
    tables; staged by an override, it gives the same tables, and only then is it a staging table."""
    root = write_tree(tmp_path / "src", TREE)
    inlined, staged = tmp_path / "inlined", tmp_path / "staged"
    build(root, inlined, staging="delta")
    build(root, staged, staging="delta", cache_overrides={"value_flows": "delta_staging"})
    outcomes = {out: {outcome.view: outcome.outcome for outcome in _last_record(out).views}
                for out in (inlined, staged)}
    assert (outcomes[inlined]["value_flows"], outcomes[staged]["value_flows"]) == ("lazy", "computed_staged")
    assert not (inlined / "_staging" / "value_flows").exists() and (staged / "_staging" / "value_flows").exists()
    assert _fingerprints(inlined) == _fingerprints(staged)
