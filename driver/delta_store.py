"""The Delta Lake implementation of `relspec.catalog.TableStore`.

Every write is one Delta commit, so a reader (or a run interrupted mid-write) sees either the old
version of a table or the new one, never a half-written table.
"""

from __future__ import annotations

import msgspec
import pyarrow as pa
from datafusion import DataFrame, SessionContext
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from relspec.catalog import DatasetCatalog
from semantics.entities import EXTRACTION_ENTITIES, EntityDecl
from semantics.types import SEMANTIC_METADATA_KEY, SemanticType

_DECLARATIONS: dict[str, EntityDecl] = {entity.table: entity for entity in EXTRACTION_ENTITIES}


def physical_schema(schema: pa.Schema) -> pa.Schema:
    """The declared schema without field metadata. Semantic types travel in the table description
    instead: DataFusion refuses to union or recurse over fields whose metadata differ."""
    return pa.schema([field.remove_metadata() for field in schema])


def semantic_description(schema: pa.Schema) -> str:
    types = {field.name: (field.metadata or {}).get(SEMANTIC_METADATA_KEY, b"").decode() for field in schema}
    return msgspec.json.encode({"cpgflow.semantic_types": types}).decode()


def _sql_list(values: list[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


class DeltaTableStore:
    def __init__(self, catalog: DatasetCatalog, storage_options: dict[str, str] | None = None) -> None:
        self.catalog = catalog
        self.storage_options = storage_options

    def _table(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.catalog.location(name), storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def version(self, name: str) -> int | None:
        table = self._table(name)
        return None if table is None else table.version()

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        table = self._table(name)
        return None if table is None else table.to_pyarrow_table(columns=columns)

    def replace_files(self, name: str, rows: pa.Table, file_ids: list[str] | None) -> int:
        """Replace the rows of ``file_ids`` (None: of every file) with ``rows`` in one commit."""
        declared = _DECLARATIONS[name].arrow_schema()
        rows = rows.cast(physical_schema(declared))
        table = self._table(name)
        if table is None or file_ids is None:
            return self._write(name, rows, mode="overwrite", description=semantic_description(declared))
        if not file_ids:
            return table.version()
        owner = _DECLARATIONS[name].require(SemanticType.FILE_ID).name
        return self._write(name, rows, mode="overwrite", predicate=f"{owner} IN ({_sql_list(file_ids)})")

    def overwrite(self, name: str, data: DataFrame | pa.Table, schema: pa.Schema) -> int:
        """Stream ``data`` into the table, cast batch by batch to the declared ``schema`` (a cast
        that would put a null in a non-null column fails the write before it commits)."""
        physical = physical_schema(schema)
        if isinstance(data, pa.Table):
            conformed: pa.Table | pa.RecordBatchReader = data.cast(physical)
        else:
            conformed = pa.RecordBatchReader.from_stream(data).cast(physical)
        return self._write(name, conformed, mode="overwrite", schema_mode="overwrite",
                           description=semantic_description(schema))

    def _write(self, name: str, data: DataFrame | pa.Table | pa.RecordBatchReader, **options: object) -> int:
        location = self.catalog.location(name)
        write_deltalake(location, data, storage_options=self.storage_options, **options)  # type: ignore[arg-type]
        return DeltaTable(location, storage_options=self.storage_options).version()

    def register(self, session: SessionContext, name: str) -> None:
        table = self._table(name)
        if table is None:
            raise LookupError(f"dataset {name} does not exist at {self.catalog.location(name)}")
        if session.table_exist(name):
            session.deregister_table(name)
        session.register_table(name, table)
