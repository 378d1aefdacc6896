"""The policy compiler and the validator bundle, on the real plan: each rule, and each validator made
to fire by a planted fault."""

from __future__ import annotations

import msgspec
import pyarrow as pa
import pytest

from relspec.calibration import DEFAULT_INLINE_MAX_ROWS, Thresholds
from relspec.catalog import DatasetCatalog
from relspec.costs import input_rows
from relspec.maintenance import MaintenanceDecision, MaintenanceRecord
from relspec.plan_signals import ExecutedSignals
from relspec.policy import (
    OPTIMIZER_PASSES,
    PARQUET_FILTERS_EVIDENCE,
    TARGET_PARTITIONS,
    WORKER_MIN_BYTES,
    CompiledExecutionPolicy,
    DiagnosticsFlags,
    MaterializationStrategy,
    RegistrationChoice,
    TableStats,
    ViewMaintenance,
    ViewPolicy,
    Workload,
    available_cores,
    compile_cache_policies,
    compile_extraction,
    compile_maintenance,
    compile_registration,
    compile_scan_policy,
    compile_statistics_reads,
    compile_udf_requirements,
    compile_view_maintenance,
    compile_workload,
    extraction_writers,
    fingerprint_policy,
    parse_overrides,
)
from relspec.profiles import compile_session_profile
from relspec.runs import RunRecord, ViewOutcome, new_run_record, read_records, run_row, runs_to_drop
from relspec.validation import RuntimeCapabilities, ValidationInput, validate
from relspec.view_graph import ViewGraph
from semantics.entities import Column
from semantics.extract.files import FileTask
from semantics.inference import InferenceConfidence
from semantics.ir import (
    SOURCE_COLUMNS,
    EmittedView,
    SemanticPlan,
    apply_inference,
    compile_specs,
    emit,
    infer_cache_hints,
    infer_graph_positions,
    infer_join_plans,
    optimize,
)
from semantics.locality import Locality, infer_locality
from semantics.scans import infer_pass_through, infer_scan_counts, plan_texts
from semantics.specs import DeriveSpec
from semantics.types import SemanticType as S
from semantics.views import OUTPUTS, discover_specs
from tests.test_inference import _derive

CAPABLE = RuntimeCapabilities(
    datafusion_version="55.0.0", deltalake_version="1.6.6", pyarrow_version="26.0.1", python_version="3.11.7",
    functions=("concat", "concat_ws", "length", "lpad", "md5", "reverse", "row_number", "split_part", "strpos",
               "replace", "first_value",
               "substr"),
    recursive_queries=True, delta_provider=True, tested_pair=True,
)


def _pipeline(specs=None, outputs=OUTPUTS):
    """The planning chain of `dataflows.semantic_plan`: the IR with every inference, its plan, its graph."""
    ir = compile_specs(specs if specs is not None else discover_specs(), outputs)
    texts = plan_texts(ir)
    positions = infer_graph_positions(ir, infer_scan_counts(ir, texts))
    hints = infer_cache_hints(ir, positions, infer_pass_through(ir, texts))
    ir = optimize(apply_inference(ir, positions, infer_join_plans(ir), hints))
    plan = emit(ir)
    return ir, plan, ViewGraph(plan)


def _cache(ir, plan, graph, stats=None, overrides=None, workload: Workload | None = None) -> dict[str, ViewPolicy]:
    """Cache policies as the pipeline compiles them; ``workload`` by default: ``stats``' in staging tables."""
    workload = workload or compile_workload(stats or {}, 0, "delta", memory=16 * 2**30)
    return compile_cache_policies(ir, graph, stats or {}, overrides or {}, workload,
                                  infer_locality(plan, SOURCE_COLUMNS))


def _policy(ir, plan, graph, stats=None, overrides=None) -> CompiledExecutionPolicy:
    stats = stats or {}
    cache = _cache(ir, plan, graph, stats, overrides)
    return fingerprint_policy(CompiledExecutionPolicy(
        cache=cache, extraction=compile_extraction([], 0), scan=compile_scan_policy(graph, stats, 2),
        maintenance=compile_maintenance(ir.outputs, stats),
        udfs=compile_udf_requirements(plan, set(SOURCE_COLUMNS)),
        materialization=compile_registration(ir, cache, compile_workload(stats, 0, "delta")),
        diagnostics=DiagnosticsFlags(), validation_mode="error"))


