"""Hamilton nodes of the semantic plan: specs → IR → inference (each stage its own node) → optimize → emit.

No data is read here: the plan is a pure function of the view specs and the entity declarations.
"""

from __future__ import annotations

from hamilton.function_modifiers import tag

from semantics.inference import JoinPlan
from semantics.ir import (
    CacheHint,
    GraphPosition,
    SemanticIR,
    SemanticPlan,
    apply_inference,
    compile_specs,
    emit,
    infer_cache_hints,
    infer_graph_positions,
    infer_join_plans,
    optimize,
)
from semantics.scans import infer_pass_through, infer_scan_counts, plan_texts
from semantics.specs import AnySpec
from semantics.views import OUTPUTS, discover_specs


@tag(role="inference")
def view_specs() -> tuple[AnySpec, ...]:
    """Every view spec of the pipeline, discovered by convention in `semantics.views`."""
    return discover_specs()


@tag(role="inference")
def compiled_ir(view_specs: tuple[AnySpec, ...]) -> SemanticIR:
    """compile: specs checked against each other and the extraction tables, in dependency order."""
    return compile_specs(view_specs, OUTPUTS)


@tag(role="inference")
def view_logical_plans(compiled_ir: SemanticIR) -> dict[str, str]:
    """infer: DataFusion's logical plan of each view whose SQL is known before joins are inferred,
    planned over empty tables."""
    return plan_texts(compiled_ir)


@tag(role="inference")
def scan_counts(compiled_ir: SemanticIR, view_logical_plans: dict[str, str]) -> dict[str, dict[str, int]]:
    """infer: how many times each view's plan scans each of its inputs (a CTE read twice scans its
    inputs twice)."""
    return infer_scan_counts(compiled_ir, view_logical_plans)


@tag(role="inference")
def pass_through_views(compiled_ir: SemanticIR, view_logical_plans: dict[str, str]) -> frozenset[str]:
    """infer: the views whose plans pass on every row they scan (scans, projections, unions)."""
    return infer_pass_through(compiled_ir, view_logical_plans)


@tag(role="inference")
def graph_positions(compiled_ir: SemanticIR, scan_counts: dict[str, dict[str, int]]) -> dict[str, GraphPosition]:
    """infer: each view's level, consumers and the scans of it in their plans."""
    return infer_graph_positions(compiled_ir, scan_counts)


@tag(role="inference")
def join_plans(compiled_ir: SemanticIR) -> dict[str, JoinPlan]:
    """infer: join keys and strategy of every relate view, from its inputs' semantic types."""
    return infer_join_plans(compiled_ir)


@tag(role="inference")
def cache_hints(compiled_ir: SemanticIR, graph_positions: dict[str, GraphPosition],
                pass_through_views: frozenset[str]) -> dict[str, CacheHint]:
    """infer: a cache hint per view from the view graph's topology (and which views pass rows on)."""
    return infer_cache_hints(compiled_ir, graph_positions, pass_through_views)


@tag(role="inference")
def inferred_ir(compiled_ir: SemanticIR, graph_positions: dict[str, GraphPosition],
                join_plans: dict[str, JoinPlan], cache_hints: dict[str, CacheHint]) -> SemanticIR:
    """The IR with every inferred property attached."""
    return apply_inference(compiled_ir, graph_positions, join_plans, cache_hints)


@tag(role="inference")
def optimized_ir(inferred_ir: SemanticIR) -> SemanticIR:
    """optimize: only the views the outputs need, in dependency order."""
    return optimize(inferred_ir)


@tag(role="inference")
def semantic_plan(optimized_ir: SemanticIR) -> SemanticPlan:
    """emit: the SQL DataFusion runs for every view, joins filled in from the inference."""
    return emit(optimized_ir)
