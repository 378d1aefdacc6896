"""The questions people ask of a built output, as SQL over its tables, each answer a `pyarrow.Table`.

    from driver.api import open_session, callers_of
    session, _ = open_session("build/cpg")
    callers_of(session, "pkg.mod.f", depth=2)

Every helper takes a session from ``open_session`` (every table registered by name) and names
functions, classes and modules by qualified name (docs/tables.md). A name that is not in the graph,
or names something of another kind, raises ``ValueError`` with the name. Reading only: nothing here
loads the pipeline. docs/queries.md says what each answer holds and what it leaves out.
"""

from __future__ import annotations

import pyarrow as pa
from datafusion import SessionContext

from driver.engine import new_session
from semantics.fixpoint import register_in_memory

# The tables the graph questions (all but `decisions_about`) read: a session for them opens only these
# (opening each of an output's ~30 tables costs a few milliseconds).
GRAPH_TABLES = ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_points_to")

# Every call edge with both ends and its site named, read once from the output: the walks below
# recurse over it in memory (a recursive query re-scans its inputs each round, and a Delta scan
# yields its rows to the first scan of a plan only). The caller is the definition (module, class or
# function) the call site is written in — for a decorator application, the one that defines what it
# decorates — as in `cpgflow callgraph`.
HOPS_SQL = """
WITH sites AS (
    SELECT src AS caller, dst AS site FROM cpg_edges WHERE kind = 'CONTAINS'
    UNION ALL
    SELECT x.src, d.src FROM cpg_edges d JOIN cpg_edges x ON x.kind = 'CONTAINS' AND x.dst = d.dst
    WHERE d.kind = 'DECORATES'
)
SELECT s.caller, caller.kind AS caller_kind, caller.qualname AS caller_name,
       c.dst AS callee, callee.kind AS callee_kind, callee.qualname AS callee_name,
       site.path, site.line, c.confidence
FROM cpg_edges c
JOIN sites s ON s.site = c.src
JOIN cpg_nodes caller ON caller.node_id = s.caller
JOIN cpg_nodes callee ON callee.node_id = c.dst
JOIN cpg_nodes site ON site.node_id = c.src
WHERE c.kind = 'CALLS'
"""

# A walk along `hops` from the nodes named $name, one hop a round, to $depth hops. It goes on only
# through functions: the body of a module or class runs when it is defined, not when it is called.
# Each node is reported at the smallest depth it is reached at, with every call site of that hop.
WALK_SQL = """
WITH RECURSIVE walk(node, kind, name, depth, via, via_name, path, line, confidence) AS (
    SELECT DISTINCT {back}, {back}_kind, {back}_name, 0, CAST(NULL AS VARCHAR) AS via,
           CAST(NULL AS VARCHAR) AS via_name, CAST(NULL AS VARCHAR) AS path, CAST(NULL AS BIGINT) AS line,
           CAST(NULL AS DOUBLE) AS confidence
    FROM hops WHERE {back}_name = $name AND {back}_kind IN ({kinds})
    UNION
    SELECT h.{step}, h.{step}_kind, h.{step}_name, w.depth + 1, w.node, w.name, h.path, h.line, h.confidence
    FROM walk w JOIN hops h ON h.{back} = w.node
    WHERE w.depth < $depth AND (w.depth = 0 OR w.kind = 'FUNCTION')
),
nearest AS (SELECT node, min(depth) AS depth FROM walk WHERE depth > 0 GROUP BY node)
SELECT DISTINCT w.depth, w.{caller} AS caller, w.{callee} AS callee, w.kind, w.path, w.line, w.confidence
FROM walk w JOIN nearest ON nearest.node = w.node AND nearest.depth = w.depth
ORDER BY depth, caller, callee, path, line, confidence
"""

CALLERS_SQL = WALK_SQL.format(kinds="'FUNCTION', 'CLASS', 'EXTERNAL_SYMBOL'", step="caller", back="callee",
                              caller="name", callee="via_name")
CALLEES_SQL = WALK_SQL.format(kinds="'MODULE', 'CLASS', 'FUNCTION'", step="callee", back="caller",
                              caller="via_name", callee="name")

