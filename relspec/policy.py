"""The compiled execution policy: every execution decision of a run, made once, with its evidence.

Each `compile_*` function is one step of the compiler (a Hamilton node in `dataflows/policy.py`).
Cache policies start from the IR's topology-derived hints and weigh them against measured table
statistics; explicit overrides win and are recorded as such. Execution reads every field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

import msgspec

from relspec.calibration import DEFAULT_SMALL_INPUT_ROWS, Thresholds
from relspec.catalog import EXTRACT_TABLES, LOG_TABLES, DatasetCatalog
from relspec.costs import ViewCost
from relspec.machine import available_cores, physical_memory
from relspec.maintenance import CLUSTER_FILE_BYTES, MaintenancePolicy
from relspec.profiles import MEMORY_SHARE, SessionProfile
from relspec.schedule import ViewSchedule
from relspec.view_graph import ViewGraph
from semantics.entities import EXTRACTION_ENTITIES
from semantics.inference import InferenceConfidence
from semantics.ir import CACHE_POLICIES, SOURCE_COLUMNS, CachePolicy, SemanticIR, SemanticPlan
from semantics.types import SemanticType

if TYPE_CHECKING:  # the extractor itself is not loaded to plan (a reader of the run records imports this)
    from relspec.runs import RunRecord  # (which imports this module)
    from semantics.extract.files import FileTask
    from semantics.locality import Locality

ValidationMode = Literal["warn", "error"]
Registration = Literal["delta", "dataset", "memory"]
StagingMedium = Literal["auto", "delta", "memory"]  # where staged views go: by the workload's size, or always there

# A first build has no table statistics: it estimates the rows of its largest extraction table from the
# bytes of source it extracts, at the rate measured on the standard library (ex_flows: 1.6M rows from
# 31.5 MB of source, one row per 20 bytes).
ROWS_PER_SOURCE_BYTE = 0.05
TARGET_PARTITIONS = "datafusion.execution.target_partitions"  # the options a view's scan options set
OPTIMIZER_PASSES = "datafusion.optimizer.max_passes"
DEFAULT_OPTIMIZER_PASSES = 3  # DataFusion's own default
# Why tables read as Parquet scans get their filters after the scan (DataFusion's default), not pushed in.
PARQUET_FILTERS_EVIDENCE = (
    "tables read as Parquet scans: filters applied after them, statistics still prune files and row groups "
    "(pushed into the scans on an S3-compatible server, a filter the statistics cannot prune by took 1.4-1.5x "
    "as long, bench_pushdown.py; a 132k-line build's views 5-12% longer)")
# Staged views are held in memory for the run, not written to staging tables, while the code base's
# largest extraction table holds fewer rows than this: so held, a build is faster at every size
# measured, and its peak RSS reaches 1.9 GB at 829k rows (3.3 GB on the standard library's 1.6M), where
# a build may hold 2 GiB (tests/benchmarks/bench_staging.py; docs/pipeline.md, "Staging in memory").
MEMORY_STAGING_MAX_ROWS = 800_000
# A build holding its staged views in memory peaks at about this, plus this much a row of its largest
# extraction table (bench_staging.py: 671 MiB at 112k rows, 1,911 MiB at 829k); on a machine with
# little memory the threshold is lowered so that the peak stays within this share of it.
HELD_BASE_BYTES = 480 * 2**20
HELD_BYTES_PER_ROW = 1_800
MEMORY_STAGING_SHARE = 0.5
# Table-size tiers shared by every size-based decision.
SIZE_TIERS: tuple[tuple[str, int], ...] = (("small", 100_000), ("medium", 2_000_000), ("large", 2**63 - 1))


class TableStats(msgspec.Struct, frozen=True):
    rows: int
    files: int
    bytes: int
    version: int


class ViewPolicy(msgspec.Struct, frozen=True):
    cache: CachePolicy
    confidence: InferenceConfidence
    override: bool = False
    required: bool = False  # staging is needed for correctness (a recursive reader), not for speed
    weighed_sources: tuple[str, ...] = ()  # the measured source tables whose rows the decision weighed
    # a global view that views local relative to it read: why it is staged for their update by file, or
    # not, from what earlier runs measured (relspec.relative_staging)
    for_readers: str | None = None
    # a view whose plan passes on every row it scans: why it is inlined, or staged (`_inlines_pass_through`)
    passes_on: str | None = None


class ScanOptions(msgspec.Struct, frozen=True):
    """DataFusion options a view's plan runs under (its partitions) and why; ``queries_at_once``: how
    many independent queries of a stage a fixpoint view runs at once (`semantics.fixpoint`)."""

    options: dict[str, str]
    confidence: InferenceConfidence
    queries_at_once: int = 1


class StatisticsReads(msgspec.Struct, frozen=True):
    """The tables a view updated by file reads as only their data files whose statistics of a column
    may hold the files it updates: ``columns`` maps each table to its column naming each row's file.
    The Delta provider skips no data file for a filter (`tests/test_plan_signals.py`), so each update
    by file otherwise scans every file of what it reads."""

    columns: dict[str, str]
    confidence: InferenceConfidence


class ScanPolicy(msgspec.Struct, frozen=True):
    session: ScanOptions  # applied when the run's session is set up
    views: dict[str, ScanOptions]  # applied before a view executes (staged or published), from its sources
    by_statistics: dict[str, StatisticsReads] = {}  # by view updated by file (staged): what it reads so


class RegistrationChoice(msgspec.Struct, frozen=True):
    # `delta`: written to a staging table and read through the Delta provider (file statistics and
    # pruning; a later run reuses it or updates it by file); `dataset`: written so, and read into memory
    # for a recursive reader, which re-scans it; `memory`: held in memory for this run only, no table
    # (an extraction table: read from its Delta table once, into memory)
    registration: Registration
    confidence: InferenceConfidence


class MaterializationStrategy(msgspec.Struct, frozen=True):
    staging_folder: str = "_staging"
    # how each staged view and each extraction table is registered for its readers
    registration: dict[str, RegistrationChoice] = {}

    def held_in_memory(self) -> frozenset[str]:
        """The staged views (and extraction tables) held in memory for the run (no staging table)."""
        return frozenset(view for view, choice in self.registration.items() if choice.registration == "memory")


class MaintenanceChoice(msgspec.Struct, frozen=True):
    policy: MaintenancePolicy
    confidence: InferenceConfidence
    # the version the table's last vacuum ran at, as the last run that maintained it recorded it (-1:
    # none known): a vacuum that deletes nothing commits nothing, so its log does not say it ran
    vacuumed_at: int = -1


ExtractionExecutor = Literal["local", "dask"]
EXTRACTION_EXECUTORS: tuple[str, ...] = get_args(ExtractionExecutor)


class ExtractionChoice(msgspec.Struct, frozen=True):
    """Where files are extracted and by how many processes: on this machine, as many as the measured
    size of the work repays (a worker costs ~0.2 s to start; 1: in the build's own process); on Dask,
    by the cluster's workers (``workers``: the processes of the local cluster the build starts when
    it is given no scheduler)."""

    workers: int
    confidence: InferenceConfidence
    executor: ExtractionExecutor = "local"


ViewMaintenanceMode = Literal["full", "by_file"]


class ViewMaintenance(msgspec.Struct, frozen=True):
    """How a written view (staged or published) is kept up to date from one build to the next:
    ``by_file`` recomputes the rows of the files that changed and replaces exactly those (in column
    ``owner``); ``full`` recomputes and rewrites it whole. ``owner`` is the column naming each row's file
    in a file-local view whatever its mode (None: the view is not file-local, or is local relative to a
    global view whose changes a build cannot know, so never replaced by file); its table is clustered by it.
    ``bases``: the global views a ``by_file`` view is local relative to (`semantics.locality`): the files
    whose rows of them changed are recomputed too. ``changes_by``: set on a global view some ``by_file``
    view is relative to, the column by which a build finds the files its rows changed for."""

    mode: ViewMaintenanceMode
    owner: str | None
    confidence: InferenceConfidence
    bases: tuple[str, ...] = ()
    changes_by: str | None = None


class DiagnosticsFlags(msgspec.Struct, frozen=True):
    record_plans: bool = True  # keep each executed view's physical plan fingerprint in the run record


class CompiledExecutionPolicy(msgspec.Struct, frozen=True):
    cache: dict[str, ViewPolicy]
    extraction: ExtractionChoice
    scan: ScanPolicy
    maintenance: dict[str, MaintenanceChoice]
    udfs: dict[str, tuple[str, ...]]  # SQL functions each view needs from the engine
    materialization: MaterializationStrategy
    diagnostics: DiagnosticsFlags
    validation_mode: ValidationMode
    view_maintenance: dict[str, ViewMaintenance] = {}  # by written view
    thresholds: Thresholds = Thresholds()  # the calibrated thresholds the decisions above were made with
    costs: dict[str, ViewCost] = {}  # predicted, by view: what the schedule orders by
    schedule: ViewSchedule | None = None  # the order execution starts the views in
    profile: SessionProfile | None = None  # the session profile of the run's workload class (relspec/profiles.py)
    fingerprint: str = ""

    def write_order(self, view: str) -> str | None:
        """The column a whole write of ``view`` sorts its rows by in the view's plan: the owner of a
        file-local view written to a Delta table (staged or published), whose data files are then
        clustered by it; None for the others (not file-local, held in memory, or inlined)."""
        choice = self.view_maintenance.get(view)
        if choice is None or view in self.materialization.held_in_memory():
            return None
        return choice.owner


def size_tier(rows: int) -> str:
    for tier, limit in SIZE_TIERS:
        if rows < limit:
            return tier
    return SIZE_TIERS[-1][0]


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, CachePolicy]:
    """`VIEW=POLICY` strings to a mapping; a malformed one is a ValueError naming it."""
    overrides: dict[str, CachePolicy] = {}
    for pair in pairs:
        view, sep, policy = pair.partition("=")
        if not sep or not view or policy not in CACHE_POLICIES:
            raise ValueError(f"--cache-policy {pair!r}: expected VIEW=POLICY with POLICY one of "
                             f"{', '.join(CACHE_POLICIES)}")
        overrides[view] = policy  # type: ignore[assignment]
    return overrides


def compile_cache_policies(ir: SemanticIR, graph: ViewGraph, stats: dict[str, TableStats],
                           overrides: dict[str, CachePolicy], workload: Workload,
                           localities: dict[str, Locality], thresholds: Thresholds | None = None
                           ) -> dict[str, ViewPolicy]:
    """Cache policy by view. A view whose plan passes on every row of tables (`_inlines_pass_through`)
    is inlined whatever its fan-out: its readers' plans grow by scans and projections only. A view
    that only scans source tables is cheaper to recompute in each reader than to write and read back
    while the computations inlining adds (one per scan of it past the first) read fewer source rows
    than ``thresholds.inline_max_rows``, calibrated from measured runs (`relspec.calibration`): the
    fan-out at which such a view is staged falls as its rows grow. Only leaf views are inlined so:
    inlining views that compute over other views grows the readers' plans until DataFusion's
    optimizer stalls (measured on the fixture suite)."""
    limit = (thresholds or Thresholds()).inline_max_rows
    source_rows = {name: stat.rows for name, stat in stats.items()}
    policies: dict[str, ViewPolicy] = {}
    planned = {view.name: overrides.get(view.name, view.cache.policy) for view in ir.views if view.cache}
    for view in ir.views:
        hint = view.cache
        assert hint is not None, "cache hints are inferred before the policy is compiled"
        evidence = list(hint.confidence.evidence)
        policy, score, fallback = hint.policy, hint.confidence.score, None
        weighed: tuple[str, ...] = ()
        passes_on = None
        if policy == "delta_staging" and hint.pass_through and not hint.required:
            assert view.position is not None, "graph positions are inferred before the policy is compiled"
            inlined, passes_on = _inlines_pass_through(view.inputs, view.position.consumers, policies, planned,
                                                       localities, workload)
            evidence.append(passes_on)
            policy = "none" if inlined else policy
        if policy == "delta_staging" and not hint.required:
            if not stats:
                fallback = "no table statistics yet (first build): topology alone decides"
                score = min(score, 0.7)
            else:
                cost = graph.upstream_cost(view.name, source_rows)
                weighed = tuple(sorted(graph.transitive_sources(view.name) & source_rows.keys()))
                evidence.append(f"reads {cost:,} source rows in all")
                assert view.position is not None, "graph positions are inferred before the policy is compiled"
                extra = view.position.fan_out - 1  # the computations inlining adds (a staging hint: fan-out >= 2)
                if cost * extra < limit and not graph.inputs(view.name):
                    if passes_on is not None:  # inlined for its cost: why its plan kept it staged is moot
                        evidence.remove(passes_on)
                    policy, passes_on = "none", None
                    evidence.append(f"recomputed {extra} more time{'s' if extra > 1 else ''} if inlined: "
                                    f"{cost * extra:,} rows, under {limit:,}: cheaper than staging it")
        override = overrides.get(view.name)
        if override is not None:
            evidence.append(f"explicit override {view.name}={override} (compiled: {policy})")
            policy, score, fallback = override, 1.0, None
        policies[view.name] = ViewPolicy(
            cache=policy,
            confidence=InferenceConfidence("cache_policy", policy, score, tuple(evidence), fallback),
            override=override is not None,
            required=hint.required,
            weighed_sources=weighed,
            passes_on=passes_on,
        )
    return policies


def _inlines_pass_through(inputs: tuple[str, ...], readers: tuple[str, ...], decided: dict[str, ViewPolicy],
                          planned: dict[str, CachePolicy], localities: dict[str, Locality], workload: Workload
                          ) -> tuple[bool, str]:
    """Whether a view whose plan passes on every row of its ``inputs`` (scans, projections, unions:
    `semantics.scans.infer_pass_through`) is inlined into its ``readers``, and why: they then scan its
    inputs, as cheaply as they would scan its staged copy, which costs a write (or, held in memory, a
    copy). It stays staged where an input would be computed in each reader's plan (a view neither
    staged nor itself inlined for passing rows on); where staging tables hold it and a reader that is
    written (``planned``: the topology's policy or an override; the compiler inlines more only where
    a reader passes rows on, which then keeps this view staged for nothing) is file-local (a build
    updating that reader by file reads only the data files of it that hold the changed files, by
    their statistics, and would read its inputs whole); and where staged views are held in memory
    while it reads an extraction table through the Delta provider (staged, its readers scan memory
    rather than each decode those files)."""
    named = ", ".join(inputs)
    computed = [name for name in inputs if name not in SOURCE_COLUMNS
                and decided[name].cache != "delta_staging" and not _passes_on(decided[name])]
    if computed:
        return False, (f"its plan passes on rows of {named}, but {', '.join(computed)} would be computed in "
                       "each reader's plan: staged, it is computed once")
    local = [name for name in readers if name in localities and localities[name].local and planned[name] != "none"]
    if not workload.staged_in_memory and local:
        return False, (f"its plan passes on rows of {named}, and file-local {', '.join(local)} read it: a build "
                       "updating them by file reads only the data files of its staging table that hold the changed "
                       "files, where inlined they would read its inputs whole")
    decoded = [name for name in inputs if name in EXTRACT_TABLES]
    if workload.staged_in_memory and not workload.sources_in_memory and decoded:
        return False, (f"its plan passes on rows of {named}; staged views are held in memory while "
                       f"{', '.join(decoded)} is read through the Delta provider: staged, its readers scan memory "
                       "rather than each decode those files")
    copy = "a copy in memory" if workload.staged_in_memory else "a write"
    return True, (f"its plan passes on every row of {named} (scans, projections, unions): its readers scan "
                  f"those as cheaply as they would scan it staged, which costs {copy}")


def _passes_on(policy: ViewPolicy) -> bool:
    """Whether ``policy`` inlines its view for passing on the rows of inputs that are not computed in
    its readers' plans (so a view reading it reads those)."""
    return policy.cache == "none" and policy.passes_on is not None and not policy.override


