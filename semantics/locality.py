"""Which views are *file-local*: their rows for a file depend only on the rows of that file in what
they read, so a build can recompute them for the files that changed and replace those files' rows.

Inferred, not listed: each view's SQL is planned by DataFusion over empty tables of the declared
schemas, and the optimized logical plan is followed from its scans up. A scan of an extraction table
is local, owned by its column of semantic type FILE_ID; a table with no such column (the builtin
names) is constant, the same for every file. The ids an extraction table holds (its columns of
semantic type ENTITY_ID, FOREIGN_ID or SCOPE_ID) name entities of the row's own file: the extractor
reads one file at a time, and an id hashes its file's path, so one id value is never held by rows of
two files. Such an id is a *file key* as much as the owner is: rows that agree on one belong to one
file. An operator keeps its input local when it cannot mix files: a filter, a projection that keeps
a file key, a join whose equality keys pair a file key of each side of one kind (owner with owner,
id with id) or whose other side is constant, a grouping or a window partitioned by a file key, a
union of local inputs keyed at the same positions, a recursion whose static and recursive terms are
local and keyed alike. The side an outer join pads with NULLs keeps no file key. Anything else (a join
on a qualified name, a limit, a subquery the optimizer left in an expression, an operator the
analysis does not know) makes the view global, and the reason says which. A fixpoint program is
global: it follows values across the whole code base. A local view is maintained by file when it
outputs its owner; one that keeps only same-file ids is local to the views that read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

import datafusion.expr as E
import msgspec
from datafusion import Expr, LogicalPlan, SessionContext

from semantics.entities import Column
from semantics.ir import SemanticPlan
from semantics.scans import empty_batch
from semantics.types import SemanticType as S

State = Literal["local", "constant", "global"]
Name = tuple[str | None, str]  # (qualifier, column)


class Locality(msgspec.Struct, frozen=True):
    """A view's locality: ``owner`` is its output column holding the owning file (local views)."""

    view: str
    local: bool
    owner: str | None
    evidence: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Flow:
    state: State
    columns: tuple[Name, ...]  # the operator's output columns
    owners: frozenset[int] = frozenset()  # positions of the columns holding the owning file
    evidence: tuple[str, ...] = ()  # what keeps the rows within a file, or why they are not
    ids: frozenset[int] = frozenset()  # positions of the columns holding an id of an entity of the row's file

    def owned(self, name: Name) -> bool:
        return _position(self.columns, name) in self.owners

    def keyed(self, name: Name) -> bool:
        """Whether ``name`` is a file key: the owner or a same-file id."""
        return _position(self.columns, name) in self.owners | self.ids

    def key_kind(self, name: Name) -> str | None:
        position = _position(self.columns, name)
        return "owner" if position in self.owners else "id" if position in self.ids else None

    def kept(self, positions: dict[int, int]) -> tuple[frozenset[int], frozenset[int]]:
        """The owners and ids at their new positions, where ``positions`` maps an old position to a new one."""
        return (frozenset(new for old, new in positions.items() if old in self.owners),
                frozenset(new for old, new in positions.items() if old in self.ids))


def _global(columns: Iterable[Name], why: str) -> _Flow:
    return _Flow("global", tuple(columns), frozenset(), (why,))


def _position(columns: tuple[Name, ...], name: Name) -> int | None:
    qualifier, column = name
    matches = [i for i, (q, c) in enumerate(columns) if c == column and (qualifier is None or q == qualifier)]
    return matches[0] if len(matches) == 1 else None


_PASSING = frozenset({"Column", "Alias", "Cast"})  # expressions that can hand a column on unchanged


def _passed_column(expr: Expr) -> Name | None:
    """The column an expression hands on unchanged: a column, or an alias or cast of one."""
    if expr.variant_name() not in _PASSING:
        return None
    variant = expr.to_variant()
    if isinstance(variant, E.Column):
        return variant.relation(), variant.name()
    if isinstance(variant, E.Alias | E.Cast):
        return _passed_column(variant.expr())
    return None


