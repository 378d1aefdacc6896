"""Datasets of a run: one naming policy for where each table lives, and the store protocol.

`TableStore` is the boundary through which the pipeline reads and writes tables. The pipeline
(``dataflows``) speaks only this protocol; the driver supplies the Delta Lake implementation. Table
locations are URIs joined with ``/``: nothing here assumes a local path.

The catalog is the run's dataset resolver: one per run, with an identity that every boundary
(view registration, scan options, dataset readiness) checks against the run's authority.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Sequence

import msgspec
import pyarrow as pa
from datafusion import SessionContext

from relspec.maintenance import MaintenancePolicy, MaintenanceRecord
from relspec.plan_signals import PlanExecution
from relspec.releases import Release, read_releases
from semantics.entities import EXTRACTION_ENTITIES, DataFile
from semantics.views import OUTPUTS

EXTRACT_FOLDER = "extract"
STAGING_FOLDER = "_staging"
RUNS_TABLE = "cpg_runs"
RELEASES_TABLE = "cpg_releases"
CALIBRATION_TABLE = "cpg_calibration"
PROVENANCE_FOLDER = "_provenance"
# The decision provenance graph of every run (relspec/provenance.py), by table name: its folder.
PROVENANCE_TABLES = {"provenance_decisions": "decisions", "provenance_evidence": "evidence",
                     "provenance_edges": "edges"}
# Tables that record runs, not facts of the code base: append-only, read at their latest version.
LOG_TABLES = (RUNS_TABLE, RELEASES_TABLE, CALIBRATION_TABLE, *PROVENANCE_TABLES)
# The logs whose rows belong to one run each (`run_id`): a run dropped from the history goes from all of them.
RUN_RECORD_TABLES = (RUNS_TABLE, CALIBRATION_TABLE, *PROVENANCE_TABLES)
CPG_TABLES = OUTPUTS  # the published tables, at the root of the output
EXTRACT_TABLES = tuple(entity.table for entity in EXTRACTION_ENTITIES)


def dataset_name(location: str) -> str:
    """A table's name in maintenance records: the last folder of its location."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def _new_identity() -> str:
    return uuid.uuid4().hex


class DatasetCatalog(msgspec.Struct, frozen=True):
    """Where every dataset of an output root lives."""

    root: str
    identity: str = msgspec.field(default_factory=_new_identity)

    def location(self, name: str) -> str:
        base = self.root.rstrip("/")
        if name in EXTRACT_TABLES:
            return f"{base}/{EXTRACT_FOLDER}/{name}"
        if name in CPG_TABLES:
            return f"{base}/{name}"
        if name == RUNS_TABLE:
            return f"{base}/_runs"
        if name == RELEASES_TABLE:
            return f"{base}/_releases"
        if name == CALIBRATION_TABLE:
            return f"{base}/_calibration"
        if name in PROVENANCE_TABLES:
            return f"{base}/{PROVENANCE_FOLDER}/{PROVENANCE_TABLES[name]}"
        raise KeyError(f"unknown dataset {name!r}")

    def dataset(self, name: str) -> str:
        """Table ``name``'s name in maintenance records (`dataset_name`)."""
        return dataset_name(self.location(name))

    def staging_location(self, view: str) -> str:
        return f"{self.root.rstrip('/')}/{STAGING_FOLDER}/{view}"

    def names(self) -> tuple[str, ...]:
        return (*CPG_TABLES, *EXTRACT_TABLES, *LOG_TABLES)


class StagedResult(msgspec.Struct, frozen=True):
    rows: int  # written
    version: int
    rows_removed: int = 0  # rows the write replaced (by-file) or overwrote


class FileScope(msgspec.Struct, frozen=True):
    """The rows a by-file write replaces: those whose ``owner`` column names one of ``file_ids``."""

    owner: str
    file_ids: tuple[str, ...]

    def predicate(self) -> str:
        files = ", ".join("'" + file_id.replace("'", "''") + "'" for file_id in self.file_ids)
        return f"{self.owner} IN ({files})" if files else "FALSE"


