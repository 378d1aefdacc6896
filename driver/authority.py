"""The execution authority every view runs through (`RunAuthority`), and the execution nodes bound
to the engines: Delta maintenance and the session's settings fingerprint.

They live in ``driver`` because only the driver may bind the pipeline to concrete engines; the
``dataflows`` nodes see them through ``relspec`` interfaces.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa
from datafusion import DataFrame, SessionContext, col, lit
from datafusion.catalog import Table
from datafusion.functions import in_list
from hamilton.function_modifiers import tag
from hamilton.lifecycle import GraphExecutionHook

from driver.engine import set_options, sorted_by
from driver.lock import BuildLock, FolderChanged
from relspec.authority import ExecutionAuthority, StagedQuery
from relspec.catalog import (
    RUN_RECORD_TABLES,
    RUNS_TABLE,
    DatasetCatalog,
    FileScope,
    StagedResult,
    TableStore,
)
from relspec.digests import digest
from relspec.maintenance import MaintenanceDecision, MaintenancePolicy, MaintenanceRecord
from relspec.plan_signals import ExecutedSignals, PlanExecution, PlanSignals, plan_signals
from relspec.policy import BY_FILE_MAX_SHARE, CompiledExecutionPolicy, staging_tables
from relspec.releases import KEPT_RELEASES, Release, current_release
from relspec.runs import (
    RUN_RETENTION,
    Outcome,
    ViewOutcome,
    new_run_id,
    new_run_record,
    retention_due,
    run_row,
    runs_to_drop,
)
from relspec.validation import RuntimeCapabilities, ValidationFailed, ValidationResult
from semantics.entities import EntityDecl
from semantics.fixpoint import FixpointRun, register_in_memory, run_fixpoint
from semantics.inference import InferenceConfidence
from semantics.ir import EmittedView, typed
from semantics.views.graph import OUTPUT_SCHEMAS


class RunAuthority(ExecutionAuthority):
    """Runs every view as the compiled policy says and records what happened."""

    def __init__(self, session: SessionContext, capabilities: RuntimeCapabilities, store: TableStore,
                 policy: CompiledExecutionPolicy, validation: ValidationResult, released: frozenset[str],
                 changed_files: tuple[str, ...] | None = None,
                 previous_fingerprints: Mapping[str, str] | None = None, files: int = 0) -> None:
        self.session = session
        self.capabilities = capabilities
        self.store = store
        self.resolver = store.catalog
        self.policy = policy
        self.validation = validation
        self.started_at = datetime.now(UTC).isoformat()
        self.run_id = new_run_id()
        # Runs whose results may be reused: ``released`` ones (a run that died or was quarantined may
        # have written anything), and this one.
        self._trusted_runs = released | {self.run_id}
        self._outcomes: dict[str, ViewOutcome] = {}  # by view: a driver executed again records it again
        self._decisions: dict[str, InferenceConfidence] = {}  # by decision type: what the run decided as it ran
        self._views: dict[str, EmittedView] = {}
        self._planned: dict[str, str] = {}  # view -> the fingerprint the plan gives it
        self._fingerprints: dict[str, str] = {}  # view -> its fingerprint over the frames it was given
        self._frames: dict[str, tuple[DataFrame, str]] = {}  # view -> the frame its readers get, its fingerprint
        self._started: dict[str, float] = {}  # view -> when it began (its frame planned), for its seconds
        self._clock = time.perf_counter()  # what the executed order's offsets count from
        self._working: dict[str, float] = {}  # view -> when its computation and write began (offset)
        self._held: dict[str, pa.Table] = {}  # staged views held in memory, until their loader registers them
        self._planned_signals: dict[str, PlanSignals] = {}  # view -> its physical plan, read before it ran
        self._executed: dict[str, ExecutedSignals] = {}  # view -> its plan's metrics, read after
        catalog = store.catalog  # where each table a view can scan lives: what scan metrics' file paths match
        self._locations = {**{name: catalog.location(name) for name in catalog.names()},
                           **{view: catalog.staging_location(view) for view in policy.cache}}
        # What a by-file update starts from: the files whose rows changed since the current release
        # (None: no release to change), and each view's fingerprint over that release's sources.
        self.changed_files = changed_files
        self.previous_fingerprints = dict(previous_fingerprints or {})
        self.files = files  # the build's files: past BY_FILE_MAX_SHARE of them in a scope, a view is rewritten whole
        # by staged global view that by-file views read: the files whose rows credited to them changed
        # since the current release (None: not known, so its by-file readers are recomputed whole)
        self._changed_credits: dict[str, frozenset[str] | None] = {}
        # views whose frame a caller handed in (a Hamilton override): registered as that frame, not their table
        self._overridden: set[str] = set()
        self._unneeded: set[str] = set()  # staged views in memory no view that ran read: not computed

    def apply_scan_policy(self, resolver: DatasetCatalog) -> None:
        """The session's scan options, set for the run by the resolver's owner."""
        self.check_resolver(resolver, "scan_override")
        self._set_scan_options(None)

    def _set_scan_options(self, view: str | None) -> None:
        """The session's scan options, or — before a view executes — that view's own."""
        chosen = self.policy.scan.session if view is None else self.policy.scan.views[view]
        set_options(self.session, chosen.options)

    def query(self, view: EmittedView, fingerprint: str, inputs: Mapping[str, DataFrame]) -> DataFrame:
        fingerprint = self._begin(view, fingerprint, inputs)
        # planned under the session's options, not those the last view that ran left: its plan's
        # fingerprint is then the same whichever views ran before it (a rebuild computes none)
        self._set_scan_options(None)
        policy = self.policy.cache[view.name].cache
        if view.fixpoint is not None:  # validation reports the dropped staging; nothing lazy can stand for it
            raise ValidationFailed(f"fixpoint view {view.name} must be staged, not {policy}")
        frame = self.session.sql(view.sql)
        _register_view(self.session, view.name, frame)
        self._frames[view.name] = (frame, fingerprint)
        if policy != "delta_output":  # an output is recorded when it is published
            self._record(view.name, policy, "lazy", None, fingerprint, frame)
        return frame

    def pending(self, view: EmittedView, fingerprint: str, inputs: Mapping[str, DataFrame],
                needed: bool = True) -> StagedQuery:
        if needed:  # (a driver executed again may need what its last execution left out)
            self._unneeded.discard(view.name)
        return StagedQuery(view.name, self._begin(view, fingerprint, inputs), needed)

    def reuses(self, view: str, fingerprint: str) -> bool:
        choice = self.policy.cache[view].cache
        if choice == "delta_output":
            written = self.store.published_result(view) if self.store.version(view) is not None else None
        elif choice == "delta_staging" and view not in self.policy.materialization.held_in_memory():
            written = self.store.staged_result(view)
        else:
            return False
        # (by an earlier run: one this run wrote already is no result it found)
        return written is not None and written[1] != self.run_id and self._reusable(written, fingerprint)

    def _begin(self, view: EmittedView, fingerprint: str, inputs: Mapping[str, DataFrame]) -> str:
        """Start ``view``: its inputs registered, its fingerprint over them (see `_read_inputs`)."""
        self._views[view.name] = view
        self._planned[view.name] = fingerprint
        self._started[view.name] = time.perf_counter()
        fingerprint = self._read_inputs(fingerprint, inputs)
        self._fingerprints[view.name] = fingerprint
        return fingerprint

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
                self._overridden.add(name)
                made = self._frames[name] = (frame, _override_fingerprint(name))
            if made[1] != self._planned.get(name):
                salts.append(made[1])
        return digest(fingerprint, *salts) if salts else fingerprint

    def stage(self, query: StagedQuery) -> dict[str, object]:
        name, fingerprint = query.view, query.fingerprint
        self._working[name] = self._offset()
        in_memory = name in self.policy.materialization.held_in_memory()
        location = None if in_memory else self.store.catalog.staging_location(name)
        written: StagedResult | None = None
        run: FixpointRun | None = None
        frame: DataFrame | None = None  # built, written and dropped here: a frame kept to the end of the run
        scope: FileScope | None = None
        staged = None if in_memory else self.store.staged_result(name)
        compared = None if in_memory else self._changes_by(name)  # readers need the files its rows change for
        before = None if compared is None else self.store.staged_version(name)
        if in_memory and not query.needed:
            self._unneeded.add(name)
            outcome: Outcome = "unneeded"
        elif self._reusable(staged, fingerprint):  # keeps alive much of what its plan read
            outcome = "reused"
        else:
            self._refuse_unneeded_inputs(name)
            self._set_scan_options(name)
            view = self._views[name]
            self._register_datasets(view)
            source = view.sql
            if view.fixpoint is not None:
                result, run = run_fixpoint(self.session, view.fixpoint,
                                           threads=self.policy.scan.views[name].queries_at_once)
                register_in_memory(self.session, _fixpoint_result(name), result)
                source = f"SELECT * FROM {_fixpoint_result(name)}"
            scope = self._file_scope(name, staged)
            with self._reading_files(view, scope):
                frame = _scoped(self.session.sql(_conformed_sql(view, source)), scope)
            execution = self._execution(name, frame, self.policy.write_order(name) if scope is None else None)
            if in_memory:
                self._held[name] = execution.collect()
                written = StagedResult(rows=self._held[name].num_rows, version=-1)
                outcome = "computed_in_memory"
            else:
                written = self.store.stage(name, execution, self._schema(name), fingerprint, self.run_id, scope,
                                           self._owner(name))
                outcome = "computed_staged"
            self._executed[name] = execution.signals(self._locations)
            _replace_table(self.session, _fixpoint_result(name))  # the staged table stands for it now
        self._fingerprints[name] = fingerprint
        comparing = 0.0
        if compared is not None:
            comparing = self._note_changed_credits(name, compared, outcome, staged, before, fingerprint)
        self._record(name, "delta_staging", outcome, written, fingerprint, frame, run, scope, comparing)
        rows = written.rows if written is not None else None
        version = None if in_memory else self.store.staged_version(name)
        return {"table_uri": location, "version": version, "rows": rows, "fingerprint": fingerprint,
                "outcome": outcome}

    def _schema(self, name: str) -> pa.Schema:
        view = self._views[name]
        return EntityDecl(name, name, "view", view.columns).arrow_schema()

    def _refuse_unneeded_inputs(self, name: str) -> None:
        """A view about to run may read no view this run left uncomputed (directly or through lazy
        views): it would compute over no rows. `relspec.demand` rules that out; this says so if not."""
        made = self._views.get(name)  # (none for an output whose frame a caller handed in: it reads nothing here)
        pending, seen = list(made.inputs) if made is not None else [], set()
        while pending:
            read = pending.pop()
            if read in self._unneeded:
                raise RuntimeError(f"{name} would run over {read}, which this run did not compute")
            if read in self._views and read not in seen and self.policy.cache[read].cache in ("none", "delta_output"):
                seen.add(read)
                pending.extend(self._views[read].inputs)

    def _execution(self, name: str, frame: DataFrame, clustered_by: str | None = None) -> PlanExecution:
        """The physical plan that computes ``name``, kept to read its metrics once it ran, and the
        signals read from it before it runs. ``clustered_by``: the whole table is written clustered by
        this column, so the plan sorts its rows by it (DataFusion's sort spills under the session's
        memory limit) and the writer streams them into data files in that order."""
        if clustered_by is not None:
            frame = sorted_by(frame, clustered_by)
        execution = PlanExecution(self.session, frame, ordered_by=clustered_by)
        self._planned_signals[name] = plan_signals(self.session, frame, execution.plan)
        return execution

    @contextmanager
    def _reading_files(self, view: EmittedView, scope: FileScope | None) -> Iterator[None]:
        """While ``view`` is planned for its update by file (``scope``): each table the policy has it
        read by statistics registered as only the data files that may hold the scope's files (the
        plan keeps the tables it was planned over; the session then gets the whole tables back). The
        policy names only tables read through their Delta provider; a view a caller overrode is read
        as the frame it handed in."""
        swapped: list[tuple[str, Table]] = []
        reads = self.policy.scan.by_statistics.get(view.name)
        try:
            for name, column in sorted(reads.columns.items()) if scope is not None and reads is not None else ():
                if name in self._overridden:
                    continue
                swapped.append((name, self.session.catalog().schema().table(name)))
                if self.store.register_files_holding(self.session, name, self._locations[name], column,
                                                     scope.file_ids) is None:  # type: ignore[union-attr]
                    swapped.pop()  # (nothing registered: the whole table stays)
            yield
        finally:
            for name, whole in swapped:
                _replace_table(self.session, name)
                self.session.register_table(name, whole)

    def _register_datasets(self, view: EmittedView) -> None:
        """The staged inputs the policy registers as datasets, read into memory before ``view`` is
        planned (its SQL resolves them then)."""
        registrations = self.policy.materialization.registration
        for name in view.inputs:
            choice = registrations.get(name)
            if choice is not None and choice.registration == "dataset":
                self.store.register_staged(self.session, name, "dataset")

    def _reusable(self, written: tuple[str, str] | None, fingerprint: str) -> bool:
        """A result already written holds this view's rows: same fingerprint, written by a trusted run."""
        return written is not None and written[0] == fingerprint and written[1] in self._trusted_runs

    def _owner(self, name: str) -> str | None:
        """The column naming each row's file in a file-local view (its table is clustered by it)."""
        choice = self.policy.view_maintenance.get(name)
        return None if choice is None else choice.owner

    def _file_scope(self, name: str, written: tuple[str, str] | None) -> FileScope | None:
        """The files whose rows to recompute and replace when the policy maintains ``name`` by file
        and its table holds the current release's result of it (the fingerprint that view had over
        that release's sources): the files that changed, and those whose rows credited to them changed
        in a global view it is local relative to. None: compute and write it whole (also when those
        are more than BY_FILE_MAX_SHARE of the build's files)."""
        choice = self.policy.view_maintenance.get(name)
        if choice is None or choice.mode != "by_file" or choice.owner is None or self.changed_files is None:
            return None
        previous = self.previous_fingerprints.get(name)
        if previous is None or not self._reusable(written, previous):
            return None
        files = set(self.changed_files)
        for base in choice.bases:
            credited = self._changed_credits.get(base)
            if credited is None:
                return None
            files |= credited
        if choice.bases and len(files) > BY_FILE_MAX_SHARE * self.files:
            return None
        return FileScope(choice.owner, tuple(sorted(files)))

    def _changes_by(self, name: str) -> str | None:
        """The column a staged global view is compared by, when by-file views read it (`ViewMaintenance`)."""
        choice = self.policy.view_maintenance.get(name)
        return None if choice is None else choice.changes_by

    def _note_changed_credits(self, name: str, column: str, outcome: Outcome, staged: tuple[str, str] | None,
                              before: int | None, fingerprint: str) -> float:
        """For a staged global view that by-file views read: the files whose rows credited to them
        changed since the current release, from the rows its staging table held before this run's
        write (that release's result) and after; none when it was reused with that release's
        fingerprint. Unknown (None) when the table held no result of that release's sources, or the
        comparison cannot tell (`TableStore.staged_changes`). Returns the seconds the comparison took
        (0: none ran)."""
        previous = self.previous_fingerprints.get(name)
        self._changed_credits[name] = None
        if outcome == "reused":
            self._changed_credits[name] = frozenset() if previous == fingerprint else None
        elif outcome == "computed_staged" and before is not None and previous is not None \
                and self._reusable(staged, previous):
            started = time.perf_counter()
            self._changed_credits[name] = self.store.staged_changes(self.session, name, before, column)
            return time.perf_counter() - started
        return 0.0

    def load_staged(self, name: str) -> DataFrame:
        """A staged view for its readers: the Delta table's scan. One the policy registers as a dataset
        (for a recursive reader, which re-scans it) is read into memory when such a reader computes,
        not here: a rebuild that reuses every recursive view never reads it. One the policy holds in
        memory is the table its saver computed."""
        if name in self._held:
            register_in_memory(self.session, name, self._held.pop(name))
        elif name in self._unneeded:  # its readers are planned over no rows, and none of them runs
            register_in_memory(self.session, name, self._schema(name).empty_table())
        else:
            self.store.register_staged(self.session, name, "delta")
        frame = self.session.table(name)
        self._frames[name] = (frame, self._fingerprints[name])
        return frame

    def publish(self, name: str, frame: DataFrame) -> dict[str, object]:
        made = self._frames.get(name)
        fingerprint = made[1] if made is not None and made[0] is frame else _override_fingerprint(name)
        self._started.setdefault(name, time.perf_counter())
        self._working[name] = self._offset()
        version = self.store.version(name)
        written: StagedResult | None = None
        scope: FileScope | None = None
        published = self.store.published_result(name)
        if version is not None and self._reusable(published, fingerprint):
            outcome: Outcome = "reused"
        else:
            self._refuse_unneeded_inputs(name)
            self._set_scan_options(name)
            scope = self._file_scope(name, published)
            frame = _scoped(frame, scope)
            execution = self._execution(name, frame, self.policy.write_order(name) if scope is None else None)
            written = self.store.overwrite(name, execution, OUTPUT_SCHEMAS[name], fingerprint, self.run_id, scope,
                                           self._owner(name))
            self._executed[name] = execution.signals(self._locations)
            version = written.version
            outcome = "published"
        self._record(name, self.policy.cache[name].cache, outcome, written, fingerprint, frame, scope=scope)
        return {"table_uri": self.store.catalog.location(name), "version": version,
                "rows": written.rows if written else None, "fingerprint": fingerprint, "outcome": outcome}

    def _record(self, name: str, policy: str, outcome: Outcome, written: StagedResult | None, fingerprint: str,
                frame: DataFrame | None, run: FixpointRun | None = None, scope: FileScope | None = None,
                compared: float = 0.0) -> None:
        """Record what happened to a view; its plan is the fingerprint of the frame that ran (of its SQL
        when nothing ran: a reused staged result). ``compared``: the seconds spent finding which files'
        rows of it changed (part of its seconds)."""
        seconds = time.perf_counter() - self._started.pop(name, time.perf_counter())
        finished = self._offset()
        started = self._working.pop(name, finished - seconds)
        planned = self._planned_signals.pop(name, None)
        plan = ""
        if self.policy.diagnostics.record_plans:  # the optimized plan's, read once before it ran when it ran
            plan = (planned.fingerprint if planned is not None
                    else digest(str(frame.optimized_logical_plan().display_indent())) if frame is not None
                    else digest(self._views[name].sql))
        evaluation = {}
        if run is not None:
            evaluation = {"rounds": run.rounds, "capped": run.capped, "stage_names": run.stage_names,
                          "stage_rows": run.stages, "overlapped": run.overlapped}
        self._outcomes.pop(name, None)
        if written is not None:
            evaluation |= {"maintained": "by_file" if scope is not None else "full",
                           "rows_changed": written.rows + written.rows_removed}
        if compared:
            evaluation["compared_seconds"] = round(compared, 4)
        self._outcomes[name] = ViewOutcome(name, policy, outcome, written.rows if written else None,  # type: ignore[arg-type]
                                           round(seconds, 4), fingerprint, plan, **evaluation,
                                           started=round(started, 4), finished=round(finished, 4),
                                           planned=planned,
                                           executed=self._executed.pop(name, None))

    def _offset(self) -> float:
        return time.perf_counter() - self._clock

    def outcomes(self) -> tuple[ViewOutcome, ...]:
        return tuple(self._outcomes.values())

    def decided(self, confidence: InferenceConfidence) -> None:
        self._decisions[confidence.decision_type] = confidence  # a driver executed again decides again

    def decisions(self) -> tuple[InferenceConfidence, ...]:
        return tuple(self._decisions.values())