def _output_name(expr: Expr) -> Name:
    if expr.variant_name() not in _PASSING:
        return None, expr.schema_name()
    variant = expr.to_variant()
    if isinstance(variant, E.Column):
        return variant.relation(), variant.name()
    if isinstance(variant, E.Alias):
        return None, variant.alias()
    return None, expr.schema_name()


def _has_subquery(*exprs: Expr | None) -> bool:
    return any(expr is not None and "subquery" in str(expr).lower() for expr in exprs)


class _Analysis:
    """Follows one plan; ``tables`` gives what a scan of each named table is."""

    def __init__(self, tables: dict[str, _Flow]) -> None:
        self.tables = tables

    def flow(self, plan: LogicalPlan) -> _Flow:
        variant = plan.to_variant()
        handler = getattr(self, f"_{type(variant).__name__.lower()}", None)
        if handler is None:
            return _global((), f"a {type(variant).__name__} operator, which the analysis does not follow")
        return handler(variant, plan)

    def _input(self, plan: LogicalPlan) -> _Flow:
        return self.flow(plan.inputs()[0])

    def _tablescan(self, scan: E.TableScan, plan: LogicalPlan) -> _Flow:
        table = scan.table_name()
        known = self.tables.get(table)
        names = tuple((table, column) for _, column in scan.projection())
        if scan.fetch() is not None:
            return _global(names, "a limit over rows of every file")
        if known is None or known.state == "global":
            return _global(names, f"reads {table}, which is not file-local")
        if known.state == "constant":
            return _Flow("constant", names)
        owners, ids = known.kept({known.columns.index((None, column)): i for i, (_, column) in enumerate(names)})
        if not owners | ids:
            return _global(names, f"reads {table} without its file identity")
        if owners:
            why = f"reads {table} with its owner {', '.join(names[i][1] for i in sorted(owners))}"
        else:
            why = f"reads {table} with ids of its rows' file ({', '.join(names[i][1] for i in sorted(ids))})"
        return _Flow("local", names, owners, (why,), ids)

    def _subqueryalias(self, alias: E.SubqueryAlias, plan: LogicalPlan) -> _Flow:
        inner = self._input(plan)
        return dataclasses.replace(inner, columns=tuple((alias.alias(), column) for _, column in inner.columns))

    def _filter(self, node: E.Filter, plan: LogicalPlan) -> _Flow:
        inner = self._input(plan)
        if _has_subquery(node.predicate()):
            return _global(inner.columns, "a filter with a subquery")
        return inner

    def _passthrough(self, node: object, plan: LogicalPlan) -> _Flow:
        return self._input(plan)

    _distinct = _repartition = _passthrough

    def _sort(self, node: E.Sort, plan: LogicalPlan) -> _Flow:
        inner = self._input(plan)
        if node.get_fetch_val() is not None:  # a sort with a limit: the top rows of every file together
            return _global(inner.columns, "a limit over rows of every file")
        return inner

    def _limit(self, node: E.Limit, plan: LogicalPlan) -> _Flow:
        inner = self._input(plan)
        return _global(inner.columns, "a limit over rows of every file")

    def _projection(self, node: E.Projection, plan: LogicalPlan) -> _Flow:
        exprs = node.projections()
        return _keeping(self._input(plan), exprs, exprs, "a projection with a subquery",
                        "a projection that drops the file identity", ())

    def _join(self, join: E.Join, plan: LogicalPlan) -> _Flow:
        left, right = (self.flow(side) for side in plan.inputs())
        kind = str(join.join_type()).lower()
        columns, side = left.columns + right.columns, None
        if "semi" in kind or "anti" in kind:
            side = left if kind.startswith("left") else right
            columns = side.columns
        if _has_subquery(join.filter()):
            return _global(columns, "a join condition with a subquery")
        if "global" in (left.state, right.state):
            reason = (left if left.state == "global" else right).evidence
            return _global(columns, reason[0] if reason else "joins a global input")
        pairs = [(_passed_column(l_expr), _passed_column(r_expr)) for l_expr, r_expr in join.on()]
        keyed = [(lc, rc) for lc, rc in pairs if lc is not None and rc is not None
                 and left.key_kind(lc) is not None and left.key_kind(lc) == right.key_kind(rc)]
        if left.state == right.state == "local" and not keyed:
            shown = ", ".join(f"{_show(lc)} = {_show(rc)}" for lc, rc in pairs) or "no equality"
            return _global(columns, f"a join across files ({shown})")
        evidence = list(_unique((*left.evidence, *right.evidence)))
        if keyed:
            lc, rc = keyed[0]
            what = "the file identity" if left.key_kind(lc) == "owner" else "ids of one file"
            evidence.append(f"joins on {what} ({_show(lc)} = {_show(rc)})")
        if side is not None:
            return _Flow(side.state, columns, side.owners, tuple(evidence), side.ids)
        # the side an outer join pads with NULLs keeps no file key
        shift = len(left.columns)
        left_keys = ((frozenset(), frozenset()) if kind in ("right", "full")
                     else (left.owners, left.ids))
        right_keys = ((frozenset(), frozenset()) if kind in ("left", "full")
                      else (frozenset(shift + i for i in right.owners), frozenset(shift + i for i in right.ids)))
        owners, ids = left_keys[0] | right_keys[0], left_keys[1] | right_keys[1]
        if left.state == right.state == "constant":
            return _Flow("constant", columns)
        if not owners | ids:
            return _global(columns, "an outer join padding the side of the file with NULLs")
        return _Flow("local", columns, owners, tuple(evidence), ids)

    def _aggregate(self, node: E.Aggregate, plan: LogicalPlan) -> _Flow:
        groups = node.group_by_exprs()
        return _keeping(self._input(plan), [*groups, *node.aggregate_exprs()], groups,
                        "an aggregate with a subquery", "an aggregate not grouped by the file identity",
                        ("groups by the file identity",))

    def _windowexpr(self, node: E.WindowExpr, plan: LogicalPlan) -> _Flow:
        inner = self._input(plan)
        windows = node.get_window_expr()
        names = inner.columns + tuple(_output_name(expr) for expr in windows)
        if inner.state != "local":
            return dataclasses.replace(inner, columns=names)
        for window in windows:
            partitions = [_passed_column(expr) for expr in node.get_partition_exprs(window)]
            if not any(name is not None and inner.keyed(name) for name in partitions):
                return _global(names, "a window not partitioned by the file identity")
        return _Flow("local", names, inner.owners, (*inner.evidence, "windows partitioned by the file identity"),
                     inner.ids)

    def _union(self, node: E.Union, plan: LogicalPlan) -> _Flow:
        branches = [self.flow(branch) for branch in plan.inputs()]
        names = tuple((None, column) for _, column in branches[0].columns)
        if any(branch.state == "global" for branch in branches):
            reason = next(branch.evidence for branch in branches if branch.state == "global")
            return _global(names, reason[0] if reason else "a union with a global branch")
        local = [branch for branch in branches if branch.state == "local"]
        if not local:
            return _Flow("constant", names)
        owners = frozenset.intersection(*(branch.owners for branch in local))
        ids = frozenset.intersection(*(branch.ids for branch in local))
        if not owners | ids or len(local) < len(branches):
            return _global(names, "a union whose branches hold the file identity in different columns"
                           if not owners | ids else "a union of file rows with rows of no file")
        return _Flow("local", names, owners, _unique(e for b in local for e in b.evidence), ids)

    def _recursivequery(self, node: E.RecursiveQuery, plan: LogicalPlan) -> _Flow:
        static, recursive = plan.inputs()
        first = self.flow(static)
        names = tuple((None, column) for _, column in first.columns)
        if first.state != "local":
            return _global(names, "a recursion whose start is not file-local")
        self.tables[node.name()] = _Flow("local", names, first.owners, ids=first.ids)
        step = self.flow(recursive)
        owners, ids = first.owners & step.owners, first.ids & step.ids
        if step.state != "local" or not owners | ids:
            return _global(names, "a recursion that steps across files" if step.state != "global"
                           else step.evidence[0] if step.evidence else "a recursion over a global input")
        return _Flow("local", names, owners, (*first.evidence, *step.evidence, "recursion within a file"), ids)

    def _values(self, node: E.Values, plan: LogicalPlan) -> _Flow:
        return _Flow("constant", tuple((None, name.rpartition(".")[2]) for name in node.schema().field_names()))

    _emptyrelation = _values


