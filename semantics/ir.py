"""The semantic IR and its passes: compile → infer → optimize → emit. Each pass is a pure function.

compile checks the specs against each other and the extraction tables; the inference passes add
graph positions, join plans and cache hints, each decision with an `InferenceConfidence`; optimize
keeps only what the requested outputs need, in dependency order; emit turns every view into the
SQL DataFusion runs, using the inferred joins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import msgspec

from semantics.entities import BUILTIN_NAMES, ENTITIES_BY_NAME, EXTRACTION_ENTITIES, Column
from semantics.fixpoint import FixpointProgram
from semantics.inference import InferenceConfidence, JoinPlan, infer_join
from semantics.specs import (
    AnySpec,
    DeriveSpec,
    DiagnosticSpec,
    NormalizeSpec,
    ProjectSpec,
    RelateSpec,
    ViewKind,
    spec_inputs,
    spec_kind,
)
from semantics.types import SemanticType as S

CachePolicy = Literal["none", "delta_staging", "delta_output"]
CACHE_POLICIES: tuple[CachePolicy, ...] = ("none", "delta_staging", "delta_output")


class GraphPosition(msgspec.Struct, frozen=True):
    level: int  # 0 for views that read only extraction tables
    consumers: tuple[str, ...]  # views that read this one
    terminal: bool  # a requested output
    scans: tuple[int, ...]  # how many scans of this view each consumer's plan holds (semantics.scans)

    @property
    def fan_out(self) -> int:
        """How many times the view's plan runs if it is not staged: once per scan of it in its readers' plans."""
        return sum(self.scans)


class CacheHint(msgspec.Struct, frozen=True):
    policy: CachePolicy
    confidence: InferenceConfidence
    required: bool = False  # staging is needed for correctness: a recursive view re-scans this one
    # its plan passes on every row it scans (`semantics.scans.infer_pass_through`): the policy weighs
    # staging it against its readers scanning its inputs
    pass_through: bool = False


class ViewIR(msgspec.Struct, frozen=True):
    name: str
    kind: ViewKind
    inputs: tuple[str, ...]
    columns: tuple[Column, ...]
    spec: AnySpec
    position: GraphPosition | None = None
    join: JoinPlan | None = None
    cache: CacheHint | None = None


class SemanticIR(msgspec.Struct, frozen=True):
    views: tuple[ViewIR, ...]
    outputs: tuple[str, ...]

    def view(self, name: str) -> ViewIR:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(view.name for view in self.views)


class EmittedView(msgspec.Struct, frozen=True):
    name: str
    kind: ViewKind
    sql: str
    cache: CachePolicy  # the IR's hint; execution obeys the compiled policy
    inputs: tuple[str, ...]
    columns: tuple[Column, ...]
    fixpoint: FixpointProgram | None = None  # run to a fixpoint instead of as one query


class SemanticPlan(msgspec.Struct, frozen=True):
    """What execution runs: every needed view's SQL, in dependency order."""

    views: tuple[EmittedView, ...]
    outputs: tuple[str, ...]

    def view(self, name: str) -> EmittedView:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(name)


class SpecError(ValueError):
    """Specs that do not form a valid pipeline (a duplicate name, an unknown input, a cycle)."""


# The tables views read that are not views: the extraction tables and the builtin names.
SOURCE_COLUMNS: dict[str, tuple[Column, ...]] = {
    entity.table: entity.columns for entity in (*EXTRACTION_ENTITIES, BUILTIN_NAMES)
}
SOURCE_ENTITY: dict[str, str] = {entity.table: entity.name for entity in EXTRACTION_ENTITIES}


# -- compile ------------------------------------------------------------------------------------

def compile_specs(specs: Iterable[AnySpec], outputs: Iterable[str],
                  sources: dict[str, tuple[Column, ...]] | None = None) -> SemanticIR:
    sources = SOURCE_COLUMNS if sources is None else sources
    views: list[ViewIR] = []
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen or spec.name in sources:
            raise SpecError(f"view {spec.name!r} is declared more than once")
        seen.add(spec.name)
        if isinstance(spec, NormalizeSpec) and (spec.entity is None or spec.entity not in ENTITIES_BY_NAME):
            raise SpecError(f"view {spec.name!r} normalizes unknown entity {spec.entity!r}")
        views.append(ViewIR(spec.name, spec_kind(spec), spec_inputs(spec), spec.columns, spec))
    for view in views:
        for name in view.inputs:
            if name not in seen and name not in sources:
                raise SpecError(f"view {view.name!r} reads {name!r}, which is neither a view nor an extraction table")
            if name in sources and isinstance(view.spec, DeriveSpec) and view.spec.recursive:
                raise SpecError(f"recursive view {view.name!r} reads table {name!r} directly; read it through a view")
        if isinstance(view.spec, DeriveSpec) and view.spec.fixpoint is not None and not view.spec.recursive:
            raise SpecError(f"fixpoint view {view.name!r} re-scans its inputs every round: declare it recursive")
    missing = [name for name in outputs if name not in seen]
    if missing:
        raise SpecError(f"requested outputs {missing} are not views")
    return SemanticIR(views=tuple(_topological(views)), outputs=tuple(outputs))


