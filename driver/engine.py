"""The DataFusion session, configured one way for every part of cpgflow: a build's views and a
reader's queries see the same types, each under its workload class's profile. Imports no part of the
pipeline (a query loads only this)."""

from __future__ import annotations

from datafusion import DataFrame, RuntimeEnvBuilder, SessionConfig, SessionContext, col

from relspec.profiles import SessionProfile, compile_session_profile


def new_session(profile: SessionProfile | None = None) -> SessionContext:
    """A session under ``profile`` (default: the interactive query profile): its partitions, batch
    size and repartitioning, and a memory pool its operators spill to disk past."""
    profile = profile or compile_session_profile("interactive_query")
    config = SessionConfig().with_information_schema(True)
    for key, value in profile.settings().items():
        config = config.set(key, value)
    # Plain Utf8 everywhere, so view schemas equal the declared Arrow schemas.
    config = (config.set("datafusion.sql_parser.map_string_types_to_utf8view", "false")
              .set("datafusion.execution.parquet.schema_force_view_types", "false"))
    runtime = RuntimeEnvBuilder()
    if profile.memory_limit is not None:
        runtime = runtime.with_fair_spill_pool(profile.memory_limit).with_disk_manager_os()
    return SessionContext(config, runtime)


def set_options(session: SessionContext, options: dict[str, str]) -> None:
    """Set DataFusion options on ``session`` (its later queries plan and run under them)."""
    for key, value in sorted(options.items()):
        session.sql(f"SET {key} = {value}").collect()


def sorted_by(frame: DataFrame, column: str) -> DataFrame:
    """``frame`` sorted by ``column`` (nulls first), as a view written clustered by it is planned:
    DataFusion's sort spills under the session's memory limit."""
    return frame.sort(col(column).sort(ascending=True, nulls_first=True))