def _issues(ir, policy, capabilities=CAPABLE, overrides=None, datasets=None) -> list[tuple[str, str]]:
    names = tuple(SOURCE_COLUMNS) if datasets is None else datasets
    result = validate(ValidationInput(ir=ir, policy=policy, capabilities=capabilities,
                                      overrides=overrides or {}, datasets=names))
    return [(issue.code, issue.subject) for issue in result.issues]


def test_topology_change_changes_the_cache_policy() -> None:
    stats = {"ex_files": TableStats(rows=10 * DEFAULT_INLINE_MAX_ROWS, files=1, bytes=1, version=0)}
    chain = [_derive("a", "ex_files"), _derive("b", "a"), _derive("out", "b")]
    ir, plan, graph = _pipeline(chain, ("out",))
    assert {name: p.cache for name, p in _policy(ir, plan, graph, stats).cache.items()} == {
        "a": "none", "b": "none", "out": "delta_output"}
    fork = [_derive("a", "ex_files"), _derive("b", "a"), _derive("c", "a"), _derive("out", "b", "c")]
    ir, plan, graph = _pipeline(fork, ("out",))
    cache = _policy(ir, plan, graph, stats).cache
    assert cache["a"].cache == "delta_staging" and cache["b"].cache == "none"
    assert f"reads {10 * DEFAULT_INLINE_MAX_ROWS:,} source rows in all" in cache["a"].confidence.evidence


def test_a_small_leaf_is_inlined_but_a_view_over_views_stays_staged() -> None:
    stats = {"ex_files": TableStats(rows=10, files=1, bytes=1, version=0)}
    fork = [_derive("a", "ex_files"), _derive("b", "a"), _derive("c", "a"), _derive("d", "b", "c"),
            _derive("e", "d"), _derive("out", "d", "e")]
    ir, plan, graph = _pipeline(fork, ("out",))
    cache = _policy(ir, plan, graph, stats).cache
    assert cache["a"].cache == "none"  # a leaf over 10 rows: cheaper to recompute
    assert cache["d"].cache == "delta_staging"  # reads views: inlining it would grow its readers' plans
    no_stats = _policy(ir, plan, graph, {}).cache["a"]
    assert no_stats.cache == "delta_staging" and no_stats.confidence.fallback_reason.startswith("no table statistics")


def test_the_fan_out_at_which_a_leaf_is_staged_falls_as_its_rows_grow() -> None:
    # Read by two views, inlining computes the leaf once more: 5,000 rows, under the default 20,000:
    # inlined. Read by six, five more times: 25,000 rows: staged. Over 3,000 rows, six readers add
    # 15,000: inlined again.
    def leaf(readers: int, rows: int) -> ViewPolicy:
        names = [f"r{index}" for index in range(readers)]
        specs = [_derive("a", "ex_files"), *(_derive(name, "a") for name in names), _derive("out", *names)]
        stats = {"ex_files": TableStats(rows=rows, files=1, bytes=1, version=0)}
        return _policy(*_pipeline(specs, ("out",)), stats).cache["a"]

    assert leaf(2, 5_000).cache == "none"
    assert leaf(6, 5_000).cache == "delta_staging"
    inlined = leaf(6, 3_000)
    assert inlined.cache == "none"
    assert "recomputed 5 more times if inlined: 15,000 rows, under 20,000: cheaper than staging it" \
        in inlined.confidence.evidence


def test_overrides_win_and_malformed_ones_are_refused() -> None:
    assert parse_overrides(["a=none", "b=delta_staging"]) == {"a": "none", "b": "delta_staging"}
    for bad in ("a", "a=fast", "=none"):
        with pytest.raises(ValueError, match="expected VIEW=POLICY"):
            parse_overrides([bad])
    ir, plan, graph = _pipeline()
    policy = _policy(ir, plan, graph, overrides={"name_keys": "delta_staging"})
    assert policy.cache["name_keys"].override and policy.cache["name_keys"].cache == "delta_staging"


def test_the_policy_fingerprint_covers_every_field() -> None:
    ir, plan, graph = _pipeline()
    policy = _policy(ir, plan, graph)
    assert policy.fingerprint == _policy(ir, plan, graph).fingerprint
    changed = fingerprint_policy(msgspec.structs.replace(policy, validation_mode="warn"))
    assert changed.fingerprint != policy.fingerprint


def test_the_real_plan_validates_clean() -> None:
    ir, plan, graph = _pipeline()
    assert _issues(ir, _policy(ir, plan, graph)) == []