def compile_view_maintenance(localities: dict[str, Locality], policies: dict[str, ViewPolicy], full: bool,
                             changed: int, files: int, held: frozenset[str] = frozenset()
                             ) -> dict[str, ViewMaintenance]:
    """Per written view: ``by_file`` when its rows for a file depend only on that file's rows and on
    the rows credited to that file of global views written to staging tables (the inferred locality,
    with its evidence), else ``full``; every view ``full`` when asked (--full) or when ``changed`` of the
    ``files`` files changed is more than BY_FILE_MAX_SHARE of them. ``held``: the views held in memory
    (no staging table keeps their rows from one build to the next)."""
    choices = {}
    too_many = changed > BY_FILE_MAX_SHARE * files
    for view, policy in sorted(policies.items()):
        if policy.cache == "none":
            continue  # computed inside its readers' plans: maintained as they are
        locality = localities[view]
        evidence = locality.evidence
        unknown = _unknown_changes(locality.bases, policies, held)
        if full:
            mode, evidence = "full", (*evidence, "a full rebuild was asked for (--full)")
        elif locality.local and too_many:
            mode, evidence = "full", (*evidence, f"{changed:,} of {files:,} files changed: recomputing the view "
                                      "whole costs less than replacing most of its rows")
        elif locality.local and unknown:
            mode, evidence = "full", (*evidence, *unknown)
        else:
            mode = "by_file" if locality.local else "full"
        # a view whose changed files are never known is never replaced by file: no clustering by them
        owner = None if locality.local and unknown else locality.owner
        choices[view] = ViewMaintenance(mode, owner,  # type: ignore[arg-type]
                                        InferenceConfidence("view_maintenance", mode, 1.0, evidence),
                                        locality.bases if mode == "by_file" else ())
    read = {base for choice in choices.values() for base in choice.bases}
    for base in sorted(read):  # each a staged global view: say by what a build finds its changes
        choice = choices[base]
        column = localities[base].credited_to
        why = (f"read by file by {', '.join(sorted(v for v, c in choices.items() if base in c.bases))}: a build "
               f"that recomputes it compares its rows with the current release's, and those views recompute "
               f"their rows of the files whose rows credited to them ({column}) changed")
        choices[base] = msgspec.structs.replace(choice, changes_by=column, confidence=choice.confidence.citing(why))
    return choices


