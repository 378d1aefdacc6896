"""View specs: what each view of the pipeline is, in six kinds.

- normalize: an extraction entity projected onto the CPG node columns;
- derive: a declared computation over its inputs (SQL over the input names);
- relate: two inputs joined by a *relationship template* — the spec says what is related, the
  IR's inference picks the join keys and strategy from the inputs' semantic types;
- union: the rows of several inputs with one schema;
- project: an input cast onto a declared output schema (a published table);
- diagnostic: a view that reports problems rather than facts.

Every spec declares its output columns with semantic types, so inference can reason about any
view's schema without scanning data.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from semantics.entities import ENTITIES_BY_NAME, Column
from semantics.fixpoint import FixpointProgram

ViewKind = Literal["normalize", "derive", "relate", "union", "project", "diagnostic"]
VIEW_KINDS: tuple[ViewKind, ...] = ("normalize", "derive", "relate", "union", "project", "diagnostic")

# The relationships a relate spec may name. Each is *what* is related; how is inferred.
RelationTemplate = Literal[
    "refers_to",  # a foreign key of the left names a row of the right
    "in_scope",  # same lexical scope and same simple name
    "same_scope",  # same lexical scope
    "named",  # same qualified name
    "in_file",  # same file
    "inside",  # the left's span lies inside the right's span, in the same file
    "overlapping",  # the spans overlap, in the same file
]


class ViewSpec(msgspec.Struct, frozen=True, tag_field="kind", kw_only=True):
    name: str
    columns: tuple[Column, ...]
    doc: str
    # The entity whose rows this view is keyed by (its ENTITY_ID column), when it has one: lets
    # a foreign key declared as referencing that entity be matched to this view.
    entity: str | None = None


class NormalizeSpec(ViewSpec, frozen=True, tag="normalize"):
    pass


class DeriveSpec(ViewSpec, frozen=True, tag="derive"):
    inputs: tuple[str, ...]
    sql: str  # a SELECT over the input names
    # A recursive query (WITH RECURSIVE) re-scans its inputs once per iteration: they must be
    # materialized views, not table scans (a Delta scan runs once per plan).
    recursive: bool = False
    # A rule program evaluated to a fixpoint instead of one query (``sql`` is then its text, for
    # fingerprints and plans); it re-scans its inputs every round, so it is ``recursive`` too.
    fixpoint: FixpointProgram | None = None


class RelateSpec(ViewSpec, frozen=True, tag="relate"):
    left: str
    right: str
    relation: RelationTemplate
    select: str  # the select list, over aliases l (left) and r (right)
    how: Literal["inner", "left"] = "inner"
    where: str | None = None
    # Explicit join keys ((left column, right column), ...): an override of the inference.
    keys: tuple[tuple[str, str], ...] = ()


class UnionSpec(ViewSpec, frozen=True, tag="union"):
    inputs: tuple[str, ...]


class ProjectSpec(ViewSpec, frozen=True, tag="project"):
    input: str
    output: str  # the published table it becomes


class DiagnosticSpec(ViewSpec, frozen=True, tag="diagnostic"):
    inputs: tuple[str, ...]
    sql: str


AnySpec = NormalizeSpec | DeriveSpec | RelateSpec | UnionSpec | ProjectSpec | DiagnosticSpec


def spec_kind(spec: ViewSpec) -> ViewKind:
    return spec.__struct_config__.tag  # type: ignore[return-value]


def spec_inputs(spec: ViewSpec) -> tuple[str, ...]:
    """The datasets a spec reads (views or extraction tables), by name."""
    if isinstance(spec, NormalizeSpec):
        if spec.entity is None:
            raise TypeError(f"normalize view {spec.name} names no entity")
        return (ENTITIES_BY_NAME[spec.entity].table,)
    if isinstance(spec, RelateSpec):
        return (spec.left, spec.right)
    if isinstance(spec, ProjectSpec):
        return (spec.input,)
    if isinstance(spec, DeriveSpec | UnionSpec | DiagnosticSpec):
        return spec.inputs
    raise TypeError(f"unknown spec type {type(spec).__name__}")