def _conformed_sql(view: EmittedView, source: str) -> str:
    """``source`` (the view's SQL) cast onto the view's declared column types, so what is staged has
    exactly the declared schema (a Delta scan can hand back view-typed strings under a plain-string schema)."""
    return f"SELECT {', '.join(typed(column.name, column) for column in view.columns)} FROM ({source}) v"


# A value no file column holds (a file's id is never empty). A scope of one file filters by it too: the
# optimizer would otherwise take that file's id as a constant of every scan and drop it from the sorts
# a window partitioned by it needs, and DataFusion 55's plan check rejects the sorted union that leaves
# ("does not satisfy order requirements"; apache/datafusion#17372): a by-file update of use_slots failed so.
NO_FILE = ""


def _scoped(frame: DataFrame, scope: FileScope | None) -> DataFrame:
    """``frame``'s rows of the files ``scope`` names (all of them without one); DataFusion pushes the
    filter down to the scans."""
    if scope is None:
        return frame
    files = [*scope.file_ids, *([NO_FILE] if len(scope.file_ids) == 1 else [])]
    return frame.filter(in_list(col(scope.owner), [lit(file_id) for file_id in files]))


def _override_fingerprint(view: str) -> str:
    """The fingerprint of a frame the plan did not make (an override): new each time, never reused."""
    return digest("override", view, uuid.uuid4().hex)


