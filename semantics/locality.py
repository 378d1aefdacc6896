"""Which views are *file-local*: their rows for a file depend only on the rows of that file in what
they read, so a build can recompute them for the files that changed and replace those files' rows.

Inferred, not listed: each view's SQL is planned by DataFusion over empty tables of the declared
schemas, and the optimized logical plan is followed from its scans up. A scan of an extraction table
is local, owned by its column of semantic type FILE_ID; a table with no such column (the builtin
names) is constant, the same for every file. The ids an extraction table holds (its columns of
semantic type ENTITY_ID, FOREIGN_ID or SCOPE_ID) name entities of the row's own file: the extractor
reads one file at a time, and an id hashes its file's path, so one id value is never held by rows of
two files. Such an id is a *file key* as much as the owner is: rows that agree on one belong to one
file. But NULL is no entity: the rows whose id is NULL belong to every file, so an id that may be
NULL keys only what a NULL cannot match (a plain equality join), never a grouping, a window, a join
that pairs NULLs, or a NOT IN (which one NULL on its other side empties). An operator keeps its
input local when it cannot mix files: a filter, a projection that keeps a file key, a join whose
equality keys pair a file key of each side of one kind (owner with owner, id with id) or whose other
side is constant (but not rows of no file kept or dropped by what the files hold: a semi or anti
join of a constant side), a grouping or a window partitioned by a file key, a union of local inputs
keyed at the same positions, a recursion whose static and recursive terms are local and keyed alike
at its fixpoint. The side an outer join pads with NULLs keeps no file key. Anything else (a join on
a qualified name, a limit, a subquery the optimizer left in an expression, an operator the analysis
does not know) makes the view global, and the reason says which. A fixpoint program is
global: it follows values across the whole code base. A local view is maintained by file when it
outputs its owner; one that keeps only same-file ids is local to the views that read it.

A global view that outputs a file column (of semantic type FILE_ID, declared never NULL) credits each
of its rows to a file, though the row may depend on others (a build that finds a NULL there when it
compares the view's rows treats its changes as unknown). Its readers see it as a table owned by that
column, and by that column alone (its ids may name entities of other files): a reader the analysis
then finds local is local *relative* to it — its rows for a file read the global view's rows
credited to that file, so they change when the file changes or when those rows do. Such a reader
names the global views it is relative to (its `bases`), and a build that knows which files' rows of
each changed can maintain it by file all the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
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
# What a column tells of the file a row belongs to: it holds the file ("owner"), or the id of an entity
# of that file, never NULL ("id") or maybe NULL ("nullable_id")
Key = Literal["owner", "id", "nullable_id"]


class Locality(msgspec.Struct, frozen=True):
    """A view's locality: ``owner`` is its output column holding the owning file (local views);
    ``bases``, the global views a local view is local relative to (see the module's doc);
    ``credited_to``, a global view's column naming the file each row is credited to (its readers can
    be local relative to it)."""

    view: str
    local: bool
    owner: str | None
    evidence: tuple[str, ...]
    bases: tuple[str, ...] = ()
    credited_to: str | None = None


@dataclasses.dataclass(frozen=True)
class _Flow:
    state: State
    columns: tuple[Name, ...]  # the operator's output columns
    keys: Mapping[int, Key] = dataclasses.field(default_factory=dict)  # file keys, by column position
    evidence: tuple[str, ...] = ()  # what keeps the rows within a file, or why they are not
    credited: bool = False  # a global view's rows, read by the file each is credited to (see the module's doc)

    @property
    def owners(self) -> frozenset[int]:
        """Positions of the columns holding the owning file."""
        return frozenset(position for position, key in self.keys.items() if key == "owner")

    def key(self, name: Name) -> Key | None:
        position = _position(self.columns, name)
        return None if position is None else self.keys.get(position)

    def strict(self, name: Name) -> bool:
        """Whether ``name`` is a file key that is never NULL: one a grouping or a window may partition by."""
        return self.key(name) in ("owner", "id")

    def moved(self, positions: Iterable[tuple[int | None, int]]) -> dict[int, Key]:
        """The keys at their new positions: ``positions`` pairs an old position (None: no column) with
        a new one (one column may be handed on to several)."""
        return {new: self.keys[old] for old, new in positions if old is not None and old in self.keys}


def _global(columns: Iterable[Name], why: str) -> _Flow:
    return _Flow("global", tuple(columns), {}, (why,))


def _same_kind(left: Key | None, right: Key | None) -> bool:
    """Whether two keys are of one kind (owners, or ids: equal values then mean one file)."""
    return left is not None and right is not None and (left == "owner") == (right == "owner")


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
        self.scanned: set[str] = set()  # the tables the plan scans

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
        self.scanned.add(table)
        known = self.tables.get(table)
        names = tuple((table, column) for _, column in scan.projection())
        if scan.fetch() is not None:
            return _global(names, "a limit over rows of every file")
        if known is None or known.state == "global":
            return _global(names, f"reads {table}, which is not file-local")
        if known.state == "constant":
            return _Flow("constant", names)
        keys = known.moved((known.columns.index((None, column)), i) for i, (_, column) in enumerate(names))
        if not keys:
            return _global(names, f"reads {table} without its file identity")
        owners = sorted(position for position, key in keys.items() if key == "owner")
        if known.credited:
            why = f"reads {table}, computed across files, by the file each row is credited to ({names[owners[0]][1]})"
        elif owners:
            why = f"reads {table} with its owner {', '.join(names[i][1] for i in owners)}"
        else:
            why = f"reads {table} with ids of its rows' file ({', '.join(names[i][1] for i in sorted(keys))})"
        return _Flow("local", names, keys, (why,))

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
        columns, side, other = left.columns + right.columns, None, None
        if "semi" in kind or "anti" in kind or "mark" in kind:  # the rows of one side, kept or dropped or marked
            side, other = (left, right) if kind.startswith("left") else (right, left)
            columns = side.columns + (((None, "mark"),) if "mark" in kind else ())
        if _has_subquery(join.filter()):
            return _global(columns, "a join condition with a subquery")
        if "global" in (left.state, right.state):
            reason = (left if left.state == "global" else right).evidence
            return _global(columns, reason[0] if reason else "joins a global input")
        if side is not None and side.state == "constant" and other.state == "local":  # type: ignore[union-attr]
            return _global(columns, "rows of no file kept or dropped by what the files hold")
        pairs = [(_passed_column(l_expr), _passed_column(r_expr)) for l_expr, r_expr in join.on()]
        # a NULL key pairs with a NULL under IS NOT DISTINCT FROM; a NOT IN drops every row when its
        # subquery holds a NULL, and keeps a NULL only when its subquery is empty: there, an id keys only
        # where it is never NULL (on both sides)
        nulls_matter = join.null_equals_null() or "null_aware" in plan.display()  # (a Join's display is one line)
        keyed = [(lc, rc) for lc, rc in pairs if lc is not None and rc is not None
                 and _same_kind(left.key(lc), right.key(rc))
                 and (not nulls_matter or (left.strict(lc) and right.strict(rc)))]
        if left.state == right.state == "local" and not keyed:
            shown = ", ".join(f"{_show(lc)} = {_show(rc)}" for lc, rc in pairs) or "no equality"
            return _global(columns, f"a join across files ({shown})")
        evidence = list(_unique((*left.evidence, *right.evidence)))
        if keyed:
            lc, rc = keyed[0]
            what = "the file identity" if left.key(lc) == "owner" else "ids of one file"
            evidence.append(f"joins on {what} ({_show(lc)} = {_show(rc)})")
        if side is not None:
            return _Flow(side.state, columns, side.keys, tuple(evidence))
        if left.state == right.state == "constant":
            return _Flow("constant", columns)
        # the side an outer join pads with NULLs keeps no file key
        shift = len(left.columns)
        keys = {} if kind in ("right", "full") else dict(left.keys)
        if kind not in ("left", "full"):
            keys |= {shift + position: key for position, key in right.keys.items()}
        if not keys:
            return _global(columns, "an outer join padding the side of the file with NULLs")
        return _Flow("local", columns, keys, tuple(evidence))

    def _aggregate(self, node: E.Aggregate, plan: LogicalPlan) -> _Flow:
        groups = node.group_by_exprs()
        return _keeping(self._input(plan), [*groups, *node.aggregate_exprs()], groups,
                        "an aggregate with a subquery", "an aggregate not grouped by the file identity",
                        ("groups by the file identity",), grouping=True)

    def _windowexpr(self, node: E.WindowExpr, plan: LogicalPlan) -> _Flow:
        inner = self._input(plan)
        windows = node.get_window_expr()
        names = inner.columns + tuple(_output_name(expr) for expr in windows)
        if inner.state != "local":
            return dataclasses.replace(inner, columns=names)
        for window in windows:
            partitions = [_passed_column(expr) for expr in node.get_partition_exprs(window)]
            if not any(name is not None and inner.strict(name) for name in partitions):
                return _global(names, "a window not partitioned by the file identity")
        return _Flow("local", names, inner.keys, (*inner.evidence, "windows partitioned by the file identity"))

    def _union(self, node: E.Union, plan: LogicalPlan) -> _Flow:
        branches = [self.flow(branch) for branch in plan.inputs()]
        names = tuple((None, column) for _, column in branches[0].columns)
        if any(branch.state == "global" for branch in branches):
            reason = next(branch.evidence for branch in branches if branch.state == "global")
            return _global(names, reason[0] if reason else "a union with a global branch")
        local = [branch for branch in branches if branch.state == "local"]
        if not local:
            return _Flow("constant", names)
        keys = _common_keys(local)
        if not keys or len(local) < len(branches):
            return _global(names, "a union whose branches hold the file identity in different columns"
                           if not keys else "a union of file rows with rows of no file")
        return _Flow("local", names, keys, _unique(e for b in local for e in b.evidence))

    def _recursivequery(self, node: E.RecursiveQuery, plan: LogicalPlan) -> _Flow:
        static, recursive = plan.inputs()
        first = self.flow(static)
        names = tuple((None, column) for _, column in first.columns)
        if first.state != "local":
            return _global(names, "a recursion whose start is not file-local")
        hidden = self.tables.get(node.name())  # (a table the recursion's name hides while it is followed)
        keys = dict(first.keys)
        while True:  # the step followed with the keys the rows so far have, until the keys hold
            self.tables[node.name()] = _Flow("local", names, keys)
            step = self.flow(recursive)
            held = _common_keys([_Flow("local", names, keys), step]) if step.state == "local" else {}
            if held == keys or not held:
                break
            keys = held
        if hidden is None:
            del self.tables[node.name()]
        else:
            self.tables[node.name()] = hidden
        if step.state != "local" or not held:
            return _global(names, "a recursion that steps across files" if step.state != "global"
                           else step.evidence[0] if step.evidence else "a recursion over a global input")
        return _Flow("local", names, held, (*first.evidence, *step.evidence, "recursion within a file"))

    def _values(self, node: E.Values, plan: LogicalPlan) -> _Flow:
        return _Flow("constant", tuple((None, name.rpartition(".")[2]) for name in node.schema().field_names()))

    _emptyrelation = _values


def _keeping(inner: _Flow, outputs: list[Expr], keys: list[Expr], subquery: str, dropped: str,
             evidence: tuple[str, ...], grouping: bool = False) -> _Flow:
    """An operator computing ``outputs`` from ``inner``'s rows, local when one of ``keys`` (the first
    outputs: all of them for a projection, the groups for an aggregate) hands on a file key (with
    ``grouping``, one that is never NULL: the NULL group holds rows of every file)."""
    names = tuple(_output_name(expr) for expr in outputs)
    if _has_subquery(*outputs):
        return _global(names, subquery)
    if inner.state != "local":
        return dataclasses.replace(inner, columns=names, keys={})
    moved = inner.moved((_position(inner.columns, name), i) for i, expr in enumerate(keys)
                        if (name := _passed_column(expr)) is not None)
    if not moved or (grouping and "owner" not in moved.values() and "id" not in moved.values()):
        return _global(names, dropped)
    return _Flow("local", names, moved, (*inner.evidence, *evidence))


def _common_keys(flows: list[_Flow]) -> dict[int, Key]:
    """The file keys every one of ``flows`` holds at the same position; an id NULL in any of them may be NULL."""
    positions = frozenset.intersection(*(frozenset(flow.keys) for flow in flows))
    kinds = {position: {flow.keys[position] for flow in flows} for position in positions}
    return {position: ("owner" if found == {"owner"} else "id" if found == {"id"} else "nullable_id")
            for position, found in kinds.items() if found == {"owner"} or "owner" not in found}


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
    keys: dict[int, Key] = {i: "owner" for i, column in enumerate(columns) if column.semantic is S.FILE_ID}
    if not keys:
        return _Flow("constant", names, evidence=(f"{name} is the same for every file",))
    keys |= {i: "nullable_id" if column.nullable else "id" for i, column in enumerate(columns)
             if column.semantic in _ID_TYPES}
    return _Flow("local", names, keys)


def infer_locality(plan: SemanticPlan, sources: dict[str, tuple[Column, ...]]) -> dict[str, Locality]:
    """Each view's locality, in plan order (a view's inputs are analysed before it)."""
    session = SessionContext()
    tables = {name: _source_flow(name, columns) for name, columns in sources.items()}
    for name, columns in sources.items():
        session.register_record_batches(name, [[empty_batch(columns)]])
    found: dict[str, Locality] = {}
    bases: dict[str, tuple[str, ...]] = {}  # by view: the global views it reads by the file they credit rows to
    for view in plan.views:
        analysis = _Analysis(tables)
        if view.fixpoint is not None:
            flow = _global((), "a fixpoint program: values flow across the whole code base")
        else:
            flow = analysis.flow(session.sql(view.sql).optimized_logical_plan())
        declared = tuple((None, column.name) for column in view.columns)
        read = tuple(sorted({base for name in analysis.scanned for base in bases.get(name, ())}))
        credited = _credited_to(view.columns) if flow.state == "global" else None
        found[view.name] = _locality(view.name, flow, read if flow.state == "local" else (), credited)
        if flow.state == "local":  # (its declared columns, by name: a view's SQL names its outputs)
            keys = flow.moved((_position(flow.columns, (None, name)), i) for i, (_, name) in enumerate(declared))
            tables[view.name] = _Flow("local", declared, keys, flow.evidence)
            bases[view.name] = read
        elif credited is not None:
            tables[view.name] = _Flow("local", declared, {declared.index((None, credited)): "owner"}, credited=True)
            bases[view.name] = (view.name,)
        else:
            tables[view.name] = _Flow(flow.state, declared, evidence=flow.evidence)
        session.register_record_batches(view.name, [[empty_batch(view.columns)]])
    return found


def _credited_to(columns: tuple[Column, ...]) -> str | None:
    """The column a global view credits each row to a file by: its first FILE_ID column declared never NULL."""
    return next((column.name for column in columns if column.semantic is S.FILE_ID and not column.nullable), None)


def _locality(view: str, flow: _Flow, bases: tuple[str, ...], credited: str | None) -> Locality:
    if flow.state != "local":
        why = flow.evidence or (("reads only tables that are the same for every file",) if flow.state == "constant"
                                else ("not file-local",))
        if credited is not None:
            why = (*why, f"it credits each row to a file ({credited}): its readers can be local relative to it")
        return Locality(view, False, None, why, credited_to=credited)
    if not flow.owners:  # local to its readers, but its rows cannot be replaced by file
        return Locality(view, False, None, (*_unique(flow.evidence), "it keeps ids of its rows' files, but does not "
                                            "output its file identity: maintained whole"), bases)
    owner = flow.columns[min(flow.owners)][1]
    evidence = _unique(flow.evidence)
    if bases:
        evidence = (*evidence, f"local relative to {', '.join(bases)}: its rows for a file also change when their "
                               "rows credited to that file do")
    return Locality(view, True, owner, evidence, bases)
