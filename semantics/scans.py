"""What each view's plan does with the datasets it reads: how often it scans each, and whether it
passes on every row of them.

A view read by one consumer can still be computed several times: DataFusion plans a CTE once per
reference and an input named twice in a query is scanned twice, so a lazy view inlined there runs
once per scan. A view whose plan only scans, projects and unions its inputs' rows, calling nothing
dearer than a cast, computes nothing its readers' own scans of those inputs would not: staging it
writes a copy they then read as they would read its inputs (`relspec.policy.compile_cache_policies`).
Both come from DataFusion's own logical plan of the view's SQL over empty tables of the declared
schemas: no data is read.
"""

from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa
from datafusion import SessionContext

from semantics.entities import Column
from semantics.ir import EMITTERS, SemanticIR, SpecError, columns_of
from semantics.specs import DeriveSpec, DiagnosticSpec, RelateSpec
from semantics.types import ARROW_TYPES


def empty_batch(columns: tuple[Column, ...]) -> pa.RecordBatch:
    schema = pa.schema([pa.field(column.name, ARROW_TYPES[column.type]) for column in columns])
    return pa.RecordBatch.from_pylist([], schema=schema)


# A scan in the indented text of a logical plan: the text shows the subqueries of expressions
# (IN, EXISTS, scalar), which walking `LogicalPlan.inputs()` leaves out.
_SCAN_LINE = re.compile(r"^\s*TableScan: (\S+)", re.MULTILINE)


# The logical operators that pass on every row they are given; a plan made of these alone holds each
# row of its scans. A filter is not one: with no measured selectivity, a filter that keeps few rows
# is worth staging for its readers.
PASS_THROUGH_OPERATORS = frozenset({"TableScan", "Projection", "Union", "SubqueryAlias"})
# The functions a projection may call and still pass rows on: casts, null handling, string joins and
# slices, which cost less than decoding the row, and the plan's spelling of literals (`Utf8("x")`).
# Any other call (a hash, a regex function, random()) computes; an operator (arithmetic, LIKE, CASE)
# shows as no call and passes.
PASSING_CALLS = frozenset({"CAST", "TRY_CAST", "coalesce", "nullif", "concat", "concat_ws", "substr", "Utf8",
                           "Int64", "Float64", "Boolean"})
_OPERATOR = re.compile(r"^\s*(\w+)", re.MULTILINE)
_RECURSIVE = re.compile(r"^\s*RecursiveQuery\b", re.MULTILINE)
_CALL = re.compile(r"([A-Za-z_]\w*)\(")


def plan_texts(ir: SemanticIR) -> dict[str, str]:
    """The logical plan (indented text) of each view whose SQL is written by hand (derive, diagnostic;
    not a fixpoint program), or emitted from its kind alone (normalize, union, project): the views a
    relate view's inferred join leaves out are planned once their joins are known, not here."""
    session = SessionContext()
    names = {name for view in ir.views for name in view.inputs} | {view.name for view in ir.views}
    for name in sorted(names):
        session.register_record_batches(name, [[empty_batch(columns_of(ir, name))]])
    texts: dict[str, str] = {}
    for view in ir.views:
        spec = view.spec
        if isinstance(spec, RelateSpec) or (isinstance(spec, DeriveSpec) and spec.fixpoint is not None):
            continue
        try:
            texts[view.name] = session.sql(EMITTERS[view.kind](view)).logical_plan().display_indent()
        except Exception as error:  # DataFusion raises plain exceptions for planning errors
            raise SpecError(f"view {view.name!r} cannot be planned: {error}") from error
        if _RECURSIVE.search(texts[view.name]) and not (isinstance(spec, DeriveSpec) and spec.recursive):
            # the policy keeps a recursive query's inputs staged (inlined, they lose rows) by this flag
            raise SpecError(f"view {view.name!r} runs a WITH RECURSIVE query: declare it with recursive=True")
    return texts


def infer_scan_counts(ir: SemanticIR, texts: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
    """Per view, how many scans of each input its plan holds (``texts``: `plan_texts`, made here when
    not given). A view whose SQL is written by hand (derive, diagnostic) is counted from its plan; the
    others read each input once per time they name it (a self-join names it twice). A fixpoint
    program reads its inputs once per round, whatever its text: its inputs are staged for that
    reason already (`infer_cache_hints`)."""
    texts = plan_texts(ir) if texts is None else texts
    counts: dict[str, dict[str, int]] = {}
    for view in ir.views:
        planned = isinstance(view.spec, DeriveSpec | DiagnosticSpec) and view.name in texts
        scanned = Counter(_SCAN_LINE.findall(texts[view.name]) if planned else view.inputs)
        counts[view.name] = {name: scanned[name] for name in view.inputs}
    return counts


def infer_pass_through(ir: SemanticIR, texts: dict[str, str] | None = None) -> frozenset[str]:
    """The views whose plans pass on every row of their inputs: nothing but scans, projections and
    unions (no filter, join, aggregate, distinct, window, sort, limit, subquery or recursion), and
    no projection calling a function outside `PASSING_CALLS`. ``texts``: see `infer_scan_counts`."""
    texts = plan_texts(ir) if texts is None else texts
    return frozenset(name for name, text in texts.items()
                     if set(_OPERATOR.findall(text)) <= PASS_THROUGH_OPERATORS
                     and set(_CALL.findall(text)) <= PASSING_CALLS)
