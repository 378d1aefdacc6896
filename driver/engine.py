"""The DataFusion session, configured one way for every part of cpgflow: a build's views and a
reader's queries see the same types. Imports no part of the pipeline (a query loads only this)."""

from __future__ import annotations

from datafusion import SessionConfig, SessionContext

from relspec.machine import session_partitions


def new_session(jobs: int = 0) -> SessionContext:
    """A session with one partition per core (at most ``jobs`` when given)."""
    config = (
        SessionConfig()
        .with_target_partitions(session_partitions(jobs))
        .with_information_schema(True)
        # Plain Utf8 everywhere, so view schemas equal the declared Arrow schemas.
        .set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
        .set("datafusion.execution.parquet.schema_force_view_types", "false")
    )
    return SessionContext(config)
