"""The decision provenance graph of a run: every decision the compiler and the run made, and the
evidence each one rests on.

A decision (cache policy, scan options, registration, extraction, join keys and strategy,
maintenance, the run's status) has a subject (a view, a table, ``session``, ``extraction`` or
``run``), a value and a confidence score. An evidence node is one fact — a table's measured
statistics, a view's place in the view graph, a rule and its threshold, an explicit override, a
measured metric, a validation issue — and a fact cited by several decisions is one node: its id is
a hash of what it says. An edge says which decision cites which evidence, in what role.

`derive_provenance` builds the graph from the compiled policy, the semantic IR, the view graph, the
table statistics the policy weighed and the run record; `provenance_tables` turns it into the rows
of the three provenance tables; `describe` says a decision and its evidence in plain words
(`cpgflow why`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, cast

import msgspec
import pyarrow as pa

from relspec.digests import digest
from relspec.maintenance import MaintenancePolicy, MaintenanceRecord
from relspec.policy import CompiledExecutionPolicy, TableStats
from relspec.quarantine import DataCheck
from relspec.releases import Release
from relspec.runs import RunRecord
from relspec.view_graph import ViewGraph
from semantics.inference import InferenceConfidence
from semantics.ir import SemanticIR, ViewIR
from semantics.specs import RelateSpec

DecisionKind = Literal["cache_policy", "scan_options", "statistics_reads", "session_profile", "registration",
                       "extraction", "extraction_writes", "join_keys", "join_strategy", "maintenance", "run_status",
                       "view_demand"]
EvidenceKind = Literal["statistic", "topology", "rule", "override", "inference", "semantic_type", "metric",
                       "message", "validation_issue", "data_check"]
# The subjects of the decisions that are about no view or table.
SESSION_SUBJECT = "session"
EXTRACTION_SUBJECT = "extraction"
RUN_SUBJECT = "run"


class Decision(msgspec.Struct, frozen=True):
    decision_id: str
    kind: DecisionKind
    subject: str
    value: str
    score: float
    fallback_reason: str | None = None


class Evidence(msgspec.Struct, frozen=True):
    evidence_id: str
    kind: EvidenceKind
    name: str
    value: str
    quantity: int | None = None  # the fact's number, when it is one (rows of a table, views reading a view)


class Citation(msgspec.Struct, frozen=True):
    """An edge: ``decision_id`` rests on ``evidence_id``, in ``role``."""

    decision_id: str
    evidence_id: str
    role: str


class ProvenanceGraph(msgspec.Struct, frozen=True):
    run_id: str
    decisions: tuple[Decision, ...]
    evidence: tuple[Evidence, ...]
    citations: tuple[Citation, ...]


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


class _Builder:
    """Collects a run's decisions; evidence that says the same thing is kept once."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.decisions: list[Decision] = []
        self.evidence: dict[str, Evidence] = {}
        self.citations: dict[tuple[str, str, str], Citation] = {}

    def decide(self, kind: DecisionKind, subject: str, value: str, confidence: InferenceConfidence | None = None,
               score: float = 1.0) -> str:
        decision_id = digest(self.run_id, kind, subject)
        if confidence is not None:
            score = confidence.score
        fallback = confidence.fallback_reason if confidence is not None else None
        self.decisions.append(Decision(decision_id, kind, subject, value, score, fallback))
        return decision_id

    def cite(self, decision_id: str, role: str, kind: EvidenceKind, name: str, value: str,
             quantity: int | None = None) -> None:
        evidence_id = digest(kind, name, value)
        self.evidence.setdefault(evidence_id, Evidence(evidence_id, kind, name, value, quantity))
        self.citations.setdefault((decision_id, evidence_id, role), Citation(decision_id, evidence_id, role))

    def cite_statistics(self, decision_id: str, role: str, tables: Iterable[str],
                        stats: dict[str, TableStats]) -> None:
        for table in sorted(set(tables) & stats.keys()):
            stat = stats[table]
            self.cite(decision_id, role, "statistic", table,
                      f"{_count(stat.rows, 'row')}, {_count(stat.files, 'file')}, {_count(stat.bytes, 'byte')} "
                      f"at version {stat.version}",
                      stat.rows)

    def cite_inference(self, decision_id: str, subject: str, confidence: InferenceConfidence) -> None:
        for text in confidence.evidence:
            self.cite(decision_id, "inference", "inference", f"{confidence.decision_type} of {subject}", text)

    def graph(self) -> ProvenanceGraph:
        return ProvenanceGraph(self.run_id, tuple(self.decisions), tuple(self.evidence.values()),
                               tuple(self.citations.values()))