def _fixpoint_result(view: str) -> str:
    """Where a fixpoint view's result waits in memory until it is staged."""
    return f"{view}__fixpoint_result"


def _replace_table(session: SessionContext, name: str) -> None:
    if session.table_exist(name):
        session.deregister_table(name)


def _register_view(session: SessionContext, name: str, frame: DataFrame) -> None:
    _replace_table(session, name)
    session.register_view(name, frame)


class FailedRunRecorder(GraphExecutionHook):
    """Records a run that fails part-way in the run table (`failed`, with the error and what each view
    did so far), so `cpgflow runs` shows it; a run stopped by validation was recorded at the gate."""

    def __init__(self, authority: ExecutionAuthority, store: TableStore) -> None:
        self.authority = authority
        self.store = store

    def run_before_graph_execution(self, **kwargs: Any) -> None:
        pass

    def run_after_graph_execution(self, *, success: bool, error: Exception | None, **kwargs: Any) -> None:
        if success or error is None or isinstance(error, ValidationFailed):
            return
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        record = new_run_record(self.authority.run_id, self.authority.started_at, "failed",
                                views=self.authority.outcomes(), decisions=self.authority.decisions(),
                                validation=self.authority.validation.issues, message=message[:2000])
        self.store.append(RUNS_TABLE, run_row(record))


