"""The IR passes and inference: parity of every relationship's inferred keys and strategy, and the
rules behind them (ambiguity, override, failure, cache hints from topology)."""

from __future__ import annotations

import pytest

from semantics.entities import Column
from semantics.inference import InferenceError, infer_join
from semantics.ir import (
    CacheHint,
    SemanticIR,
    SpecError,
    apply_inference,
    compile_specs,
    emit,
    infer_cache_hints,
    infer_graph_positions,
    infer_join_plans,
    optimize,
)
from semantics.scans import infer_pass_through, infer_scan_counts, plan_texts
from semantics.specs import DeriveSpec, RelateSpec
from semantics.types import SemanticType as S
from semantics.views import OUTPUTS, discover_specs

# Every relationship of the pipeline and the join it must get: (equi keys, range keys, strategy).
EXPECTED_JOINS = {
    "key_scopes": ((("scope_id", "scope_id"),), (), "scope_equi"),
    # a scope is one file's: a side that names its file joins on it too (key_scopes' scope_chain does not)
    "resolved_uses": ((("scope_id", "scope_id"), ("name", "name"), ("file_id", "file_id")), (), "scope_name_equi"),
    "scope_candidates": ((("scope_id", "scope_id"), ("name", "name"), ("file_id", "file_id")), (),
                         "scope_name_equi"),
    "reference_candidates": ((("scope_id", "scope_id"), ("name", "name"), ("file_id", "file_id")), (),
                             "scope_name_equi"),
    "import_definitions": ((("qualname", "qualname"),), (), "qualname_equi"),
    "import_bindings": ((("qualname", "qualname"),), (), "qualname_equi"),
    "class_bases": ((("ref_id", "ref_id"),), (), "foreign_key"),
    "call_targets": ((("callee_ref_id", "ref_id"),), (), "foreign_key"),
    "nodes_with_paths": ((("file_id", "file_id"),), (), "file_equi"),
}


def _planned():
    ir = compile_specs(discover_specs(), OUTPUTS)
    positions = infer_graph_positions(ir, infer_scan_counts(ir))
    joins = infer_join_plans(ir)
    return ir, positions, joins, infer_cache_hints(ir, positions)


def test_every_relationship_gets_its_intended_keys_and_strategy() -> None:
    _, _, joins, _ = _planned()
    actual = {name: (plan.keys.equi, plan.keys.range, plan.strategy) for name, plan in joins.items()}
    assert actual == EXPECTED_JOINS
    for plan in joins.values():
        assert plan.keys.confidence is not None and plan.keys.confidence.score == 1.0
        assert plan.keys.confidence.evidence and plan.confidence.decision_type == "join_strategy"


def test_no_relationship_spells_its_keys() -> None:
    relate = [spec for spec in discover_specs() if isinstance(spec, RelateSpec)]
    assert relate and all(spec.keys == () for spec in relate)


def test_emitted_sql_uses_the_inferred_join() -> None:
    ir, positions, joins, hints = _planned()
    plan = emit(optimize(apply_inference(ir, positions, joins, hints)))
    assert "ON l.callee_ref_id = r.ref_id" in plan.view("call_targets").sql
    assert "ON l.scope_id = r.scope_id AND l.name = r.name" in plan.view("reference_candidates").sql


LEFT = (
    Column("id", "string", S.ENTITY_ID),
    Column("file_id", "string", S.FILE_ID),
    Column("bstart", "int64", S.SPAN_START),
    Column("bend", "int64", S.SPAN_END),
    Column("owner_id", "string", S.FOREIGN_ID, references=("function",)),
    Column("other_id", "string", S.FOREIGN_ID, references=("class",)),
)
RIGHT = (
    Column("id", "string", S.ENTITY_ID),
    Column("file_id", "string", S.FILE_ID),
    Column("bstart", "int64", S.SPAN_START),
    Column("bend", "int64", S.SPAN_END),
)


