"""Hamilton nodes around the views: the sources they read, publishing what they produce, and the
run's record."""

from __future__ import annotations

import msgspec
import pyarrow as pa
from datafusion import SessionContext
from hamilton.function_modifiers import tag

from relspec.authority import ExecutionAuthority
from relspec.calibration import (
    Calibration,
    CalibrationMode,
    WorkloadClass,
    calibrate,
    calibration_row,
    describe,
)
from relspec.catalog import CALIBRATION_TABLE, RUNS_TABLE, TableStore
from relspec.costs import input_rows
from relspec.demand import ViewDemand, output_views, written_views
from relspec.demand import view_demand as demanded
from relspec.maintenance import MaintenanceRecord
from relspec.policy import TARGET_PARTITIONS, CompiledExecutionPolicy
from relspec.quarantine import DataCheck, failures, quarantine_reason
from relspec.releases import Release
from relspec.runs import (
    ExecutionPackage,
    RunRecord,
    builtin_names_version,
    digest,
    new_run_record,
    run_row,
    seal_package,
)
from relspec.runs import view_fingerprints as fingerprints_of_views
from relspec.summary import BuildSummary
from relspec.validation import RuntimeCapabilities
from relspec.view_graph import ViewGraph
from semantics.entities import BUILTIN_NAMES, FILE, builtin_names_table
from semantics.extract.manifest import FileManifest
from semantics.ir import SemanticPlan


@tag(role="extract")
def builtin_names() -> pa.Table:
    """The names of the running interpreter's `builtins`: where unbound names resolve."""
    return builtin_names_table()


@tag(role="view")
def source_catalog(extraction_tables: dict[str, int], builtin_names: pa.Table, session: SessionContext,
                   table_store: TableStore, execution_authority: ExecutionAuthority) -> dict[str, int]:
    """The tables the views read, registered in the session at the versions just written (read into
    memory where the policy says so)."""
    execution_authority.check_resolver(table_store.catalog, "view_registration")
    registration = execution_authority.policy.materialization.registration
    for name in extraction_tables:
        choice = registration.get(name)
        table_store.register(session, name, in_memory=choice is not None and choice.registration == "memory")
    if session.table_exist(BUILTIN_NAMES.table):
        session.deregister_table(BUILTIN_NAMES.table)
    session.register_record_batches(BUILTIN_NAMES.table, [builtin_names.to_batches()])
    return extraction_tables


@tag(role="policy")
def source_versions(source_catalog: dict[str, int], builtin_names: pa.Table) -> dict[str, str]:
    """Each source table's version (the builtin names: a hash of their content)."""
    versions = {name: str(version) for name, version in source_catalog.items()}
    versions[BUILTIN_NAMES.table] = builtin_names_version(builtin_names)
    return versions


@tag(role="policy")
def view_fingerprints(semantic_plan: SemanticPlan, source_versions: dict[str, str]) -> dict[str, str]:
    """Every view's fingerprint: its SQL and its inputs' fingerprints, down to source versions."""
    return fingerprints_of_views(semantic_plan, source_versions)


@tag(role="policy")
def view_demand(view_graph: ViewGraph, view_fingerprints: dict[str, str], execution_authority: ExecutionAuthority,
                view_frames_requested: bool = True) -> ViewDemand:
    """The staged views held in memory that no view this run computes reads, so they are not computed
    (a rebuild whose outputs all hold its result already computes none), from the written views whose
    tables hold this run's result by fingerprint. ``view_frames_requested``: the request reads view
    frames itself (the build's executor says when it does not), so every view is computed."""
    policy = execution_authority.policy
    written, held = written_views(policy), policy.materialization.held_in_memory()
    # (which tables hold this run's result is asked only where a view held in memory could be left out:
    # each is a read of a Delta table's metadata, ~0.09 s on the standard library's 47 staging tables)
    reused = frozenset(view for view in written if execution_authority.reuses(view, view_fingerprints[view])) \
        if held & set(view_graph.index) and not view_frames_requested else frozenset()
    demand = demanded(view_graph, written, output_views(policy), held, reused, view_frames_requested)
    execution_authority.decided(demand.confidence)
    return demand


@tag(role="output")
def published_cpg(cpg_nodes__published: dict, cpg_edges__published: dict, cpg_props__published: dict,
                  cpg_diagnostics__published: dict, cpg_points_to__published: dict) -> dict[str, int]:
    """The version of each CPG table, from what its Delta saver wrote (a table already holding this
    exact result was left alone)."""
    written = {"cpg_nodes": cpg_nodes__published, "cpg_edges": cpg_edges__published,
               "cpg_props": cpg_props__published, "cpg_diagnostics": cpg_diagnostics__published,
               "cpg_points_to": cpg_points_to__published}
    return {name: int(metadata["version"]) for name, metadata in written.items()}


def _counts(session: SessionContext, sql: str) -> dict[str, int]:
    table = session.sql(sql).to_arrow_table()
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