# A named function is used when something outside its own body calls it (a decorator application and
# a callback passed to map/sorted/... are calls), imports it, reads the name its `def` binds, or uses
# an attribute that can hold it (`button.on_click = self.save`). Each use is placed at the node that
# makes it; uses inside the function itself (recursion) do not count.
UNUSED_SQL = """
WITH used AS (
    SELECT e.dst AS node, site.file_id, site.bstart
    FROM cpg_edges e JOIN cpg_nodes site ON site.node_id = e.src WHERE e.kind IN ('CALLS', 'IMPORTS')
    UNION ALL
    SELECT binds.dst, site.file_id, site.bstart
    FROM cpg_edges binds JOIN cpg_edges refs ON refs.dst = binds.src AND refs.kind = 'REFERENCES'
    JOIN cpg_nodes site ON site.node_id = refs.src
    WHERE binds.kind = 'BINDS'
    UNION ALL
    SELECT p.value_id, site.file_id, site.bstart FROM cpg_points_to p
    JOIN cpg_props k ON k.node_id = p.node AND k.key = 'ref_kind' AND k.value_str = 'attribute'
    JOIN cpg_nodes site ON site.node_id = p.node
    WHERE p.value_kind = 'FUNCTION'
)
SELECT f.qualname, f.path, f.line,
       CASE WHEN f.name LIKE '\\_\\_%\\_\\_' ESCAPE '\\' THEN 'dunder'
            WHEN f.name = 'main' OR m.name = '__main__' THEN 'entry_point' END AS flag
FROM cpg_nodes f JOIN cpg_nodes m ON m.file_id = f.file_id AND m.kind = 'MODULE'
LEFT ANTI JOIN used ON used.node = f.node_id
    AND NOT (used.file_id = f.file_id AND used.bstart >= f.bstart AND used.bstart < f.bend)
WHERE f.kind = 'FUNCTION' AND f.name NOT LIKE '<lambda%'
ORDER BY f.qualname, f.path, f.line
"""

# One row per module and module it imports: the module an `import a.b` names (a.b), the module a
# `from m import x` imports x from (m), or x itself when x is a module of the code base.
IMPORTS_SQL = """
WITH imports AS (
    SELECT DISTINCT importer.qualname AS importer,
           CASE WHEN target.kind = 'MODULE' THEN target.qualname
                WHEN from_module.node_id IS NULL THEN alias.qualname
                ELSE regexp_replace(alias.qualname, '\\.[^.]*$', '') END AS imported
    FROM cpg_nodes alias
    JOIN cpg_nodes importer ON importer.file_id = alias.file_id AND importer.kind = 'MODULE'
    LEFT JOIN cpg_props from_module ON from_module.node_id = alias.node_id AND from_module.key = 'from_module'
    LEFT JOIN cpg_edges e ON e.src = alias.node_id AND e.kind = 'IMPORTS'
    LEFT JOIN cpg_nodes target ON target.node_id = e.dst
    WHERE alias.kind = 'IMPORT' AND ($module = '' OR importer.qualname = $module
                                     OR starts_with(importer.qualname, $module || '.'))
)
SELECT i.importer, i.imported, module.node_id IS NOT NULL AS internal
FROM imports i
LEFT JOIN (SELECT DISTINCT node_id, qualname FROM cpg_nodes WHERE kind = 'MODULE') module
    ON module.qualname = i.imported
ORDER BY i.importer, i.imported
"""

MAX_INHERITANCE_DEPTH = 100  # bounds the walk where a broken program's bases form a cycle

INHERITS_SQL = """
SELECT e.src AS child, child.qualname, child.path, child.line, e.dst AS parent, parent.qualname AS parent_name,
       parent.kind AS parent_kind
FROM cpg_edges e JOIN cpg_nodes child ON child.node_id = e.src JOIN cpg_nodes parent ON parent.node_id = e.dst
WHERE e.kind = 'INHERITS_FROM'
"""

# Over `inherits` (INHERITS_SQL, in memory as `hops` is).
SUBCLASSES_SQL = f"""
WITH RECURSIVE descendants(node, depth) AS (
    SELECT DISTINCT child, 1 FROM inherits WHERE parent_name = $name AND parent_kind IN ('CLASS', 'EXTERNAL_SYMBOL')
    UNION
    SELECT i.child, d.depth + 1 FROM inherits i JOIN descendants d ON i.parent = d.node
    WHERE d.depth < {MAX_INHERITANCE_DEPTH}
)
SELECT i.qualname, min(d.depth) AS depth, i.path, i.line
FROM descendants d JOIN (SELECT DISTINCT child, qualname, path, line FROM inherits) i ON i.child = d.node
GROUP BY i.qualname, i.path, i.line ORDER BY depth, i.qualname, i.path, i.line
"""