# A staging table is overwritten when its view's inputs change: vacuum whatever an overwrite left.
STAGING_MAINTENANCE = MaintenancePolicy(compact_min_small_files=0, checkpoint_every_versions=0,
                                        vacuum_every_versions=1, vacuum_retention_hours=0)
NOT_STAGED_REASON = "remove.not_staged_by_policy"
# A table with no commit since the last maintenance: measuring it again would find what that one left.
UNCHANGED_REASON = "skip.unchanged_since_maintenance"
# A table of one commit (version 0): files as its writer made them, no older version to vacuum, a log of
# one entry (nothing to checkpoint). The first build's tables, and the logs until the next build appends.
ONE_COMMIT_REASON = "skip.one_commit"


class BuildLockHolder(GraphExecutionHook):
    """Holds the output folder's build lock while the driver executes, and lets it go after (the
    factory held it to plan). The plan was made against release ``planned_on`` (its sequence, 0:
    none): if another build released the folder since, the plan is stale and the run is refused."""

    def __init__(self, lock: BuildLock, store: TableStore, planned_on: int) -> None:
        self.lock = lock
        self.store = store
        self.planned_on = planned_on

    def run_before_graph_execution(self, **kwargs: Any) -> None:
        self.lock.acquire()
        if not self.lock.undisturbed:  # the handles read while planning may miss what another build did
            self.store.forget_metadata()
        current = current_release(self.store.releases())
        sequence = current.sequence if current else 0
        if sequence != self.planned_on:
            self.lock.release()
            raise FolderChanged(f"{self.store.catalog.root} was released again (release {sequence}) since this "
                                f"build was planned on release {self.planned_on}: build the driver again")

    def run_after_graph_execution(self, **kwargs: Any) -> None:
        self.lock.release()