@tag(role="output")
def build_summary(run_record: RunRecord, release: Release | None, source_catalog: dict[str, int],
                  source_lines: int, file_manifest: FileManifest, session: SessionContext, table_store: TableStore,
                  decision_provenance: dict[str, int], calibration: Calibration | None,
                  restored_tables: list[str] | None = None) -> BuildSummary:
    """Counts of what the build produced, read back from the published tables."""
    for name in run_record.output_versions:
        table_store.register(session, name)
    files = session.sql(f"SELECT count(*) AS n FROM {FILE.table}").to_arrow_table()
    return BuildSummary(
        output_dir=table_store.catalog.root,
        files=files.column(0)[0].as_py(),
        files_extracted=len(file_manifest.tasks),
        files_reused=len(file_manifest.unchanged),
        files_removed=len(file_manifest.removed),
        files_added=len(file_manifest.added),
        incremental=file_manifest.incremental,
        views_by_file=sum(outcome.maintained == "by_file" for outcome in run_record.views),
        lines=source_lines,
        nodes_by_kind=_counts(session, "SELECT kind, count(*) FROM cpg_nodes GROUP BY kind ORDER BY kind"),
        edges_by_kind=_counts(session, "SELECT kind, count(*) FROM cpg_edges GROUP BY kind ORDER BY kind"),
        diagnostics_by_code=_counts(session, "SELECT code, count(*) FROM cpg_diagnostics GROUP BY code ORDER BY code"),
        table_versions={**source_catalog, **run_record.output_versions, **decision_provenance},
        run_id=run_record.run_id,
        view_outcomes=run_record.outcome_counts(),
        status=run_record.status,
        message=run_record.message,
        release=release.sequence if release else 0,
        restored=list(restored_tables or ()),
        calibration=describe(calibration) if calibration is not None else "",
    )


@tag(role="output")
def execution_package(semantic_plan: SemanticPlan, compiled_policy: CompiledExecutionPolicy,
                      capabilities: RuntimeCapabilities, source_versions: dict[str, str],
                      published_cpg: dict[str, int], execution_authority: ExecutionAuthority,
                      session_settings: str) -> ExecutionPackage:
    """The composite fingerprint of what decided this run's output: IR, policy, capabilities, each
    view's DataFusion plan, session config, source versions."""
    return seal_package(ExecutionPackage(
        ir_fingerprint=digest(*(view.sql for view in semantic_plan.views)),
        policy_fingerprint=compiled_policy.fingerprint,
        capabilities_fingerprint=digest(msgspec.json.encode(capabilities)),
        session_config_fingerprint=session_settings,
        plan_fingerprints={outcome.view: outcome.plan_fingerprint for outcome in execution_authority.outcomes()},
        source_versions=source_versions,
        cache_policies={view: choice.cache for view, choice in sorted(compiled_policy.cache.items())},
        profile=compiled_policy.profile,
    ))


@tag(role="output")
def calibration(run_record: RunRecord, compiled_policy: CompiledExecutionPolicy, view_graph: ViewGraph,
                workload_class: WorkloadClass, table_store: TableStore,
                calibration_mode: CalibrationMode = "observe") -> Calibration | None:
    """What this run measured against what the compile predicted, and the thresholds it moves
    (mode ``apply``: the next compile of this workload class uses them; ``observe``: recorded only;
    ``off``: nothing)."""
    if calibration_mode == "off":
        return None
    partitions = {view: int(chosen.options[TARGET_PARTITIONS]) for view, chosen in compiled_policy.scan.views.items()}
    # (not a fixpoint's: its seconds are its rounds of queries, not the rows it reads, so it is no point
    # on the lines of seconds by rows read that move the small-input threshold)
    inputs = {view: rows for view, (_, rows) in input_rows([run_record], view_graph).items()
              if view not in view_graph.fixpoints}
    made = calibrate(run_record.run_id, workload_class, calibration_mode, compiled_policy.thresholds,
                     run_record.views, compiled_policy.costs, view_graph, run_record.source_rows, partitions, inputs)
    table_store.append(CALIBRATION_TABLE, calibration_row(made))
    return made


@tag(role="output")
def run_record(execution_package: ExecutionPackage, published_cpg: dict[str, int],
               maintenance: tuple[MaintenanceRecord, ...], data_checks: tuple[DataCheck, ...],
               release: Release | None, execution_authority: ExecutionAuthority,
               table_store: TableStore, source_catalog: dict[str, int]) -> RunRecord:
    """The run, persisted in the output's run table: package, per-view outcomes, validation, and
    whether it was released or quarantined (and why)."""
    failed = failures(data_checks)
    record = new_run_record(
        execution_authority.run_id, execution_authority.started_at, "released" if release else "quarantined",
        output_versions=published_cpg, views=execution_authority.outcomes(),
        validation=execution_authority.validation.issues, maintenance=maintenance, package=execution_package,
        message=quarantine_reason(failed)[:2000] if failed else "",
        source_rows={name: stats[0] for name in source_catalog if (stats := table_store.statistics(name)) is not None},
        decisions=execution_authority.decisions(),
    )
    table_store.append(RUNS_TABLE, run_row(record))
    return record
