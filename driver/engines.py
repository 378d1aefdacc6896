"""Hamilton nodes of planning that bind the run to its engines: the Delta store (and with it the
run's one dataset resolver), the DataFusion session, the probed capabilities, and — once the policy
is compiled — the execution authority context the factory hands to the execution driver.

They live in ``driver`` because only the driver may bind the pipeline to concrete engines; the
``dataflows`` nodes see them through ``relspec`` interfaces.
"""

from __future__ import annotations

import platform
from importlib.metadata import version

import deltalake
import pyarrow as pa
from datafusion import SessionContext
from deltalake import DeltaTable
from hamilton.function_modifiers import tag

from driver.authority import RunAuthority
from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from relspec.authority import ExecutionAuthority
from relspec.catalog import DatasetCatalog, TableStore
from relspec.policy import CompiledExecutionPolicy
from relspec.profiles import SessionProfile
from relspec.releases import Release, released_runs
from relspec.validation import RuntimeCapabilities, ValidationResult
from semantics.extract.manifest import FileManifest

# The datafusion/deltalake pair pinned in pyproject.toml and tested together.
TESTED_PAIR = ("55.0.0", "1.6.6")


@tag(role="authority")
def table_store(output_dir: str, storage_options: dict[str, str]) -> TableStore:
    """The run's one store, and with it the run's one dataset resolver (a fresh identity)."""
    return DeltaTableStore(DatasetCatalog(output_dir), storage_options or None)


@tag(role="authority")
def release_log(table_store: TableStore) -> list[Release]:
    """The output's release log, oldest first (a build reads it once, holding the folder's lock)."""
    return table_store.releases()


@tag(role="authority")
def session(session_profile: SessionProfile) -> SessionContext:
    """The DataFusion session every view of the run executes on, under its workload's profile."""
    return new_session(session_profile)


@tag(role="authority")
def capabilities(session: SessionContext) -> RuntimeCapabilities:
    """What this engine offers, probed: versions, SQL functions, recursive queries, Delta provider."""
    routines = session.sql("SELECT DISTINCT routine_name FROM information_schema.routines").to_arrow_table()
    try:
        session.sql("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
                    "SELECT count(*) FROM r").to_arrow_table()
        recursive = True
    except Exception:  # the engine refuses recursion: the validator reports it
        recursive = False
    datafusion_version, deltalake_version = version("datafusion"), deltalake.__version__
    return RuntimeCapabilities(
        datafusion_version=datafusion_version,
        deltalake_version=deltalake_version,
        pyarrow_version=pa.__version__,
        python_version=platform.python_version(),
        functions=tuple(sorted(routines.column(0).to_pylist())),
        recursive_queries=recursive,
        delta_provider=hasattr(DeltaTable, "__datafusion_table_provider__"),
        tested_pair=(datafusion_version, deltalake_version) == TESTED_PAIR,
    )


@tag(role="authority")
def execution_authority(session: SessionContext, capabilities: RuntimeCapabilities, table_store: TableStore,
                        compiled_policy: CompiledExecutionPolicy, validation: ValidationResult,
                        file_manifest: FileManifest, previous_view_fingerprints: dict[str, str],
                        release_log: list[Release]) -> ExecutionAuthority:
    """The execution authority context: session, capabilities, resolver, policy and validation, the
    released runs (whose results may be reused), and what views maintained by file start from (the
    files that changed since the current release, the views' fingerprints over its sources); the scan
    policy is applied to the session here."""
    authority = RunAuthority(session, capabilities, table_store, compiled_policy, validation,
                             released_runs(release_log), file_manifest.changed_file_ids(), previous_view_fingerprints,
                             file_manifest.discovered)
    authority.apply_scan_policy(table_store.catalog)
    return authority