def derive_provenance(record: RunRecord, policy: CompiledExecutionPolicy, ir: SemanticIR, graph: ViewGraph,
                      stats: dict[str, TableStats], checks: tuple[DataCheck, ...] = (),
                      release: Release | None = None) -> ProvenanceGraph:
    """Every decision of the run recorded by ``record``, with its evidence; the run's status (released
    or quarantined) cites the data checks that decided it and the release it made."""
    builder = _Builder(record.run_id)
    _cache_decisions(builder, ir, policy, stats)
    _scan_decisions(builder, policy, graph, stats)
    _statistics_decisions(builder, policy)
    _registration_decisions(builder, policy)
    _extraction_decision(builder, policy)
    _measured_decisions(builder, record)
    _profile_decision(builder, policy)
    _join_decisions(builder, ir)
    _maintenance_decisions(builder, record.maintenance, policy, stats)
    _run_status_decision(builder, record, checks, release)
    return builder.graph()


def _cache_decisions(builder: _Builder, ir: SemanticIR, policy: CompiledExecutionPolicy,
                     stats: dict[str, TableStats]) -> None:
    """Cache policy by view: its place in the view graph, the statistics the compiler weighed (and
    the threshold it weighed them against), an explicit override."""
    for view in ir.views:
        chosen = policy.cache[view.name]
        decision = builder.decide("cache_policy", view.name, chosen.cache, chosen.confidence)
        assert view.position is not None and view.cache is not None, "the IR's inference passes ran"
        builder.cite(decision, "topology", "topology", f"place of {view.name} in the view graph",
                     "; ".join(view.cache.confidence.evidence), sum(view.position.scans))
        if chosen.weighed_sources:
            builder.cite_statistics(decision, "source_size", chosen.weighed_sources, stats)
            limit = policy.thresholds.inline_max_rows
            builder.cite(decision, "threshold", "rule", "staging threshold",
                         f"a view that reads only source tables is inlined into its readers, not staged, while "
                         f"its source rows times the scans of it past the first stay under {limit:,} "
                         "(calibrated: cpgflow calibration)", limit)
        if chosen.passes_on is not None:
            builder.cite(decision, "pass_through", "rule", f"what the plan of {view.name} does", chosen.passes_on)
        if chosen.for_readers is not None:
            builder.cite(decision, "readers", "metric", f"what staging {view.name} saves its readers",
                         chosen.for_readers)
        if chosen.override:
            builder.cite(decision, "override", "override", f"--cache-policy {view.name}",
                         f"{view.name}={chosen.cache}")


def _scan_decisions(builder: _Builder, policy: CompiledExecutionPolicy, graph: ViewGraph,
                    stats: dict[str, TableStats]) -> None:
    """Scan options of the session (from every table) and of each view (from the tables it reads)."""
    small = policy.thresholds.small_input_rows
    rule = (f"a plan whose input has fewer than {small:,} rows (what it read last time — a fixpoint: its largest "
            "input —, else its largest table, else on a first build the estimated largest extraction table) runs "
            "on one partition, its queries optimized in one pass: repartitioning it costs more than the threads win "
            "back, and planning more than its rows (calibrated: cpgflow calibration); filters are applied after "
            "the scans, never pushed into them (measured slower: tests/benchmarks/bench_pushdown.py)")
    read: list[tuple[str, Iterable[str]]] = [(SESSION_SUBJECT, stats.keys())]
    read += [(view, graph.transitive_sources(view)) for view in sorted(policy.scan.views)]
    for subject, tables in read:
        chosen = policy.scan.session if subject == SESSION_SUBJECT else policy.scan.views[subject]
        decision = builder.decide("scan_options", subject, chosen.confidence.decision_value, chosen.confidence)
        builder.cite_statistics(decision, "source_size", tables, stats)
        builder.cite(decision, "threshold", "rule", "small input threshold", rule, small)