def _topological(views: list[ViewIR]) -> list[ViewIR]:
    by_name = {view.name: view for view in views}
    ordered: list[ViewIR] = []
    state: dict[str, int] = {}

    def place(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise SpecError(f"views form a cycle: {' -> '.join((*path, name))}")
        state[name] = 1
        for dependency in by_name[name].inputs:
            if dependency in by_name:
                place(dependency, (*path, name))
        state[name] = 2
        ordered.append(by_name[name])

    for view in views:
        place(view.name, ())
    return ordered


# -- infer --------------------------------------------------------------------------------------

def infer_graph_positions(ir: SemanticIR, scan_counts: dict[str, dict[str, int]]) -> dict[str, GraphPosition]:
    """Each view's level, its consumers and how many times each consumer's plan scans it
    (``scan_counts``: `semantics.scans.infer_scan_counts`)."""
    consumers: dict[str, list[str]] = {view.name: [] for view in ir.views}
    level: dict[str, int] = {}
    for view in ir.views:  # already in dependency order
        upstream = [level[name] + 1 for name in view.inputs if name in level]
        level[view.name] = max(upstream, default=0)
        for name in dict.fromkeys(view.inputs):
            if name in consumers:
                consumers[name].append(view.name)
    return {
        view.name: GraphPosition(
            level[view.name], tuple(consumers[view.name]), view.name in ir.outputs,
            tuple(scan_counts[consumer][view.name] for consumer in consumers[view.name]))
        for view in ir.views
    }


def columns_of(ir: SemanticIR, name: str) -> tuple[Column, ...]:
    if name in SOURCE_COLUMNS:
        return SOURCE_COLUMNS[name]
    return ir.view(name).columns


def entity_of(ir: SemanticIR, name: str) -> str | None:
    """The entity a dataset's rows are (for foreign-key matching): a source's entity, or the
    entity a normalize view projects."""
    if name in SOURCE_ENTITY:
        return SOURCE_ENTITY[name]
    return ir.view(name).spec.entity


def infer_join_plans(ir: SemanticIR) -> dict[str, JoinPlan]:
    plans = {}
    for view in ir.views:
        spec = view.spec
        if isinstance(spec, RelateSpec):
            plans[view.name] = infer_join(spec, columns_of(ir, spec.left), columns_of(ir, spec.right),
                                          entity_of(ir, spec.right))
    return plans


PASSES_ROWS_ON = ("its plan passes on every row it scans (scans, projections, unions): the policy weighs "
                  "staging it against its readers scanning its inputs")


def infer_cache_hints(ir: SemanticIR, positions: dict[str, GraphPosition],
                      pass_through: frozenset[str] = frozenset()) -> dict[str, CacheHint]:
    """Cache hints from the view graph's topology alone (never from names): a requested output is
    published; a view whose plan would run twice or more is computed once and staged; the rest stay
    lazy. A view runs once per scan of it in its readers' plans (a lazy reader runs once, or it
    would be staged itself), so its fan-out counts scans, not readers. A recursive reader re-scans
    what it reads at each iteration, which must then be staged — but a fixpoint program re-scans it
    in plain queries, where a view that passes on every row of its inputs (``pass_through``:
    `semantics.scans.infer_pass_through`) costs a scan of those, as a staged copy would."""
    hints = {}
    recursive = {view.name for view in ir.views if isinstance(view.spec, DeriveSpec) and view.spec.recursive}
    fixpoints = {view.name for view in ir.views if isinstance(view.spec, DeriveSpec) and view.spec.fixpoint}
    for view in ir.views:
        position = positions[view.name]
        reads = dict(zip(position.consumers, position.scans, strict=True))
        fan_out = position.fan_out
        recursive_readers = [name for name in position.consumers if name in recursive]
        passes = view.name in pass_through
        rescanning = [name for name in recursive_readers if not (passes and name in fixpoints)]
        passing = (PASSES_ROWS_ON,) if passes and not rescanning else ()
        is_recursive = view.name in recursive
        if position.terminal:
            policy: CachePolicy = "delta_output"
            evidence = ("a requested output of the pipeline",)
        elif is_recursive and position.consumers:
            policy = "delta_staging"
            evidence = ("a recursive query: computed on its own, since inlined into its readers' plans it stalls "
                        "DataFusion's optimizer",)
        elif recursive_readers:
            policy = "delta_staging"
            evidence = (f"read by recursive view {', '.join(recursive_readers)}, which re-scans it per iteration",
                        *passing)
        elif fan_out >= 2:
            policy = "delta_staging"
            evidence = (f"its plan would run {fan_out} times, scanned by {_readers(reads)}", *passing)
        else:
            policy = "none"
            evidence = (f"its plan runs {fan_out} time{'s' if fan_out != 1 else ''}"
                        + (f", inlined into {_readers(reads)}" if reads else ""),)
        hints[view.name] = CacheHint(policy, InferenceConfidence("cache_hint", policy, 1.0, evidence),
                                     required=bool(rescanning or (is_recursive and position.consumers))
                                     and not position.terminal, pass_through=passes)
    return hints


def _readers(reads: dict[str, int]) -> str:
    return ", ".join(f"{reader} ({count}x)" if count != 1 else reader for reader, count in reads.items())


def apply_inference(ir: SemanticIR, positions: dict[str, GraphPosition], joins: dict[str, JoinPlan],
                    hints: dict[str, CacheHint]) -> SemanticIR:
    views = tuple(
        msgspec.structs.replace(view, position=positions[view.name], join=joins.get(view.name),
                                cache=hints[view.name])
        for view in ir.views
    )
    return msgspec.structs.replace(ir, views=views)


# -- optimize -----------------------------------------------------------------------------------

def optimize(ir: SemanticIR) -> SemanticIR:
    """Drop the views no requested output needs; keep dependency order."""
    needed: set[str] = set()
    stack = list(ir.outputs)
    by_name = {view.name: view for view in ir.views}
    while stack:
        name = stack.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        stack.extend(by_name[name].inputs)
    return msgspec.structs.replace(ir, views=tuple(view for view in ir.views if view.name in needed))


# -- emit ---------------------------------------------------------------------------------------

SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "int32": "INT", "bool": "BOOLEAN", "float64": "DOUBLE"}


