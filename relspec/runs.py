"""What a run did, as typed artifacts: view fingerprints, the execution package, the run record.

A view's fingerprint is a Merkle hash of its SQL and its inputs' fingerprints, down to the source
tables' versions: two runs with equal fingerprints compute the same rows, so a staged result can be
reused. The execution package fingerprints everything that decides a run's output.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from relspec.digests import digest
from relspec.maintenance import MaintenanceRecord
from relspec.plan_signals import ExecutedSignals, PlanSignals
from relspec.profiles import SessionProfile
from relspec.validation import ValidationIssue
from semantics.inference import InferenceConfidence
from semantics.ir import CachePolicy, SemanticPlan

# reused: staged or published before; computed_in_memory: staged, held in memory for the run (no table);
# unneeded: staged in memory, but no view the run computed reads it, so it was not computed (relspec.demand)
Outcome = Literal["lazy", "computed_staged", "computed_in_memory", "reused", "published", "unneeded"]
# outcomes of a view the run did not plan: its recorded plan fingerprint is its SQL's, no plan's
UNPLANNED_OUTCOMES = frozenset({"reused", "unneeded"})
# released: checked and made current; quarantined: written but failed the data checks, not released
RunStatus = Literal["released", "quarantined", "failed_validation", "failed"]


def builtin_names_version(names: pa.Table) -> str:
    """The version of the builtin names table (it is not a Delta table): a hash of its names."""
    return digest(*names.column(0).to_pylist())


def view_fingerprints(plan: SemanticPlan, source_versions: dict[str, str]) -> dict[str, str]:
    """Fingerprint of every view: its SQL and its inputs' fingerprints (sources: name@version)."""
    prints: dict[str, str] = {}
    for view in plan.views:  # dependency order
        inputs = sorted(prints[name] if name in prints else f"{name}@{source_versions.get(name, '?')}"
                        for name in view.inputs)
        prints[view.name] = digest(view.sql, *inputs)
    return prints


class ViewOutcome(msgspec.Struct, frozen=True):
    view: str
    policy: CachePolicy
    outcome: Outcome
    rows: int | None
    seconds: float
    fingerprint: str
    plan_fingerprint: str  # of the optimized logical plan DataFusion built
    rounds: tuple[int, ...] = ()  # a fixpoint view computed: rows each round added (seeds first)
    capped: int = 0  # a fixpoint view computed: rows its caps dropped
    stage_names: tuple[str, ...] = ()  # a fixpoint view computed: its stages, in the order they run
    stage_rows: tuple[tuple[int, ...], ...] = ()  # ... and rows each added, round by round after the seeds
    overlapped: int = 0  # a fixpoint view computed: times two or more of its queries ran at once
    maintained: str = ""  # a written view: "full" (rewritten) or "by_file" (its changed files' rows replaced)
    rows_changed: int | None = None  # a written view: rows written plus rows replaced or overwritten
    # a staged global view that by-file views read: seconds (of ``seconds``) spent comparing its rows
    # with the current release's, to find the files whose rows changed
    compared_seconds: float = 0.0
    # seconds since the run's authority was built, when its work began and ended (a staged or published
    # view: its computation and write; a lazy one: its planning): the executed order and any overlap
    started: float = 0.0
    finished: float = 0.0
    planned: PlanSignals | None = None  # a computed view: its physical plan, read before it ran
    executed: ExecutedSignals | None = None  # ... and its metrics once it ran (rows, pruning, selectivity)


class ExecutionPackage(msgspec.Struct, frozen=True):
    ir_fingerprint: str
    policy_fingerprint: str
    capabilities_fingerprint: str
    session_config_fingerprint: str
    plan_fingerprints: dict[str, str]
    source_versions: dict[str, str]
    cache_policies: dict[str, str] = {}  # view -> the cache policy it ran with (a replay runs it so again)
    profile: SessionProfile | None = None  # the session profile it ran under (a replay runs under it again)
    fingerprint: str = ""


def seal_package(package: ExecutionPackage) -> ExecutionPackage:
    body = msgspec.json.encode(msgspec.structs.replace(package, fingerprint=""))
    return msgspec.structs.replace(package, fingerprint=digest(body))