def _statistics_decisions(builder: _Builder, policy: CompiledExecutionPolicy) -> None:
    """The tables each view updated by file reads only the data files of that may hold its files."""
    for view, reads in sorted(policy.scan.by_statistics.items()):
        value = ", ".join(f"{table} by {column}" for table, column in sorted(reads.columns.items()))
        decision = builder.decide("statistics_reads", view, value, reads.confidence)
        builder.cite_inference(decision, view, reads.confidence)


def _registration_decisions(builder: _Builder, policy: CompiledExecutionPolicy) -> None:
    for view, choice in sorted(policy.materialization.registration.items()):
        decision = builder.decide("registration", view, choice.registration, choice.confidence)
        builder.cite_inference(decision, view, choice.confidence)


def _extraction_decision(builder: _Builder, policy: CompiledExecutionPolicy) -> None:
    confidence = policy.extraction.confidence
    decision = builder.decide("extraction", EXTRACTION_SUBJECT, confidence.decision_value, confidence)
    builder.cite_inference(decision, EXTRACTION_SUBJECT, confidence)


def _measured_decisions(builder: _Builder, record: RunRecord) -> None:
    """The decisions the run made as it ran, from what it measured (how many extraction tables it
    wrote at once, from the extracted rows' sizes; a replay, which extracts nothing, has none), and
    from what the output folder held: each staged view it did not compute, as no view that ran read it
    (`relspec.demand`)."""
    for confidence in record.decisions:
        kind = cast(DecisionKind, confidence.decision_type)
        if kind == "view_demand":
            for outcome in record.views:
                if outcome.outcome == "unneeded":
                    decision = builder.decide(kind, outcome.view, outcome.outcome, confidence)
                    builder.cite_inference(decision, outcome.view, confidence)
            continue
        decision = builder.decide(kind, EXTRACTION_SUBJECT, confidence.decision_value, confidence)
        builder.cite_inference(decision, EXTRACTION_SUBJECT, confidence)


def _profile_decision(builder: _Builder, policy: CompiledExecutionPolicy) -> None:
    """The session profile the run's workload class ran under (none on a policy compiled without one)."""
    profile = policy.profile
    if profile is None or profile.confidence is None:
        return
    decision = builder.decide("session_profile", SESSION_SUBJECT, profile.workload, profile.confidence)
    builder.cite_inference(decision, SESSION_SUBJECT, profile.confidence)


def _join_decisions(builder: _Builder, ir: SemanticIR) -> None:
    """Join keys and strategy of every relate view: the semantic types of its inputs' columns, or the
    keys its spec declares (an override)."""
    for view in ir.views:
        if view.join is None or not isinstance(view.spec, RelateSpec):
            continue
        _join_keys_decision(builder, view, view.spec)
        strategy = view.join.confidence
        decision = builder.decide("join_strategy", view.name, view.join.strategy, strategy)
        builder.cite(decision, "relation", "rule", f"relation of {view.name}",
                     f"{view.spec.left} {view.spec.relation} {view.spec.right}")
        for text in strategy.evidence:
            builder.cite(decision, "column_types", "semantic_type", f"join of {view.name}", text)


def _join_keys_decision(builder: _Builder, view: ViewIR, spec: RelateSpec) -> None:
    assert view.join is not None
    confidence = view.join.keys.confidence or view.join.confidence
    decision = builder.decide("join_keys", view.name, confidence.decision_value, confidence)
    if spec.keys:
        builder.cite(decision, "override", "override", f"keys declared in the spec of {view.name}",
                     ", ".join(f"{left}={right}" for left, right in spec.keys))
        return
    for text in confidence.evidence:
        builder.cite(decision, "column_types", "semantic_type", f"join columns of {view.name}", text)