@tag(role="output")
def maintenance(published_cpg: dict[str, int], source_catalog: dict[str, int], compiled_policy: CompiledExecutionPolicy,
                table_store: TableStore, release_log: list[Release],
                execution_authority: ExecutionAuthority) -> tuple[MaintenanceRecord, ...]:
    """Outcome-based maintenance of every table the build owns (outputs, extraction tables, logs):
    compact, checkpoint or vacuum as its write outcome and policy decide; executed and recorded. A
    vacuum keeps the versions the last `KEPT_RELEASES` releases name (rollback, replay), the table's
    latest, and the version this build wrote (its session reads that version until the build ends,
    when a compaction has already made a later one); every other unreferenced file goes.

    A table of one commit (version 0) has nothing to maintain (`ONE_COMMIT_REASON`). A
    table still at the version the current release names had no commit since the maintenance of
    the build that made the release: it is recorded as skipped (`UNCHANGED_REASON`), not measured."""
    kept = release_log[-KEPT_RELEASES:]
    _retain_runs(table_store, {release.run_id for release in kept}, execution_authority)
    current = current_release(release_log)
    maintained = current.versions if current else {}
    records = []
    for name in sorted(compiled_policy.maintenance):
        version = table_store.version(name)
        if version is None:
            continue
        location = table_store.catalog.location(name)
        if version == maintained.get(name):
            records.append(_unchanged(table_store.catalog.dataset(name), version))
            continue
        if version == 0:
            records.append(_unchanged(table_store.catalog.dataset(name), version, ONE_COMMIT_REASON))
            continue
        keep = sorted({version, *(release.versions[name] for release in kept if name in release.versions)})
        choice = compiled_policy.maintenance[name]
        records.append(table_store.maintain(location, choice.policy, keep_versions=keep,
                                            vacuumed_at=choice.vacuumed_at))
    return (*records, *_maintain_staging(compiled_policy, table_store, _reused_staged(execution_authority)))


