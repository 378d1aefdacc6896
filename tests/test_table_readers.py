"""How the views read a table: its snapshot's Parquet files (filters pushed, row groups pruned) or the
Delta provider (no filter). The proofs read the rows and the executed scans' metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import build, run_cli, write_tree
from deltalake import DeltaTable, write_deltalake

from driver.delta_store import register_delta_table, snapshot_files
from driver.engine import new_session
from relspec.catalog import EXTRACT_TABLES
from relspec.plan_signals import PlanExecution
from relspec.policy import DIRECT_MAX_FILES, TableStats, compile_readers
from relspec.runs import TablePruning

KEYS_PER_FILE = 1000


def _keyed(path: Path, files: int = 4, **options: object) -> Path:
    """``files`` appends, file i holding keys [i*1000, (i+1)*1000) with ``part`` = i % 2."""
    for index in range(files):
        keys = list(range(index * KEYS_PER_FILE, (index + 1) * KEYS_PER_FILE))
        write_deltalake(str(path), pa.table({"k": pa.array(keys, pa.int64()), "s": [f"s{key}" for key in keys],
                                             "part": [str(index % 2)] * len(keys)}), mode="append", **options)
    return path


def _rows(session, sql: str) -> tuple[list[dict], PlanExecution]:
    execution = PlanExecution(session, session.sql(sql))
    return execution.collect().to_pylist(), execution


def test_a_table_read_from_its_files_holds_exactly_its_rows_and_prunes(tmp_path):
    location = _keyed(tmp_path / "keyed")
    # delete the second file's keys: the log removes that file, which stays on disk until a vacuum
    DeltaTable(str(location)).delete("k >= 1000 AND k < 2000")
    files = snapshot_files(DeltaTable(str(location)))
    assert files is not None and len(files) == 3
    session = new_session()
    register_delta_table(session, "direct", DeltaTable(str(location)), "parquet_files")
    register_delta_table(session, "provider", DeltaTable(str(location)), "delta")
    everything = "SELECT k, s FROM {} ORDER BY k"
    direct, _ = _rows(session, everything.format("direct"))
    provider, _ = _rows(session, everything.format("provider"))
    assert direct == provider and len(direct) == 3 * KEYS_PER_FILE
    assert [row["k"] for row in direct] == [*range(0, 1000), *range(2000, 4000)]

    one_range = "SELECT s FROM {} WHERE k BETWEEN 2500 AND 2509"
    rows, execution = _rows(session, one_range.format("direct"))
    assert sorted(row["s"] for row in rows) == [f"s{key}" for key in range(2500, 2510)]
    scans = execution.signals().scans
    assert all("DeltaScan" not in scan.operator for scan in scans)
    # three files, one row group each: the statistics keep the one holding 2500..2509
    assert sum(scan.row_groups_pruned for scan in scans) + sum(scan.files_pruned for scan in scans) == 2
    _, execution = _rows(session, one_range.format("provider"))
    (scan,) = execution.signals().scans
    assert (scan.files_opened, scan.files_pruned, scan.row_groups_pruned) == (3, 0, 0)


def test_a_partitioned_table_is_read_through_the_delta_provider(tmp_path):
    location = _keyed(tmp_path / "parted", files=2, partition_by=["part"])
    assert snapshot_files(DeltaTable(str(location))) is None  # the partition values live in the log
    session = new_session()
    register_delta_table(session, "t", DeltaTable(str(location)), "parquet_files")
    rows, _ = _rows(session, "SELECT part, count(*) AS n FROM t GROUP BY part ORDER BY part")
    assert rows == [{"part": "0", "n": KEYS_PER_FILE}, {"part": "1", "n": KEYS_PER_FILE}]


def test_readers_follow_where_the_output_is_and_how_many_files_a_table_has():
    stats = {"few": TableStats(rows=10, files=3, bytes=100, version=1),
             "many": TableStats(rows=10, files=DIRECT_MAX_FILES + 1, bytes=100, version=1)}
    measured = {"few": TablePruning("run1", True, scans=2, files_opened=6, files_pruned=0, row_groups=6,
                                    row_groups_pruned=0)}
    local = compile_readers(("few", "many", "new"), stats, True, measured)
    assert {name: choice.reader for name, choice in local.items()} == {
        "few": "parquet_files", "many": "delta", "new": "parquet_files"}
    assert local["few"].confidence.score == 1.0
    assert any("6 files opened, 0 pruned" in text for text in local["few"].confidence.evidence)
    assert local["new"].confidence.score < 1.0 and local["new"].confidence.fallback_reason is not None
    remote = compile_readers(("few", "new"), stats, False, measured)
    assert {choice.reader for choice in remote.values()} == {"delta"}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """Twelve modules built, then one edited: the rebuild updates the file-local views by file."""
    base = tmp_path_factory.mktemp("readers")
    files = {f"m{index:02}.py": f"def f{index}(x):\n    y = x + {index}\n    return y\n\nf{index}(1)\n"
             for index in range(12)}
    root = write_tree(base / "src", files)
    out = base / "out"
    build(root, out)
    (root / "m05.py").write_text("def f5(x):\n    return x\n")
    build(root, out)
    return out


def test_a_by_file_rebuild_reads_the_extraction_tables_from_their_files_and_prunes(rebuilt):
    _, second = json.loads(run_cli("runs", rebuilt, "--json").stdout)
    readers = chosen_readers(rebuilt, second["run_id"])
    assert {readers[table] for table in EXTRACT_TABLES} == {"parquet_files"}
    scans = [scan for outcome in second["views"] if outcome["executed"] for scan in outcome["executed"]["scans"]
             if scan["table"] in EXTRACT_TABLES]
    assert scans and all("DeltaScan" not in scan["operator"] for scan in scans)
    statistics = [scan["row_groups_statistics"] for scan in scans if scan["row_groups_statistics"]]
    assert sum(stage["total"] - stage["matched"] for stage in statistics) > 0


def chosen_readers(out: Path, run_id: str) -> dict[str, str]:
    """How run ``run_id``'s policy chose to read each table, from its decision provenance."""
    result = run_cli("query", out, "SELECT subject, value FROM provenance_decisions WHERE kind = 'table_reader' "
                     f"AND run_id = '{run_id}'", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {row["subject"]: row["value"] for row in json.loads(result.stdout)}
