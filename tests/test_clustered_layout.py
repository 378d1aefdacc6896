"""Tables whose rows belong to source files are clustered by their file column: a by-file replace
rewrites the one data file that holds the file's rows, not the table, and compaction keeps the layout.

Checked from what Delta recorded: the add actions (data files, their row counts and min/max of the
file column) before and after each commit."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import SessionContext, col
from deltalake import DeltaTable

from driver import delta_store
from driver.delta_store import DeltaTableStore
from driver.maintenance import run_maintenance
from relspec.catalog import DatasetCatalog, FileScope, StagedResult
from relspec.maintenance import CLUSTER_FILE_BYTES, MaintenanceDecision, MaintenancePolicy
from relspec.plan_signals import PlanExecution

FILES = 400
ROWS_PER_FILE = 250
SCHEMA = pa.schema([pa.field("file_id", pa.string(), nullable=False), pa.field("payload", pa.string())])


def file_id(index: int) -> str:
    """Like the ids of real files: a hash, so not in index order (the write must sort)."""
    return "file:" + hashlib.blake2b(str(index).encode(), digest_size=16).hexdigest()


def rows_of(files: range, tag: str = "") -> pa.Table:
    """ROWS_PER_FILE rows per file, each with 64 random bytes in hex: they do not compress, so the
    table spans several data files of CLUSTER_FILE_BYTES."""
    count = len(files) * ROWS_PER_FILE
    ids = [file_id(index) for index in files for _ in range(ROWS_PER_FILE)]
    payload = [tag + os.urandom(64).hex() for _ in range(count)]
    return pa.table({"file_id": ids, "payload": payload}, schema=SCHEMA)


def data_files(location: Path) -> dict[str, tuple[int, str, str]]:
    """{data file: (rows, min file_id, max file_id)} of the table's current version."""
    actions = pa.table(DeltaTable(str(location)).get_add_actions(flatten=True))
    return {path: (rows, low, high) for path, rows, low, high in zip(
        actions.column("path").to_pylist(), actions.column("num_records").to_pylist(),
        actions.column("min.file_id").to_pylist(), actions.column("max.file_id").to_pylist(), strict=True)}


def assert_disjoint_ranges(files: dict[str, tuple[int, str, str]]) -> None:
    """The data files' ranges of file ids meet at most at their ends (a file's rows may straddle two)."""
    ranges = sorted((low, high) for _, low, high in files.values())
    assert all(high <= next_low for (_, high), (next_low, _) in itertools.pairwise(ranges)), ranges


def stage(store: DeltaTableStore, frame_or_rows: object, scope: FileScope | None = None) -> StagedResult:
    return store.stage("view", frame_or_rows, SCHEMA, "fingerprint", "run", scope, cluster_by="file_id")  # type: ignore[arg-type]