def _retain_runs(table_store: TableStore, kept: set[str], authority: ExecutionAuthority) -> None:
    """Drop the runs past the newest `RUN_RETENTION` (but those of the kept releases) from the run
    table, with their calibration and provenance rows, once there are a quarter more (`runs_to_drop`);
    the decision, with the runs it dropped, is among the run's decisions."""
    held = table_store.statistics(RUNS_TABLE)
    if held is None or not retention_due(held[0], RUN_RETENTION):
        return
    runs = table_store.read(RUNS_TABLE, columns=["run_id", "started_at"])
    dropped = [] if runs is None else runs_to_drop(runs, kept, RUN_RETENTION)
    if not dropped:
        return
    predicate = "run_id IN (" + ", ".join("'" + run.replace("'", "''") + "'" for run in dropped) + ")"
    for name in RUN_RECORD_TABLES:
        table_store.delete_rows(name, predicate)
    named = ", ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else "")
    authority.decided(InferenceConfidence("run_retention", f"{len(dropped)} runs dropped", 1.0, (
        f"{held[0]:,} runs recorded, more than {RUN_RETENTION:,} + a quarter: the oldest go but those the "
        f"last {KEPT_RELEASES} releases name", f"dropped: {named}")))


def _reused_staged(authority: ExecutionAuthority) -> frozenset[str]:
    """Views whose staged result this run reused: no commit since the run that wrote it maintained it."""
    return frozenset(outcome.view for outcome in authority.outcomes()
                     if outcome.policy == "delta_staging" and outcome.outcome == "reused")