def _maintenance_decisions(builder: _Builder, records: tuple[MaintenanceRecord, ...],
                           policy: CompiledExecutionPolicy, stats: dict[str, TableStats]) -> None:
    """What maintenance did to each published table: its reason codes, the thresholds of the table's
    size tier, its statistics, and what the table looked like before and after."""
    for record in records:
        choice = policy.maintenance.get(record.dataset)
        made = record.decision
        actions = [action for action, done in (("compact", made.compact), ("checkpoint", made.checkpoint),
                                               ("vacuum", made.vacuum)) if done]
        decision = builder.decide("maintenance", record.dataset, ", ".join(actions) or "no action",
                                  choice.confidence if choice is not None else None)
        for reason in made.reasons:
            builder.cite(decision, "reason_code", "rule", "maintenance reason code", reason)
        if choice is not None:
            builder.cite(decision, "thresholds", "rule", f"{choice.confidence.decision_value} tier maintenance",
                         _thresholds(choice.policy))
        builder.cite_statistics(decision, "table_size", (record.dataset,), stats)
        builder.cite(decision, "outcome", "metric", f"maintenance of {record.dataset}",
                     f"version {record.version_before} -> {record.version_after}, "
                     f"files {record.files_before} -> {record.files_after}", record.files_after)
        if record.error:
            builder.cite(decision, "error", "message", f"maintenance error of {record.dataset}", record.error)


def _thresholds(policy: MaintenancePolicy) -> str:
    return (f"compact at {policy.compact_min_small_files} files under {policy.small_file_bytes:,} bytes, "
            f"checkpoint every {policy.checkpoint_every_versions} versions, vacuum every "
            f"{policy.vacuum_every_versions} versions (retention {policy.vacuum_retention_hours} h)")


def _run_status_decision(builder: _Builder, record: RunRecord, checks: tuple[DataCheck, ...],
                         release: Release | None) -> None:
    """The run's status (whatever statuses exist), its message, its validation issues, the data checks
    before its release and the release it made."""
    decision = builder.decide("run_status", RUN_SUBJECT, record.status)
    for check in checks:
        builder.cite(decision, "check_failed" if not check.passed else "check_passed", "data_check",
                     f"{check.code} ({check.subject})", check.detail)
    if release is not None:
        builder.cite(decision, "release", "metric", "release", f"release {release.sequence} of the release log",
                     release.sequence)
    if record.message:
        builder.cite(decision, "reason", "message", "run message", record.message)
    for issue in record.validation:
        builder.cite(decision, "validation_issue", "validation_issue", issue.code,
                     f"{issue.severity} on {issue.subject}: {issue.message}")
    if record.output_versions:
        versions = ", ".join(f"{name} v{version}" for name, version in sorted(record.output_versions.items()))
        builder.cite(decision, "outputs", "metric", "output versions", versions, len(record.output_versions))


# -- the tables -----------------------------------------------------------------------------------

DECISION_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("decision_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("value", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
    pa.field("fallback_reason", pa.string()),
])
EVIDENCE_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("evidence_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("value", pa.string(), nullable=False),
    pa.field("quantity", pa.int64()),
])
EDGE_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("decision_id", pa.string(), nullable=False),
    pa.field("evidence_id", pa.string(), nullable=False),
    pa.field("role", pa.string(), nullable=False),
])
PROVENANCE_SCHEMAS = {"provenance_decisions": DECISION_SCHEMA, "provenance_evidence": EVIDENCE_SCHEMA,
                      "provenance_edges": EDGE_SCHEMA}


def _rows(run_id: str, items: tuple[msgspec.Struct, ...], schema: pa.Schema) -> pa.Table:
    rows = [{"run_id": run_id, **msgspec.structs.asdict(item)} for item in items]
    return pa.Table.from_pylist(rows, schema=schema)


def provenance_tables(graph: ProvenanceGraph) -> dict[str, pa.Table]:
    """The rows the run adds to each provenance table, by table name."""
    return {
        "provenance_decisions": _rows(graph.run_id, graph.decisions, DECISION_SCHEMA),
        "provenance_evidence": _rows(graph.run_id, graph.evidence, EVIDENCE_SCHEMA),
        "provenance_edges": _rows(graph.run_id, graph.citations, EDGE_SCHEMA),
    }


