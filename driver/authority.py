"""Hamilton nodes that provide the run's execution resources: the DataFusion session and the store.

They live in ``driver`` because only the driver may bind the pipeline to concrete engines (Delta
Lake here); the ``dataflows`` nodes see them through ``relspec.catalog.TableStore``.
"""

from __future__ import annotations

import os

from datafusion import SessionConfig, SessionContext

from driver.delta_store import DeltaTableStore
from relspec.catalog import DatasetCatalog, TableStore


def table_store(output_dir: str) -> TableStore:
    """The one store of this run: every table is read and written through it."""
    return DeltaTableStore(DatasetCatalog(output_dir))


def session(jobs: int = 0) -> SessionContext:
    """The DataFusion session every view of the run executes on."""
    partitions = jobs if jobs > 0 else (os.cpu_count() or 1)
    config = (
        SessionConfig()
        .with_target_partitions(partitions)
        .with_information_schema(True)
        # Plain Utf8 everywhere, so view schemas equal the declared Arrow schemas.
        .set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
        .set("datafusion.execution.parquet.schema_force_view_types", "false")
    )
    return SessionContext(config)