_UNCOMPARED = {"none": "inlined into its readers", "delta_output": "published, not staged"}


def _unknown_changes(bases: tuple[str, ...], policies: dict[str, ViewPolicy], held: frozenset[str]) -> tuple[str, ...]:
    """Why a build cannot know which files' rows of ``bases`` changed (none: it can): only a base
    written to a staging table is compared with its last build's rows; one computed inside its
    readers' plans or held in memory leaves none to compare with."""
    where = {base: "held in memory" if base in held else _UNCOMPARED[policies[base].cache]
             for base in bases if policies[base].cache != "delta_staging" or base in held}
    return tuple(f"reads {base}, computed across files and {how}: which files' rows of it changed is not known, "
                 "so the view is recomputed whole" for base, how in where.items())


# Past this share of the files changed, a file-local view is recomputed whole: replacing by file
# filters every scan by a list of most file ids and rewrites most of the table's files anyway.
BY_FILE_MAX_SHARE = 0.5


def scan_options(stats: dict[str, TableStats], tables: set[str] | None = None, partitions: int = 1,
                 scanned: tuple[str, int] | None = None, estimated: tuple[int, str] | None = None,
                 small_rows: int = DEFAULT_SMALL_INPUT_ROWS, parquet_scans: bool = False,
                 fixpoint: bool = False) -> ScanOptions:
    """Scan options for reading ``tables`` (all known ones if None).

    The partitions its plan runs on: ``partitions``, or one when its input is under ``small_rows``
    (calibrated: `relspec.calibration`): what the view's plan scanned when it last ran (``scanned``:
    the run and its rows), else its largest table, else (no table yet) the workload's largest table
    as ``estimated`` (rows, how) — repartitioning a few thousand rows costs more than the threads win
    back. A small input's queries are also optimized in one pass instead of DataFusion's three:
    planning, not rows, is what they cost (the points-to fixpoint of an 18-file package runs ~160
    queries of ~3 ms, two thirds of it planning); what later passes refine (an outer join that a
    filter turns into an inner one, the filter then pushed below it) saves little on so few rows.
    Filters are applied after the scans, never pushed into them. Where tables are read as Parquet
    scans (``parquet_scans``: on object storage), a pushed-down filter the statistics cannot prune by
    was measured 1.4-1.5x as long on an S3-compatible server, and the same where they prune (they
    prune files and row groups either way); on local files 0.7-2.1x, by the filter
    (`tests/benchmarks/bench_pushdown.py`). The decision's evidence then says so. A Delta provider
    plans its own Parquet scan, which neither the session's options nor a filter reach
    (`tests/test_plan_signals.py`).
    A ``fixpoint`` view over a small input also runs the independent queries of a stage as many at
    once as there are ``partitions`` (`ScanOptions.queries_at_once`)."""
    read = {name: stat for name, stat in stats.items() if tables is None or name in tables}
    largest = max((stat.rows for stat in read.values()), default=0)
    most_files = max((stat.files for stat in read.values()), default=0)
    evidence = [f"largest table read: {largest:,} rows ({size_tier(largest)} tier), most files: {most_files}"]
    if scanned is not None:
        input_rows = scanned[1]
        measured = "its largest input held" if fixpoint else "it read"
        evidence.append(f"{measured} {input_rows:,} rows in run {scanned[0]}")
    elif not read and estimated is not None:
        input_rows = estimated[0]
        evidence.append(f"no table yet: the largest extraction table {estimated[1]}")
    else:
        input_rows = largest
    small_input = bool(read or scanned or estimated) and input_rows < small_rows
    if small_input and partitions > 1:
        evidence.append(f"a small input ({input_rows:,} rows, under {small_rows:,}): one partition, "
                        "no repartitioning")
    elif scanned is not None and partitions > 1:
        evidence.append(f"not a small input ({input_rows:,} rows): {partitions} partitions")
    chosen = 1 if small_input else partitions
    options = {TARGET_PARTITIONS: str(chosen), OPTIMIZER_PASSES: str(1 if small_input else DEFAULT_OPTIMIZER_PASSES)}
    decision = "one partition" if chosen == 1 else f"{chosen} partitions"
    at_once = 1
    if small_input:
        decision += ", one optimizer pass"
        evidence.append(f"a small input ({input_rows:,} rows, under {small_rows:,}): its queries optimized in one "
                        "pass (planning, not rows, is their cost)")
        if fixpoint and partitions > 1:
            at_once = partitions
            evidence.append(f"a fixpoint's independent queries run {partitions} at once: DataFusion plans off the "
                            "GIL (measured: an 18-file package's points-to fixpoint took 11-18% less; on the standard "
                            "library no sooner and 60-130 MiB more at its peak, so a large input runs them one "
                            "at a time)")
    if parquet_scans:
        evidence.append(PARQUET_FILTERS_EVIDENCE)
    return ScanOptions(options, InferenceConfidence("scan_options", decision, 1.0 if read else 0.5, tuple(evidence),
                                                    None if read else "no table statistics yet"), at_once)


