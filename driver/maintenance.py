"""Delta maintenance, executed: measure a table's write outcome, decide, compact / vacuum /
checkpoint, and record what happened.

Everything goes through the table URI and deltalake's object store (``DeltaStorageHandler`` for the
two log files read directly), so a cloud table is maintained like a local one. Maintenance never
fails a build: any exception becomes the record's ``error``.
"""

from __future__ import annotations

import re
import time

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler
from pyarrow.fs import FileSelector, PyFileSystem

from driver.parquet_layout import WRITER_PROPERTIES
from driver.storage import StorageOptions
from relspec.catalog import dataset_name
from relspec.maintenance import (
    CLUSTER_FILE_BYTES,
    MaintenanceDecision,
    MaintenancePolicy,
    MaintenanceRecord,
    WriteOutcome,
    decide_maintenance,
)

UNMEASURED_REASON = "skip.outcome_unavailable"
VACUUM_OPERATIONS = frozenset({"VACUUM START", "VACUUM END"})
LOG_FOLDER = "_delta_log"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNKNOWN = (-1, -1)



def _open(table_uri: str, storage_options: StorageOptions) -> DeltaTable:
    return DeltaTable(table_uri, storage_options=storage_options)


def _log_files(table: DeltaTable, storage_options: StorageOptions) -> PyFileSystem:
    return PyFileSystem(DeltaStorageHandler(table.table_uri, storage_options))


def _files_added(files: PyFileSystem, version: int) -> int:
    """Add actions of the commit that made ``version``, whatever its operation (write, merge,
    optimize...): its commit info names the same count differently for each."""
    with files.open_input_stream(f"{LOG_FOLDER}/{version:020d}.json") as commit:
        lines = commit.read().splitlines()
    return sum(1 for line in lines if line.strip() and "add" in msgspec.json.decode(line))


def _checkpoint_version(name: str) -> int | None:
    stem = name.rsplit("/", 1)[-1]
    digits = stem.split(".", 1)[0]
    return int(digits) if ".checkpoint." in stem and digits.isdigit() else None


def _last_checkpoint(files: PyFileSystem, version: int) -> int | None:
    """The version of the newest checkpoint at or below ``version``. ``_last_checkpoint`` is a hint
    the protocol lets a writer omit, so its absence falls back to listing the log."""
    try:
        with files.open_input_stream(f"{LOG_FOLDER}/_last_checkpoint") as hint:
            hinted: int = msgspec.json.decode(hint.read())["version"]
        if hinted <= version:
            return hinted
    except FileNotFoundError:
        pass
    listed = (_checkpoint_version(info.path) for info in files.get_file_info(FileSelector(LOG_FOLDER)))
    return max((found for found in listed if found is not None and found <= version), default=None)


def _last_vacuum(table: DeltaTable, within: int) -> int | None:
    """The newest vacuum commit among the last ``within`` commits. Vacuum commits only when it deletes
    something: a vacuum that found nothing leaves no trace. Only whether one is that recent decides
    anything, so the log further back is not read (its length grows with every build)."""
    return next((commit["version"] for commit in table.history(max(within, 1))
                 if commit.get("operation") in VACUUM_OPERATIONS), None)


def write_outcome(table_uri: str, policy: MaintenancePolicy, storage_options: StorageOptions = None,
                  table: DeltaTable | None = None, vacuumed_at: int = -1) -> WriteOutcome:
    """``table``: a handle on the table at its latest version, to use instead of opening it;
    ``vacuumed_at``: the version a vacuum last ran at, as recorded elsewhere (-1: none known), which
    counts as much as a vacuum commit: one that deleted nothing commits nothing."""
    table = table if table is not None else _open(table_uri, storage_options)
    version = table.version()
    sizes = pa.table(table.get_add_actions()).column("size_bytes")
    log = _log_files(table, storage_options)
    checkpoint = _last_checkpoint(log, version)
    committed = _last_vacuum(table, policy.vacuum_every_versions)
    recorded = vacuumed_at if vacuumed_at <= version else -1  # (past the version: a table since made again)
    vacuum = max(-1 if committed is None else committed, recorded)
    return WriteOutcome(
        dataset=dataset_name(table_uri),
        version=version,
        files_added=_files_added(log, version),
        files_total=len(sizes),
        small_files=int(pc.sum(pc.less(sizes, policy.small_file_bytes)).as_py() or 0),
        bytes_total=int(pc.sum(sizes).as_py() or 0),
        versions_since_checkpoint=version - (-1 if checkpoint is None else checkpoint),
        versions_since_vacuum=version - vacuum,
    )


