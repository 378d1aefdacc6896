"""Hamilton nodes of a distributed extraction: the shards fan out (`Parallelizable`) onto the remote
executor's workers; each worker extracts its shard's files and writes their rows as data files beside
the tables; what they wrote is collected (`Collect`) for the build to commit.

`driver.dask_extraction` runs this module in a Hamilton driver of its own, with dynamic execution and
Hamilton's Dask executor. Only file names, sizes and statistics come back to the build: the rows go
from the workers to the tables' folders directly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
import pyarrow as pa
from hamilton.htypes import Collect, Parallelizable

from driver.delta_store import write_data_file
from semantics.entities import DataFile
from semantics.extract.files import FileTask
from semantics.extract.parallel import ExtractionSpool, run_isolated_extraction


class ExtractionShard(msgspec.Struct, frozen=True):
    """Files one task of the cluster extracts: a contiguous range of file ids, so each data file
    written holds a narrow range of them (as the clustered files of a local build do)."""

    tasks: list[FileTask]


class ShardTarget(msgspec.Struct, frozen=True):
    """Where every shard's rows go: for each extraction entity, its table's name and location, and
    the storage options that reach it; ``source_root`` is kept off the extractor's import path."""

    tables: dict[str, tuple[str, str]]  # entity name -> (table name, table location)
    storage_options: dict[str, str]
    source_root: str

    def write(self, name: str, rows: pa.Table) -> DataFile | None:
        """Entity ``name``'s rows as one data file in its table's folder (None: no rows)."""
        table, location = self.tables[name]
        return write_data_file(location, table, rows, self.storage_options)


class ShardFiles(msgspec.Struct, frozen=True):
    """What a shard wrote: one data file per entity that has rows, and how many files it extracted."""

    files: dict[str, DataFile]
    extracted: int


def shard(extraction_shards: list[ExtractionShard]) -> Parallelizable[ExtractionShard]:
    """Each shard, as a task of its own on the executor."""
    yield from extraction_shards


def shard_files(shard: ExtractionShard, shard_target: ShardTarget) -> ShardFiles:
    """The shard extracted and written beside the tables, on a worker of the cluster: its files are
    extracted in a process of their own (a file that crashes the extractor becomes a diagnostic row)
    into a spool on the worker's disk, then each entity's rows are written as one data file into its
    table's folder."""
    spool = ExtractionSpool(Path(tempfile.mkdtemp(prefix="cpgflow-shard-")) / "spool")
    try:
        run_isolated_extraction(shard.tasks, shard_target.source_root, spool)
        spool.finish()
        written = {name: shard_target.write(name, spool.table(name)) for name in shard_target.tables}
        files = {name: file for name, file in written.items() if file is not None}
    finally:
        spool.remove()
    return ShardFiles(files, len(shard.tasks))


def extracted_files(shard_files: Collect[ShardFiles]) -> list[ShardFiles]:
    """What every shard wrote, gathered on the build's machine."""
    return list(shard_files)