def staging_tables(cache: dict[str, ViewPolicy], materialization: MaterializationStrategy) -> frozenset[str]:
    """The views written to staging tables (staged, and not held in memory)."""
    staged = frozenset(view for view, choice in cache.items() if choice.cache == "delta_staging")
    return staged - materialization.held_in_memory()


def compile_statistics_reads(maintenance: dict[str, ViewMaintenance], graph: ViewGraph, staged: frozenset[str],
                             materialization: MaterializationStrategy, history: list[RunRecord]
                             ) -> dict[str, StatisticsReads]:
    """For each view written to a staging table (``staged``) and updated by file, the tables it reads
    through their Delta provider whose data files a build can pick by their statistics: its rows for
    a file read only that file's rows of each (`semantics.locality`), so the update reads only the
    data files whose range of the table's file column may hold the files it updates, and nothing it
    needs is left out. A table qualifies by the column it is written clustered by, so that its data
    files' ranges are narrow: an extraction table's file column, or a file-local staged view's owner.
    Not a table read into memory (an extraction table on a small code base, a staged view a recursive
    reader re-scans), a global view (written unclustered: every file's range spans the files), nor a
    view inlined into it. The evidence is what the view's last update by file measured: the data files
    its scans opened and the rows they read."""
    chosen: dict[str, StatisticsReads] = {}
    in_memory = {name for name, choice in materialization.registration.items()
                 if choice.registration in ("memory", "dataset")}
    for view, choice in sorted(maintenance.items()):
        if choice.mode != "by_file" or view not in staged:
            continue
        columns: dict[str, str] = {}
        for table in (*graph.sources[view], *graph.inputs(view)):
            read = maintenance.get(table)
            if table in in_memory:
                continue
            if table in _FILE_COLUMNS:
                columns[table] = _FILE_COLUMNS[table]
            elif read is not None and read.owner is not None and table in staged:
                columns[table] = read.owner
        if columns:
            evidence, fallback = _last_update_by_file(view, set(columns), history)
            tables = ", ".join(f"{table} by {column}" for table, column in sorted(columns.items()))
            evidence = (f"its rows for a file read only that file's rows of {tables}, each written clustered by "
                        "that column: only the data files whose statistics may hold the updated files are read",
                        *evidence)
            confidence = InferenceConfidence("statistics_reads", "by_statistics", 1.0 if fallback is None else 0.5,
                                             evidence, fallback)
            chosen[view] = StatisticsReads(columns, confidence)
    return chosen