def typed(expression: str, column: Column) -> str:
    return f"CAST({expression} AS {SQL_TYPES[column.type]}) AS {column.name}"


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _emit_normalize(view: ViewIR) -> str:
    spec = view.spec
    assert isinstance(spec, NormalizeSpec) and spec.entity is not None
    entity = ENTITIES_BY_NAME[spec.entity]
    projection = []
    for column in view.columns:
        if column.semantic is S.KIND:
            source = quote(entity.node_kind or entity.name.upper())
        else:
            found = entity.column_of(column.semantic)
            source = found.name if found is not None else "NULL"
        projection.append(typed(source, column))
    return f"SELECT {', '.join(projection)} FROM {entity.table}"


def _emit_derive(view: ViewIR) -> str:
    assert isinstance(view.spec, DeriveSpec | DiagnosticSpec)
    return view.spec.sql


def _emit_relate(view: ViewIR) -> str:
    spec = view.spec
    assert isinstance(spec, RelateSpec) and view.join is not None
    join = "LEFT JOIN" if spec.how == "left" else "JOIN"
    where = f" WHERE {spec.where}" if spec.where else ""
    return f"SELECT {spec.select} FROM {spec.left} l {join} {spec.right} r ON {view.join.condition()}{where}"


def _emit_union(view: ViewIR) -> str:
    names = ", ".join(column.name for column in view.columns)
    return "\nUNION ALL\n".join(f"SELECT {names} FROM {name}" for name in view.inputs)


def _emit_project(view: ViewIR) -> str:
    assert isinstance(view.spec, ProjectSpec)
    return f"SELECT {', '.join(typed(column.name, column) for column in view.columns)} FROM {view.spec.input}"


# One dispatch table from view kind to its builder.
EMITTERS: dict[ViewKind, Callable[[ViewIR], str]] = {
    "normalize": _emit_normalize,
    "derive": _emit_derive,
    "relate": _emit_relate,
    "union": _emit_union,
    "project": _emit_project,
    "diagnostic": _emit_derive,
}


def emit(ir: SemanticIR) -> SemanticPlan:
    views = []
    for view in ir.views:
        if view.cache is None:
            raise SpecError(f"view {view.name!r} reached emit without a cache hint: run the inference passes")
        fixpoint = view.spec.fixpoint if isinstance(view.spec, DeriveSpec) else None
        views.append(EmittedView(view.name, view.kind, EMITTERS[view.kind](view), view.cache.policy, view.inputs,
                                 view.columns, fixpoint))
    return SemanticPlan(views=tuple(views), outputs=ir.outputs)