def _relate(relation: str, keys: tuple = ()) -> RelateSpec:
    return RelateSpec(name="r", columns=(), doc="", left="a", right="b", relation=relation,  # type: ignore[arg-type]
                      select="l.id", keys=keys)


def test_span_containment_and_overlap_come_from_span_types() -> None:
    inside = infer_join(_relate("inside"), LEFT, RIGHT)
    assert inside.strategy == "span_containment"
    assert inside.condition() == "l.file_id = r.file_id AND l.bstart >= r.bstart AND l.bend <= r.bend"
    overlap = infer_join(_relate("overlapping"), LEFT, RIGHT)
    assert overlap.strategy == "span_overlap"
    assert overlap.condition() == "l.file_id = r.file_id AND l.bstart < r.bend AND l.bend > r.bstart"


def test_a_join_on_one_scope_is_a_join_on_its_file_when_both_sides_name_it() -> None:
    scoped = (Column("scope_id", "string", S.SCOPE_ID), Column("name", "string", S.NAME))
    with_file = (*scoped, Column("file_id", "string", S.FILE_ID))
    assert infer_join(_relate("in_scope"), with_file, with_file).condition() == (
        "l.scope_id = r.scope_id AND l.name = r.name AND l.file_id = r.file_id")
    assert infer_join(_relate("same_scope"), with_file, with_file).keys.equi == (
        ("scope_id", "scope_id"), ("file_id", "file_id"))
    assert infer_join(_relate("in_scope"), with_file, scoped).keys.equi == (("scope_id", "scope_id"), ("name", "name"))
    with pytest.raises(InferenceError):  # a file in common is no scope in common
        infer_join(_relate("in_scope"), with_file, (Column("file_id", "string", S.FILE_ID),))


def test_foreign_key_follows_the_declared_target_entity() -> None:
    assert infer_join(_relate("refers_to"), LEFT, RIGHT, "class").keys.equi == (("other_id", "id"),)
    assert infer_join(_relate("refers_to"), LEFT, RIGHT, "function").keys.equi == (("owner_id", "id"),)


def test_an_ambiguous_choice_lowers_confidence_and_says_why() -> None:
    plan = infer_join(_relate("refers_to"), LEFT, RIGHT, None)
    assert plan.keys.equi == (("owner_id", "id"),)
    assert plan.keys.confidence.score < 1.0
    assert "2 foreign-id columns" in plan.keys.confidence.fallback_reason


def test_an_explicit_override_wins_and_is_recorded() -> None:
    plan = infer_join(_relate("refers_to", keys=(("other_id", "id"),)), LEFT, RIGHT, "function")
    assert plan.keys.equi == (("other_id", "id"),)
    assert plan.keys.confidence.evidence == ("explicit keys in the spec (override)",)


def test_a_relationship_the_types_cannot_support_is_an_error() -> None:
    no_qualname = (Column("id", "string", S.ENTITY_ID),)
    with pytest.raises(InferenceError, match="cannot infer the keys of relation 'named'"):
        infer_join(_relate("named"), no_qualname, no_qualname)


def _derive(name: str, *inputs: str, sql: str | None = None) -> DeriveSpec:
    """A view scanning each input once and computing something (a DISTINCT: a view that passes on
    every row it scans is inlined whatever its readers), unless ``sql`` says otherwise."""
    sql = sql or " UNION ALL ".join(f"SELECT DISTINCT 1 AS one FROM {name}" for name in inputs)
    return DeriveSpec(name=name, columns=(), doc="", inputs=inputs, sql=sql)


def test_cache_hints_follow_the_view_graph_topology() -> None:
    # a -> b -> out: a is read once, so it stays lazy
    ir = compile_specs([_derive("a", "ex_files"), _derive("b", "a"), _derive("out", "b")], ["out"])
    hints = infer_cache_hints(ir, infer_graph_positions(ir, infer_scan_counts(ir)))
    assert {name: hint.policy for name, hint in hints.items()} == {
        "a": "none", "b": "none", "out": "delta_output"}
    # a second reader of a: now it is computed once and staged
    ir = compile_specs([_derive("a", "ex_files"), _derive("b", "a"), _derive("c", "a"), _derive("out", "b", "c")],
                       ["out"])
    hints = infer_cache_hints(ir, infer_graph_positions(ir, infer_scan_counts(ir)))
    assert hints["a"].policy == "delta_staging"
    assert hints["a"].confidence.evidence == ("its plan would run 2 times, scanned by b, c",)
    assert hints["b"].policy == "none"


