"""The Delta Lake implementation of `relspec.catalog.TableStore`.

Every write is one Delta commit, so a reader (or a run interrupted mid-write) sees either the old
version of a table or the new one, never a half-written table.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datafusion import DataFrame, Expr, SessionContext, col
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions
from pyarrow import fs

from driver.changes import changed_groups, quoted
from driver.lock import check_lease
from driver.maintenance import maintain
from driver.parquet_layout import ROW_GROUP_ROWS, STATS_STRING_CHARS, WRITER_PROPERTIES
from driver.storage import (
    SPOOL_FOLDER,
    StorageOptions,
    delete_folder,
    is_object_store,
    list_folders,
    local_folder,
    local_path,
    object_store,
    register_object_store,
)
from relspec.calibration import CALIBRATION_SCHEMA
from relspec.catalog import (
    CALIBRATION_TABLE,
    RELEASES_TABLE,
    RUNS_TABLE,
    DatasetCatalog,
    FileScope,
    StagedResult,
    TableStore,
)
from relspec.maintenance import CLUSTER_FILE_BYTES, MaintenancePolicy, MaintenanceRecord
from relspec.plan_signals import PlanExecution
from relspec.provenance import PROVENANCE_SCHEMAS
from relspec.releases import RELEASE_SCHEMA
from relspec.runs import RUN_SCHEMA
from semantics.entities import EXTRACTION_ENTITIES, DataFile, EntityDecl
from semantics.fixpoint import register_in_memory
from semantics.types import SEMANTIC_METADATA_KEY, SemanticType

_DECLARATIONS: dict[str, EntityDecl] = {entity.table: entity for entity in EXTRACTION_ENTITIES}
FINGERPRINT_KEY = "cpgflow.fingerprint"
RUN_KEY = "cpgflow.run_id"  # the run that wrote a staged or published result
LOG_SCHEMAS = {RUNS_TABLE: RUN_SCHEMA, RELEASES_TABLE: RELEASE_SCHEMA, CALIBRATION_TABLE: CALIBRATION_SCHEMA,
               **PROVENANCE_SCHEMAS}
# Commits that leave a table's rows as they were: a result recorded before them still describes it.
SAME_DATA_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})
STRING_ARRAY_BYTES = 2**31 - 1  # the most bytes a string array with 32-bit offsets holds
WRITE_OPERATIONS = frozenset({"WRITE", "CREATE TABLE", "CREATE OR REPLACE TABLE"})
FIRST_COMMITS_READ = 8  # `newest_commits` reads this many, then eight times as many each time

_SCAN_NAME = "delta_scan"
DELTA_SCHEMA = "delta"  # where a session's Delta providers are; its default schema holds views over them



def physical_schema(schema: pa.Schema, *, nullable: bool = False) -> pa.Schema:
    """The declared schema without field metadata. Semantic types travel in the table description
    instead: DataFusion refuses to union or recurse over fields whose metadata differ."""
    return pa.schema([field.remove_metadata().with_nullable(nullable or field.nullable) for field in schema])


def semantic_description(schema: pa.Schema) -> str:
    types = {field.name: (field.metadata or {}).get(SEMANTIC_METADATA_KEY, b"").decode() for field in schema}
    return msgspec.json.encode({"cpgflow.semantic_types": types}).decode()


@contextmanager
def _rows(data: pa.Table | PlanExecution, schema: pa.Schema) -> Iterator[pa.Table | pa.RecordBatchReader]:
    """``data`` cast to ``schema`` batch by batch (a null in a non-null column fails the write
    before it commits; string_view columns are converted, not relabelled).

    A frame's plan is executed on threads of its own (`PlanExecution`) and handed to the Delta
    writer through a bounded queue. The writer must not pull DataFusion's stream itself, directly or
    through a Python generator: it pulls on a thread of its own runtime, which then blocks inside
    DataFusion while DataFusion waits on a Delta scan; past some size (a staged view of a 4 MB file; a
    self-join over a Delta file of two row groups) every thread idles for good.
    tests/test_delta_store.py reproduces it."""
    if isinstance(data, pa.Table):
        yield data.cast(schema)
        return
    with data:
        yield data.reader(schema)


def _register_plain(session: SessionContext, name: str, table: DeltaTable, options: StorageOptions) -> None:
    """``name``: a view casting the string_view columns of the table's Delta scan (registered as
    ``delta.<name>``) to plain strings. A string_view batch that a sort, filter or join made keeps
    every buffer of its input alive, and operators gathering such batches copy those buffers once
    per batch: superlinear in a file's size (joining a 16 MB module's name uses to its bindings:
    6.5 s and 2.1 GB over string_view scans, 1.5 s and 1.4 GB over plain strings)."""
    raw = f"{DELTA_SCHEMA}.{name}"
    session.sql(f"CREATE SCHEMA IF NOT EXISTS {DELTA_SCHEMA}").collect()
    _replace(session, name)
    _register_raw(session, raw, table, options)
    scan = session.table(raw)
    session.register_view(name, scan.select(*(_plain(field) for field in scan.schema())))


def _register_raw(session: SessionContext, name: str, table: DeltaTable, options: StorageOptions) -> None:
    """The table's rows under ``name``: its Delta provider, or on object storage a view over its
    snapshot's Parquet files (see `driver.storage`)."""
    _replace(session, name)
    if not is_object_store(table.table_uri):
        session.register_table(name, table)
        return
    if not _files_are_rows(table):
        raise ValueError(f"{table.table_uri}: a table with deletion vectors, column mapping or partitions "
                         "cannot be read from object storage here")
    _register_files(session, name, table, options, table.file_uris())