def test_a_staged_file_local_view_is_written_in_clusters_by_file(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    session = SessionContext()
    session.register_record_batches("source", [rows_of(range(FILES)).to_batches()])
    stage(store, PlanExecution(session, session.table("source")))
    files = data_files(tmp_path / "_staging" / "view")
    size = sum(pa.table(DeltaTable(str(tmp_path / "_staging" / "view")).get_add_actions()).column(
        "size_bytes").to_pylist())
    assert size > 3 * CLUSTER_FILE_BYTES  # the fixture is big enough to need several files
    assert len(files) >= 3
    assert sum(rows for rows, _, _ in files.values()) == FILES * ROWS_PER_FILE
    assert_disjoint_ranges(files)


def test_rows_a_plan_sorts_by_the_file_column_are_streamed_into_clustered_files_in_one_commit(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    session = SessionContext()
    session.register_record_batches("source", [rows_of(range(FILES)).to_batches()])
    frame = session.table("source").sort(col("file_id").sort(ascending=True, nulls_first=True))
    execution = PlanExecution(session, frame, ordered_by="file_id")
    assert execution.in_order_of("file_id") and not execution.in_order_of("payload")
    result = stage(store, execution)
    location = tmp_path / "_staging" / "view"
    table = DeltaTable(str(location))
    assert [commit["operation"] for commit in table.history()] == ["CREATE OR REPLACE TABLE"]  # one commit
    assert (result.rows, result.version) == (FILES * ROWS_PER_FILE, 0)
    assert store.staged_result("view") == ("fingerprint", "run")  # what a later run reuses it by
    files = data_files(location)
    sizes = pa.table(table.get_add_actions()).column("size_bytes").to_pylist()
    assert len(files) >= 3 and max(sizes) < 2 * CLUSTER_FILE_BYTES  # rolled over at about CLUSTER_FILE_BYTES
    assert sum(rows for rows, _, _ in files.values()) == FILES * ROWS_PER_FILE
    assert_disjoint_ranges(files)
    read = SessionContext()
    read.register_table("view", table)
    assert read.sql("SELECT count(DISTINCT payload) FROM view").to_arrow_table().column(0)[0].as_py() == \
        FILES * ROWS_PER_FILE  # every row, once
    # a plan of several partitions does not come in order, whatever its frame says
    unsorted = PlanExecution(_partitioned(), _partitioned().table("source"), ordered_by="file_id")
    assert unsorted.plan.partition_count > 1 and not unsorted.in_order_of("file_id")


def test_batches_larger_than_a_row_group_still_roll_over_into_files_of_the_target_size(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    # row groups of 10 rows, files of ~3,000 bytes, batches of 40 rows (four row groups each): rows of
    # 64 random bytes in hex do not compress, so every file holds one or two row groups (~1.4 KB each)
    monkeypatch.setattr(delta_store, "ROW_GROUP_ROWS", 10)
    monkeypatch.setattr(delta_store, "CLUSTER_FILE_BYTES", 3_000)
    rows = rows_of(range(4)).sort_by("file_id")  # 1,000 rows
    reader = pa.RecordBatchReader.from_batches(SCHEMA, rows.to_batches(max_chunksize=40))
    files = delta_store._write_sorted_files(f"file://{tmp_path}", reader, SCHEMA, {})  # a file:// location
    written = [pq.ParquetFile(tmp_path / file.path) for file in files]
    assert max(file.metadata.num_row_groups for file in written) <= 3
    assert all(group.num_rows <= 10 for file in written for index in range(file.metadata.num_row_groups)
               for group in [file.metadata.row_group(index)])
    assert [file.rows for file in files] == [file.metadata.num_rows for file in written]
    assert pa.concat_tables(file.read() for file in written).equals(rows)  # every row once, in order


def _partitioned() -> SessionContext:
    session = SessionContext()
    batches = rows_of(range(8)).to_batches(max_chunksize=100)
    session.register_record_batches("source", [batches[0::2], batches[1::2]])
    return session


def test_a_by_file_replace_rewrites_only_the_data_file_holding_the_file(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = tmp_path / "_staging" / "view"
    stage(store, rows_of(range(FILES)))
    before = data_files(location)
    target = file_id(123)
    holding = [path for path, (_, low, high) in before.items() if low <= target <= high]
    assert 1 <= len(holding) <= 2 < len(before)
    replacement = rows_of(range(123, 124), tag="new")
    result = store.stage("view", replacement, SCHEMA, "fingerprint", "run", FileScope("file_id", (target,)),
                         cluster_by="file_id")
    after = data_files(location)
    assert set(before) - set(after) == set(holding)  # only the data files holding the file's rows went
    added = set(after) - set(before)
    # what took their place: the rest of their rows and the file's new rows, as many as went
    assert sum(after[path][0] for path in added) == sum(before[path][0] for path in holding)
    assert (result.rows, result.rows_removed) == (ROWS_PER_FILE, ROWS_PER_FILE)
    read = SessionContext()
    read.register_table("view", DeltaTable(str(location)))
    mine = read.sql(f"SELECT payload FROM view WHERE file_id = '{target}'").to_arrow_table().column(0)
    assert mine.num_chunks and all(value.startswith("new") for value in mine.to_pylist())
    assert len(mine) == ROWS_PER_FILE


def test_an_extraction_table_is_written_sorted_by_its_file_column(tmp_path: Path) -> None:
    """Through `replace_files`, the path extraction takes."""
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    files = range(FILES)
    table = pa.table({
        "file_id": [file_id(index) for index in files], "path": [f"f{index}.py" for index in files],
        "module": [f"f{index}" for index in files], "content_hash": ["h"] * FILES, "size_bytes": [1] * FILES,
        "line_count": [1] * FILES, "encoding": ["utf-8"] * FILES, "extractor_version": ["v"] * FILES,
        "parsed": [True] * FILES,
    })
    store.replace_files("ex_files", table, None)
    read = SessionContext()
    read.register_table("ex_files", DeltaTable(str(tmp_path / "extract" / "ex_files")))
    physical = read.sql("SELECT file_id FROM ex_files").to_arrow_table().column(0).to_pylist()  # one data file
    assert physical == sorted(file_id(index) for index in files)


def test_compaction_of_a_clustered_table_keeps_it_clustered(tmp_path: Path) -> None:
    store = DeltaTableStore(DatasetCatalog(str(tmp_path)))
    location = tmp_path / "_staging" / "view"
    stage(store, rows_of(range(FILES)))
    for index in range(0, FILES, 40):  # ten replaces, each adding a small file of new rows
        stage(store, rows_of(range(index, index + 1), tag="new"), FileScope("file_id", (file_id(index),)))
    policy = MaintenancePolicy(compact_min_small_files=1, checkpoint_every_versions=0, vacuum_every_versions=0,
                               cluster_by="file_id")
    decision = MaintenanceDecision("view", compact=True, checkpoint=False, vacuum=False, reasons=("compact",))
    record = run_maintenance(str(location), decision, policy)
    assert record.error is None
    files = data_files(location)
    assert_disjoint_ranges(files)
    assert sum(rows for rows, _, _ in files.values()) == FILES * ROWS_PER_FILE


def test_more_string_bytes_than_one_array_holds_are_sorted_in_pieces(monkeypatch) -> None:
    """A column of more string bytes than 32-bit offsets reach (2 GiB: the props of 16 standard
    libraries) cannot be one array: the rows come back sorted by file all the same, in pieces that
    each fit (the limit is lowered here to a few hundred bytes to get there with a small table)."""
    import driver.delta_store as delta_store

    monkeypatch.setattr(delta_store, "STRING_ARRAY_BYTES", 400)
    files = [f"file:{index:032x}" for index in (7, 3, 9, 1, 5)]
    rows = pa.table({"file_id": [files[index % 5] for index in range(60)],
                     "text": [f"value-{index:04d}" for index in range(60)]})
    chunked = pa.concat_tables([rows.slice(0, 25), rows.slice(25)])
    clustered = delta_store._clustered(chunked, "file_id", rows.schema)
    assert clustered.schema == rows.schema
    assert len(clustered.to_batches()) > 1
    assert clustered.column("file_id").to_pylist() == sorted(rows.column("file_id").to_pylist())
    # stable: within a file, rows keep the order they came in
    expected = sorted(rows.to_pylist(), key=lambda row: row["file_id"])
    assert clustered.to_pylist() == expected