def _last_update_by_file(view: str, tables: set[str], history: list[RunRecord]) -> tuple[tuple[str, ...], str | None]:
    """What the newest run that updated ``view`` by file measured of its scans of ``tables``."""
    for record in reversed(history):
        outcome = next((o for o in record.views if o.view == view and o.maintained == "by_file"), None)
        if outcome is None or outcome.executed is None:
            continue
        scans = [scan for scan in outcome.executed.scans if scan.table in tables]
        files = sum(scan.files_opened or 0 for scan in scans)
        rows = sum(scan.rows_out or 0 for scan in scans)
        return (f"its last update by file (run {record.run_id}) opened {files:,} data files in {len(scans)} scans "
                f"of them and read {rows:,} rows, for {outcome.rows or 0:,} rows written",), None
    return (), "no update by file of it measured yet"


# A worker takes ~0.2 s and ~75 MB to start (interpreter, pyarrow, msgspec): the time it extracts about
# 0.5 MB of source in (~2.7 MB/s a process, measured on the standard library). One worker per MiB of work.
WORKER_MIN_BYTES = 1024 * 1024


def worker_count(tasks: list[FileTask], jobs: int) -> int:
    """Worker processes worth starting: at most ``jobs`` (0: one per core) and the cores (extraction
    is CPU-bound), and one per WORKER_MIN_BYTES of source. 1 means extraction in this process."""
    limit = available_cores() if jobs <= 0 else min(jobs, available_cores())
    total = sum(len(task.raw) for task in tasks)
    return max(1, min(limit, total // WORKER_MIN_BYTES))


# The share of the session's memory budget two extraction tables written at once may hold: on the
# standard library a first build's two largest hold ~1.4 GB, under the peak the points-to fixpoint
# sets later (~1.9 GB), while a code base four times its size writes one at a time.
EXTRACTION_WRITE_SHARE = 0.25
# What writing a table holds, in multiples of its rows' Arrow bytes (measured, anonymous RSS over the
# spool, one table a process): a whole write the mapped spool and a sorted copy, ~2.5x; replacing
# some files' rows also reads their current rows and sorts both sides to compare them, ~6x.
WRITE_HOLDS = {"whole": 3, "by_file": 6}


class ExtractionWriters(msgspec.Struct, frozen=True):
    """How many extraction tables a build writes at once, decided from the spooled tables' sizes
    once extraction has run (so it is a decision of the run, not of the compiled policy)."""

    writers: int
    confidence: InferenceConfidence


def extraction_writers(table_bytes: list[int], profile: SessionProfile | None, replacing: bool) -> ExtractionWriters:
    """How many extraction tables are written at once: two while the two largest take at most
    EXTRACTION_WRITE_SHARE of the session's memory budget (a full build's share of memory when the
    profile sets none), counted at what their writes hold (WRITE_HOLDS: ``replacing`` some files'
    rows, or whole), else one. A write is a sort in Arrow and Parquet encoding in Rust, both off the
    GIL: two at a time wrote the standard library's tables in 1.7-1.9 s instead of 2.6-3.3 s (measured)."""
    budget = profile.memory_limit if profile is not None and profile.memory_limit is not None else \
        int(physical_memory() * MEMORY_SHARE["full_build"])
    write = "by_file" if replacing else "whole"
    largest = sorted(table_bytes, reverse=True)[:2]
    held = WRITE_HOLDS[write] * sum(largest)
    share = int(EXTRACTION_WRITE_SHARE * budget)
    writers = 2 if held <= share else 1
    evidence = (f"the two largest extraction tables hold {sum(largest):,} bytes; a {write} write holds "
                f"{WRITE_HOLDS[write]}x a table's bytes: {held:,} bytes",
                f"{EXTRACTION_WRITE_SHARE:.0%} of the session's memory budget: {share:,} bytes",
                "two at a time wrote the standard library's tables in 1.7-1.9 s against 2.6-3.3 s (measured)")
    return ExtractionWriters(writers, InferenceConfidence("extraction_writes", f"{writers}_at_once", 0.8, evidence))


def compile_extraction(tasks: list[FileTask], jobs: int, executor: ExtractionExecutor = "local") -> ExtractionChoice:
    """Extraction processes for ``tasks`` (the files this build extracts), within ``jobs`` (0: the cores)."""
    work = sum(len(task.raw) for task in tasks)
    if executor == "dask":
        workers = jobs if jobs > 0 else available_cores()
        evidence = (f"{len(tasks):,} files to extract, {work:,} bytes", "the Dask executor was asked for",
                    f"a local cluster would have {workers} worker processes (jobs {jobs if jobs > 0 else 'unbounded'})")
        return ExtractionChoice(workers, InferenceConfidence("extraction", "dask", 1.0, evidence), executor)
    workers = worker_count(tasks, jobs)
    evidence = (f"{len(tasks):,} files to extract, {work:,} bytes",
                f"{available_cores()} cores, jobs {jobs if jobs > 0 else 'unbounded'}",
                f"one worker per {WORKER_MIN_BYTES:,} bytes of source (a worker costs ~0.2 s to start)")
    decision = "in_process" if workers == 1 else f"{workers}_workers"
    return ExtractionChoice(workers, InferenceConfidence("extraction", decision, 1.0, evidence))


def compile_scan_policy(graph: ViewGraph, stats: dict[str, TableStats], partitions: int,
                        scanned: dict[str, tuple[str, int]] | None = None,
                        estimated: tuple[int, str] | None = None, thresholds: Thresholds | None = None,
                        parquet_scans: bool = False) -> ScanPolicy:
    """Scan options of the session and of each view, from the statistics of the tables it reads,
    what its plan scanned when it last ran (``scanned``: view -> run, rows) and, for a view whose
    tables do not exist yet, the workload's ``estimated`` largest table (rows, how), on at most
    ``partitions``; small inputs by the (calibrated) ``thresholds``; where the tables are read as
    ``parquet_scans``, the evidence says why their filters are not pushed into them."""
    scanned = scanned or {}
    small = (thresholds or Thresholds()).small_input_rows
    views = {name: scan_options(stats, graph.transitive_sources(name), partitions, scanned.get(name), estimated, small,
                                parquet_scans, name in graph.fixpoints) for name in graph.names()}
    # what a view-less query runs on: every partition, every optimizer pass (no input is small to it)
    session = scan_options(stats, partitions=partitions, small_rows=0, parquet_scans=parquet_scans)
    return ScanPolicy(session=session, views=views)


def workload_rows(stats: dict[str, TableStats], source_bytes: int, kept: float = 1.0) -> tuple[int, str]:
    """The rows the code base's largest extraction table will hold: the share ``kept`` of what the
    last build measured (the share of the source it extracted in files this build keeps unchanged: 0
    on a full rebuild, which rewrites every row), plus an estimate for ``source_bytes`` (the source
    this build extracts: every file on a first build, the changed and added ones after), so a code
    base that grew is not taken for the small one it was; with how it was found."""
    estimated = round(source_bytes * ROWS_PER_SOURCE_BYTE)
    how = f"{source_bytes:,} bytes of source to extract at {ROWS_PER_SOURCE_BYTE} rows a byte"
    measured = [stats[name].rows for name in EXTRACT_TABLES if name in stats]
    if measured and kept > 0:
        share = "" if kept >= 1 else f" in files kept ({kept:.0%} of its source)"
        held = round(max(measured) * min(kept, 1.0))
        return held + estimated, f"{held:,} measured by the last build{share}, plus {how}"
    if measured:
        return estimated, f"estimated from {how} (every file extracted again: none of the last build's rows kept)"
    return estimated, f"estimated from {how} (no table yet)"


class Workload(msgspec.Struct, frozen=True):
    """The size of a run's work, and so where it holds its tables (see `compile_registration`): the
    rows of the largest extraction table (``found`` says how they were found: measured by the last
    build, or estimated), the machine's ``memory`` and the rows below which staged views are held in
    memory on it (``memory_limit``), and the ``staging`` asked for."""

    rows: int
    found: str
    measured: bool  # some of ``rows`` come from the last build's tables (else an estimate alone)
    staging: StagingMedium
    memory: int
    memory_limit: int

    @property
    def staged_in_memory(self) -> bool:
        """Staged views are held in memory for the run rather than written to staging tables."""
        return _holds_in_memory(self.rows, self.staging, self.memory_limit)

    @property
    def sources_in_memory(self) -> bool:
        """The extraction tables are read into memory once (a small code base not forced to staging
        tables), not read through the Delta provider by each plan."""
        return size_tier(self.rows) == "small" and self.staging != "delta"


def compile_workload(stats: dict[str, TableStats], source_bytes: int, staging: StagingMedium = "auto",
                     kept: float = 1.0, memory: int | None = None) -> Workload:
    """The run's `Workload`: ``kept`` and ``source_bytes`` see `workload_rows`; ``memory``: the
    machine's bytes (its physical memory if None)."""
    rows, found = workload_rows(stats, source_bytes, kept)
    memory = physical_memory() if memory is None else memory
    return Workload(rows, found, bool(stats) and kept > 0, staging, memory, memory_staging_max_rows(memory))


def memory_staging_max_rows(memory: int | None = None) -> int:
    """The rows of the largest extraction table below which staged views are held in memory on a
    machine with ``memory`` bytes (this one's when None): MEMORY_STAGING_MAX_ROWS, or fewer where a
    build holding that many would reach more than MEMORY_STAGING_SHARE of the memory."""
    memory = physical_memory() if memory is None else memory
    fits = int((memory * MEMORY_STAGING_SHARE - HELD_BASE_BYTES) / HELD_BYTES_PER_ROW)
    return max(0, min(MEMORY_STAGING_MAX_ROWS, fits))


def _holds_in_memory(rows: int, staging: StagingMedium, limit: int) -> bool:
    """Whether a code base whose largest extraction table holds ``rows`` rows holds its staged views in
    memory, below ``limit`` rows."""
    return staging == "memory" or (staging == "auto" and rows < limit)


def compile_registration(ir: SemanticIR, policies: dict[str, ViewPolicy], workload: Workload
                         ) -> MaterializationStrategy:
    """How each staged view and each extraction table is held for its readers. While the code base's
    largest extraction table holds fewer than MEMORY_STAGING_MAX_ROWS rows, staged views are held in
    memory for the run: writing, reading back and maintaining a staging table costs more than computing
    the view again in the next build, an edit's included (measured: see docs/pipeline.md, "Staging
    in memory"); past it, the memory they hold grows past what a build may hold (2 GiB: the standard
    library's build peaks at 3.3 GB with them against 1.8 GB with staging tables, though 18% sooner);
    there, in a staging table, read through the Delta provider, or into memory for a recursive reader
    (which re-scans it). On a small code base (its largest extraction table in the small tier) the
    extraction tables are read into memory once as well, so no view is planned over a Delta provider.
    The ``workload``'s staging = "delta" or "memory" decides for every view, whatever the size."""
    rows, limit = workload.rows, workload.memory_limit
    memory_held = workload.staged_in_memory
    if workload.staging != "auto":
        held = (f"staging={workload.staging} was asked for",)
        held_score = 1.0
    else:
        bound = (f"{limit:,} rows" if limit == MEMORY_STAGING_MAX_ROWS else
                 f"{limit:,} rows (of {MEMORY_STAGING_MAX_ROWS:,}: a build holding more would reach over "
                 f"{MEMORY_STAGING_SHARE:.0%} of this machine's {workload.memory:,} bytes of memory)")
        held = (f"largest extraction table: {rows:,} rows ({workload.found}): {size_tier(rows)} tier, "
                f"{'under' if rows < limit else 'not under'} {bound}",)
        held_score = 1.0 if workload.measured else 0.6  # measured, or (none kept) estimated alone
    recursive_readers: dict[str, list[str]] = {}
    fixpoint_readers: dict[str, list[str]] = {}
    for view in ir.views:
        # a fixpoint view scans its inputs in single queries (each prepare step, each rule): the
        # Delta provider serves them; a WITH RECURSIVE query re-scans its inputs at each iteration
        if getattr(view.spec, "fixpoint", None) is not None:
            readers = fixpoint_readers
        elif getattr(view.spec, "recursive", False):
            readers = recursive_readers
        else:
            continue
        for name in view.inputs:
            readers.setdefault(name, []).append(view.name)
    registration = {}
    for name, policy in policies.items():
        if policy.cache != "delta_staging":
            continue
        readers = recursive_readers.get(name)
        if memory_held:
            evidence = (*held, "held in memory for this run: no staging table to write, read back and maintain, "
                        "and none for a later run to reuse")
            choice = RegistrationChoice("memory", InferenceConfidence("registration", "memory", held_score, evidence))
        elif readers:
            evidence = (f"re-scanned by recursive view {', '.join(readers)}: a Delta scan runs once per plan", *held)
            choice = RegistrationChoice("dataset", InferenceConfidence("registration", "dataset", held_score,
                                                                       evidence))
        elif name in fixpoint_readers:
            evidence = (f"read by fixpoint view {', '.join(fixpoint_readers[name])} in plain queries, and no "
                        "recursive query re-scans it: the Delta provider, not a copy held in memory", *held)
            choice = RegistrationChoice("delta", InferenceConfidence("registration", "delta", held_score, evidence))
        else:
            evidence = ("no recursive reader: the Delta provider keeps file statistics and pruning", *held)
            choice = RegistrationChoice("delta", InferenceConfidence("registration", "delta", held_score, evidence))
        registration[name] = choice
    for name in EXTRACT_TABLES:
        if workload.sources_in_memory:
            evidence = (*held, "extraction table read into memory once: a view planned and run over a Delta "
                        "provider pays ~10 ms a query, over a table in memory ~2 ms (measured)")
        else:
            evidence = (*held, "extraction table read through the Delta provider: file statistics and pruning")
        chosen = "memory" if workload.sources_in_memory else "delta"
        registration[name] = RegistrationChoice(chosen, InferenceConfidence("registration", chosen, held_score,
                                                                            evidence))
    return MaterializationStrategy(registration=registration)


# The extraction tables' file columns: by-file replaces match on them, so the tables are clustered by them.
_FILE_COLUMNS = {entity.table: entity.require(SemanticType.FILE_ID).name for entity in EXTRACTION_ENTITIES}


def compile_maintenance(tables: tuple[str, ...], stats: dict[str, TableStats],
                        history: Sequence[RunRecord] = ()) -> dict[str, MaintenanceChoice]:
    """Maintenance thresholds per table the build owns, by its size tier: big tables checkpoint more
    often (their logs grow costly to replay) and tolerate more small files before compacting. Vacuum
    runs every few versions with no time-based retention: the maintenance node keeps the versions the
    recent releases name, so a folder holds a few builds, not every build it has seen. A large table
    vacuums every other version (its dead files are big); a smaller one holds a few more versions of
    its small files rather than pay a vacuum (a listing of its folder and two commits, which every
    later open of the table replays) in most builds. When the table's last vacuum ran is read from the
    ``history`` of runs (`vacuum_attempts`)."""
    by_tier = {
        "large": MaintenancePolicy(compact_min_small_files=16, checkpoint_every_versions=5,
                                   vacuum_every_versions=2, vacuum_retention_hours=0),
        "medium": MaintenancePolicy(compact_min_small_files=8, checkpoint_every_versions=10,
                                    vacuum_every_versions=4, vacuum_retention_hours=0),
        "small": MaintenancePolicy(compact_min_small_files=4, checkpoint_every_versions=10,
                                   vacuum_every_versions=8, vacuum_retention_hours=0),
    }
    vacuumed = vacuum_attempts(history)
    choices = {}
    for name in tables:
        known = name in stats
        tier = size_tier(stats[name].rows) if known else "small"
        evidence = (f"{stats[name].rows:,} rows: {tier} tier" if known else "not built yet: small tier",)
        policy = by_tier[tier]
        if name in _FILE_COLUMNS:
            policy = msgspec.structs.replace(policy, cluster_by=_FILE_COLUMNS[name])
            evidence += (f"rows owned by source files: clustered by {_FILE_COLUMNS[name]}",)
        if name in LOG_TABLES:  # read at their latest version, by a session opened any time before
            policy = msgspec.structs.replace(policy, **_LOG_MAINTENANCE)
            evidence += (f"a log: vacuum keeps what the last {LOG_RETENTION_HOURS} hours' versions read; "
                         f"compaction packs its files under {CLUSTER_FILE_BYTES // 2**20} MiB, not its history",)
        dataset = _FOLDERS.dataset(name) if name in _FOLDERS.names() else name
        if dataset in vacuumed:
            evidence += (f"last vacuumed at version {vacuumed[dataset]} (run record)",)
        choices[name] = MaintenanceChoice(policy, InferenceConfidence(
            "maintenance", tier, 1.0 if known else 0.5, evidence, None if known else "no table statistics yet"),
            vacuumed.get(dataset, -1))
    return choices


_FOLDERS = DatasetCatalog("")  # where each table is, relative to an output root


def vacuum_attempts(history: Sequence[RunRecord]) -> dict[str, int]:
    """The version each table (by dataset name: its folder's) was last vacuumed at, from the
    maintenance the runs of ``history`` (oldest first) recorded: the version after, when the vacuum
    did not fail."""
    attempts: dict[str, int] = {}
    for run in history:
        for record in run.maintenance:
            if record.decision.vacuum and record.error is None and record.version_after >= 0:
                attempts[record.dataset] = record.version_after
    return attempts


LOG_RETENTION_HOURS = 24
# A log is appended to by every build; compacted to one file, its whole history was rewritten every
# five builds (a 175-build editor loop left 297 MB of superseded run-table files within the retention,
# for 13 MB of rows): compaction packs the files under the size a data file is written at, and leaves
# the larger ones alone.
_LOG_MAINTENANCE = {"vacuum_every_versions": 20, "vacuum_retention_hours": LOG_RETENTION_HOURS,
                    "compact_target_bytes": CLUSTER_FILE_BYTES}


_FUNCTION_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(", re.I)
_SQL_WORDS = frozenset({
    "select", "from", "where", "and", "or", "not", "in", "exists", "as", "on", "join", "using", "over",
    "values", "with", "recursive", "union", "cast", "case", "when", "then", "else", "end", "is", "null",
    "distinct", "all", "count", "min", "max", "sum", "avg", "coalesce", "partition", "by", "order", "having",
    "filter", "between",
})


_SQL_COMMENT = re.compile(r"--[^\n]*")
_CTE_NAME = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?:\([^()]*\))?\s+AS\s*\(", re.I)


def compile_udf_requirements(plan: SemanticPlan, known_tables: set[str]) -> dict[str, tuple[str, ...]]:
    """The scalar and window functions each view's SQL calls, beyond the SQL core every engine has."""
    views = {view.name for view in plan.views} | known_tables
    requirements = {}
    for view in plan.views:
        sql = _SQL_COMMENT.sub("", view.sql)
        called = {match.lower() for match in _FUNCTION_CALL.findall(sql)}
        called -= _SQL_WORDS
        called -= {name.lower() for name in views}
        called -= {name.lower() for name in _CTE_NAME.findall(sql)}
        requirements[view.name] = tuple(sorted(called))
    return requirements


def fingerprint_policy(policy: CompiledExecutionPolicy) -> CompiledExecutionPolicy:
    body = msgspec.json.encode(msgspec.structs.replace(policy, fingerprint=""))
    return msgspec.structs.replace(policy, fingerprint=hashlib.md5(body, usedforsecurity=False).hexdigest())