def _files_are_rows(table: DeltaTable) -> bool:
    """Whether the table's rows are its data files' rows as Parquet reads them: no deletion vectors,
    no column mapping, no partition values kept only in the log."""
    return table.protocol().min_reader_version == 1 and not table.metadata().partition_columns


def _register_files(session: SessionContext, name: str, table: DeltaTable, options: StorageOptions,
                    uris: list[str]) -> None:
    """``name``: the rows of the table's data files at ``uris`` (files of its snapshot), read as
    Parquet with the table's schema (strings plain)."""
    schema = pa.schema(table.schema().to_arrow())
    if not uris:
        register_in_memory(session, name, schema.empty_table())
        return
    if is_object_store(table.table_uri):
        register_object_store(session, table.table_uri, options)
    frame = _parquet_union(session, uris, schema)
    session.register_view(name, frame.select(*(_plain(field) for field in frame.schema())))


def _files_holding(table: DeltaTable, column: str, values: Sequence[str]) -> list[str] | None:
    """The paths (as the Delta log names them, relative to the table) of the table's data files whose
    statistics say they may hold a row whose ``column`` is one of ``values``, or None when every file
    may. A file without statistics of the column may hold any. (Both writers keep a long string's
    statistics a bound: a cut minimum is a prefix, a long maximum is raised or left out.)"""
    actions = pa.table(table.get_add_actions(flatten=True))
    low, high = f"min.{column}", f"max.{column}"
    if low not in actions.column_names or high not in actions.column_names:
        return None
    wanted = sorted(values)
    mins, maxes = actions.column(low).to_pylist(), actions.column(high).to_pylist()
    paths = actions.column("path").to_pylist()
    kept = [path for path, first, last in zip(paths, mins, maxes, strict=True)
            if first is None or last is None or _any_within(wanted, first, last)]
    return None if len(kept) == len(paths) else kept


def _data_file_uris(table: DeltaTable, location: str, paths: list[str]) -> list[str] | None:
    """Where Parquet reads the table's data files at ``paths`` (log paths): files under the table's folder
    on a local disk (the log escapes characters such as spaces), the provider's URIs on object storage;
    None when one is not found."""
    if is_object_store(location):
        uris = table.file_uris()
        found = [next((uri for uri in uris if uri.endswith("/" + path)), None) for path in paths]
        return None if None in found else [uri for uri in found if uri is not None]
    files = [local_path(location) / unquote(path) for path in paths]
    return [str(file) for file in files] if all(file.is_file() for file in files) else None


def _any_within(ordered: list[str], low: str, high: str) -> bool:
    at = bisect.bisect_left(ordered, low)
    return at < len(ordered) and ordered[at] <= high


def _parquet_union(session: SessionContext, uris: list[str], schema: pa.Schema) -> DataFrame:
    """The rows of the Parquet files at ``uris`` (one or more), read with ``schema``."""
    return functools.reduce(DataFrame.union, [session.read_parquet(uri, schema=schema) for uri in uris])


def _plain(field: pa.Field) -> Expr:
    column = col(field.name)
    return column.cast(pa.string()).alias(field.name) if pa.types.is_string_view(field.type) else column


def _scan(table: DeltaTable, options: StorageOptions, columns: list[str] | None = None,
          where: str | None = None) -> pa.Table:
    """A Delta table's rows read through a DataFusion session of its own, with the table's schema
    (DataFusion hands back string_view columns, which pyarrow kernels such as ``is_in`` lack).
    Never through deltalake's pyarrow readers: their thread pool can abort the process at exit."""
    schema = pa.schema(table.schema().to_arrow())
    if columns is not None:
        schema = pa.schema([schema.field(column) for column in columns])
    session = SessionContext()
    _register_raw(session, _SCAN_NAME, table, options)
    projection = ", ".join(quoted(field.name) for field in schema)
    condition = f" WHERE {where}" if where else ""
    return session.sql(f"SELECT {projection} FROM {_SCAN_NAME}{condition}").to_arrow_table().cast(schema)