def _execute(table: DeltaTable, decision: MaintenanceDecision, policy: MaintenancePolicy,
             keep_versions: list[int] | None) -> None:
    # Checkpoint last, so it covers the commits compaction and vacuum (two: START and END) add.
    # A z-order over one column sorts by (a prefix of) it: file ids are hashes, their prefixes differ.
    if decision.compact and policy.cluster_by:
        table.optimize.z_order([policy.cluster_by], target_size=CLUSTER_FILE_BYTES, max_concurrent_tasks=1,
                               writer_properties=WRITER_PROPERTIES)
    elif decision.compact:
        table.optimize.compact(target_size=policy.compact_target_bytes, writer_properties=WRITER_PROPERTIES)
    # A full vacuum: also the data files no commit names (the workers of a distributed extraction that
    # failed before its commit wrote them); one build writes a folder at a time, so none is in flight.
    if decision.vacuum:
        table.vacuum(retention_hours=policy.vacuum_retention_hours, dry_run=False, enforce_retention_duration=False,
                     keep_versions=keep_versions or None, full=True)
    if decision.checkpoint:
        table.update_incremental()
        table.create_checkpoint()


def _state(table: DeltaTable) -> tuple[int, int]:
    return table.version(), len(table.file_uris())


def _state_after(table: DeltaTable) -> tuple[int, int]:
    """The table's state once maintenance committed (the handle reads the commits it made), or
    unknown when the table cannot be read."""
    try:
        table.update_incremental()
        return _state(table)
    except Exception:
        return _UNKNOWN


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {_ANSI.sub('', str(error)).strip()}"


def run_maintenance(table_uri: str, decision: MaintenanceDecision, policy: MaintenancePolicy,
                    storage_options: StorageOptions = None, keep_versions: list[int] | None = None,
                    table: DeltaTable | None = None) -> MaintenanceRecord:
    """Execute ``decision`` and record it, through one handle throughout (``table``, at the table's
    latest version, or one opened here): opening a table replays its log, and a build maintains
    some seventy."""
    started = time.perf_counter()
    before, after, error = _UNKNOWN, _UNKNOWN, None
    try:
        table = table if table is not None else _open(table_uri, storage_options)
        before = _state(table)
        _execute(table, decision, policy, keep_versions)
    except Exception as exc:
        error = _describe(exc)
    if table is not None:
        after = _state_after(table)
    return MaintenanceRecord(
        dataset=decision.dataset,
        decision=decision,
        version_before=before[0],
        version_after=after[0],
        files_before=before[1],
        files_after=after[1],
        seconds=time.perf_counter() - started,
        error=error,
    )


def maintain(table_uri: str, policy: MaintenancePolicy, storage_options: StorageOptions = None,
             keep_versions: list[int] | None = None, table: DeltaTable | None = None,
             vacuumed_at: int = -1) -> MaintenanceRecord:
    """``keep_versions``: versions a vacuum must leave readable (besides the latest); ``table``: a
    handle on the table at its latest version, to use instead of opening it; ``vacuumed_at``: see
    `write_outcome`."""
    started = time.perf_counter()
    try:
        table = table if table is not None else _open(table_uri, storage_options)
        outcome = write_outcome(table_uri, policy, storage_options, table, vacuumed_at)
    except Exception as exc:
        name = dataset_name(table_uri)
        return MaintenanceRecord(
            dataset=name,
            decision=MaintenanceDecision(name, compact=False, checkpoint=False, vacuum=False,
                                         reasons=(UNMEASURED_REASON,)),
            version_before=-1, version_after=-1, files_before=-1, files_after=-1,
            seconds=time.perf_counter() - started,
            error=_describe(exc),
        )
    return run_maintenance(table_uri, decide_maintenance(outcome, policy), policy, storage_options, keep_versions,
                           table)