class TableStore(abc.ABC):
    """Where a run's tables live (a nominal base: Hamilton checks the store a node is given by type)."""

    catalog: DatasetCatalog
    storage_options: dict[str, str] | None  # how to reach its tables on object storage (None: the environment)

    @abc.abstractmethod
    def parquet_scans(self) -> bool:
        """Whether a session reads the tables as DataFusion Parquet scans, which the session's Parquet
        options (pushed-down filters, page index) reach; else through a table provider they do not."""

    @abc.abstractmethod
    def spool_location(self, purpose: str) -> str:
        """A local scratch folder of a build in progress (on this machine's disk even when the tables
        are on object storage); a build that died leaves it for the next one to clear."""

    @abc.abstractmethod
    def version(self, name: str) -> int | None:
        """The table's current version, or None if it does not exist yet."""

    @abc.abstractmethod
    def read(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's rows (optionally some columns), or None if it does not exist yet."""

    @abc.abstractmethod
    def statistics(self, name: str) -> tuple[int, int, int, int] | None:
        """(rows, files, bytes, version) from the table's metadata, without scanning it."""

    @abc.abstractmethod
    def replace_files(self, name: str, rows: pa.Table | list[DataFile], file_ids: list[str] | None,
                      keep: bool = False) -> int:
        """Atomically replace every row owned by ``file_ids`` with ``rows`` (a table, or data files
        already written into the table's folder); return the new version. ``keep``: when ``rows``
        (a table) become the table's whole content, hold them for the `register` of this version
        in memory that follows, which then reads nothing back."""

    @abc.abstractmethod
    def overwrite(self, name: str, data: pa.Table | PlanExecution, schema: pa.Schema,
                  fingerprint: str | None = None, run_id: str | None = None,
                  scope: FileScope | None = None, cluster_by: str | None = None) -> StagedResult:
        """Atomically replace the whole table (or, with ``scope``, the rows of its files), recording
        ``fingerprint`` and the run that wrote it; return the version and the rows written and replaced.
        ``cluster_by``: the column naming each row's file, which the table's data files are clustered by."""

    @abc.abstractmethod
    def register_files_holding(self, session: SessionContext, name: str, location: str, column: str,
                               values: Sequence[str]) -> int | None:
        """Register ``name`` (the table at ``location``) in ``session`` as only those of its data files
        whose statistics say they may hold a row whose ``column`` is one of ``values``; return how many
        it reads, or None (nothing registered) when that would be every file."""

    @abc.abstractmethod
    def published_result(self, name: str) -> tuple[str, str] | None:
        """(fingerprint, run id) recorded when the table's current rows were published, if any."""

    @abc.abstractmethod
    def delete_rows(self, name: str, predicate: str) -> int | None:
        """Delete the rows of table ``name`` that ``predicate`` (SQL) holds for, in one commit; return
        the new version (None: no such table)."""

    @abc.abstractmethod
    def append(self, name: str, rows: pa.Table) -> int:
        """Append rows to a log table (runs, releases, provenance) in one commit, the table made on the
        first; return the new version."""

    @abc.abstractmethod
    def holds_version(self, name: str, version: int) -> bool:
        """Whether the table's current rows are those of ``version`` (it is the latest, or only
        maintenance or a restore to it came after)."""

    @abc.abstractmethod
    def restore(self, name: str, version: int) -> int:
        """Make ``version``'s rows the table's current rows (a new commit); return the new version."""

    @abc.abstractmethod
    def staged_result(self, view: str) -> tuple[str, str] | None:
        """(fingerprint, run id) recorded with a view's staged result, if one exists."""

    @abc.abstractmethod
    def staged_version(self, view: str) -> int | None:
        """The Delta version of a view's staging table, if one exists."""

    @abc.abstractmethod
    def staged_changes(self, session: SessionContext, view: str, before: int, column: str) -> frozenset[str] | None:
        """The values of ``column`` whose rows of a view's staging table differ, as multisets, between
        version ``before`` and the latest, compared in ``session``; None when they cannot be told
        apart by it (a NULL among them, a schema that changed, a comparison that failed)."""

    @abc.abstractmethod
    def stage(self, view: str, data: pa.Table | PlanExecution, schema: pa.Schema, fingerprint: str, run_id: str,
              scope: FileScope | None = None, cluster_by: str | None = None) -> StagedResult:
        """Write a view's result to its staging table (or, with ``scope``, replace the rows of its
        files), recording its fingerprint and run; ``cluster_by`` as for `overwrite`."""

    @abc.abstractmethod
    def register(self, session: SessionContext, name: str, version: int | None = None,
                 in_memory: bool = False) -> None:
        """Make the table (at ``version``, or its latest) queryable by its name in ``session``
        (``in_memory``: its rows read once and held in the session, or the rows a `replace_files`
        just wrote and kept)."""

    @abc.abstractmethod
    def forget_metadata(self) -> None:
        """Drop the table metadata this store keeps between reads: what it read may be stale once
        this process no longer holds the output's build lock (another build may have written)."""

    def releases(self) -> list[Release]:
        """The output's release log, oldest first."""
        return read_releases(self.read(RELEASES_TABLE))

    @abc.abstractmethod
    def staged_views(self) -> tuple[str, ...]:
        """The views that have a staging table, in name order."""

    @abc.abstractmethod
    def remove_staged(self, view: str) -> None:
        """Delete a view's staging table."""

    @abc.abstractmethod
    def register_staged(self, session: SessionContext, view: str, registration: str) -> None:
        """Register a view's staged result under the view's name (`delta` or `dataset` scan)."""

    @abc.abstractmethod
    def maintain(self, location: str, policy: MaintenancePolicy,
                 keep_versions: list[int] | None = None, vacuumed_at: int = -1) -> MaintenanceRecord:
        """Measure the table at ``location`` (one of this store's tables or staging tables), decide
        its maintenance by ``policy`` and execute it, keeping ``keep_versions`` readable; what failed
        is the record's error, never an exception. ``vacuumed_at``: the version a vacuum last ran at
        as the run records say (one that deleted nothing left no commit saying so)."""