def test_a_view_scanned_twice_by_its_only_reader_is_staged() -> None:
    # b names a in a CTE that it reads twice, so DataFusion plans two scans of a: a would run twice
    twice = "WITH t AS (SELECT 1 AS one FROM a) SELECT one FROM t UNION ALL SELECT one FROM t"
    ir = compile_specs([_derive("a", "ex_files"), _derive("b", "a", sql=twice), _derive("out", "b")], ["out"])
    counts = infer_scan_counts(ir)
    assert counts == {"a": {"ex_files": 1}, "b": {"a": 2}, "out": {"b": 1}}
    hints = infer_cache_hints(ir, infer_graph_positions(ir, counts))
    assert hints["a"].policy == "delta_staging"
    assert hints["a"].confidence.evidence == ("its plan would run 2 times, scanned by b (2x)",)
    assert hints["b"].policy == "none"


def test_scans_inside_subqueries_are_counted() -> None:
    # IN and EXISTS subqueries are expressions: their scans are not among the plan's inputs, but they run
    in_and_exists = ("SELECT 1 AS one FROM ex_files WHERE 1 IN (SELECT 1 FROM a) "
                     "AND EXISTS (SELECT 1 FROM a)")
    ir = compile_specs([_derive("a", "ex_files"), _derive("out", "ex_files", "a", sql=in_and_exists)], ["out"])
    assert infer_scan_counts(ir)["out"] == {"ex_files": 1, "a": 2}


def test_a_view_that_cannot_be_planned_is_named() -> None:
    ir = compile_specs([_derive("a", "ex_files", sql="SELECT no_such_function(1) AS one FROM ex_files")], ["a"])
    with pytest.raises(SpecError, match="view 'a' cannot be planned"):
        infer_scan_counts(ir)


def test_a_recursive_reader_forces_its_input_to_be_materialized() -> None:
    recursive = DeriveSpec(name="r", columns=(), doc="", inputs=("a",), sql="SELECT 1", recursive=True)
    ir = compile_specs([_derive("a", "ex_files"), recursive, _derive("out", "r")], ["out"])
    hints = infer_cache_hints(ir, infer_graph_positions(ir, infer_scan_counts(ir)))
    assert hints["a"].policy == "delta_staging"
    with pytest.raises(SpecError, match="reads table 'ex_files' directly"):
        compile_specs([DeriveSpec(name="r", columns=(), doc="", inputs=("ex_files",), sql="SELECT 1",
                                  recursive=True)], ["r"])


def test_a_recursive_query_must_be_declared() -> None:
    """The policy keeps what a WITH RECURSIVE query reads staged by the spec's flag: a query the plan
    shows recursive, declared plain, is an error rather than a view whose inputs may be inlined."""
    undeclared = ("WITH RECURSIVE up(n) AS (SELECT 1 AS n FROM a UNION ALL SELECT n + 1 FROM up WHERE n < 3) "
                  "SELECT n FROM up")
    ir = compile_specs([_derive("a", "ex_files"), _derive("r", "a", sql=undeclared)], ["r"])
    with pytest.raises(SpecError, match="view 'r' runs a WITH RECURSIVE query: declare it with recursive=True"):
        plan_texts(ir)


def test_compile_rejects_bad_specs() -> None:
    with pytest.raises(SpecError, match="declared more than once"):
        compile_specs([_derive("a", "ex_files"), _derive("a", "ex_files")], ["a"])
    with pytest.raises(SpecError, match="neither a view nor an extraction table"):
        compile_specs([_derive("a", "nowhere")], ["a"])
    with pytest.raises(SpecError, match="cycle"):
        compile_specs([_derive("a", "b"), _derive("b", "a")], ["a"])