def _committed_after(location: str, version: int) -> bool:
    """Whether table ``location`` may have a version past ``version``. On a local disk exactly: its
    log holds the next commit's file (commits are numbered without a gap and never renamed; a file
    test costs microseconds where reading the log for new commits costs ~0.5 ms, and a small build
    asks some two hundred times). On object storage always (a listing would cost what the update does).
    (Log cleanup deletes commit files only past the log's retention, 30 days by default: never the
    commit after a handle a build opened.)"""
    if is_object_store(location):
        return True
    return (local_path(location) / "_delta_log" / f"{version + 1:020d}.json").exists()


class DeltaTableStore(TableStore):
    def __init__(self, catalog: DatasetCatalog, storage_options: dict[str, str] | None = None) -> None:
        self.catalog = catalog
        self.storage_options = storage_options
        self._kept: dict[str, tuple[int, pa.Table]] = {}  # see `replace_files`'s ``keep``
        self._handles: dict[str, DeltaTable] = {}  # see `_latest`

    def _open(self, location: str, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(location, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def _latest(self, location: str, fresh: bool = False) -> DeltaTable | None:
        """The table's latest snapshot: one handle per location, brought up to date by reading the
        commits made since (a fraction of the cost of opening the table again, which replays its log
        from the last checkpoint: ~5-10 ms a table, and a build reads some fifty). A session it is
        registered in keeps reading the snapshot it was registered at when the handle is brought up to
        date later (the provider holds a copy; tests/test_delta_store.py pins it). A handle sees new
        commits but not a table removed and made again, so handles live while this process holds the
        build lock (see `forget_metadata`), and the store drops a staging table's handle when it
        removes the table. ``fresh``: bring it up to date whatever `_committed_after` says (after this
        store's own write, whose version goes into a release)."""
        handle = self._handles.get(location)
        if handle is not None:
            if fresh or _committed_after(location, handle.version()):
                handle.update_incremental()
            return handle
        handle = self._open(location)
        if handle is not None:
            self._handles[location] = handle
        return handle

    def _metadata(self, name: str) -> DeltaTable | None:
        """The latest snapshot of table ``name``, for its metadata (see `_latest`)."""
        return self._latest(self.catalog.location(name))

    def forget_metadata(self) -> None:
        self._handles.clear()

    def _version_at(self, location: str) -> int:
        """The version of a table this store has just written."""
        table = self._latest(location, fresh=True)
        assert table is not None
        return table.version()

    def parquet_scans(self) -> bool:
        return is_object_store(self.catalog.root)  # as `_register_raw` reads them

    def spool_location(self, purpose: str) -> str:
        return f"{local_folder(self.catalog.root).rstrip('/')}/{SPOOL_FOLDER}/{purpose}"

    def _table(self, name: str, version: int | None = None) -> DeltaTable | None:
        """Table ``name`` at ``version`` (None: its latest, through the store's handle)."""
        if version is None:
            return self._metadata(name)
        return self._open(self.catalog.location(name), version)

    def version(self, name: str) -> int | None:
        table = self._metadata(name)
        return None if table is None else table.version()

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        table = self._table(name)
        return None if table is None else _scan(table, self.storage_options, columns)

    def statistics(self, name: str) -> tuple[int, int, int, int] | None:
        table = self._metadata(name)
        if table is None:
            return None
        actions = pa.table(table.get_add_actions(flatten=True))
        size = pc.sum(actions.column("size_bytes")).as_py() if actions.num_rows else 0
        return _row_count(actions), actions.num_rows, int(size or 0), table.version()

    def replace_files(self, name: str, rows: pa.Table | list[DataFile], file_ids: list[str] | None,
                      keep: bool = False) -> int:
        """Replace the rows of ``file_ids`` (None: of every file) with ``rows`` in one commit
        (``rows`` given as data files a distributed extraction wrote: see `_commit_data_files`).

        When the files' rows are exactly what the table already holds (an edit that moved nothing
        this entity records), nothing is written and the version of the table's rows is returned:
        the version of the commit that last changed them (compaction and vacuum change none), so
        views over the table keep their staged results. ``keep``: the rows the table holds after
        the write are kept for `register` to take instead of reading them back (on a replace, the
        table is read whole once, as the comparison reads it)."""
        if isinstance(rows, list):
            return self._commit_data_files(name, rows, file_ids)
        declared = _DECLARATIONS[name].arrow_schema()
        owner = _DECLARATIONS[name].require(SemanticType.FILE_ID).name
        rows = _clustered(rows, owner, physical_schema(declared))
        table = self._table(name)
        if table is None or file_ids is None:
            version = self._write(name, rows, mode="overwrite", description=semantic_description(declared),
                                  target_file_size=CLUSTER_FILE_BYTES)
            if keep:
                self._kept[name] = (version, rows)
            return version
        if not file_ids and not keep:
            return _data_version(table)
        scope = FileScope(owner, tuple(file_ids))
        if keep:  # read whole (the provider filters after its scan anyway), and keep what it will hold
            whole = _scan(table, self.storage_options).cast(rows.schema)
            replaced = pc.is_in(whole.column(owner), value_set=pa.array(file_ids, rows.schema.field(owner).type))
            current, others = whole.filter(replaced), whole.filter(pc.invert(replaced))
        else:
            current = _scan(table, self.storage_options, where=scope.predicate())
        if _same_rows(current, rows):
            version = _data_version(table)
        else:
            version = self._write(name, rows, mode="overwrite", predicate=scope.predicate(),
                                  target_file_size=CLUSTER_FILE_BYTES)
        if keep:
            self._kept[name] = (version, pa.concat_tables([others, rows]))
        return version

    def _commit_data_files(self, name: str, files: list[DataFile], file_ids: list[str] | None) -> int:
        """`replace_files` with rows that workers already wrote into the table's folder: the build
        commits their add actions in one commit (a table that does not exist yet is created first;
        replacing some files' rows deletes those rows in a commit before). Files that repeat the rows
        the table holds are deleted instead of committed, as `replace_files` writes nothing then.
        Readers see none of these commits before the build's release names them."""
        self._kept.pop(name, None)
        declared = _DECLARATIONS[name].arrow_schema()
        schema = physical_schema(declared)
        location = self.catalog.location(name)
        _require_written(location, files)
        table = self._table(name)
        if table is not None and file_ids is not None:
            scope = FileScope(_DECLARATIONS[name].require(SemanticType.FILE_ID).name, tuple(file_ids))
            if not file_ids or _same_rows(_scan(table, self.storage_options, where=scope.predicate()),
                                          _read_data_files(location, files, schema, self.storage_options)):
                _delete_data_files(location, files, self.storage_options)
                return _data_version(table)
            check_lease(self.catalog.root)
            table.delete(scope.predicate())
        check_lease(self.catalog.root)
        if table is None:
            table = DeltaTable.create(location, schema, description=semantic_description(declared),
                                      storage_options=self.storage_options)
        adds = [_add_action(file) for file in files]
        table.create_write_transaction(adds, mode="overwrite" if file_ids is None else "append", schema=schema)
        return self._version_at(location)

    def overwrite(self, name: str, data: pa.Table | PlanExecution, schema: pa.Schema,
                  fingerprint: str | None = None, run_id: str | None = None,
                  scope: FileScope | None = None, cluster_by: str | None = None) -> StagedResult:
        metadata = {FINGERPRINT_KEY: fingerprint, RUN_KEY: run_id or ""} if fingerprint else None
        return self._overwrite(self.catalog.location(name), data, physical_schema(schema), metadata, scope,
                               cluster_by, description=semantic_description(schema))

    def _overwrite(self, location: str, data: pa.Table | PlanExecution, schema: pa.Schema,
                   metadata: dict[str, str] | None, scope: FileScope | None, cluster_by: str | None,
                   **options: object) -> StagedResult:
        """One commit replacing the table at ``location`` (with ``scope``: the rows of its files),
        clustered by ``cluster_by`` if given."""
        before = self._latest(location)
        scoped = scope is not None and before is not None
        rows_before = _row_count(pa.table(before.get_add_actions(flatten=True))) if before is not None else 0
        if scoped:
            options["predicate"] = scope.predicate()  # type: ignore[union-attr]
        elif cluster_by is not None and isinstance(data, PlanExecution) and data.in_order_of(cluster_by):
            return self._replace_with_sorted(location, data, schema, metadata, rows_before, options.get("description"))
        else:
            options["schema_mode"] = "overwrite"
        if cluster_by is not None:
            data = _clustered(data, cluster_by, schema)
            options["target_file_size"] = CLUSTER_FILE_BYTES
        check_lease(self.catalog.root)  # a build whose lease on object storage was taken over commits nothing
        with _rows(data, schema) as rows:
            write_deltalake(location, rows, mode="overwrite", storage_options=self.storage_options,
                            commit_properties=CommitProperties(custom_metadata=metadata),
                            writer_properties=WRITER_PROPERTIES, **options)  # type: ignore[arg-type]
        table = self._latest(location, fresh=True)
        assert table is not None  # just written
        added = int(table.history(1)[0].get("operationMetrics", {}).get("num_added_rows", 0))
        rows_after = _row_count(pa.table(table.get_add_actions(flatten=True)))
        removed = rows_before - (rows_after - added) if scoped else rows_before
        return StagedResult(rows=added, version=table.version(), rows_removed=removed)

    def _replace_with_sorted(self, location: str, data: PlanExecution, schema: pa.Schema,
                             metadata: dict[str, str] | None, rows_before: int, description: object) -> StagedResult:
        """The whole table at ``location`` replaced, in one commit, by the rows of ``data``, which come
        sorted by the column the table is clustered by: each batch is written as it comes into data
        files of about `CLUSTER_FILE_BYTES`, so the table is never held whole (nor twice, as sorting it
        here took: the rows arrive in DataFusion's memory, which spills, and a sorted copy was made in
        pyarrow's, which cannot reuse what DataFusion frees)."""
        with data:
            files = _write_sorted_files(location, data.reader(schema), schema, self.storage_options)
        check_lease(self.catalog.root)  # a build whose lease on object storage was taken over commits nothing
        create_table_with_add_actions(
            location, DeltaSchema.from_arrow(schema), [_add_action(file) for file in files], mode="overwrite",
            description=None if description is None else str(description), storage_options=self.storage_options,
            commit_properties=CommitProperties(custom_metadata=metadata))
        table = self._latest(location, fresh=True)
        assert table is not None  # just written
        return StagedResult(rows=sum(file.rows for file in files), version=table.version(), rows_removed=rows_before)

    def published_result(self, name: str) -> tuple[str, str] | None:
        table = self._metadata(name)
        return None if table is None else _written_result(table)

    def delete_rows(self, name: str, predicate: str) -> int | None:
        table = self._metadata(name)
        if table is None:
            return None
        check_lease(self.catalog.root)
        self._kept.pop(name, None)
        table.delete(predicate)
        return self._version_at(self.catalog.location(name))

    def append(self, name: str, rows: pa.Table) -> int:
        return self._write(name, rows.cast(LOG_SCHEMAS[name]), mode="append")

    def staged_result(self, view: str) -> tuple[str, str] | None:
        table = self._latest(self.catalog.staging_location(view))
        return None if table is None else _written_result(table)

    def staged_version(self, view: str) -> int | None:
        table = self._latest(self.catalog.staging_location(view))
        return None if table is None else table.version()

    def staged_changes(self, session: SessionContext, view: str, before: int, column: str) -> frozenset[str] | None:
        location = self.catalog.staging_location(view)
        old, new = self._open(location, before), self._open(location)
        assert old is not None and new is not None  # (the table's version before this run's write, and after)
        schema = pa.schema(new.schema().to_arrow())
        if pa.schema(old.schema().to_arrow()) != schema:  # (a declaration changed: rows of two types)
            return None
        names = [f"{DELTA_SCHEMA}.changes_{side}_{uuid.uuid4().hex}" for side in ("before", "after")]
        session.sql(f"CREATE SCHEMA IF NOT EXISTS {DELTA_SCHEMA}").collect()
        try:
            for name, table in zip(names, (old, new), strict=True):
                _register_raw(session, name, table, self.storage_options)
            values = changed_groups(session, *names, schema.names, column)
        except Exception:  # (e.g. out of memory) not knowing what changed is safe: its readers are computed whole
            return None
        finally:
            for name in names:
                _replace(session, name)
        return None if None in values else frozenset(values)  # a NULL file: no file's rows to replace

    def stage(self, view: str, data: pa.Table | PlanExecution, schema: pa.Schema, fingerprint: str, run_id: str,
              scope: FileScope | None = None, cluster_by: str | None = None) -> StagedResult:
        metadata = {FINGERPRINT_KEY: fingerprint, RUN_KEY: run_id}
        return self._overwrite(self.catalog.staging_location(view), data, physical_schema(schema, nullable=True),
                               metadata, scope, cluster_by)

    def staged_views(self) -> tuple[str, ...]:
        if is_object_store(self._staging_root()):
            return tuple(sorted(list_folders(self._staging_root(), self.storage_options)))
        filesystem, folder = fs.FileSystem.from_uri(self._staging_root())
        if filesystem.get_file_info(folder).type != fs.FileType.Directory:
            return ()
        found = filesystem.get_file_info(fs.FileSelector(folder))
        return tuple(sorted(info.base_name for info in found if info.type == fs.FileType.Directory))

    def remove_staged(self, view: str) -> None:
        self._handles.pop(self.catalog.staging_location(view), None)
        if is_object_store(self._staging_root()):
            delete_folder(self.catalog.staging_location(view), self.storage_options)
            return
        filesystem, folder = fs.FileSystem.from_uri(self.catalog.staging_location(view))
        filesystem.delete_dir(folder)

    def _staging_root(self) -> str:
        return self.catalog.staging_location("").rstrip("/")

    def _write(self, name: str, data: pa.Table | pa.RecordBatchReader, **options: object) -> int:
        self._kept.pop(name, None)  # rows kept of an earlier version
        location = self.catalog.location(name)
        check_lease(self.catalog.root)
        write_deltalake(location, data, storage_options=self.storage_options, writer_properties=WRITER_PROPERTIES,
                        **options)  # type: ignore[arg-type]
        return self._version_at(location)

    def register(self, session: SessionContext, name: str, version: int | None = None,
                 in_memory: bool = False) -> None:
        kept = self._kept.pop(name, None)
        if in_memory and kept is not None and version in (None, kept[0]):
            _replace(session, name)
            register_in_memory(session, name, kept[1])
            return
        table = self._table(name, version)
        if table is None:
            raise LookupError(f"dataset {name} does not exist at {self.catalog.location(name)}")
        if in_memory:
            _replace(session, name)
            register_in_memory(session, name, _scan(table, self.storage_options))
        else:
            _register_plain(session, name, table, self.storage_options)

    def register_files_holding(self, session: SessionContext, name: str, location: str, column: str,
                               values: Sequence[str]) -> int | None:
        """Register ``name`` (the table at ``location``, with plain string columns as `register` does)
        as a Parquet scan of only those of its data files whose statistics say they may hold a row whose
        ``column`` is one of ``values``: the file skipping the Delta provider does not do for a filter
        (`tests/test_plan_signals.py`). Returns how many files it reads; None (nothing registered) when
        it would read them all, or when the table's data files alone are not its rows."""
        table = self._latest(location)
        if table is None or not _files_are_rows(table):
            return None
        paths = _files_holding(table, column, values)
        uris = None if paths is None else _data_file_uris(table, location, paths)
        if uris is None:
            return None
        _replace(session, name)
        _register_files(session, name, table, self.storage_options, uris)
        return len(uris)

    def holds_version(self, name: str, version: int) -> bool:
        table = self._metadata(name)
        if table is None:
            return False
        if table.version() == version:
            return True
        commits = {int(commit["version"]): commit for commit in table.history()}  # the log read once
        return _rows_version(commits, table.version()) == _rows_version(commits, version)

    def restore(self, name: str, version: int) -> int:
        table = self._table(name)
        if table is None:
            raise LookupError(f"dataset {name} does not exist at {self.catalog.location(name)}")
        check_lease(self.catalog.root)
        self._kept.pop(name, None)
        table.restore(version)
        return self._version_at(self.catalog.location(name))

    def maintain(self, location: str, policy: MaintenancePolicy,
                 keep_versions: list[int] | None = None, vacuumed_at: int = -1) -> MaintenanceRecord:
        """Through the handle this store keeps for the table (brought up to date for a third of
        what opening it again costs; a build maintains some seventy tables)."""
        try:
            handle = self._latest(location)
        except Exception:  # maintenance never fails a build: `maintain` opens it and records what fails
            handle = None
        return maintain(location, policy, self.storage_options, keep_versions, table=handle, vacuumed_at=vacuumed_at)

    def register_staged(self, session: SessionContext, view: str, registration: str) -> None:
        table = self._latest(self.catalog.staging_location(view))
        if table is None:
            raise LookupError(f"view {view} has no staged result")
        if registration == "dataset":  # re-scannable: a recursive query reads it once per iteration
            register_in_memory(session, view, _scan(table, self.storage_options))
        else:
            _register_plain(session, view, table, self.storage_options)


def newest_commits(table: DeltaTable) -> Iterator[dict[str, Any]]:
    """The table's commits, newest first, read a few at a time. What is looked for (the last write,
    the last vacuum) is almost always among the last few commits, and reading the whole log takes
    time in proportion to its length: a staging table gains three commits a build."""
    seen, limit = 0, FIRST_COMMITS_READ
    while True:
        commits = table.history(limit)
        yield from commits[seen:]
        if len(commits) < limit:
            return
        seen, limit = len(commits), limit * 8


def _written_result(table: DeltaTable) -> tuple[str, str] | None:
    """(fingerprint, run id) recorded with the write that made the table's current rows: maintenance
    commits (compaction, vacuum) leave the rows as written; any other commit since (a restore)
    leaves rows that no recorded fingerprint describes."""
    for commit in newest_commits(table):
        operation = commit.get("operation")
        if operation in SAME_DATA_OPERATIONS:
            continue
        if operation in WRITE_OPERATIONS and commit.get(FINGERPRINT_KEY) is not None:
            return str(commit[FINGERPRINT_KEY]), str(commit.get(RUN_KEY, ""))
        return None
    return None


def _clustered(data: pa.Table | PlanExecution, column: str, schema: pa.Schema) -> pa.Table:
    """``data`` cast to ``schema`` and sorted by ``column``, in one batch: written in files of
    `CLUSTER_FILE_BYTES`, each file then holds a narrow range of it (see
    `relspec.maintenance.CLUSTER_FILE_BYTES`). One batch, because the Delta writer deals a stream's
    batches out to parallel writers, each with files of its own, and so loses the order (delta-rs
    writes one batch in order). The sort ranks the column's distinct values (a few thousand files)
    and orders rows by rank: ~5x faster than a comparison sort of its strings."""
    table = (data.collect(schema) if isinstance(data, PlanExecution) else data).cast(schema)
    keys = pc.dictionary_encode(pc.fill_null(table.column(column), "")).combine_chunks()
    ranks = pc.rank(keys.dictionary, "ascending").to_numpy()
    order = np.argsort(ranks[keys.indices.to_numpy()], kind="stable")
    del keys, ranks
    widest = max((table.column(index).nbytes for index, field in enumerate(table.schema)
                  if pa.types.is_string(field.type) or pa.types.is_binary(field.type)), default=0)
    if widest <= STRING_ARRAY_BYTES:
        schema, columns = table.schema, table.columns
        del table  # each column is let go as soon as it is taken: the table is held once, plus one column
        for index in range(len(columns)):
            taken = columns[index].take(order)
            columns[index] = taken.chunk(0) if taken.num_chunks == 1 else taken.combine_chunks()  # (which copies)
        return pa.Table.from_arrays(columns, schema=schema)
    # A column of more string bytes than 32-bit offsets reach cannot be one array: sorted pieces, each
    # one batch, taken through 64-bit offsets (a take concatenates the column's chunks first).
    wide = table.cast(pa.schema([field.with_type(_large(field.type)) for field in table.schema]))
    pieces = np.array_split(order, 2 * widest // STRING_ARRAY_BYTES + 1)
    return pa.Table.from_batches([batch for piece in pieces
                                  for batch in wide.take(piece).cast(table.schema).combine_chunks().to_batches()],
                                 schema=table.schema)


def _large(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_string(kind):
        return pa.large_string()
    return pa.large_binary() if pa.types.is_binary(kind) else kind


def write_data_file(location: str, table_name: str, rows: pa.Table,
                    options: StorageOptions) -> DataFile | None:
    """Rows of extraction table ``table_name`` written as one Parquet file into its folder at
    ``location`` (a local path or an object-store URI), clustered as `replace_files` clusters them,
    and not committed: a distributed extraction's worker writes them, the build commits them. None
    when there are no rows."""
    if not rows.num_rows:
        return None
    owner = _DECLARATIONS[table_name].require(SemanticType.FILE_ID).name
    rows = _clustered(rows, owner, physical_schema(_DECLARATIONS[table_name].arrow_schema()))
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink, compression="snappy")
    return _put_data_file(location, sink.getvalue(), rows, options)


def _put_data_file(location: str, payload: pa.Buffer, rows: pa.Table, options: StorageOptions) -> DataFile:
    """The Parquet file ``payload`` (holding ``rows``) put into the table folder at ``location``
    under a new name, not committed."""
    path = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    if is_object_store(location):
        import obstore

        obstore.put(object_store(location, options), path, payload.to_pybytes())
    else:
        local_path(location).mkdir(parents=True, exist_ok=True)
        (local_path(location) / path).write_bytes(payload)
    return DataFile(path=path, size=payload.size, rows=rows.num_rows, modified_ms=int(time.time() * 1000),
                    stats=_file_statistics(rows))


def _write_sorted_files(location: str, batches: pa.RecordBatchReader, schema: pa.Schema,
                        options: StorageOptions) -> list[DataFile]:
    """``batches`` written in order into data files of about `CLUSTER_FILE_BYTES` (Parquet; a row
    group holds `ROW_GROUP_ROWS` rows, or fewer that take `CLUSTER_FILE_BYTES` in memory), put into
    the table folder at ``location`` and not committed. A file's rows are held until it is written
    (its statistics need them): one file's worth."""
    files: list[DataFile] = []
    held: list[pa.RecordBatch] = []  # rows of the file being written not yet in a row group
    written: list[pa.RecordBatch] = []  # rows of the file being written
    sink, writer = pa.BufferOutputStream(), None
    for batch in itertools.chain(batches, [None]):  # (None: the end)
        if batch is not None and batch.num_rows:
            held.append(batch)
        while held:  # as many row groups as the rows held make (a batch may hold several)
            rows, size = sum(part.num_rows for part in held), sum(part.nbytes for part in held)
            if batch is not None and rows < ROW_GROUP_ROWS and size < CLUSTER_FILE_BYTES:
                break
            group = pa.Table.from_batches(held, schema=schema)
            taken = min(rows, ROW_GROUP_ROWS)
            writer = writer or pq.ParquetWriter(sink, schema, compression="snappy")
            writer.write_table(group.slice(0, taken), row_group_size=ROW_GROUP_ROWS)
            written += group.slice(0, taken).to_batches()
            held = group.slice(taken).to_batches()
            if sink.tell() >= CLUSTER_FILE_BYTES:
                files.append(_closed_file(location, writer, sink, written, schema, options))
                sink, writer, written = pa.BufferOutputStream(), None, []
        if batch is None and writer is not None:
            files.append(_closed_file(location, writer, sink, written, schema, options))
    return files


def _closed_file(location: str, writer: pq.ParquetWriter, sink: pa.BufferOutputStream,
                 rows: list[pa.RecordBatch], schema: pa.Schema, options: StorageOptions) -> DataFile:
    writer.close()
    return _put_data_file(location, sink.getvalue(), pa.Table.from_batches(rows, schema=schema), options)


def _add_action(file: DataFile) -> AddAction:
    return AddAction(file.path, file.size, {}, file.modified_ms, True, file.stats)


def _file_statistics(rows: pa.Table) -> str:
    """The Delta add action's statistics of a file holding ``rows``: its row count, and each column's
    null count and bounds (a string minimum longer than `STATS_STRING_CHARS` is cut to it, still a
    lower bound; a longer maximum is left out, as a cut one would be below the values it bounds)."""
    minimum: dict[str, object] = {}
    maximum: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for field, column in zip(rows.schema, rows.columns, strict=True):
        nulls[field.name] = column.null_count
        if pa.types.is_boolean(field.type) or column.null_count == column.length():
            continue
        low, high = pc.min_max(column).values()
        low, high = low.as_py(), high.as_py()
        if isinstance(low, str):
            low = low[:STATS_STRING_CHARS]
            if len(high) > STATS_STRING_CHARS:
                high = None
        minimum[field.name] = low
        if high is not None:
            maximum[field.name] = high
    stats = {"numRecords": rows.num_rows, "minValues": minimum, "maxValues": maximum, "nullCount": nulls}
    return msgspec.json.encode(stats).decode()


def _require_written(location: str, files: list[DataFile]) -> None:
    """On a local output, every data file must be where this machine sees it: workers of a remote
    Dask cluster write to their own disks, which the build cannot commit."""
    if is_object_store(location):
        return
    missing = [file.path for file in files if not (local_path(location) / file.path).exists()]
    if missing:
        raise FileNotFoundError(f"{location}: {len(missing)} data file(s) the extraction workers wrote are not "
                                "on this machine (a remote Dask cluster needs --out on object storage)")


def _read_data_files(location: str, files: list[DataFile], schema: pa.Schema, options: StorageOptions) -> pa.Table:
    if not files:
        return schema.empty_table()
    session = SessionContext()
    if is_object_store(location):
        register_object_store(session, location, options)
    uris = [f"{location}/{file.path}" for file in files]
    return _parquet_union(session, uris, schema).to_arrow_table().cast(schema)


def _delete_data_files(location: str, files: list[DataFile], options: StorageOptions) -> None:
    if is_object_store(location):
        import obstore

        obstore.delete(object_store(location, options), [file.path for file in files])
        return
    for file in files:
        (local_path(location) / file.path).unlink(missing_ok=True)


def _row_count(actions: pa.Table) -> int:
    """Rows of a table, from its add actions' statistics."""
    if "num_records" not in actions.column_names or not actions.num_rows:
        return 0
    return int(pc.sum(actions.column("num_records")).as_py() or 0)


def _data_version(table: DeltaTable) -> int:
    """The version whose rows the table holds now: the commit that last changed them (compaction and
    vacuum change none), or the version a restore brought back."""
    for commit in newest_commits(table):
        operation = commit.get("operation")
        if operation in SAME_DATA_OPERATIONS:
            continue
        if operation == "RESTORE":
            return int(commit["operationParameters"]["version"])
        return int(commit["version"])
    return table.version()


def _rows_version(commits: dict[int, dict[str, Any]], version: int) -> int:
    """The write whose rows the table held at ``version``: a compaction or a vacuum keeps the rows of
    the version before it, a restore brings back those of the version it names (resolved in turn). A
    release names the version after its build's maintenance, which may be such a commit, and a
    restore to it names that commit. A version older than the log's history is its own. (Only for
    comparing rows: `_data_version`, which names the version a build's views read and a replay pins,
    stops at a restore's target.) ``commits``: the table's history by version."""
    while (commit := commits.get(version)) is not None:
        operation = commit.get("operation")
        if operation in SAME_DATA_OPERATIONS:
            version -= 1
        elif operation == "RESTORE":
            version = int(commit["operationParameters"]["version"])
        else:
            break
    return version


def _replace(session: SessionContext, name: str) -> None:
    if session.table_exist(name):
        session.deregister_table(name)


def _same_rows(current: pa.Table, new: pa.Table) -> bool:
    if current.num_rows != new.num_rows:
        return False
    if not new.num_rows:
        return True
    keys = [(column, "ascending") for column in new.column_names]
    return current.select(new.column_names).cast(new.schema).sort_by(keys).equals(new.sort_by(keys))