def _with_cache(policy: CompiledExecutionPolicy, view: str, value: str) -> CompiledExecutionPolicy:
    cache = dict(policy.cache)
    cache[view] = msgspec.structs.replace(cache[view], cache=value)
    return msgspec.structs.replace(policy, cache=cache)


def test_each_validator_fires_on_its_fault() -> None:
    ir, plan, graph = _pipeline()
    good = _policy(ir, plan, graph)
    assert _issues(ir, good, overrides={"nowhere": "none"}) == [("policy.unknown_view", "nowhere")]
    missing = msgspec.structs.replace(good, cache={k: v for k, v in good.cache.items() if k != "definitions"})
    assert _issues(ir, missing) == [("policy.missing_view", "definitions")]
    assert _issues(ir, _with_cache(good, "cpg_edges", "delta_staging")) == [
        ("policy.output_not_published", "cpg_edges")]
    assert _issues(ir, _with_cache(good, "denotes", "delta_output")) == [
        ("policy.intermediate_published", "denotes")]
    assert _issues(ir, _with_cache(good, "scope_parents", "none")) == [
        ("policy.required_staging_dropped", "scope_parents")]
    no_md5 = msgspec.structs.replace(CAPABLE, functions=tuple(f for f in CAPABLE.functions if f != "md5"))
    assert {subject for code, subject in _issues(ir, good, no_md5)} >= {"structural_edges", "resolved_edges"}
    assert {code for code, _ in _issues(ir, good, no_md5)} == {"capabilities.missing_function"}
    flat = msgspec.structs.replace(CAPABLE, recursive_queries=False)
    assert _issues(ir, good, flat) == [("capabilities.no_recursive_queries",
                                        "scope_chain, star_bindings, class_ancestors, value_flow_fixpoint")]
    odd = msgspec.structs.replace(CAPABLE, tested_pair=False)
    assert _issues(ir, good, odd) == [("capabilities.untested_versions", "engine")]
    without = tuple(name for name in SOURCE_COLUMNS if name != "ex_bases")
    assert _issues(ir, good, datasets=without) == [("catalog.unresolvable_source", "ex_bases")]


def test_a_low_confidence_join_is_a_warning() -> None:
    ir, plan, graph = _pipeline()
    view = ir.view("call_targets")
    weak = msgspec.structs.replace(view.join.keys.confidence, score=0.6, fallback_reason="chose the first")
    join = msgspec.structs.replace(view.join, keys=msgspec.structs.replace(view.join.keys, confidence=weak))
    views = tuple(msgspec.structs.replace(v, join=join) if v.name == "call_targets" else v for v in ir.views)
    shaky = msgspec.structs.replace(ir, views=views)
    result = validate(ValidationInput(ir=shaky, policy=_policy(ir, plan, graph), capabilities=CAPABLE, overrides={},
                                      datasets=tuple(SOURCE_COLUMNS)))
    assert [(i.code, i.severity, i.subject) for i in result.issues] == [
        ("plan.low_confidence_join", "warning", "call_targets")]
    assert not result.blocking  # a warning never stops a run, even in error mode


def test_scan_options_are_per_view_from_the_tables_each_reads() -> None:
    _, _, graph = _pipeline()
    stats = {"ex_references": TableStats(rows=3_000_000, files=4, bytes=1, version=0),
             "ex_modules": TableStats(rows=100, files=1, bytes=1, version=0)}
    scan = compile_scan_policy(graph, stats, 2)
    partitions, passes = "datafusion.execution.target_partitions", "datafusion.optimizer.max_passes"
    assert scan.views["name_uses"].options == {partitions: "2", passes: "3"}  # reads ex_references
    # reads only ex_modules: a small input, planned in one optimizer pass
    assert scan.views["top_packages"].options == {partitions: "1", passes: "1"}
    assert scan.session.options == {partitions: "2", passes: "3"}
    only_small = compile_scan_policy(graph, {"ex_modules": stats["ex_modules"]}, 2).session
    assert only_small.options == {partitions: "2", passes: "3"}  # a view-less query: every partition
    assert only_small.confidence.decision_value == "2 partitions"  # as it runs, though its only table is small
    assert scan.views["name_uses"].confidence.evidence == (
        "largest table read: 3,000,000 rows (large tier), most files: 4",)
    assert scan.views["top_packages"].confidence.decision_value == "one partition, one optimizer pass"
    assert compile_scan_policy(graph, {}, 2).session.confidence.fallback_reason == "no table statistics yet"


