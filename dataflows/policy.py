"""Hamilton nodes of the policy compiler: the view graph and statistics in, one
`CompiledExecutionPolicy` and its validation out."""

from __future__ import annotations

from typing import cast

import msgspec
from hamilton.function_modifiers import tag

from relspec.calibration import (
    Calibration,
    CalibrationMode,
    Thresholds,
    WorkloadClass,
    current_thresholds,
    read_calibrations,
)
from relspec.catalog import CALIBRATION_TABLE, EXTRACT_TABLES, LOG_TABLES, RUNS_TABLE, TableStore
from relspec.costs import ViewCost, input_rows, predict_costs
from relspec.policy import (
    BY_FILE_MAX_SHARE,
    CompiledExecutionPolicy,
    DiagnosticsFlags,
    ExtractionChoice,
    ExtractionExecutor,
    MaintenanceChoice,
    MaterializationStrategy,
    ScanPolicy,
    StagingMedium,
    StatisticsReads,
    TableStats,
    ValidationMode,
    ViewMaintenance,
    ViewPolicy,
    Workload,
    compile_cache_policies,
    compile_extraction,
    compile_maintenance,
    compile_registration,
    compile_scan_policy,
    compile_statistics_reads,
    compile_udf_requirements,
    compile_view_maintenance,
    compile_workload,
    fingerprint_policy,
    staging_tables,
)
from relspec.profiles import SessionProfile, compile_session_profile
from relspec.relative_staging import Updating, stage_relative_bases
from relspec.releases import Release, current_release
from relspec.runs import RunRecord, builtin_names_version, read_records, view_fingerprints
from relspec.schedule import ViewSchedule, compile_lanes, compile_schedule
from relspec.validation import RuntimeCapabilities, ValidationInput, ValidationResult, validate
from relspec.view_graph import ViewGraph
from semantics.entities import BUILTIN_NAMES, builtin_names_table
from semantics.extract.manifest import FileManifest
from semantics.ir import SOURCE_COLUMNS, CachePolicy, SemanticIR, SemanticPlan
from semantics.locality import Locality, infer_locality


@tag(role="policy")
def view_graph(semantic_plan: SemanticPlan) -> ViewGraph:
    """Views as nodes, dependencies as edges, from the emitted plan."""
    return ViewGraph(semantic_plan)


@tag(role="policy")
def table_statistics(table_store: TableStore) -> dict[str, TableStats]:
    """Rows, files and bytes of every table the last build left, from Delta metadata (no scan)."""
    stats = {}
    for name in table_store.catalog.names():
        found = table_store.statistics(name)
        if found is not None:
            stats[name] = TableStats(*found)
    return stats


@tag(role="policy")
def workload_class(file_manifest: FileManifest, full_rebuild: bool = False) -> WorkloadClass:
    """What kind of run this is: a full build (nothing built before, or --full) or an incremental one."""
    return "incremental_build" if file_manifest.incremental and not full_rebuild else "full_build"


@tag(role="policy")
def session_profile(workload_class: WorkloadClass, jobs: int = 0) -> SessionProfile:
    """The DataFusion session profile of this workload class on this machine: partitions, batch size,
    repartitioning, and the memory its operators spill to disk past."""
    return compile_session_profile(workload_class, jobs)


@tag(role="policy")
def calibration_history(table_store: TableStore) -> list[Calibration]:
    """What earlier runs of this output measured and proposed, oldest first."""
    return read_calibrations(table_store.read(CALIBRATION_TABLE))


@tag(role="policy")
def thresholds(calibration_history: list[Calibration], workload_class: WorkloadClass,
               calibration_mode: CalibrationMode = "observe") -> Thresholds:
    """The thresholds this compile decides with: calibrated by earlier runs in mode ``apply``, else
    the defaults."""
    return current_thresholds(calibration_history, workload_class, calibration_mode)


@tag(role="policy")
def workload(table_statistics: dict[str, TableStats], file_manifest: FileManifest,
             staging: StagingMedium = "auto") -> Workload:
    """The size of the work (the largest extraction table's rows: measured by the last build for the
    files it keeps, estimated for the source this build extracts) and so where the run holds its
    tables: staged views in memory or in staging tables, extraction tables in memory or read through
    the Delta provider."""
    return compile_workload(table_statistics, _source_bytes(file_manifest), staging, file_manifest.kept_share)


@tag(role="policy")
def topology_cache_policies(optimized_ir: SemanticIR, view_graph: ViewGraph, table_statistics: dict[str, TableStats],
                            workload: Workload, view_localities: dict[str, Locality], thresholds: Thresholds,
                            cache_overrides: dict[str, CachePolicy] | None = None) -> dict[str, ViewPolicy]:
    """Cache policy by view: the topology's hint weighed against costs, the (calibrated) inline
    threshold, where the workload holds its tables and which readers are file-local; explicit
    overrides win."""
    return compile_cache_policies(optimized_ir, view_graph, table_statistics, cache_overrides or {}, workload,
                                  view_localities, thresholds)