def _keeping(inner: _Flow, outputs: list[Expr], keys: list[Expr], subquery: str, dropped: str,
             evidence: tuple[str, ...]) -> _Flow:
    """An operator computing ``outputs`` from ``inner``'s rows, local when one of ``keys`` (the first
    outputs: all of them for a projection, the groups for an aggregate) hands on a file key."""
    names = tuple(_output_name(expr) for expr in outputs)
    if _has_subquery(*outputs):
        return _global(names, subquery)
    if inner.state != "local":
        return dataclasses.replace(inner, columns=names, owners=frozenset(), ids=frozenset())
    passed = {i: _position(inner.columns, name) for i, expr in enumerate(keys)
              if (name := _passed_column(expr)) is not None}
    owners = frozenset(i for i, position in passed.items() if position in inner.owners)
    ids = frozenset(i for i, position in passed.items() if position in inner.ids)
    if not owners | ids:
        return _global(names, dropped)
    return _Flow("local", names, owners, (*inner.evidence, *evidence), ids)


def _unique(evidence: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(evidence))


def _show(name: Name | None) -> str:
    if name is None:
        return "?"
    qualifier, column = name
    return f"{qualifier}.{column}" if qualifier else column


_ID_TYPES = frozenset({S.ENTITY_ID, S.FOREIGN_ID, S.SCOPE_ID})