class RunRecord(msgspec.Struct, frozen=True):
    run_id: str
    started_at: str
    finished_at: str
    status: RunStatus
    output_versions: dict[str, int]
    views: tuple[ViewOutcome, ...]
    validation: tuple[ValidationIssue, ...]
    maintenance: tuple[MaintenanceRecord, ...]
    package: ExecutionPackage | None
    message: str = ""
    source_rows: dict[str, int] = {}  # rows of each source table the views read (a later cost model scales by them)
    decisions: tuple[InferenceConfidence, ...] = ()  # what the run decided from what it measured as it ran

    def outcome_counts(self) -> dict[str, int]:
        """How many views each outcome (relspec.runs.Outcome) had."""
        counts: dict[str, int] = {}
        for outcome in self.views:
            counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
        return dict(sorted(counts.items()))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def new_run_record(run_id: str, started_at: str, status: RunStatus, **fields: object) -> RunRecord:
    """A run record stamped with its finish time; unset parts are empty."""
    defaults: dict[str, object] = {"output_versions": {}, "views": (), "validation": (), "maintenance": (),
                                   "package": None}
    return RunRecord(run_id=run_id, started_at=started_at, finished_at=datetime.now(UTC).isoformat(),
                     status=status, **{**defaults, **fields})  # type: ignore[arg-type]


# The run table's rows: the record's headline fields as columns, the whole record as JSON.
RUN_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("started_at", pa.string(), nullable=False),
    pa.field("finished_at", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("package_fingerprint", pa.string()),
    pa.field("policy_fingerprint", pa.string()),
    pa.field("record", pa.string(), nullable=False),
])


def run_row(record: RunRecord) -> pa.Table:
    package = record.package
    return pa.table({
        "run_id": [record.run_id],
        "started_at": [record.started_at],
        "finished_at": [record.finished_at],
        "status": [record.status],
        "package_fingerprint": [package.fingerprint if package else None],
        "policy_fingerprint": [package.policy_fingerprint if package else None],
        "record": [msgspec.json.encode(record).decode()],
    }, schema=RUN_SCHEMA)


# The run records a folder keeps: the newest RUN_RETENTION, and those of the runs its kept releases
# name. A stdlib-sized record is ~0.4 MB and every build reads the run table: 500 records took 0.46 s
# to read where 50 took 0.05 s, and the table would grow with every build for good.
RUN_RETENTION = 200


def retention_due(runs: int, retention: int = RUN_RETENTION) -> bool:
    """Whether a run table of ``runs`` rows is a quarter past ``retention``: old runs go in one delete
    every so many builds, not one at every build."""
    return runs > retention + retention // 4


def runs_to_drop(runs: pa.Table, kept: set[str], retention: int = RUN_RETENTION) -> list[str]:
    """The runs of ``runs`` (its ``run_id`` and ``started_at``) older than the newest ``retention``
    that ``kept`` does not name, when `retention_due`; else none."""
    if not retention_due(runs.num_rows, retention):
        return []
    order = pc.sort_indices(runs.column("started_at")).to_numpy()
    older = runs.column("run_id").take(pa.array(order[:len(order) - retention], pa.int64())).to_pylist()
    return sorted(set(older) - kept)


def read_records(table: pa.Table | None, last: int | None = None) -> list[RunRecord]:
    """The records of a run table, oldest first (an absent table: none); with ``last``, only the
    latest that many, picked before any record is decoded (a record holds every view's plan signals)."""
    if table is None:
        return []
    order = pc.sort_indices(table.column("started_at")).to_numpy()  # (sorting the table would copy every record)
    if last is not None:
        order = order[max(0, len(order) - last):]
    texts = table.column("record").take(pa.array(order, pa.int64())).to_pylist()
    records = [msgspec.json.decode(text, type=RunRecord) for text in texts]
    return sorted(records, key=lambda record: record.started_at)


def find_record(table: pa.Table | None, run_id: str) -> RunRecord | None:
    return next((record for record in read_records(table) if record.run_id == run_id), None)


def overlap_seconds(outcomes: Iterable[ViewOutcome]) -> float:
    """Seconds during which two or more of ``outcomes`` were running at once (0 when they ran one by one)."""
    events = sorted((time, step) for outcome in outcomes
                    for time, step in ((outcome.started, 1), (outcome.finished, -1)))
    running, since, total = 0, 0.0, 0.0
    for time, step in events:
        if running >= 2:
            total += time - since
        running, since = running + step, time
    return total
