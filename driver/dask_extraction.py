"""Extraction on a Dask cluster, through Hamilton's own dynamic execution.

`extraction` (when the build's ``extraction_executor`` is "dask") cuts the files into shards and runs
`driver.extraction_shards` in a Hamilton driver with dynamic execution and Hamilton's `DaskExecutor`:
each shard is a task on a worker of the cluster, which extracts its files and writes their rows as
Parquet data files into the tables' folders; the build then commits them (`TableStore.replace_files`),
so no row passes through the build's own process. Hamilton's Dask graph adapter was the other way in:
it makes a Dask task of each node of the graph, and extraction is one node, so it cannot fan out.

The cluster is the one at ``scheduler`` (``tcp://HOST:PORT``), or a local cluster of worker processes
on 127.0.0.1 that the build starts and stops. A remote cluster's workers write to their own disks: its
build needs its output on object storage (``s3://``), which every worker reaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hamilton import driver as hamilton_driver
from hamilton.function_modifiers import config, tag
from hamilton.lifecycle import api as lifecycle_api

import driver.extraction_shards
from driver.dask_cluster import dask_client, patient_executor
from driver.extraction_shards import ExtractionShard, ShardFiles, ShardTarget
from relspec.authority import ExecutionAuthority
from relspec.catalog import TableStore
from semantics.entities import EXTRACTION_ENTITIES, DataFile
from semantics.extract.files import FileTask
from semantics.extract.manifest import FileManifest
from semantics.extract.parallel import (
    NO_PROGRESS,
    ExtractedRows,
    Progress,
    group_by_bytes,
    rows_to_table,
)
from semantics.ids import file_id_for

if TYPE_CHECKING:
    from distributed import Client

SHARDS_PER_SLOT = 4  # one shard per slot would leave slots idle behind the slowest one


class WrittenExtraction(ExtractedRows):
    """A distributed extraction's rows: data files in the tables' folders, by entity. Nothing of them
    is on this machine to remove: once committed they are the tables' own; a build that fails first
    leaves them unreferenced, invisible to readers, for the tables' next (full) vacuum to delete
    (`driver.maintenance`)."""

    def __init__(self, files: dict[str, list[DataFile]]) -> None:
        self.files = files

    def table(self, name: str) -> list[DataFile]:
        return self.files.get(name, [])

    def remove(self) -> None:
        """Nothing is held on this machine (see the class)."""

    def held_bytes(self, name: str) -> int:
        """The bytes of the entity's data files: replacing some files' rows reads them back to compare
        them with the rows the table holds (committing them whole reads none; Parquet holds them in
        fewer bytes than Arrow does, so this counts low)."""
        return sum(file.size for file in self.files.get(name, []))


class _ShardProgress(lifecycle_api.TaskReturnHook):
    """Advances the build's progress as each shard's task returns to the build's process (the hook
    travels to the workers with every task: it goes there without the progress display)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.progress = NO_PROGRESS

    def run_after_task_return(self, *, result: Any, success: bool, **future_kwargs: Any) -> None:
        if success and isinstance(result, dict) and isinstance(result.get("shard_files"), ShardFiles):
            self.progress.advance(result["shard_files"].extracted)


@tag(role="extract")
@config.when(extraction_executor="dask")
def extraction__dask(file_manifest: FileManifest, extraction_authority: ExecutionAuthority, table_store: TableStore,
                     dask_scheduler: str | None = None, progress: Progress = NO_PROGRESS) -> ExtractedRows:
    """Rows of every extraction entity for the files this build extracts, extracted by the workers
    of a Dask cluster and written by them beside the tables, for `extraction_tables` to commit."""
    tables = {entity.name: (entity.table, table_store.catalog.location(entity.table)) for entity in EXTRACTION_ENTITIES}
    target = ShardTarget(tables, dict(table_store.storage_options or {}), str(file_manifest.root))
    progress.start(len(file_manifest.tasks))
    written: list[ShardFiles] = []
    if file_manifest.tasks:  # (a rebuild with nothing changed starts no cluster)
        with dask_client(dask_scheduler, extraction_authority.policy.extraction.workers) as client:
            slots = sum(client.nthreads().values())
            shards = [ExtractionShard(tasks) for tasks in _shard_ranges(file_manifest.tasks, slots)]
            written = _extract_shards(client, shards, target, progress)
    files: dict[str, list[DataFile]] = {}
    for shard_result in written:
        for name, file in shard_result.files.items():
            files.setdefault(name, []).append(file)
    for name, file in _skipped_files(file_manifest, target).items():
        files.setdefault(name, []).append(file)
    return WrittenExtraction(files)


def _extract_shards(client: Client, shards: list[ExtractionShard], target: ShardTarget,
                    progress: Progress) -> list[ShardFiles]:
    shard_driver = (hamilton_driver.Builder()
                    .enable_dynamic_execution(allow_experimental_mode=True)
                    .with_modules(driver.extraction_shards)
                    .with_remote_executor(patient_executor(client))
                    .with_adapters(_ShardProgress(progress))
                    .build())
    inputs = {"extraction_shards": shards, "shard_target": target}
    return shard_driver.execute(["extracted_files"], inputs=inputs)["extracted_files"]


def _skipped_files(file_manifest: FileManifest, target: ShardTarget) -> dict[str, DataFile]:
    """The rows of the files the manifest skipped (too large, undecodable), written by this machine."""
    merged: dict[str, list[tuple]] = {}
    for rows in file_manifest.skipped_rows:
        for name, entity_rows in rows.items():
            merged.setdefault(name, []).extend(entity_rows)
    written = {name: target.write(name, rows_to_table(name, entity_rows)) for name, entity_rows in merged.items()}
    return {name: file for name, file in written.items() if file is not None}


def _shard_ranges(tasks: list[FileTask], slots: int) -> list[list[FileTask]]:
    """``tasks`` in file-id order, cut into about `SHARDS_PER_SLOT` shards per slot of the cluster,
    of about equal bytes."""
    ordered = sorted(tasks, key=lambda task: file_id_for(task.path))
    return group_by_bytes(ordered, max(1, sum(len(task.raw) for task in ordered) // max(1, slots * SHARDS_PER_SLOT)))