@tag(role="policy")
def cache_policies(topology_cache_policies: dict[str, ViewPolicy], view_localities: dict[str, Locality],
                   view_graph: ViewGraph, run_history: list[RunRecord], table_statistics: dict[str, TableStats],
                   file_manifest: FileManifest, workload: Workload, full_rebuild: bool = False
                   ) -> dict[str, ViewPolicy]:
    """The cache policies a run executes: those of the topology, and, in an incremental build, the
    inlined global views worth staging so that the views local relative to them are updated by file
    (what earlier runs measured decides: `relspec.relative_staging`)."""
    changed, files = _changed_files(file_manifest), max(file_manifest.discovered, 1)
    updating: Updating = "by_file"
    if workload.staged_in_memory:
        updating = "in_memory"
    elif not file_manifest.incremental or full_rebuild or not 0 < changed <= BY_FILE_MAX_SHARE * files:
        updating = "whole"  # (no file changed: every view is reused, and nothing is worth measuring)
    return stage_relative_bases(topology_cache_policies, view_localities, view_graph, run_history,
                                table_statistics, updating, changed / files)


@tag(role="policy")
def extraction_choice(file_manifest: FileManifest, jobs: int = 0,
                      extraction_executor: str = "local") -> ExtractionChoice:
    """Where files are extracted, and by how many processes: on this machine, as many as the bytes
    this build extracts repay (in-process when few); or on a Dask cluster."""
    return compile_extraction(file_manifest.tasks, jobs, cast(ExtractionExecutor, extraction_executor))


@tag(role="policy")
def scan_policy(view_graph: ViewGraph, table_statistics: dict[str, TableStats], run_history: list[RunRecord],
                workload: Workload, session_profile: SessionProfile, thresholds: Thresholds,
                table_store: TableStore) -> ScanPolicy:
    """Scan options for the session and for each view, from the statistics of the tables it reads,
    the rows its plan read when it last ran, and (no table yet) the size of the work, on at most the
    profile's partitions; one partition under the (calibrated) small-input threshold; where the
    store's tables are read as Parquet scans, why their filters are not pushed into them."""
    return compile_scan_policy(view_graph, table_statistics, session_profile.target_partitions,
                               input_rows(run_history, view_graph), (workload.rows, workload.found),
                               thresholds, table_store.parquet_scans())


@tag(role="policy")
def materialization(optimized_ir: SemanticIR, cache_policies: dict[str, ViewPolicy],
                    workload: Workload) -> MaterializationStrategy:
    """Where staged views go (a staging table, or memory on a code base of up to ~16 MB of source) and
    how each is registered for its readers."""
    return compile_registration(optimized_ir, cache_policies, workload)


@tag(role="policy")
def maintenance_policies(optimized_ir: SemanticIR, table_statistics: dict[str, TableStats],
                         run_history: list[RunRecord]) -> dict[str, MaintenanceChoice]:
    """Maintenance thresholds per table the build owns (outputs, extraction tables, logs), by size
    tier, and when each was last vacuumed (from the runs' maintenance records)."""
    return compile_maintenance((*optimized_ir.outputs, *EXTRACT_TABLES, *LOG_TABLES), table_statistics, run_history)


@tag(role="policy")
def view_localities(semantic_plan: SemanticPlan) -> dict[str, Locality]:
    """Which views are file-local (their rows for a file read only that file's rows), inferred from
    each view's DataFusion plan and the semantic types of what it reads."""
    return infer_locality(semantic_plan, SOURCE_COLUMNS)


@tag(role="policy")
def view_maintenance(view_localities: dict[str, Locality], cache_policies: dict[str, ViewPolicy],
                     file_manifest: FileManifest, materialization: MaterializationStrategy,
                     full_rebuild: bool = False) -> dict[str, ViewMaintenance]:
    """How each written view is kept up to date: by file when it is file-local (relative to staged
    global views, at most) and few files changed, else in full."""
    return compile_view_maintenance(view_localities, cache_policies, full_rebuild, _changed_files(file_manifest),
                                    max(file_manifest.discovered, 1), materialization.held_in_memory())


@tag(role="policy")
def statistics_reads(view_maintenance: dict[str, ViewMaintenance], view_graph: ViewGraph,
                     cache_policies: dict[str, ViewPolicy],
                     materialization: MaterializationStrategy, run_history: list[RunRecord]
                     ) -> dict[str, StatisticsReads]:
    """For each staged view updated by file, the tables it reads only the data files of that the
    files it updates may be in (by the tables' statistics), with what its last update by file read."""
    return compile_statistics_reads(view_maintenance, view_graph, staging_tables(cache_policies, materialization),
                                    materialization, run_history)