def test_optimize_drops_views_no_output_needs() -> None:
    ir = compile_specs([_derive("a", "ex_files"), _derive("unused", "a"), _derive("out", "a")], ["out"])
    positions = infer_graph_positions(ir, infer_scan_counts(ir))
    pruned = optimize(apply_inference(ir, positions, {}, infer_cache_hints(ir, positions)))
    assert pruned.names() == ("a", "out")


def test_views_that_pass_every_row_on_are_found_from_their_plans() -> None:
    """Scans, projections calling casts and string joins, and unions pass on every row of their
    inputs; a filter (it may keep few rows), a join, a DISTINCT, a window, a subquery, or a
    projection calling anything dearer (a hash, random()) computes something."""
    two = ("ex_files", "ex_modules")
    ir = compile_specs([
        _derive("projected", "ex_files", sql="SELECT file_id, coalesce(encoding, 'utf-8') AS encoding, CAST("
                                             "size_bytes AS INT) AS size, concat(path, ':') AS path FROM ex_files"),
        _derive("both", *two, sql="SELECT file_id FROM ex_files UNION ALL SELECT file_id FROM ex_modules"),
        _derive("filtered", "ex_files", sql="SELECT file_id, path FROM ex_files WHERE parsed"),
        _derive("joined", *two, sql="SELECT f.path FROM ex_files f JOIN ex_modules m ON m.file_id = f.file_id"),
        _derive("distinct", "ex_files", sql="SELECT DISTINCT path FROM ex_files"),
        _derive("windowed", "ex_files", sql="SELECT row_number() OVER (ORDER BY path) AS n FROM ex_files"),
        _derive("hashed", "ex_files", sql="SELECT md5(path) AS path FROM ex_files"),
        _derive("random", "ex_files", sql="SELECT path, random() AS r FROM ex_files"),
        _derive("subquery", *two, sql="SELECT path FROM ex_files WHERE file_id IN (SELECT file_id FROM ex_modules)"),
        _derive("out", "projected", "both", "filtered", "joined", "distinct", "windowed", "hashed", "random",
                "subquery"),
    ], ["out"])
    assert infer_pass_through(ir) == {"projected", "both"}


def _hints(ir: SemanticIR) -> dict[str, CacheHint]:
    """The cache hints of the planning chain (`dataflows.semantic_plan`)."""
    texts = plan_texts(ir)
    return infer_cache_hints(ir, infer_graph_positions(ir, infer_scan_counts(ir, texts)), infer_pass_through(ir, texts))


def test_a_view_that_passes_rows_on_needs_staging_only_for_a_recursive_query() -> None:
    """A WITH RECURSIVE query re-scans its input at each iteration, which must be a table; a fixpoint
    program re-scans it in plain queries, where a view passing rows on costs a scan of its inputs.
    From the pipeline's own views: `scope_parents` (`SELECT ... FROM ex_scopes`) is read by the recursive
    `scope_chain`, `value_flows` (`SELECT ... FROM ex_flows`) by the points-to fixpoint."""
    passing = _derive("a", "ex_files", sql="SELECT file_id FROM ex_files")
    recursive = DeriveSpec(name="r", columns=(), doc="", inputs=("a",), sql="SELECT 1", recursive=True)
    ir = compile_specs([passing, recursive, _derive("out", "r")], ["out"])
    hints = _hints(ir)
    assert hints["a"].policy == "delta_staging" and hints["a"].required and hints["a"].pass_through
    hints = _hints(compile_specs(discover_specs(), OUTPUTS))
    assert (hints["scope_parents"].required, hints["scope_parents"].pass_through) == (True, True)
    assert (hints["value_flows"].required, hints["value_flows"].pass_through) == (False, True)
    assert hints["value_flows"].policy == "delta_staging"  # the policy weighs it: see test_policy