def test_tables_read_as_parquet_scans_get_their_filters_after_the_scan_and_say_why() -> None:
    """Pushed-down filters were measured slower (bench_pushdown.py): not even a large table's scans
    get them, and the decision says so where the tables are Parquet scans (on object storage)."""
    _, _, graph = _pipeline()
    stats = {"ex_references": TableStats(rows=3_000_000, files=40, bytes=1, version=0),
             "ex_modules": TableStats(rows=100, files=1, bytes=1, version=0)}
    parquet = compile_scan_policy(graph, stats, 2, parquet_scans=True)
    delta = compile_scan_policy(graph, stats, 2)
    for policy in (parquet, delta):
        for options in (policy.session, *policy.views.values()):
            assert not any(key.startswith("datafusion.execution.parquet.") for key in options.options), options
    assert parquet.views["name_uses"].options == delta.views["name_uses"].options == {
        TARGET_PARTITIONS: "2", OPTIMIZER_PASSES: "3"}
    assert parquet.views["name_uses"].confidence.evidence[-1] == PARQUET_FILTERS_EVIDENCE
    assert PARQUET_FILTERS_EVIDENCE not in delta.views["name_uses"].confidence.evidence  # a Delta provider
    assert parquet.views["name_uses"].confidence.decision_value == "2 partitions"


def test_the_calibrated_small_input_threshold_decides_one_partition() -> None:
    _, _, graph = _pipeline()
    stats = {"ex_modules": TableStats(rows=3_000, files=1, bytes=1, version=0)}
    partitions, passes = "datafusion.execution.target_partitions", "datafusion.optimizer.max_passes"
    assert compile_scan_policy(graph, stats, 2).views["top_packages"].options == {partitions: "1", passes: "1"}
    moved = compile_scan_policy(graph, stats, 2, thresholds=Thresholds(small_input_rows=2_000)).views["top_packages"]
    assert moved.options == {partitions: "2", passes: "3"}  # 3,000 rows are no small input under 2,000
    lowered = compile_scan_policy(graph, stats, 2, thresholds=Thresholds(small_input_rows=5_000)).views["top_packages"]
    assert "a small input (3,000 rows, under 5,000): one partition, no repartitioning" in lowered.confidence.evidence


def test_maintenance_follows_table_size_tiers() -> None:
    large = {"cpg_nodes": TableStats(rows=3_000_000, files=4, bytes=1, version=0)}
    big = compile_maintenance(("cpg_nodes",), large)["cpg_nodes"].policy
    assert (big.checkpoint_every_versions, big.vacuum_every_versions) == (5, 2)
    fresh = compile_maintenance(("cpg_nodes",), {})["cpg_nodes"]
    assert (fresh.policy.checkpoint_every_versions, fresh.policy.vacuum_every_versions) == (10, 8)
    assert isinstance(fresh.confidence, InferenceConfidence) and fresh.vacuumed_at == -1


def test_the_run_history_is_the_newest_runs_oldest_first() -> None:
    """`read_records(last=N)` picks the newest N runs by start before decoding any record, whatever
    order the table holds them in."""
    starts = ["2026-01-03", "2026-01-01", "2026-01-05", "2026-01-02", "2026-01-04"]
    table = pa.concat_tables([run_row(new_run_record(f"run{start[-1]}", start, "released")) for start in starts])
    assert [record.run_id for record in read_records(table, last=2)] == ["run4", "run5"]
    assert [record.run_id for record in read_records(table)] == ["run1", "run2", "run3", "run4", "run5"]
    assert read_records(None, last=2) == []


def test_no_view_shares_a_tables_name_in_maintenance_records() -> None:
    """Maintenance records name a staging table by its view and any other table by its folder, and
    `vacuum_attempts` reads them by that name: the two must never meet (an output is published,
    never staged)."""
    folders = DatasetCatalog("")
    tables = {folders.dataset(name) for name in folders.names()}
    assert not tables & ({spec.name for spec in discover_specs()} - set(OUTPUTS))


