"""Hamilton nodes that bind the run to its engines: the DataFusion session, the Delta store, the
probed capabilities, the execution authority every view runs through, and Delta maintenance.

They live in ``driver`` because only the driver may bind the pipeline to concrete engines; the
``dataflows`` nodes see them through ``relspec`` interfaces.
"""

from __future__ import annotations

import platform
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import version

import deltalake
import msgspec
import pyarrow as pa
from datafusion import DataFrame, SessionContext
from deltalake import DeltaTable
from hamilton.function_modifiers import tag

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.maintenance import maintain
from relspec.authority import ExecutionAuthority
from relspec.catalog import DatasetCatalog, TableStore
from relspec.maintenance import MaintenanceRecord
from relspec.policy import CompiledExecutionPolicy
from relspec.runs import Outcome, ViewOutcome, digest
from relspec.validation import RuntimeCapabilities, ValidationFailed, ValidationResult
from semantics.entities import EntityDecl
from semantics.fixpoint import FixpointRun, register_in_memory, run_fixpoint
from semantics.ir import EmittedView, typed
from semantics.views.graph import OUTPUT_SCHEMAS

# The datafusion/deltalake pair pinned in pyproject.toml and tested together.
TESTED_PAIR = ("55.0.0", "1.6.6")
FIXPOINT_RESULT = "fixpoint_result"  # where a fixpoint's result waits to be staged


@tag(role="authority")
def table_store(output_dir: str) -> TableStore:
    """The run's one store, and with it the run's one dataset resolver (a fresh identity)."""
    return DeltaTableStore(DatasetCatalog(output_dir))


@tag(role="authority")
def session(jobs: int = 0) -> SessionContext:
    """The DataFusion session every view of the run executes on."""
    return new_session(jobs)


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


class RunAuthority(ExecutionAuthority):
    """Runs every view as the compiled policy says and records what happened."""

    def __init__(self, session: SessionContext, capabilities: RuntimeCapabilities, store: TableStore,
                 policy: CompiledExecutionPolicy, validation: ValidationResult) -> None:
        self.session = session
        self.capabilities = capabilities
        self.store = store
        self.resolver = store.catalog
        self.policy = policy
        self.validation = validation
        self.started_at = datetime.now(UTC).isoformat()
        self._outcomes: list[ViewOutcome] = []
        self._planned: dict[str, str] = {}  # view -> the fingerprint the plan gives it
        self._frames: dict[str, tuple[DataFrame, str]] = {}  # view -> the frame its readers get, its fingerprint

    def apply_scan_policy(self, resolver: DatasetCatalog, view: str | None = None) -> None:
        """The session's scan options, or — before a view executes — that view's own."""
        self.check_resolver(resolver, "scan_override")
        chosen = self.policy.scan.session if view is None else self.policy.scan.views[view]
        for key, value in sorted(chosen.options.items()):
            self.session.sql(f"SET {key} = {value}").collect()

    def run_view(self, view: EmittedView, fingerprint: str, inputs: Mapping[str, DataFrame]) -> DataFrame:
        self._planned[view.name] = fingerprint
        fingerprint = self._read_inputs(fingerprint, inputs)
        frame = self._execute(view, fingerprint)
        self._frames[view.name] = (frame, fingerprint)
        return frame

    def _read_inputs(self, fingerprint: str, inputs: Mapping[str, DataFrame]) -> str:
        """Register each frame a view reads under its view's name, unless it is the frame this run
        made for that view (registered then). Returns the view's fingerprint over these inputs: the
        planned one, or a new one when an input is not what the plan computes (a Hamilton override,
        or a view computed from one), so that no result of other inputs is reused or reused later."""
        salts = []
        for name, frame in sorted(inputs.items()):
            made = self._frames.get(name)
            if made is None or made[0] is not frame:
                _register_view(self.session, name, frame)
                made = self._frames[name] = (frame, digest("override", name, uuid.uuid4().hex))
            if made[1] != self._planned.get(name):
                salts.append(made[1])
        return digest(fingerprint, *salts) if salts else fingerprint

    def _execute(self, view: EmittedView, fingerprint: str) -> DataFrame:
        policy = self.policy.cache[view.name].cache
        started = time.perf_counter()
        rows: int | None = None
        if policy == "delta_staging":
            registration = self.policy.materialization.registration[view.name].registration
            run: FixpointRun | None = None
            if self.store.staged_fingerprint(view.name) == fingerprint:
                outcome: Outcome = "reused"
            else:
                self.apply_scan_policy(self.store.catalog, view.name)
                schema = EntityDecl(view.name, view.name, "view", view.columns).arrow_schema()
                source = view.sql
                if view.fixpoint is not None:
                    result, run = run_fixpoint(self.session, view.fixpoint)
                    register_in_memory(self.session, FIXPOINT_RESULT, result)
                    source = f"SELECT * FROM {FIXPOINT_RESULT}"
                data = self.session.sql(_conformed_sql(view, source))
                rows = self.store.stage(view.name, data, schema, fingerprint).rows
                _replace_table(self.session, FIXPOINT_RESULT)  # the staged table stands for it now
                outcome = "computed_staged"
            self.store.register_staged(self.session, view.name, registration)
            frame = self.session.table(view.name)
            self._record(view.name, policy, outcome, rows, time.perf_counter() - started, fingerprint, frame, run)
            return frame
        if view.fixpoint is not None:  # validation reports the dropped staging; nothing lazy can stand for it
            raise ValidationFailed(f"fixpoint view {view.name} must be staged, not {policy}")
        frame = self.session.sql(view.sql)
        _register_view(self.session, view.name, frame)
        self._record(view.name, policy, "lazy", rows, time.perf_counter() - started, fingerprint, frame)
        return frame

    def publish(self, name: str, frame: DataFrame, fingerprint: str) -> int:
        self.check_resolver(self.store.catalog, "dataset_readiness")
        made = self._frames.get(name)
        fingerprint = made[1] if made is not None and made[0] is frame else digest("override", name, uuid.uuid4().hex)
        started = time.perf_counter()
        current = self.store.version(name)
        if current is not None and self.store.published_fingerprint(name) == fingerprint:
            self._record(name, self.policy.cache[name].cache, "reused", None, time.perf_counter() - started,
                         fingerprint, frame)
            return current
        self.apply_scan_policy(self.store.catalog, name)
        version, rows = self.store.overwrite(name, frame, OUTPUT_SCHEMAS[name], fingerprint)
        self._record(name, self.policy.cache[name].cache, "published", rows, time.perf_counter() - started,
                     fingerprint, frame)
        return version

    def _record(self, name: str, policy: str, outcome: Outcome, rows: int | None, seconds: float,
                fingerprint: str, frame: DataFrame, run: FixpointRun | None = None) -> None:
        plan = digest(str(frame.optimized_logical_plan().display_indent())) \
            if self.policy.diagnostics.record_plans else ""
        evaluation = {}
        if run is not None:
            evaluation = {"rounds": run.rounds, "capped": run.capped, "stage_names": run.stage_names,
                          "stage_rows": run.stages}
        self._outcomes.append(ViewOutcome(name, policy, outcome, rows, round(seconds, 4), fingerprint,  # type: ignore[arg-type]
                                          plan, **evaluation))

    def outcomes(self) -> tuple[ViewOutcome, ...]:
        return tuple(self._outcomes)