# The bindings of a variable: the name $variable bound in the scope (module, class, function,
# comprehension) whose qualified name is $scope.
POINTS_TO_SQL = """
SELECT b.path, b.line, p.value_kind, coalesce(v.qualname, p.qualname) AS value, p.confidence
FROM cpg_nodes scope
JOIN cpg_edges defines ON defines.src = scope.node_id AND defines.kind = 'DEFINES'
JOIN cpg_nodes b ON b.node_id = defines.dst AND b.name = $variable
JOIN cpg_points_to p ON p.node = b.node_id
LEFT JOIN cpg_nodes v ON v.node_id = p.value_id
WHERE scope.kind = 'SCOPE' AND scope.qualname = $scope
ORDER BY b.path, b.line, value, p.value_kind
"""

VARIABLE_SQL = """
SELECT count(*) AS n FROM cpg_nodes scope
JOIN cpg_edges defines ON defines.src = scope.node_id AND defines.kind = 'DEFINES'
JOIN cpg_nodes b ON b.node_id = defines.dst AND b.name = $variable
WHERE scope.kind = 'SCOPE' AND scope.qualname = $scope
"""


# Every decision a run made about a subject, one row per fact it cites (a decision citing none: one row
# of nulls after its own columns).
DECISIONS_SQL = """
SELECT d.run_id, d.decision_id, d.kind, d.subject, d.value, d.score, d.fallback_reason, c.role,
       v.kind AS evidence_kind, v.name AS evidence_name, v.value AS evidence_value, v.quantity
FROM provenance_decisions d
LEFT JOIN provenance_edges c ON c.run_id = d.run_id AND c.decision_id = d.decision_id
LEFT JOIN provenance_evidence v ON v.run_id = c.run_id AND v.evidence_id = c.evidence_id
WHERE d.run_id = $run AND d.subject = $name
ORDER BY d.kind, c.role, v.name, v.value
"""
# The latest recorded run that left its decision provenance.
LATEST_EXPLAINED_RUN_SQL = """
SELECT run_id FROM cpg_runs WHERE run_id IN (SELECT run_id FROM provenance_decisions)
ORDER BY started_at DESC LIMIT 1
"""


def _in_memory(session: SessionContext, name: str, sql: str) -> SessionContext:
    """A session of its own holding the result of ``sql`` over ``session`` as the in-memory table ``name``."""
    private = new_session()
    register_in_memory(private, name, session.sql(sql).to_arrow_table())
    return private


def _kinds(session: SessionContext, qualname: str) -> set[str]:
    rows = session.sql("SELECT DISTINCT kind FROM cpg_nodes WHERE qualname = $name",
                       param_values={"name": qualname}).to_arrow_table()
    return set(rows.column("kind").to_pylist())


def _require(session: SessionContext, qualname: str, kinds: tuple[str, ...], what: str) -> None:
    """ValueError unless the graph has a node of one of ``kinds`` named ``qualname``."""
    found = _kinds(session, qualname)
    if not found:
        raise ValueError(f"no {what} named {qualname!r} in the graph")
    if not found & set(kinds):
        raise ValueError(f"{qualname!r} is not a {what} (the graph has it as {', '.join(sorted(found))})")


def _check_depth(depth: int) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a whole number of at least 1, not {depth!r}")


def callers_of(session: SessionContext, qualname: str, depth: int = 1) -> pa.Table:
    """Who calls ``qualname`` (a function, a class — its instantiations — or an external name such as
    ``os.path.join``), directly (depth 1) or through up to ``depth`` calls.

    Columns ``depth, caller, callee, kind, path, line, confidence``: ``caller`` (of kind ``kind``:
    FUNCTION, or MODULE/CLASS for code at module or class level) calls ``callee`` — ``qualname`` at
    depth 1, a caller of depth d - 1 at depth d — at the call site ``path:line``. Each caller appears
    at the smallest depth it reaches ``qualname`` at, once per call site of that hop."""
    _check_depth(depth)
    _require(session, qualname, ("FUNCTION", "CLASS", "EXTERNAL_SYMBOL"), "function")
    return _in_memory(session, "hops", HOPS_SQL).sql(CALLERS_SQL, param_values={"name": qualname, "depth": depth}
                                                     ).to_arrow_table()


def callees_of(session: SessionContext, qualname: str, depth: int = 1) -> pa.Table:
    """What ``qualname`` (a function, or the module- or class-level code of a module or class) calls,
    directly (depth 1) or through up to ``depth`` calls; the walk goes on through functions only.

    Columns ``depth, caller, callee, kind, path, line, confidence``: ``caller`` calls ``callee`` (of
    kind ``kind``: FUNCTION, CLASS for an instantiation — which also calls the ``__init__`` it runs —
    or EXTERNAL_SYMBOL) at ``path:line``. Each callee appears at the smallest depth it is reached at."""
    _check_depth(depth)
    _require(session, qualname, ("FUNCTION", "CLASS", "MODULE"), "function")
    return _in_memory(session, "hops", HOPS_SQL).sql(CALLEES_SQL, param_values={"name": qualname, "depth": depth}
                                                     ).to_arrow_table()