def _unchanged(dataset: str, version: int, reason: str = UNCHANGED_REASON) -> MaintenanceRecord:
    decision = MaintenanceDecision(dataset, compact=False, checkpoint=False, vacuum=False, reasons=(reason,))
    return MaintenanceRecord(dataset, decision, version_before=version, version_after=version, files_before=-1,
                             files_after=-1, seconds=0.0)


def _maintain_staging(policy: CompiledExecutionPolicy, store: TableStore,
                      reused: frozenset[str]) -> list[MaintenanceRecord]:
    """Staging tables: the policy's keep their latest version only (no reader reads an older one: a
    staged result is reused by fingerprint), and one whose result this run reused is skipped
    unmeasured; those the policy no longer stages are removed."""
    records = []
    staged = staging_tables(policy.cache, policy.materialization)
    for view in store.staged_views():
        location = store.catalog.staging_location(view)
        if view in reused:
            records.append(_unchanged(view, -1))
            continue
        if view in staged and store.staged_version(view) == 0:
            records.append(_unchanged(view, 0, ONE_COMMIT_REASON))
            continue
        if view in staged:
            records.append(store.maintain(location, STAGING_MAINTENANCE))
            continue
        store.remove_staged(view)
        decision = MaintenanceDecision(view, compact=False, checkpoint=False, vacuum=False,
                                       reasons=(NOT_STAGED_REASON,))
        records.append(MaintenanceRecord(view, decision, version_before=-1, version_after=-1, files_before=-1,
                                         files_after=0, seconds=0.0))
    return records


@tag(role="authority")
def session_settings(session: SessionContext) -> str:
    """A fingerprint of every setting of the session the views ran on."""
    settings = session.sql("SELECT name, value FROM information_schema.df_settings ORDER BY name").to_arrow_table()
    return digest(msgspec.json.encode(settings.to_pylist()))