def _source_bytes(file_manifest: FileManifest) -> int:
    """The bytes of source this build extracts (every file on a first build, the changed ones after)."""
    return sum(len(task.raw) for task in file_manifest.tasks)


def _changed_files(file_manifest: FileManifest) -> int:
    """The files an incremental build extracts again or removes (every file otherwise)."""
    return len(file_manifest.replaced_file_ids()) if file_manifest.incremental else file_manifest.discovered


@tag(role="policy")
def run_history(table_store: TableStore) -> list[RunRecord]:
    """The records of the last `RUN_HISTORY` runs that built this output, oldest first (none on a
    first build): what costs, scan options and a by-file update start from. A run further back
    than that is not read (its record is not even decoded)."""
    return read_records(table_store.read(RUNS_TABLE), last=RUN_HISTORY)


# Runs a compile reads back: enough for the last computation of every view and the current
# release's run behind a string of failed builds; a folder's run table grows with every build.
RUN_HISTORY = 50


@tag(role="policy")
def view_costs(view_graph: ViewGraph, run_history: list[RunRecord], table_statistics: dict[str, TableStats],
               cache_policies: dict[str, ViewPolicy], view_maintenance: dict[str, ViewMaintenance],
               materialization: MaterializationStrategy) -> dict[str, ViewCost]:
    """Each view's predicted seconds: measured by earlier runs and scaled by how its sources grew,
    else estimated."""
    return predict_costs(view_graph, run_history, table_statistics, cache_policies, view_maintenance,
                         materialization.held_in_memory())


@tag(role="policy")
def view_schedule(view_graph: ViewGraph, view_costs: dict[str, ViewCost]) -> ViewSchedule:
    """The order execution starts the views in: highest bottom level (predicted cost to the end) first."""
    lanes, evidence = compile_lanes()
    return compile_schedule(view_graph, {view: cost.seconds for view, cost in view_costs.items()}, lanes, evidence)


@tag(role="policy")
def previous_view_fingerprints(semantic_plan: SemanticPlan, release_log: list[Release],
                               run_history: list[RunRecord]) -> dict[str, str]:
    """Each view's fingerprint over the sources the current release was built from (the builtin
    names as they are now): a staged or published result recorded with it holds that release's rows
    of the view, which a by-file update changes. Empty when there is no release."""
    release = current_release(release_log)
    record = next((run for run in run_history if release is not None and run.run_id == release.run_id), None)
    if record is None or record.package is None:
        return {}
    sources = {**record.package.source_versions, BUILTIN_NAMES.table: builtin_names_version(builtin_names_table())}
    return view_fingerprints(semantic_plan, sources)


@tag(role="policy")
def udf_requirements(semantic_plan: SemanticPlan) -> dict[str, tuple[str, ...]]:
    """The SQL functions each view needs from the engine."""
    return compile_udf_requirements(semantic_plan, set(SOURCE_COLUMNS))


@tag(role="policy")
def compiled_policy(cache_policies: dict[str, ViewPolicy], extraction_choice: ExtractionChoice,
                    scan_policy: ScanPolicy, statistics_reads: dict[str, StatisticsReads],
                    materialization: MaterializationStrategy,
                    maintenance_policies: dict[str, MaintenanceChoice], udf_requirements: dict[str, tuple[str, ...]],
                    view_maintenance: dict[str, ViewMaintenance], view_costs: dict[str, ViewCost],
                    view_schedule: ViewSchedule, thresholds: Thresholds, session_profile: SessionProfile,
                    validation_mode: ValidationMode = "warn") -> CompiledExecutionPolicy:
    """Every execution decision of the run, in one fingerprinted struct."""
    return fingerprint_policy(CompiledExecutionPolicy(
        cache=cache_policies, extraction=extraction_choice,
        scan=msgspec.structs.replace(scan_policy, by_statistics=statistics_reads), maintenance=maintenance_policies,
        udfs=udf_requirements, view_maintenance=view_maintenance, costs=view_costs, schedule=view_schedule,
        thresholds=thresholds, profile=session_profile,
        materialization=materialization, diagnostics=DiagnosticsFlags(), validation_mode=validation_mode,
    ))


@tag(role="policy")
def validation(optimized_ir: SemanticIR, compiled_policy: CompiledExecutionPolicy,
               capabilities: RuntimeCapabilities, table_store: TableStore,
               cache_overrides: dict[str, CachePolicy] | None = None) -> ValidationResult:
    """The validator bundle over plan, policy, capabilities and catalog."""
    return validate(ValidationInput(
        ir=optimized_ir, policy=compiled_policy, capabilities=capabilities, overrides=dict(cache_overrides or {}),
        datasets=(*table_store.catalog.names(), BUILTIN_NAMES.table),
    ))