# -- in plain words -------------------------------------------------------------------------------

CACHE_WORDS = {"none": "inlined", "delta_staging": "staged", "delta_output": "published"}
# How `describe` introduces a cited fact of each role, in the order it lists them.
ROLE_WORDS = {
    "topology": "in the view graph",
    "readers": "measured runs",
    "source_size": "measured statistics of",
    "threshold": "rule",
    "override": "explicit override",
    "inference": "inferred from",
    "relation": "relation template",
    "column_types": "semantic column types",
    "reason_code": "reason code",
    "thresholds": "thresholds",
    "table_size": "measured statistics of",
    "outcome": "measured",
    "error": "error",
    "reason": "message",
    "validation_issue": "validation issue",
    "outputs": "outputs",
    "check_failed": "data check FAILED",
    "check_passed": "data check passed",
    "release": "made",
}


class CitedEvidence(msgspec.Struct, frozen=True):
    role: str
    kind: str
    name: str
    value: str
    quantity: int | None = None


class ExplainedDecision(msgspec.Struct, frozen=True):
    """A decision read back from the provenance tables, with the evidence it cites."""

    run_id: str
    decision: Decision
    evidence: tuple[CitedEvidence, ...]


def explained_decisions(rows: list[dict[str, object]]) -> list[ExplainedDecision]:
    """The rows of a decision joined to its edges and evidence (`driver.questions.decisions_about`:
    one row per cited fact, evidence columns prefixed ``evidence_``) grouped by decision."""
    grouped: dict[str, tuple[str, Decision, list[CitedEvidence]]] = {}
    for row in rows:
        decision = msgspec.convert({field: row[field] for field in Decision.__struct_fields__}, Decision)
        _, _, cited = grouped.setdefault(decision.decision_id, (str(row["run_id"]), decision, []))
        if row["role"] is not None:
            cited.append(CitedEvidence(str(row["role"]), str(row["evidence_kind"]), str(row["evidence_name"]),
                                       str(row["evidence_value"]), row["quantity"]))  # type: ignore[arg-type]
    return [ExplainedDecision(run_id, decision, tuple(cited)) for run_id, decision, cited in grouped.values()]


def describe(decision: Decision, cited: tuple[CitedEvidence, ...]) -> list[str]:
    """A decision and the evidence it cites, in plain words: a headline, then a line per fact."""
    value = decision.value
    if decision.kind == "cache_policy":
        value = f"{CACHE_WORDS.get(value, value)} ({value})"
    lines = [f"{decision.subject}: {decision.kind.replace('_', ' ')} {value}, confidence {decision.score:.2f}"
             + _total_rows(cited)]
    if decision.fallback_reason:
        lines.append(f"  fallback: {decision.fallback_reason}")
    lines += [f"  - {_fact_words(fact)}" for fact in sorted(cited, key=_reading_order)]
    return lines


def _reading_order(fact: CitedEvidence) -> tuple[int, str, str]:
    roles = list(ROLE_WORDS)
    return roles.index(fact.role) if fact.role in roles else len(roles), fact.name, fact.value


def _total_rows(cited: tuple[CitedEvidence, ...]) -> str:
    sizes = [fact.quantity or 0 for fact in cited if fact.role == "source_size"]
    if not sizes:
        return ""
    return f" — {_count(sum(sizes), 'row')} in its {_count(len(sizes), 'source table')} (measured statistics)"


def _fact_words(fact: CitedEvidence) -> str:
    words = ROLE_WORDS.get(fact.role, fact.role.replace("_", " "))
    if fact.kind == "statistic":
        return f"{words} {fact.name}: {fact.value}"
    if fact.kind == "topology":
        return f"{words}: {fact.value}" + (f" (fan-out {fact.quantity})" if fact.quantity else "")
    if fact.kind in ("validation_issue", "data_check"):
        return f"{words} {fact.name}: {fact.value}"
    return f"{words}: {fact.value}"