def _source_flow(name: str, columns: tuple[Column, ...]) -> _Flow:
    """An extraction table: owned by its FILE_ID column, its ids naming entities of the row's file."""
    names = tuple((None, column.name) for column in columns)
    owners = frozenset(i for i, column in enumerate(columns) if column.semantic is S.FILE_ID)
    if not owners:
        return _Flow("constant", names, evidence=(f"{name} is the same for every file",))
    return _Flow("local", names, owners, ids=frozenset(i for i, c in enumerate(columns) if c.semantic in _ID_TYPES))


def infer_locality(plan: SemanticPlan, sources: dict[str, tuple[Column, ...]]) -> dict[str, Locality]:
    """Each view's locality, in plan order (a view's inputs are analysed before it)."""
    session = SessionContext()
    tables = {name: _source_flow(name, columns) for name, columns in sources.items()}
    for name, columns in sources.items():
        session.register_record_batches(name, [[empty_batch(columns)]])
    found: dict[str, Locality] = {}
    for view in plan.views:
        if view.fixpoint is not None:
            flow = _global((), "a fixpoint program: values flow across the whole code base")
        else:
            flow = _Analysis(tables).flow(session.sql(view.sql).optimized_logical_plan())
        found[view.name] = _locality(view.name, flow)
        declared = tuple((None, column.name) for column in view.columns)
        if flow.state == "local":  # (its declared columns, by name: a view's SQL names its outputs)
            owners, ids = flow.kept({_position(flow.columns, (None, name)): i for i, (_, name) in enumerate(declared)
                                     if _position(flow.columns, (None, name)) is not None})
            tables[view.name] = _Flow("local", declared, owners, flow.evidence, ids)
        else:
            tables[view.name] = _Flow(flow.state, declared, evidence=flow.evidence)
        session.register_record_batches(view.name, [[empty_batch(view.columns)]])
    return found


def _locality(view: str, flow: _Flow) -> Locality:
    if flow.state != "local":
        why = flow.evidence or (("reads only tables that are the same for every file",) if flow.state == "constant"
                                else ("not file-local",))
        return Locality(view, False, None, why)
    if not flow.owners:  # local to its readers, but its rows cannot be replaced by file
        return Locality(view, False, None, (*_unique(flow.evidence), "its rows belong to one file each, but it does "
                                            "not output its file identity: maintained whole"))
    owner = flow.columns[min(flow.owners)][1]
    return Locality(view, True, owner, _unique(flow.evidence))