def test_old_runs_are_dropped_in_batches_and_never_a_kept_releases() -> None:
    table = pa.table({"run_id": [f"r{index}" for index in range(12)],
                      "started_at": [f"2026-01-{index:02d}" for index in (5, 1, 2, 3, 4, 0, 6, 7, 8, 9, 10, 11)]})
    assert runs_to_drop(table, set(), retention=10) == []  # 12 held: not past 10 + a quarter (12)
    wider = pa.concat_tables([table, pa.table({"run_id": ["r12"], "started_at": ["2026-01-12"]})])
    # 13 held: the 3 oldest by start (r5 at day 0, r1, r2) go, but r1 is a kept release's
    assert runs_to_drop(wider, {"r1"}, retention=10) == ["r2", "r5"]


def test_maintenance_knows_when_a_vacuum_last_ran_from_the_run_records() -> None:
    """A vacuum that deletes nothing commits nothing, so the table's log cannot say it ran: the runs'
    maintenance records do (the newest one that vacuumed, and did not fail, wins)."""
    def maintained(run_id: str, dataset: str, vacuum: bool, after: int, error: str | None = None) -> RunRecord:
        decision = MaintenanceDecision(dataset, compact=False, checkpoint=False, vacuum=vacuum, reasons=("test",))
        record = MaintenanceRecord(dataset, decision, after - 1, after, 1, 1, 0.0, error)
        return new_run_record(run_id, "2026-01-01T00:00:00", "released", maintenance=(record,))

    history = [maintained("a", "_runs", True, 7), maintained("b", "_runs", False, 9),
               maintained("c", "cpg_nodes", True, 4), maintained("d", "cpg_nodes", True, 6, error="OSError: gone")]
    choices = compile_maintenance(("cpg_runs", "cpg_nodes", "cpg_edges"), {}, history)
    assert choices["cpg_runs"].vacuumed_at == 7  # the runs table's folder is `_runs`
    assert choices["cpg_nodes"].vacuumed_at == 4  # the failed vacuum at 6 does not count
    assert choices["cpg_edges"].vacuumed_at == -1
    assert "last vacuumed at version 7 (run record)" in choices["cpg_runs"].confidence.evidence


def test_extraction_processes_are_compiled_from_the_size_of_the_work() -> None:
    small = [FileTask(f"m{index}.py", b"x = 1\n" * 100, "hash") for index in range(10)]  # 10 files, 600 B each
    choice = compile_extraction(small, 0)
    assert choice.workers == 1 and choice.confidence.decision_value == "in_process"
    assert choice.confidence.evidence[0] == "10 files to extract, 6,000 bytes"
    big = [FileTask(f"m{index}.py", b"#" * WORKER_MIN_BYTES, "hash") for index in range(4)]  # 4 MiB
    assert compile_extraction(big, 0).workers == min(4, available_cores())
    assert compile_extraction(big, 1).workers == 1  # --jobs 1: in the building process, however large


def test_inputs_only_the_fixpoint_reads_stay_on_the_delta_provider() -> None:
    ir, plan, graph = _pipeline()
    registration = _policy(ir, plan, graph).materialization.registration
    assert registration["parameter_bindings"].registration == "delta"
    assert "fixpoint view value_flow_fixpoint" in registration["parameter_bindings"].confidence.evidence[0]
    assert registration["scope_parents"].registration == "dataset"  # a WITH RECURSIVE query re-scans it


def test_a_first_build_decides_partitions_from_the_estimated_size_of_the_work() -> None:
    _, _, graph = _pipeline()
    partitions = "datafusion.execution.target_partitions"
    small = compile_scan_policy(graph, {}, 2, estimated=(5_000, "estimated at 5,000 rows"))
    large = compile_scan_policy(graph, {}, 2, estimated=(500_000, "estimated at 500,000 rows"))
    assert {options.options[partitions] for options in small.views.values()} == {"1"}
    assert {options.options[partitions] for options in large.views.values()} == {"2"}
    assert "no table yet: the largest extraction table estimated at 5,000 rows" in \
        small.views["name_uses"].confidence.evidence
    # measured statistics win over the estimate: a view over a 3M-row table is not small
    stats = {"ex_references": TableStats(rows=3_000_000, files=4, bytes=1, version=0)}
    measured = compile_scan_policy(graph, stats, 2, estimated=(5_000, "estimated"))
    assert measured.views["name_uses"].options[partitions] == "2"


def test_sql_keywords_before_a_parenthesis_are_no_functions() -> None:
    """`HAVING (...)`, `FILTER (WHERE ...)` and `BETWEEN (...)` call nothing: a view using them needs no
    function the engine might lack (a HAVING once made the fixpoint's plan fail validation)."""
    sql = ("SELECT k, count(*) FILTER (WHERE v > 0) AS n FROM t WHERE v BETWEEN (1) AND (2) "
           "GROUP BY k HAVING (min(v) = max(v)) OR md5 (k) = ''")
    view = EmittedView("v", "derive", sql, "delta_staging", ("t",), ())
    assert compile_udf_requirements(SemanticPlan((view,), ("v",)), {"t"}) == {"v": ("md5",)}


