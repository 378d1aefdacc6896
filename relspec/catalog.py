"""Datasets of a run: one naming policy for where each table lives, and the store protocol.

`TableStore` is the boundary through which the pipeline reads and writes tables. The pipeline
(``dataflows``) speaks only this protocol; the driver supplies the Delta Lake implementation. Table
locations are URIs joined with ``/``: nothing here assumes a local path.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
import pyarrow as pa
from datafusion import DataFrame, SessionContext

from semantics.entities import EXTRACTION_ENTITIES

EXTRACT_FOLDER = "extract"
CPG_TABLES = ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_diagnostics")
EXTRACT_TABLES = tuple(entity.table for entity in EXTRACTION_ENTITIES)


class DatasetCatalog(msgspec.Struct, frozen=True):
    """Where every dataset of an output root lives."""

    root: str

    def location(self, name: str) -> str:
        if name in EXTRACT_TABLES:
            return f"{self.root.rstrip('/')}/{EXTRACT_FOLDER}/{name}"
        if name in CPG_TABLES:
            return f"{self.root.rstrip('/')}/{name}"
        raise KeyError(f"unknown dataset {name!r}")

    def names(self) -> tuple[str, ...]:
        return (*CPG_TABLES, *EXTRACT_TABLES)


class TableStore(Protocol):
    catalog: DatasetCatalog

    def version(self, name: str) -> int | None:
        """The table's current version, or None if it does not exist yet."""

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        """The table's rows (optionally some columns), or None if it does not exist yet."""

    def replace_files(self, name: str, rows: pa.Table, file_ids: list[str]) -> int:
        """Atomically replace every row owned by ``file_ids`` with ``rows``; return the new version."""

    def overwrite(self, name: str, data: DataFrame | pa.Table, schema: pa.Schema) -> int:
        """Atomically replace the whole table; return the new version."""

    def register(self, session: SessionContext, name: str) -> None:
        """Make the table queryable by its name in ``session``."""