def _conformed_sql(view: EmittedView, source: str) -> str:
    """``source`` (the view's SQL) cast onto the view's declared column types, so what is staged has
    exactly the declared schema (a Delta scan can hand back view-typed strings under a plain-string schema)."""
    return f"SELECT {', '.join(typed(column.name, column) for column in view.columns)} FROM ({source}) v"


def _replace_table(session: SessionContext, name: str) -> None:
    if session.table_exist(name):
        session.deregister_table(name)


def _register_view(session: SessionContext, name: str, frame: DataFrame) -> None:
    _replace_table(session, name)
    session.register_view(name, frame)


@tag(role="authority")
def execution_authority(session: SessionContext, capabilities: RuntimeCapabilities, table_store: TableStore,
                        compiled_policy: CompiledExecutionPolicy, validation: ValidationResult) -> ExecutionAuthority:
    """The execution authority context: session, capabilities, resolver, policy and validation; the
    scan policy is applied to the session here."""
    authority = RunAuthority(session, capabilities, table_store, compiled_policy, validation)
    authority.apply_scan_policy(table_store.catalog)
    return authority


@tag(role="output")
def maintenance(published_cpg: dict[str, int], compiled_policy: CompiledExecutionPolicy,
                table_store: TableStore) -> tuple[MaintenanceRecord, ...]:
    """Outcome-based maintenance of every published table: compact, checkpoint or vacuum as its
    write outcome and policy decide; executed and recorded."""
    return tuple(maintain(table_store.catalog.location(name), compiled_policy.maintenance[name].policy)
                 for name in sorted(published_cpg))


@tag(role="authority")
def session_settings(session: SessionContext) -> str:
    """A fingerprint of every setting of the session the views ran on."""
    settings = session.sql("SELECT name, value FROM information_schema.df_settings ORDER BY name").to_arrow_table()
    return digest(msgspec.json.encode(settings.to_pylist()))