def test_extraction_tables_are_written_two_at_a_time_while_memory_allows():
    """Two whole writes at once hold the two largest tables three times each: 3 * (300 + 200) = 1,500
    bytes, against a quarter of the session's budget; replacing files' rows holds them six times."""
    tables = [100, 300, 200, 50]
    roomy = compile_session_profile("full_build", memory=12_000)  # half for the session: 6,000; a quarter: 1,500
    tight = compile_session_profile("full_build", memory=11_998)  # a quarter of 5,999: 1,499.75
    assert (roomy.memory_limit, tight.memory_limit) == (6_000, 5_999)
    assert extraction_writers(tables, roomy, replacing=False).writers == 2
    assert extraction_writers(tables, tight, replacing=False).writers == 1
    assert extraction_writers(tables, roomy, replacing=True).writers == 1  # 6 * 500 = 3,000
    assert extraction_writers([150, 100], roomy, replacing=True).writers == 2  # 6 * 250 = 1,500
    assert extraction_writers([], tight, replacing=True).writers == 2  # nothing to hold


def test_only_a_fixpoint_over_a_small_input_runs_queries_at_once() -> None:
    """class_ancestors and value_flow_fixpoint are the fixpoint views; over small tables they run a
    stage's independent queries one a partition of the session, over a large one (or on one
    partition) one at a time; a view that is no fixpoint never does, and says nothing of it."""
    _, _, graph = _pipeline()
    assert graph.fixpoints == {"class_ancestors", "value_flow_fixpoint"}
    small = {table: TableStats(rows=500, files=1, bytes=1, version=0) for table in SOURCE_COLUMNS}
    large = {**small, "ex_flows": TableStats(rows=3_000_000, files=4, bytes=1, version=0)}
    two = compile_scan_policy(graph, small, 2)
    assert two.views["value_flow_fixpoint"].queries_at_once == 2
    evidence = two.views["value_flow_fixpoint"].confidence.evidence
    assert any("independent queries run 2 at once" in text for text in evidence)
    assert two.views["scope_parents"].queries_at_once == 1
    assert not any("at once" in text for text in two.views["scope_parents"].confidence.evidence)
    assert compile_scan_policy(graph, large, 2).views["value_flow_fixpoint"].queries_at_once == 1  # reads ex_flows
    assert compile_scan_policy(graph, small, 1).views["value_flow_fixpoint"].queries_at_once == 1


def _maintained(bases_cache: str, held: frozenset[str] = frozenset()) -> dict[str, ViewMaintenance]:
    """`reader` is local relative to the global view `base` (cached as ``bases_cache``)."""
    localities = {
        "base": Locality("base", False, None, ("a join across files",), credited_to="file_id"),
        "reader": Locality("reader", True, "file_id", ("reads base with its owner",), ("base",)),
    }
    decided = InferenceConfidence("cache_policy", "x", 1.0, ())
    policies = {"base": ViewPolicy(bases_cache, decided), "reader": ViewPolicy("delta_staging", decided)}  # type: ignore[arg-type]
    return compile_view_maintenance(localities, policies, False, 1, 10, held)


def test_a_view_local_relative_to_a_staged_global_view_is_maintained_by_file():
    choices = _maintained("delta_staging")
    reader = choices["reader"]
    assert (reader.mode, reader.bases, reader.owner) == ("by_file", ("base",), "file_id")
    # the base is recomputed whole, and a build finds the files its rows changed for by its file column
    assert (choices["base"].mode, choices["base"].changes_by) == ("full", "file_id")
    assert choices["base"].confidence.evidence[-1].startswith("read by file by reader:")


@pytest.mark.parametrize(("cache", "held", "how"), [("none", frozenset(), "inlined into its readers"),
                                                    ("delta_staging", frozenset({"base"}), "held in memory"),
                                                    ("delta_output", frozenset(), "published, not staged")])
