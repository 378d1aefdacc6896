"""Reports over a built output: the call graph in the interchange format of call-graph tools."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from datafusion import SessionContext

from relspec.catalog import EXTRACT_TABLES
from semantics.specs import DeriveSpec

if TYPE_CHECKING:  # `cpgflow callgraph` loads none of the planning machinery
    from hamilton import driver as hamilton_driver

    from relspec.policy import CompiledExecutionPolicy
    from relspec.validation import ValidationResult
    from relspec.view_graph import ViewGraph
    from semantics.discovery import Discovery
    from semantics.ir import SemanticIR, ViewIR

# Callers are the definitions that contain call sites (module-level code under the module's own
# name) or define what a decorator decorates; the special methods a `with` or `for` statement calls
# start at the name or attribute use it calls them on when that is no call (a REFERENCE, which no
# definition CONTAINS): its caller owns the innermost scope around it (a comprehension's scope is
# owned by the definition it is in). A class instantiation is reported as the `__init__` it
# runs when the code base defines one for it (its `calls.class_init` edge), and not at all otherwise.
CALL_GRAPH_SQL = """
WITH callees AS (
    SELECT e.src AS call_id, n.qualname FROM cpg_edges e JOIN cpg_nodes n ON n.node_id = e.dst
    WHERE e.kind = 'CALLS' AND n.kind <> 'CLASS'
),
callers AS (
    SELECT x.dst AS call_id, p.qualname FROM cpg_edges x JOIN cpg_nodes p ON p.node_id = x.src
    WHERE x.kind = 'CONTAINS' AND p.kind IN ('MODULE', 'CLASS', 'FUNCTION')
    UNION ALL  -- a decorator is applied by the scope that defines what it decorates
    SELECT d.src, p.qualname FROM cpg_edges d JOIN cpg_edges x ON x.kind = 'CONTAINS' AND x.dst = d.dst
    JOIN cpg_nodes p ON p.node_id = x.src
    WHERE d.kind = 'DECORATES' AND p.kind IN ('MODULE', 'CLASS', 'FUNCTION')
    UNION ALL
    SELECT call_id, qualname FROM (
        SELECT r.node_id AS call_id, p.qualname,
            row_number() OVER (PARTITION BY r.node_id ORDER BY s.bstart DESC, s.bend) AS nearest
        FROM cpg_nodes r JOIN cpg_nodes s ON s.file_id = r.file_id AND s.kind = 'SCOPE'
            AND s.bstart <= r.bstart AND s.bend >= r.bend
        JOIN cpg_edges x ON x.kind = 'CONTAINS' AND x.dst = s.node_id JOIN cpg_nodes p ON p.node_id = x.src
        WHERE r.kind = 'REFERENCE' AND r.node_id IN (SELECT call_id FROM callees)
    ) WHERE nearest = 1
)
SELECT r.qualname AS caller, e.qualname AS callee
FROM callers r JOIN callees e ON e.call_id = r.call_id
UNION
SELECT qualname, CAST(NULL AS VARCHAR) FROM cpg_nodes WHERE kind IN ('MODULE', 'FUNCTION')
"""


def call_graph(session: SessionContext) -> dict[str, list[str]]:
    """{caller qualname: sorted callee qualnames}, every module and function a key."""
    table = session.sql(CALL_GRAPH_SQL).to_arrow_table()
    graph: dict[str, set[str]] = {}
    for caller, callee in zip(table.column("caller").to_pylist(), table.column("callee").to_pylist(), strict=True):
        callees = graph.setdefault(caller, set())
        if callee is not None:
            callees.add(callee)
    return {caller: sorted(callees) for caller, callees in sorted(graph.items())}


def _fixpoint_stages(view: ViewIR) -> dict[str, object] | None:
    """A fixpoint view's program: its relations, and the rules each round runs, stage by stage."""
    program = view.spec.fixpoint if isinstance(view.spec, DeriveSpec) else None
    if program is None:
        return None
    return {"relations": [relation.name for relation in program.relations],
            "seeds": [f"{rule.name} -> {rule.target}" for rule in program.seeds],
            "rules": [f"stage {rule.stage}: {rule.name} -> {rule.target}"
                      + (f", when {rule.probe.condition()}" if rule.probe else "")
                      for rules in program.stages() for rule in rules],
            "caps": [f"{cap.relation}.{cap.key} <= {cap.limit}" for cap in program.caps],
            "max_rounds": program.max_rounds}