def unused_functions(session: SessionContext) -> pa.Table:
    """Named functions and methods nothing uses: nothing outside their own body calls them, imports
    them, reads their name or uses an attribute that can hold them. Lambdas are left out.

    Columns ``qualname, path, line, flag``. ``flag`` says why a candidate may be used all the same:
    ``dunder`` (``__eq__`` and the like: the language calls them), ``entry_point`` (a function named
    ``main``, or any function of a ``__main__`` module: run from outside); NULL when none applies."""
    return session.sql(UNUSED_SQL).to_arrow_table()


def import_graph(session: SessionContext, module: str | None = None) -> pa.Table:
    """Which module imports which: every module of the code base, or ``module`` and the modules
    under it (``pkg`` covers ``pkg.a`` and ``pkg.sub.b``).

    Columns ``importer, imported, internal``: ``import a.b`` imports ``a.b``; ``from m import x``
    imports ``m``, or ``m.x`` when that is a module of the code base; ``internal`` says whether
    ``imported`` is a module of the code base (else it is named by its import path)."""
    if module is not None:
        found = session.sql("SELECT count(*) AS n FROM cpg_nodes WHERE kind = 'MODULE' AND "
                            "(qualname = $module OR starts_with(qualname, $module || '.'))",
                            param_values={"module": module}).to_arrow_table()
        if not found.column("n")[0].as_py():
            raise ValueError(f"no module named {module!r} in the graph")
    return session.sql(IMPORTS_SQL, param_values={"module": module or ""}).to_arrow_table()


def subclasses_of(session: SessionContext, qualname: str) -> pa.Table:
    """The classes that inherit from ``qualname`` (a class of the code base, or an external one such
    as ``<builtin>.Exception``), directly (depth 1) or not. Columns ``qualname, depth, path, line``."""
    _require(session, qualname, ("CLASS", "EXTERNAL_SYMBOL"), "class")
    return _in_memory(session, "inherits", INHERITS_SQL).sql(SUBCLASSES_SQL, param_values={"name": qualname}
                                                             ).to_arrow_table()


def points_to(session: SessionContext, variable: str) -> pa.Table:
    """What a variable can hold, from the points-to analysis (``cpg_points_to``). ``variable`` is the
    qualified name of its scope and its name: ``pkg.mod.RATE`` (module level), ``pkg.mod.C.attr``
    (class body), ``pkg.mod.f.x`` (a local or parameter of ``f``).

    Columns ``path, line, value_kind, value, confidence``: one row per place the name is bound and
    value it can hold there; ``value`` is the qualified name of the function, class (of an
    ``INSTANCE``), module or external symbol."""
    scope, _, name = variable.rpartition(".")
    params = {"scope": scope, "variable": name}
    if not scope or not session.sql(VARIABLE_SQL, param_values=params).to_arrow_table().column("n")[0].as_py():
        raise ValueError(f"no variable named {variable!r} in the graph")
    return session.sql(POINTS_TO_SQL, param_values=params).to_arrow_table()


def decisions_about(session: SessionContext, name: str, run_id: str | None = None) -> pa.Table:
    """Every decision the run ``run_id`` (default: the latest run with decision provenance) made about
    ``name`` — a view, a published table, ``session``, ``extraction`` or ``run`` — one row per fact it
    cites (relspec/provenance.py; docs/provenance.md)."""
    if not session.table_exist("provenance_decisions"):
        raise ValueError("this output holds no decision provenance (build it again with this cpgflow)")
    if run_id is None:
        latest = session.sql(LATEST_EXPLAINED_RUN_SQL).to_arrow_table().column("run_id").to_pylist()
        if not latest:
            raise ValueError("no recorded run left decision provenance")
        run_id = str(latest[0])
    rows = session.sql(DECISIONS_SQL, param_values={"run": run_id, "name": name}).to_arrow_table()
    if rows.num_rows:
        return rows
    known = session.sql("SELECT 1 FROM provenance_decisions WHERE run_id = $run LIMIT 1",
                        param_values={"run": run_id}).to_arrow_table()
    if not known.num_rows:
        raise ValueError(f"run {run_id!r} left no decision provenance (`cpgflow runs DIR` lists the runs)")
    raise ValueError(f"no decision about {name!r} in run {run_id}: a NAME is a view, a published table, "
                     "'session', 'extraction' or 'run' (`cpgflow query DIR \"SELECT DISTINCT kind, subject FROM "
                     "provenance_decisions\"` lists them)")