def test_a_view_relative_to_a_global_view_no_table_keeps_is_maintained_whole(cache, held, how):
    """No staging table keeps the last build's rows of the base (an output is not compared either):
    which files' rows changed is unknown."""
    choices = _maintained(cache, held)
    assert (choices["reader"].mode, choices["reader"].bases, choices["reader"].owner) == ("full", (), None)
    assert choices["reader"].confidence.evidence[-1] == (
        f"reads base, computed across files and {how}: which files' rows of it changed is not known, so the view "
        "is recomputed whole")
    assert "base" not in choices or choices["base"].changes_by is None


def test_a_view_updated_by_file_reads_by_statistics_the_clustered_tables_of_its_files():
    """name_uses is `SELECT ... FROM ex_references WHERE ...` (a filter: staged, read by three views) and
    binding_ranks reads the staged effective_bindings, file-local with owner file_id (and star_bindings
    only through it): each is read by its file column.
    An extraction table read into memory is not; a view maintained whole reads nothing by statistics."""
    ir, plan, graph = _pipeline()
    localities = infer_locality(plan, SOURCE_COLUMNS)
    cache = _cache(ir, plan, graph)
    maintenance = compile_view_maintenance(localities, cache, False, 1, 10)
    staged = frozenset(view for view, policy in cache.items() if policy.cache == "delta_staging")
    assert {"name_uses", "binding_ranks", "effective_bindings"} <= staged
    reads = compile_statistics_reads(maintenance, graph, staged, MaterializationStrategy(), [])
    assert reads["name_uses"].columns == {"ex_references": "file_id"}
    assert reads["binding_ranks"].columns == {"effective_bindings": "file_id"}
    assert reads["name_uses"].confidence.fallback_reason == "no update by file of it measured yet"
    assert all(maintenance[view].mode == "by_file" for view in reads)
    held = MaterializationStrategy(registration={"ex_references": RegistrationChoice(
        "memory", InferenceConfidence("registration", "memory", 1.0, ()))})
    assert "name_uses" not in compile_statistics_reads(maintenance, graph, staged, held, [])
    whole = compile_view_maintenance(localities, cache, True, 1, 10)  # --full
    assert compile_statistics_reads(whole, graph, staged, MaterializationStrategy(), []) == {}


def test_a_fixpoint_is_sized_by_its_largest_input_as_last_computed_whole() -> None:
    """A fixpoint's queries each read a few of its inputs: its input is the largest of them, not their
    sum. An input an edit's build updated by file says only how many rows it replaced: its rows are
    those of the last build that computed it whole. An ordinary view still counts what it read in all."""
    _, _, graph = _pipeline()
    fixpoint = "value_flow_fixpoint"
    inputs = graph.inputs(fixpoint)
    assert len(inputs) >= 3 and not graph.sources[fixpoint]  # it reads staged views only
    ran = ExecutedSignals(output_rows=1, output_bytes=1, elapsed_compute_ns=1, scans=(), filters=(),
                          selectivity=None, complete=True)

    def outcome(view: str, rows: int, maintained: str = "full") -> ViewOutcome:
        return ViewOutcome(view, "delta_staging", "computed_staged", rows, 0.1, "f", "p", maintained=maintained,
                           executed=ran)

    first = new_run_record("run1", "t", "released", views=(
        *(outcome(name, 1_000 * (index + 1)) for index, name in enumerate(inputs)), outcome(fixpoint, 5)))
    largest = 1_000 * len(inputs)
    assert input_rows([first], graph)[fixpoint] == ("run1", largest)  # the largest, not the sum
    reader = next(view for view in graph.names() if view not in graph.fixpoints and len(graph.inputs(view)) >= 2)
    read = new_run_record("run1", "t", "released", views=(*(outcome(name, 700) for name in graph.inputs(reader)),
                                                           outcome(reader, 5)))
    assert input_rows([read], graph)[reader] == ("run1", 700 * len(graph.inputs(reader)))  # the sum
    edited = new_run_record("run2", "t", "released", views=(
        outcome(inputs[-1], 3, maintained="by_file"), outcome(fixpoint, 5)))
    assert input_rows([first, edited], graph)[fixpoint] == ("run2", largest)  # not 3: the rows replaced


