"""How often each view's plan scans each dataset it reads.

A view read by one consumer can still be computed several times: DataFusion plans a CTE once per
reference and an input named twice in a query is scanned twice, so a lazy view inlined there runs
once per scan. The count comes from DataFusion's own logical plan of the view's SQL over empty
tables of the declared schemas: no data is read.
"""

from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa
from datafusion import SessionContext

from semantics.entities import Column
from semantics.ir import SemanticIR, SpecError, columns_of
from semantics.specs import DeriveSpec, DiagnosticSpec
from semantics.types import ARROW_TYPES


def empty_batch(columns: tuple[Column, ...]) -> pa.RecordBatch:
    schema = pa.schema([pa.field(column.name, ARROW_TYPES[column.type]) for column in columns])
    return pa.RecordBatch.from_pylist([], schema=schema)


# A scan in the indented text of a logical plan: the text shows the subqueries of expressions
# (IN, EXISTS, scalar), which walking `LogicalPlan.inputs()` leaves out.
_SCAN_LINE = re.compile(r"^\s*TableScan: (\S+)", re.MULTILINE)


def infer_scan_counts(ir: SemanticIR) -> dict[str, dict[str, int]]:
    """Per view, how many scans of each input its plan holds. A view whose SQL is written by hand
    (derive, diagnostic) is planned by DataFusion; the others read each input once per time they name
    it (a self-join names it twice). A fixpoint program reads its inputs once per round, whatever
    its text: its inputs are staged for that reason already (`infer_cache_hints`)."""
    session = SessionContext()
    names = {name for view in ir.views for name in view.inputs} | {view.name for view in ir.views}
    for name in sorted(names):
        session.register_record_batches(name, [[empty_batch(columns_of(ir, name))]])
    counts: dict[str, dict[str, int]] = {}
    for view in ir.views:
        spec = view.spec
        planned = isinstance(spec, DeriveSpec | DiagnosticSpec) and not (isinstance(spec, DeriveSpec)
                                                                         and spec.fixpoint is not None)
        if planned:
            try:
                text = session.sql(spec.sql).logical_plan().display_indent()
            except Exception as error:  # DataFusion raises plain exceptions for planning errors
                raise SpecError(f"view {view.name!r} cannot be planned: {error}") from error
            scanned = Counter(_SCAN_LINE.findall(text))
        else:
            scanned = Counter(view.inputs)
        counts[view.name] = {name: scanned[name] for name in view.inputs}
    return counts