def plan_report(ir: SemanticIR, discovery: Discovery, policy: CompiledExecutionPolicy,
                validation: ValidationResult, graph: ViewGraph) -> dict[str, object]:
    """The compiled plan as plain data: every view with its kind, inputs, wave (the views of a wave
    depend only on earlier waves), its place in the compiled schedule (position, predicted seconds and
    how they were found, bottom level, slack, on the critical path or not), IR cache hint and compiled
    cache policy with confidence and evidence, how a written view is kept up to date (full or by file,
    with the locality evidence) and the column a whole write of it sorts by in its plan, and — for
    relate views — the inferred join keys and strategy; then the extraction processes, the scan
    options, the session profile, the schedule, the policy fingerprint and the validation issues."""
    waves = {name: index for index, wave in enumerate(graph.generations()) for name in wave}
    views = []
    for view in ir.views:
        entry: dict[str, object] = {
            "name": view.name,
            "kind": view.kind,
            "inputs": list(view.inputs),
            "doc": view.spec.doc,
            "wave": waves[view.name],
            "consumers": graph.consumers(view.name),
            "hint": msgspec.to_builtins(view.cache),
            "policy": msgspec.to_builtins(policy.cache[view.name]),
            "registration": msgspec.to_builtins(policy.materialization.registration.get(view.name)),
            "maintenance": msgspec.to_builtins(policy.view_maintenance.get(view.name)),
            "write_order": policy.write_order(view.name),
            "scan": msgspec.to_builtins(policy.scan.views[view.name]),
            "functions": list(policy.udfs.get(view.name, ())),
            "join": None,
            "fixpoint": _fixpoint_stages(view),
            "schedule": _schedule_entry(policy, view.name),
        }
        if view.join is not None:
            entry["join"] = {
                "strategy": view.join.strategy,
                "keys": [list(pair) for pair in view.join.keys.equi],
                "range": [list(term) for term in view.join.keys.range],
                "keys_confidence": msgspec.to_builtins(view.join.keys.confidence),
                "strategy_confidence": msgspec.to_builtins(view.join.confidence),
            }
        views.append(entry)
    registration = policy.materialization.registration
    return {
        "source": {"root": discovery.root, "files": len(discovery.files), "skipped": len(discovery.skipped),
                   "git_aware": discovery.git_aware},
        "outputs": list(ir.outputs),
        "views": views,
        "policy": {
            "fingerprint": policy.fingerprint,
            "validation_mode": policy.validation_mode,
            "extraction": msgspec.to_builtins(policy.extraction),
            "scan": msgspec.to_builtins(policy.scan),
            "profile": msgspec.to_builtins(policy.profile),
            "maintenance": msgspec.to_builtins(policy.maintenance),
            "sources": {name: msgspec.to_builtins(registration[name])  # how each extraction table is read
                        for name in EXTRACT_TABLES if name in registration},
            "schedule": _schedule_summary(policy),
        },
        "validation": msgspec.to_builtins(validation.issues),
    }


def _schedule_entry(policy: CompiledExecutionPolicy, view: str) -> dict[str, object] | None:
    schedule = policy.schedule
    if schedule is None:
        return None
    return {"position": schedule.order.index(view), "cost": msgspec.to_builtins(policy.costs[view]),
            "bottom_level": schedule.bottom_level[view], "slack": schedule.slack[view],
            "critical": view in schedule.critical_path, "betweenness": schedule.betweenness[view]}


def _schedule_summary(policy: CompiledExecutionPolicy) -> dict[str, object] | None:
    schedule = policy.schedule
    if schedule is None:
        return None
    return {"order": list(schedule.order), "critical_path": list(schedule.critical_path), "lanes": schedule.lanes,
            "articulation_points": list(schedule.articulation_points),
            "bridges": [list(bridge) for bridge in schedule.bridges],
            "confidence": msgspec.to_builtins(schedule.confidence)}


def node_role(tags: dict[str, object]) -> str:
    """A node's role tag; Hamilton's generated saver and loader nodes are materializers."""
    if tags.get("hamilton.data_saver") or tags.get("hamilton.data_loader"):
        return "materializer"
    return str(tags.get("role", "input"))


def dag_report(dr: hamilton_driver.Driver) -> dict[str, object]:
    """The Hamilton graph: every node with its role (extract, inference, policy, view, output,
    authority, materializer), its type and the nodes it depends on."""
    nodes = []
    for variable in sorted(dr.list_available_variables(), key=lambda variable: variable.name):
        if variable.is_external_input:
            continue
        nodes.append({
            "name": variable.name,
            "role": node_role(variable.tags),
            "type": getattr(variable.type, "__name__", str(variable.type)),
            "depends_on": sorted(variable.required_dependencies | variable.optional_dependencies),
        })
    roles: dict[str, int] = {}
    for node in nodes:
        roles[str(node["role"])] = roles.get(str(node["role"]), 0) + 1
    return {"nodes": nodes, "roles": dict(sorted(roles.items()))}