def test_a_view_passing_on_rows_of_an_inlined_view_passing_rows_on_is_inlined() -> None:
    """a and b each pass on every row they scan (a of ex_files, b of a) and are each read twice: a is
    inlined, its readers scanning ex_files; so is b, since reading a is reading ex_files."""
    file_id = (Column("file_id", "string", S.FILE_ID),)
    a = DeriveSpec(name="a", columns=file_id, doc="", inputs=("ex_files",), sql="SELECT file_id FROM ex_files")
    b = DeriveSpec(name="b", columns=file_id, doc="", inputs=("a",), sql="SELECT file_id FROM a")
    readers = [_derive("c", "a", "b"), _derive("d", "b")]
    ir, plan, graph = _pipeline([a, b, *readers, _derive("out", "c", "d")], ["out"])
    assert ir.view("a").cache.policy == ir.view("b").cache.policy == "delta_staging"  # read twice each
    # held in memory, extraction tables too: no file-local reader or Delta decoding keeps either staged
    policies = _cache(ir, plan, graph, workload=compile_workload({}, 0, memory=16 * 2**30))
    assert policies["a"].cache == policies["b"].cache == "none"
    assert "its plan passes on every row of a (scans, projections, unions)" in policies["b"].passes_on


def test_a_view_counts_the_computed_views_its_lazy_inputs_read() -> None:
    """c reads the lazy b, which reads the staged a held in memory (no scan metrics): c's plan holds
    b's, so the rows c read are a's."""
    _, _, graph = _pipeline([_derive("a", "ex_files"), _derive("b", "a"), _derive("c", "b")], ["c"])
    held = ExecutedSignals(output_rows=1, output_bytes=1, elapsed_compute_ns=1, scans=(), filters=(),
                           selectivity=None, complete=True)
    record = new_run_record("run1", "t", "released", views=(
        ViewOutcome("a", "delta_staging", "computed_staged", 700, 0.1, "f", "p", maintained="full", executed=held),
        ViewOutcome("b", "none", "lazy", None, 0.0, "f", "p"),
        ViewOutcome("c", "delta_output", "published", 5, 0.1, "f", "p", maintained="full", executed=held)))
    assert input_rows([record], graph)["c"] == ("run1", 700)


def test_a_view_that_passes_rows_on_is_inlined_where_staging_it_saves_nothing() -> None:
    """value_flows is `SELECT ... FROM ex_flows`, read by value_flow_fixpoint, pt_call_targets and
    identity_functions, none of them file-local; effective_bindings, `own_bindings UNION ALL
    star_bindings` (both staged), is read by the file-local binding_ranks and use_slots among others;
    reference_edges unions two views its staging computes once (reference_candidates and builtin_uses
    are read by it alone)."""
    ir, plan, graph = _pipeline()
    tables = _cache(ir, plan, graph)  # staged views in staging tables, extraction tables in Delta
    assert tables["value_flows"].cache == "none"
    assert "its readers scan those as cheaply as they would scan it staged, which costs a write" in \
        tables["value_flows"].passes_on
    assert tables["effective_bindings"].cache == "delta_staging"
    # use_slots, file-local too, is inlined (read once): a build reads its inputs whole anyway
    assert "file-local binding_ranks read it" in tables["effective_bindings"].passes_on
    # resolved_edges, their file-local reader, is inlined into cpg_edges: nothing reads them by file
    assert tables["import_edges"].cache == tables["inherits_edges"].cache == "none"
    assert tables["reference_edges"].cache == "delta_staging"
    assert "reference_candidates, builtin_uses would be computed in each reader's plan" in \
        tables["reference_edges"].passes_on
    medium = _cache(ir, plan, graph, workload=compile_workload(
        {"ex_flows": TableStats(rows=150_000, files=1, bytes=1, version=0)}, 0, memory=16 * 2**30))
    assert medium["value_flows"].cache == "delta_staging"  # held in memory: its readers do not decode ex_flows
    assert "ex_flows is read through the Delta provider" in medium["value_flows"].passes_on
    few = {"ex_flows": TableStats(rows=100, files=1, bytes=1, version=0),
           "ex_references": TableStats(rows=150_000, files=1, bytes=1, version=0)}
    cheap = _cache(ir, plan, graph, few, workload=compile_workload(few, 0, memory=16 * 2**30))["value_flows"]
    assert cheap.cache == "none" and cheap.passes_on is None  # kept staged by its plan, inlined for its 100 rows
    small = _cache(ir, plan, graph, workload=compile_workload({}, 0, memory=16 * 2**30))  # all in memory
    assert small["value_flows"].cache == small["effective_bindings"].cache == "none"
    assert "which costs a copy in memory" in small["effective_bindings"].passes_on
    assert all(policy.passes_on is None for name, policy in tables.items()
               if name not in infer_pass_through(compile_specs(discover_specs(), OUTPUTS)))
