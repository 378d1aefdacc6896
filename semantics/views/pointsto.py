"""Value flow: a flow-insensitive (Andersen-style) points-to analysis with on-the-fly call-graph
construction, evaluated relationally on DataFusion to a fixpoint (`semantics.fixpoint`).

Facts come from extraction (`ex_flows`, see `semantics.entities.FLOW`) and from name and import
resolution. Abstract values are functions and lambdas (`FUNCTION`, their id), classes (`CLASS`),
instances of a class of the code base (`INSTANCE`, the class id), modules (`MODULE`), names outside
the code base (`EXTERNAL`, by qualified name: `os.path.join`, `<builtin>.len`, `<**PyList**>.append`),
containers (`CONTAINER`: a literal, a comprehension, a generator's results, the tuple and dict a
function's `*args` and `**kwargs` hold (`pack:<parameter binding>`), a new object a builtin makes
(`new:<type>:<call>`; one `new:Str:` for every string)) and `super()` objects
(`SUPER`, the class whose method calls it, with the class of the instance it is called on as
receiver). A value may carry a receiver: a method read through an
instance is bound to it (`recv`, the instance's class id), which shifts the call's arguments by one
and binds the method's first parameter.

Three relations grow together: `pts` (value node → abstract value), `edges` (value node → value node:
whatever the first holds, the second holds too; static ones from assignments, returns and name
resolution, dynamic ones from calls, attribute and element stores and loads), and `callees` (call
site → what it calls, with the mode: `call`, `init` for the `__init__` an instantiation runs,
`decorator` for a decorator application, `callback` for a function a builtin such as `map` calls).
Field and element nodes are named by the object they belong to: `fld:<kind>:<object>.<attribute>`,
`elm:<container>[<key>]` (`[*]` every element, `[?]` stored under a key not known at extraction).

Class attributes and methods are looked up along the class's C3 MRO (`class_ancestors`, itself a
small fixpoint), `super()` from the class after the method's own in the MRO of the instance's class.
Instances: `made:<class>` holds an instance of the class once something makes one (a call of the
class, `raise C`, or — for a class with a base outside the code base, which a framework may
instantiate, and for a class of a hierarchy the code base calls or raises nowhere by name, which a
library's users make — from the start); a method's `self` is any made instance whose class's MRO has the
method's class, and `except E as e` any made instance of E or of a subclass. A value node holds at most
`VALUES_PER_NODE` abstract values: past that, further values are dropped (deterministically, and
counted in the run record), so a variable that can hold very many values cannot make the analysis
quadratic; a full node takes no more values in the propagation (`full_pts`).

Before the rounds the copy graph is made smaller without changing an answer: a node whose only source
is one static copy is replaced by its source's representative (`pt_rep`), and a node no rule reads
gets its values after the rounds (`pt_sink_edges`). Rounds run in three stages (see `_RULES`).
"""

from __future__ import annotations

from semantics.fixpoint import Cap, Closure, FixpointProgram, Prepared, Probe, Relation, Rule
from semantics.qualnames import BUILTIN_PREFIX
from semantics.specs import AnySpec, DeriveSpec
from semantics.types import SemanticType as S
from semantics.views.columns import col

VALUES_PER_NODE = 8
# A node further than this along a chain of single copies from the chain's start stays a node of its own.
COPY_CHAIN_DEPTH = 64
# An attribute of a name outside the code base is that name's qualified name plus the attribute, up
# to this many dots (`os.path.join` has two): `node = node.parent` on an external would otherwise
# grow a new name every round.
EXTERNAL_DEPTH = 4
# Builtins that call a function they are given (its arguments are not known here).
CALLBACK_BUILTINS = ("map", "filter", "sorted", "min", "max", "iter", "next", "reduce")
CALLBACK_METHODS = ("<**PyList**>.sort",)  # methods of builtin types that call a function they are given
# The interchange format's names of builtin types, for their methods (`<**PyList**>.append`).
BUILTIN_TYPE_NAMES = {"list": "List", "dict": "Dict", "set": "Set", "tuple": "Tuple", "str": "Str", "bytes": "Bytes"}

VALUE_FLOWS = (
    col("file_id", "string", S.FILE_ID, False),
    col("kind", "string", S.KIND, False),
    col("dst", "string", S.FOREIGN_ID, False),
    col("src", "string", S.FOREIGN_ID),
    col("key", "string", S.TEXT),
    col("position", "int32", S.ORDINAL),
)

PARAMETER_BINDINGS = (
    col("function_id", "string", S.FOREIGN_ID, False, ("function",)),
    col("position", "int32", S.ORDINAL, False),
    col("name", "string", S.NAME, False),
    col("param_kind", "string", S.KIND, False),
    col("binding_id", "string", S.ENTITY_ID, False),
    col("method_kind", "string", S.KIND, False),  # method | staticmethod | classmethod | function
)

CLASS_ANCESTORS = (
    col("class_id", "string", S.FOREIGN_ID, False, ("class",)),
    col("ancestor_id", "string", S.FOREIGN_ID, False, ("class",)),
    col("rank", "int64", S.ORDINAL, False),  # its place in the class's C3 MRO: 0 the class itself
)

CLASS_ATTRIBUTES = (
    col("class_id", "string", S.FOREIGN_ID, False, ("class",)),
    col("name", "string", S.NAME, False),
    col("binding_id", "string", S.FOREIGN_ID, False, ("binding",)),
)

FIXPOINT_ROWS = (
    col("relation", "string", S.KIND, False),  # pts | callees
    col("node", "string", S.FOREIGN_ID, False),  # a value node, or a call site for callees
    col("kind", "string", S.KIND, False),
    col("obj", "string", S.QUALNAME, False),  # a node id, or a qualified name for EXTERNAL
    col("recv", "string", S.FOREIGN_ID),
    col("mode", "string", S.KIND),
)

POINTS_TO = (
    col("node", "string", S.FOREIGN_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("value_kind", "string", S.KIND, False),
    col("value_id", "string", S.FOREIGN_ID),
    col("qualname", "string", S.QUALNAME),
    col("receiver_id", "string", S.FOREIGN_ID, references=("class",)),
    col("confidence", "float64", S.ORDINAL, False),
    col("resolver", "string", S.KIND, False),
)

PT_CALL_TARGETS = (
    col("call_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("target_kind", "string", S.KIND, False),
    col("target_id", "string", S.FOREIGN_ID),
    col("qualname", "string", S.QUALNAME, False),
    col("mode", "string", S.KIND, False),
    col("confidence", "float64", S.ORDINAL, False),
)

_PTS = Relation("pts", (col("node", "string", S.FOREIGN_ID, False), col("kind", "string", S.KIND, False),
                        col("obj", "string", S.QUALNAME, False), col("recv", "string", S.FOREIGN_ID)))
_EDGES = Relation("edges", (col("src", "string", S.FOREIGN_ID, False), col("dst", "string", S.FOREIGN_ID, False),
                            col("recv", "string", S.FOREIGN_ID)))
_CALLEES = Relation("callees", (col("call_id", "string", S.FOREIGN_ID, False), col("kind", "string", S.KIND, False),
                                col("obj", "string", S.QUALNAME, False), col("recv", "string", S.FOREIGN_ID),
                                col("mode", "string", S.KIND, False)))


def _flows_of(kind: str, columns: str, table: str = "pt_flows") -> str:
    return f"SELECT {columns} FROM {table} WHERE kind = '{kind}'"


# Calls of builtins whose result is a new object of a builtin type, by the interchange name of the type
# ('' for an iterator, which has no methods of its own here): `set()`, `s.upper()`. The builtins that
# build it from an iterable argument hold that argument's elements. A new object is the CONTAINER
# `new:<type>:<call>`.
RESULT_TYPES: dict[str, str] = {
    **{f"{BUILTIN_PREFIX}.{name}": kind for name, kind in (
        ("list", "List"), ("tuple", "Tuple"), ("set", "Set"), ("frozenset", "Set"), ("dict", "Dict"),
        ("sorted", "List"), ("reversed", ""), ("iter", ""), ("enumerate", ""), ("zip", ""), ("str", "Str"),
        ("repr", "Str"), ("format", "Str"))},
    **{f"<**PyStr**>.{name}": "Str" for name in (
        "capitalize", "casefold", "center", "expandtabs", "format", "format_map", "join", "ljust", "lower",
        "lstrip", "removeprefix", "removesuffix", "replace", "rjust", "rstrip", "strip", "swapcase", "title",
        "translate", "upper", "zfill")},
    **{f"<**PyStr**>.{name}": "List" for name in ("split", "rsplit", "splitlines")},
    **{f"<**Py{kind}**>.copy": kind for kind in ("List", "Dict", "Set")},
}
# The special methods a statement calls (a `with` item's `__enter__` and `__exit__`, a loop's `__iter__`
# and `__next__`, and their `async` forms): their callee flows name the method (the mode), and their
# sites are value nodes (of what they return), no call sites of the CPG: their CALLS edges start at the
# CPG node of the expression the statement calls them on (`site` flows: `pt_call_targets`).
PROTOCOL_METHODS = ("__enter__", "__exit__", "__iter__", "__next__", "__aenter__", "__aexit__", "__aiter__",
                    "__anext__")
ELEMENT_BUILTINS = ("list", "tuple", "set", "frozenset", "sorted", "reversed", "iter")
STR_LISTS = ("split", "rsplit", "splitlines")  # their elements are strings
SLICE_ELEMENTS = 16  # a slice `c[a:b]` holds c's elements a .. min(b, a + this) by index
PAIRING_BUILTINS = ("enumerate", "zip")  # their elements are tuples: (index, element), (a's, b's, ...)

_ITERABLE_BUILTINS = ", ".join(f"'{BUILTIN_PREFIX}.{name}'" for name in (*ELEMENT_BUILTINS, *PAIRING_BUILTINS, "next"))
_PYTYPE = "CASE key " + " ".join(f"WHEN '{t}' THEN '{n}'" for t, n in BUILTIN_TYPE_NAMES.items()) + " END"

# Copies known before any round: assignments, returns and yields, each name use from the bindings it
# reads, and an imported variable from the binding it imports.
_STATIC_EDGES = " UNION ALL ".join((
    _flows_of("assign", "src, dst"),
    _flows_of("ret", "src, concat('ret:', dst) AS dst"),
    _flows_of("yield", "src, concat('elm:gen:', dst, '[*]') AS dst"),
    "SELECT dst AS src, src AS dst FROM reference_edges WHERE kind = 'REFERENCES' AND dst IS NOT NULL",
    "SELECT t.target_id AS src, b.binding_id AS dst FROM import_targets t JOIN effective_bindings b "
    "ON b.definition_id = t.import_id AND b.binding_kind = 'import' WHERE t.target_kind = 'BINDING'",
    # `self` of a method of class K: an instance of any class whose MRO has K, that is made somewhere
    "SELECT concat('made:', a.class_id) AS src, d.binding_id AS dst FROM binding_denotes d "
    "JOIN class_ancestors a ON a.ancestor_id = d.target_id WHERE d.resolver = 'name.receiver.instance'",
))

# Nodes that gain values otherwise than by a static copy: seeded ones, and the targets of the rules
# (parameters, call results, attribute and element loads, loop items, caught exceptions).
# Module-level bindings whose name some attribute store sets (`m.x = v` may set one from outside).
_STORED_GLOBALS = """SELECT b.qualname, b.binding_id FROM module_bindings b
JOIN (SELECT DISTINCT key FROM pt_flows WHERE kind = 'attr_store') s
    ON s.key = reverse(split_part(reverse(b.qualname), '.', 1))"""

_FIXED_NODES = " UNION ALL ".join((
    "SELECT node_id AS node FROM definitions WHERE def_kind IN ('FUNCTION', 'CLASS')",
    "SELECT concat('made:', node_id) FROM definitions WHERE def_kind = 'CLASS'",
    "SELECT node_id FROM lambdas",
    "SELECT binding_id FROM pt_stored_globals",
    "SELECT binding_id FROM binding_denotes",
    "SELECT src FROM reference_edges WHERE kind = 'REFERENCES' AND external IS NOT NULL",
    "SELECT binding_id FROM parameter_bindings",
    "SELECT dst FROM pt_flows WHERE kind IN ('alloc', 'callee', 'attr_load', 'elem_load', 'iter', 'instance', "
    "'super', 'slice')",
))

# Nodes whose values a rule reads: what flows somewhere, what is called, stored into, loaded from.
_READ_NODES = " UNION ALL ".join((
    "SELECT src AS node FROM pt_static_all",
    "SELECT src FROM pt_flows WHERE kind IN ('callee', 'arg', 'attr_load', 'attr_store', 'elem_load', "
    "'elem_store', 'iter', 'instance', 'slice')",
    "SELECT dst FROM pt_flows WHERE kind IN ('attr_store', 'elem_store')",
    "SELECT binding_id FROM class_attributes UNION ALL SELECT binding_id FROM class_body_bindings",
    "SELECT dst FROM pt_flows WHERE kind = 'raise'",
    "SELECT p.binding_id FROM pt_flows f JOIN parameter_bindings p ON p.function_id = f.key AND p.position = 0 "
    "WHERE f.kind = 'super'",
    "SELECT binding_id FROM module_bindings",
))


def _mapped(sql: str, columns: str, *mapped: str) -> str:
    """``sql``'s rows (its ``columns``) with each of the ``mapped`` ones replaced by its node's
    representative (`pt_rep`)."""
    joins = " ".join(f"LEFT JOIN pt_rep r_{c} ON r_{c}.node = x.{c}" for c in mapped)
    kept = ", ".join(f"coalesce(r_{c}.rep, x.{c}) AS {c}" if c in mapped else f"x.{c}"
                     for c in columns.split(", "))
    return f"SELECT {kept} FROM ({sql}) x {joins}"



# Classes whose instances code outside the code base may make: those with a base outside it (a
# framework's base class; not a builtin type, which makes no instance of a subclass it is not given),
# and those of a hierarchy the code base makes no instance of anywhere by name (a library's classes,
# which its users make): their methods are analysed as if some instance existed.
_MADE_OUTSIDE = """WITH visibly_made AS (  -- called or raised by name: `C(...)`, `raise C`
    SELECT target_id AS class_id FROM call_targets WHERE target_kind = 'CLASS'
    UNION ALL
    SELECT d.target_id FROM pt_flows f JOIN denotes d ON d.ref_id = f.dst
    WHERE f.kind = 'raise' AND d.target_kind = 'CLASS'
),
in_use AS (  -- a class made, and every class in its MRO
    SELECT DISTINCT a.ancestor_id AS class_id FROM class_ancestors a JOIN visibly_made m ON m.class_id = a.class_id
)
SELECT a.class_id FROM class_ancestors a JOIN class_bases b ON b.class_id = a.ancestor_id
WHERE b.target_kind = 'EXTERNAL' AND b.qualname NOT LIKE '<builtin>.%'
UNION
SELECT d.node_id FROM definitions d LEFT ANTI JOIN in_use u ON u.class_id = d.node_id WHERE d.def_kind = 'CLASS'"""

# Before the rounds, the copy graph is made smaller without changing any answer (offline variable
# substitution): a node whose only source is one static copy holds exactly what that source holds, so
# it is replaced by its source's representative everywhere the rules read it (`pt_rep`), and a node no
# rule reads gets its values once, after the rounds, from its static sources (`pt_sink_edges`).
_PREPARE = (
    # The flows, read once for the statements below (each picks its kinds: one scan of value_flows, staged
    # or inlined over ex_flows, then scans of memory), and the small inputs the rules join every round,
    # held in memory for the same reason; the flows are dropped once the statements below are done.
    Prepared("pt_flows", "SELECT kind, CAST(dst AS VARCHAR) AS dst, CAST(src AS VARCHAR) AS src, "
                         "CAST(key AS VARCHAR) AS key, position FROM value_flows"),
    Prepared("pt_parameters", "SELECT * FROM parameter_bindings"),
    Prepared("pt_identity_functions", "SELECT * FROM identity_functions"),
    Prepared("pt_class_ancestors", "SELECT * FROM class_ancestors"),
    Prepared("pt_static_all", _STATIC_EDGES),
    Prepared("pt_stored_globals", _STORED_GLOBALS),
    Prepared("pt_fixed", _FIXED_NODES),
    # A node with one distinct source, NULL counting as one: its sources' min and max agree and none is
    # NULL, or all are. (One grouping: count(DISTINCT) per group, or a DISTINCT before the grouping,
    # costs 2-4x as much in DataFusion with ~700k groups.)
    Prepared("pt_single", "SELECT dst AS node, min(src) AS src FROM pt_static_all s "
                          "LEFT ANTI JOIN pt_fixed f ON f.node = s.dst "
                          "WHERE dst NOT LIKE 'ret:%' AND dst NOT LIKE 'elm:%' GROUP BY dst "
                          "HAVING (count(src) = count(*) AND min(src) = max(src)) OR count(src) = 0"),
    # Walked down from each chain's start, so every node is reached once; a cycle of single copies has
    # no start and keeps its nodes (they hold nothing anyway).
    Prepared("pt_rep", f"""WITH RECURSIVE down(node, rep, depth) AS (
    SELECT s.node, s.src, CAST(1 AS BIGINT) FROM pt_single s LEFT ANTI JOIN pt_single p ON p.node = s.src
    UNION ALL
    SELECT s.node, d.rep, d.depth + 1 FROM down d JOIN pt_single s ON s.src = d.node WHERE d.depth < {COPY_CHAIN_DEPTH}
)
SELECT node, rep FROM down"""),
    Prepared("pt_live", f"SELECT DISTINCT coalesce(r.rep, x.node) AS node FROM ({_READ_NODES}) x "
                        "LEFT JOIN pt_rep r ON r.node = x.node"),
    Prepared("pt_copies", _mapped("SELECT DISTINCT src, dst FROM pt_static_all s "
                                  "LEFT ANTI JOIN pt_rep r ON r.node = s.dst", "src, dst", "src")),
    Prepared("pt_static", "SELECT DISTINCT src, dst FROM pt_copies c WHERE src <> dst AND "
                          "(dst LIKE 'ret:%' OR dst LIKE 'elm:%' OR dst IN (SELECT node FROM pt_live))"),
    Prepared("pt_sink_edges", "SELECT DISTINCT src, dst FROM pt_copies c WHERE src <> dst AND "
                              "NOT (dst LIKE 'ret:%' OR dst LIKE 'elm:%' OR dst IN (SELECT node FROM pt_live))"),
    Prepared("pt_callee_flows", _mapped("SELECT dst AS call_id, src, coalesce(key, 'call') AS mode FROM pt_flows "
                                        "WHERE kind = 'callee'", "call_id, src, mode", "src")),
    Prepared("pt_arg_flows", _mapped(_flows_of("arg", "dst AS call_id, src, key, position"),
                                     "call_id, src, key, position", "src")),
    Prepared("pt_star_args", "SELECT call_id, src, key, position FROM pt_arg_flows WHERE key IN ('*', '*+', '**')"),
    # the `*args` / `**kwargs` parameters (few functions have one)
    Prepared("pt_var_params", "SELECT * FROM parameter_bindings WHERE param_kind IN ('var_positional', 'var_keyword')"),
    # calls of the builtins that take an iterable, by the name their callee reads, with their positional arguments
    Prepared("pt_builtin_args", f"""SELECT f.call_id, r.external AS builtin, a.src, a.position
FROM pt_callee_flows f JOIN reference_edges r ON r.src = f.src AND r.kind = 'REFERENCES'
JOIN pt_arg_flows a ON a.call_id = f.call_id AND a.key IS NULL
WHERE f.mode = 'call' AND r.external IN ({_ITERABLE_BUILTINS})"""),
    Prepared("pt_protocol_flows", "SELECT call_id, src, mode FROM pt_callee_flows WHERE mode IN ("
                                  + ", ".join(f"'{name}'" for name in PROTOCOL_METHODS) + ")"),
    Prepared("pt_attr_loads", _mapped(_flows_of("attr_load", "dst, src, key"), "dst, src, key", "src")),
    Prepared("pt_attr_stores", _mapped(_flows_of("attr_store", "dst, src, key"), "dst, src, key", "dst", "src")),
    Prepared("pt_elem_loads", _mapped(_flows_of("elem_load", "dst, src, key"), "dst, src, key", "src")),
    Prepared("pt_elem_stores", _mapped(_flows_of("elem_store", "dst, src, key"), "dst, src, key", "dst", "src")),
    Prepared("pt_iters", _mapped(_flows_of("iter", "dst, src"), "dst, src", "src")),
    Prepared("pt_slices", _mapped(_flows_of("slice", "dst, src, CAST(split_part(key, ':', 1) AS BIGINT) AS lo, "
                                            "CASE WHEN split_part(key, ':', 2) = '' THEN NULL "
                                            "ELSE CAST(split_part(key, ':', 2) AS BIGINT) END AS hi, "
                                            "key IS NULL AS unknown"), "dst, src, lo, hi, unknown", "src")),
    # the element indexes a slice copies one by one (past them, a slice's elements are not followed)
    Prepared("pt_slice_offsets", "SELECT CAST(column1 AS BIGINT) AS i FROM (VALUES "
                                 + ", ".join(f"({i})" for i in range(SLICE_ELEMENTS)) + ")"),
    Prepared("pt_instances", _mapped(_flows_of("instance", "dst, src"), "dst, src", "src")),
    Prepared("pt_allocs", _flows_of("alloc", f"dst AS obj, {_PYTYPE} AS pytype")),
    # The tuple a `*args` parameter holds and the dict a `**kwargs` one holds: one container each.
    Prepared("pt_packs", "SELECT binding_id, concat('pack:', binding_id) AS obj, "
                         "CASE param_kind WHEN 'var_positional' THEN 'Tuple' ELSE 'Dict' END AS pytype "
                         "FROM parameter_bindings WHERE param_kind IN ('var_positional', 'var_keyword')"),
    Prepared("pt_result_types", "SELECT column1 AS name, column2 AS pytype FROM (VALUES " + ", ".join(
        f"('{name}', '{kind}')" for name, kind in RESULT_TYPES.items()) + ")"),
    Prepared("pt_container_types", "SELECT obj, pytype FROM pt_allocs WHERE pytype IS NOT NULL "
                                   "UNION ALL SELECT obj, pytype FROM pt_packs"),
    # `super()` in a method: its class, and the method's first parameter (whose class's MRO it follows)
    Prepared("pt_supers", _mapped("SELECT f.dst AS call_id, f.src AS class_id, p.binding_id AS self "
                                  "FROM pt_flows f JOIN parameter_bindings p ON p.function_id = f.key "
                                  "AND p.position = 0 WHERE f.kind = 'super'", "call_id, class_id, self", "self")),
    Prepared("pt_raises", _mapped("SELECT dst AS node FROM pt_flows WHERE kind = 'raise'", "node", "node")),
    Prepared("pt_made_outside", _MADE_OUTSIDE),
    Prepared("pt_modules", "SELECT node_id, qualname FROM definitions WHERE def_kind = 'MODULE'"),
    *(Prepared(f"pt_{name}", _mapped(f"SELECT {columns} FROM {name}", columns, "binding_id"))
      for name, columns in (("class_attributes", "class_id, name, binding_id"),
                            ("class_body_bindings", "class_id, name, binding_id"),
                            ("module_bindings", "qualname, binding_id"))),
)

_SEEDS = (
    Rule("definitions", "pts", "SELECT node_id AS node, def_kind AS kind, node_id AS obj, NULL AS recv "
                               "FROM definitions WHERE def_kind IN ('FUNCTION', 'CLASS')"),
    Rule("lambdas", "pts", "SELECT node_id AS node, 'FUNCTION' AS kind, node_id AS obj, NULL AS recv FROM lambdas"),
    Rule("containers", "pts", "SELECT obj AS node, 'CONTAINER' AS kind, obj, NULL AS recv FROM pt_allocs"),
    Rule("packs", "pts", "SELECT binding_id AS node, 'CONTAINER' AS kind, obj, NULL AS recv FROM pt_packs"),
    Rule("imports_and_receivers", "pts",
         "SELECT binding_id AS node, target_kind AS kind, coalesce(target_id, qualname) AS obj, NULL AS recv "
         "FROM binding_denotes WHERE (resolver LIKE 'name.imports%' OR resolver = 'name.receiver.class') "
         "AND target_kind <> 'BINDING'"),  # an imported variable: its values flow (pt_static_all)
    Rule("builtins", "pts", "SELECT src AS node, 'EXTERNAL' AS kind, external AS obj, NULL AS recv "
                            "FROM reference_edges WHERE kind = 'REFERENCES' AND external IS NOT NULL"),
    Rule("generators", "pts", _flows_of("generator", "concat('ret:', dst) AS node, 'CONTAINER' AS kind, "
                                                     "concat('gen:', dst) AS obj, NULL AS recv", "value_flows")),
    # `cls` of a classmethod: every class whose MRO finds the method (it may be called through any)
    Rule("classmethod_classes", "pts",
         "SELECT par.binding_id AS node, 'CLASS' AS kind, a.class_id AS obj, NULL AS recv "
         "FROM parameter_bindings par JOIN effective_bindings b ON b.definition_id = par.function_id "
         "AND b.binding_kind = 'def' JOIN class_attributes a ON a.binding_id = b.binding_id "
         "WHERE par.method_kind = 'classmethod' AND par.position = 0"),
    Rule("made_outside", "pts", "SELECT concat('made:', class_id) AS node, 'INSTANCE' AS kind, class_id AS obj, "
                                "NULL AS recv FROM pt_made_outside"),
    Rule("copies", "edges", "SELECT src, dst, NULL AS recv FROM pt_static"),
)


_BIND = "CASE WHEN {v}.kind = 'FUNCTION' AND {v}.recv IS NULL THEN e.recv ELSE {v}.recv END"

# Values move along edges, to a fixpoint within the round (a recursive query: a chain of copies costs
# one round, not one per link); a plain function read through a binding edge becomes a method bound
# to the edge's receiver. A value does not enter a node that holds VALUES_PER_NODE values already (it
# would be dropped there), so what flows past a full node is not derived again every round. (Also
# stopping at nodes that already hold the value cost more than it saved: an anti-join with every known
# value at each step of the recursion, 17 s against 7 s on the stdlib.)
_OPEN = "LEFT ANTI JOIN full_pts f ON f.node = e.dst"
_PROPAGATE = f"""WITH RECURSIVE reach(node, kind, obj, recv) AS (
    SELECT * FROM (
        SELECT node, kind, obj, recv FROM delta_pts
        UNION ALL
        SELECT e.dst, p.kind, p.obj, {_BIND.format(v="p")} FROM pts p JOIN delta_edges e ON e.src = p.node {_OPEN}
    ) fresh
    UNION
    SELECT e.dst, r.kind, r.obj, {_BIND.format(v="r")} FROM reach r JOIN edges e ON e.src = r.node {_OPEN}
)
SELECT node, kind, obj, recv FROM reach"""


# How a call's arguments reach a function's parameters: positional ones by position (after the
# receiver of a bound method or the class of a classmethod), keyword ones by name.
_SHIFT = ("CASE WHEN par.method_kind = 'staticmethod' THEN 0 WHEN par.method_kind = 'classmethod' THEN 1 "
          "WHEN c.recv IS NULL THEN 0 ELSE 1 END")
_ARGUMENT_EDGES = f"""SELECT a.src, par.binding_id AS dst, NULL AS recv
FROM delta_callees c JOIN pt_arg_flows a ON a.call_id = c.call_id JOIN pt_parameters par ON par.function_id = c.obj
WHERE c.kind = 'FUNCTION' AND c.mode <> 'callback' AND (
    (a.key IS NULL AND par.param_kind IN ('positional_only', 'positional') AND par.position = a.position + {_SHIFT})
    OR (a.key = '+' AND par.param_kind IN ('positional_only', 'positional') AND par.position >= a.position + {_SHIFT})
    OR (a.key = par.name AND par.param_kind IN ('positional', 'keyword_only')))"""

# Arguments no parameter takes by position or name go into the function's `*args` tuple (by index;
# after a `*x` at an unknown one) or its `**kwargs` dict (by name, a key as `repr` writes it).
_PACKING = f"""WITH packed AS (
    SELECT a.src, par.binding_id AS pack, CAST(a.position + {_SHIFT} - par.position AS VARCHAR) AS key
    FROM delta_callees c JOIN pt_var_params par ON par.function_id = c.obj AND par.param_kind = 'var_positional'
    JOIN pt_arg_flows a ON a.call_id = c.call_id
    WHERE c.kind = 'FUNCTION' AND c.mode <> 'callback' AND a.key IS NULL AND a.position + {_SHIFT} >= par.position
    UNION ALL
    SELECT a.src, par.binding_id, '?'
    FROM delta_callees c JOIN pt_var_params par ON par.function_id = c.obj AND par.param_kind = 'var_positional'
    JOIN pt_arg_flows a ON a.call_id = c.call_id
    WHERE c.kind = 'FUNCTION' AND c.mode <> 'callback' AND a.key = '+'
    UNION ALL
    SELECT a.src, par.binding_id, concat('''', a.key, '''')
    FROM delta_callees c JOIN pt_var_params par ON par.function_id = c.obj AND par.param_kind = 'var_keyword'
    JOIN pt_arg_flows a ON a.call_id = c.call_id
    LEFT JOIN pt_parameters n ON n.function_id = c.obj AND n.name = a.key
        AND n.param_kind IN ('positional', 'keyword_only')
    WHERE c.kind = 'FUNCTION' AND c.mode <> 'callback' AND a.key NOT IN ('*', '*+', '**', '+') AND n.binding_id IS NULL
)
SELECT src, concat('elm:pack:', pack, '[', key, ']') AS dst, NULL AS recv FROM packed
UNION ALL
SELECT src, concat('elm:pack:', pack, '[*]'), NULL FROM packed"""


# `f(*x)`, `f(**x)`: once the call is known to call a function, x's values flow to a node of their
# own that names the argument and the function (`spread|<call>|<position>|<key>|<function>|<receiver>`),
# so the containers that reach it are spread over that function's parameters by a rule that reads
# only new values (no scan of every known value each round).
_SPREAD_NODES = """SELECT a.src,
    concat_ws('|', 'spread', a.call_id, coalesce(CAST(a.position AS VARCHAR), '-1'), a.key, c.obj, coalesce(c.recv, ''))
        AS dst, NULL AS recv
FROM pt_star_args a JOIN delta_callees c ON c.call_id = a.call_id
WHERE c.kind = 'FUNCTION' AND c.mode <> 'callback'"""

# `f(*x)`: the element of x at each index reaches the positional parameter there (after a first `*`,
# any element reaches any later one); `f(**x)`: the element under each parameter's name reaches it.
# Elements stored under an unknown key (`[?]`) reach them all, and every element reaches the
# function's `*args` / `**kwargs`.
_UNPACKING = f"""WITH spread AS (
    SELECT split_part(p.node, '|', 5) AS function_id,
        CASE WHEN split_part(p.node, '|', 6) = '' THEN NULL ELSE split_part(p.node, '|', 6) END AS recv,
        split_part(p.node, '|', 4) AS key, CAST(split_part(p.node, '|', 3) AS INT) AS position, p.obj AS container
    FROM delta_pts p WHERE p.node LIKE 'spread|%' AND p.kind = 'CONTAINER'
),
positional AS (
    SELECT c.key, c.container, par.binding_id AS dst, par.position - c.position - {_SHIFT} AS offset
    FROM spread c JOIN pt_parameters par ON par.function_id = c.function_id
    WHERE c.key IN ('*', '*+') AND par.param_kind IN ('positional_only', 'positional')
        AND par.position >= c.position + {_SHIFT}
),
named AS (
    SELECT c.container, par.binding_id AS dst, par.name
    FROM spread c JOIN pt_parameters par ON par.function_id = c.function_id
    WHERE c.key = '**' AND par.param_kind IN ('positional', 'keyword_only') AND par.position >= {_SHIFT}
),
moved AS (
    SELECT container, CASE WHEN key = '*' THEN CAST(offset AS VARCHAR) ELSE '*' END AS key, dst FROM positional
    UNION ALL
    SELECT container, '?', dst FROM positional WHERE key = '*'
    UNION ALL
    SELECT container, concat('''', name, ''''), dst FROM named
    UNION ALL
    SELECT container, '?', dst FROM named
    UNION ALL
    SELECT c.container, '*', concat('elm:pack:', par.binding_id, '[', slot.key, ']')
    FROM spread c JOIN pt_parameters par ON par.function_id = c.function_id
    CROSS JOIN (SELECT '?' AS key UNION ALL SELECT '*') slot
    WHERE (c.key IN ('*', '*+') AND par.param_kind = 'var_positional')
        OR (c.key = '**' AND par.param_kind = 'var_keyword')
)
SELECT DISTINCT concat('elm:', container, '[', key, ']') AS src, dst, NULL AS recv FROM moved"""


_RECEIVER = """SELECT par.binding_id AS node, 'INSTANCE' AS kind, c.recv AS obj, NULL AS recv
FROM delta_callees c JOIN pt_parameters par ON par.function_id = c.obj AND par.position = 0
WHERE c.kind = 'FUNCTION' AND c.recv IS NOT NULL AND c.mode <> 'callback' AND par.method_kind = 'method'"""

_ATTRIBUTE_VALUES = f"""SELECT l.dst AS node, 'EXTERNAL' AS kind, concat(p.obj, '.', l.key) AS obj, NULL AS recv
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node
WHERE p.kind = 'EXTERNAL' AND length(p.obj) - length(replace(p.obj, '.', '')) < {EXTERNAL_DEPTH}
UNION ALL
SELECT l.dst, 'EXTERNAL', concat('<**Py', a.pytype, '**>.', l.key), NULL
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node JOIN pt_container_types a ON a.obj = p.obj
WHERE p.kind = 'CONTAINER'
UNION ALL
SELECT l.dst, 'EXTERNAL', concat('<**Py', split_part(p.obj, ':', 2), '**>.', l.key), NULL
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node
WHERE p.kind = 'CONTAINER' AND p.obj LIKE 'new:%' AND split_part(p.obj, ':', 2) <> ''
UNION ALL
SELECT l.dst, 'MODULE', d.node_id, NULL
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node JOIN pt_modules m ON m.node_id = p.obj
JOIN pt_modules d ON d.qualname = concat(m.qualname, '.', l.key) WHERE p.kind = 'MODULE'"""

_ATTRIBUTE_EDGES = """SELECT concat('fld:', p.kind, ':', p.obj, '.', l.key) AS src, l.dst, NULL AS recv
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node WHERE p.kind IN ('INSTANCE', 'CLASS', 'MODULE')
UNION ALL
SELECT a.binding_id, l.dst, CASE WHEN p.kind = 'INSTANCE' THEN p.obj END
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node
JOIN pt_class_attributes a ON a.class_id = p.obj AND a.name = l.key
WHERE p.kind IN ('INSTANCE', 'CLASS')
UNION ALL
SELECT b.binding_id, l.dst, NULL
FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node JOIN pt_modules m ON m.node_id = p.obj
JOIN pt_module_bindings b ON b.qualname = concat(m.qualname, '.', l.key) WHERE p.kind = 'MODULE'"""

# `super().x` in a method of class M, self an instance of C: x from the first class after M in C's MRO that
# binds it, bound to the instance.
_SUPER_EDGES = """WITH found AS (
    SELECT l.dst, p.recv, a.rank, b.binding_id
    FROM delta_pts p JOIN pt_attr_loads l ON l.src = p.node
    JOIN pt_class_ancestors m ON m.class_id = p.recv AND m.ancestor_id = p.obj
    JOIN pt_class_ancestors a ON a.class_id = p.recv AND a.rank > m.rank
    JOIN pt_class_body_bindings b ON b.class_id = a.ancestor_id AND b.name = l.key
    WHERE p.kind = 'SUPER'
),
nearest AS (SELECT dst, recv, min(rank) AS rank FROM found GROUP BY dst, recv)
SELECT f.binding_id AS src, f.dst, f.recv FROM found f JOIN nearest n ON n.dst = f.dst AND n.recv = f.recv
    AND n.rank = f.rank"""

_STORE_EDGES = """SELECT s.src, concat('fld:', p.kind, ':', p.obj, '.', s.key) AS dst, NULL AS recv
FROM delta_pts p JOIN pt_attr_stores s ON s.dst = p.node WHERE p.kind IN ('INSTANCE', 'CLASS', 'MODULE')
UNION ALL
SELECT s.src, b.binding_id, NULL  -- `m.x = v` from outside: the module's own code reads x
FROM delta_pts p JOIN pt_attr_stores s ON s.dst = p.node JOIN pt_modules m ON m.node_id = p.obj
JOIN pt_stored_globals b ON b.qualname = concat(m.qualname, '.', s.key) WHERE p.kind = 'MODULE'
UNION ALL
SELECT s.src, concat('elm:', p.obj, '[', coalesce(s.key, '?'), ']'), NULL
FROM delta_pts p JOIN pt_elem_stores s ON s.dst = p.node WHERE p.kind = 'CONTAINER'
UNION ALL
SELECT s.src, concat('elm:', p.obj, '[*]'), NULL
FROM delta_pts p JOIN pt_elem_stores s ON s.dst = p.node WHERE p.kind = 'CONTAINER'"""

_LOAD_EDGES = """SELECT concat('elm:', p.obj, '[', coalesce(l.key, '*'), ']') AS src, l.dst, NULL AS recv
FROM delta_pts p JOIN pt_elem_loads l ON l.src = p.node WHERE p.kind = 'CONTAINER'
UNION ALL
SELECT concat('elm:', p.obj, '[?]'), l.dst, NULL
FROM delta_pts p JOIN pt_elem_loads l ON l.src = p.node WHERE p.kind = 'CONTAINER' AND l.key IS NOT NULL
UNION ALL
SELECT concat('elm:', p.obj, '[*]'), i.dst, NULL
FROM delta_pts p JOIN pt_iters i ON i.src = p.node WHERE p.kind = 'CONTAINER'"""


def _special_method(pts: str, methods: str, kind: str, name: str, mode: str) -> str:
    """A call of a class runs its `__init__`; a call of an instance its `__call__` (looked up
    through the class's MRO, bound to the instance). Applying a class or an instance as a decorator
    is such a call too."""
    if methods.startswith("delta_"):  # joined from the (small) new methods outwards
        return f"""SELECT f.call_id, 'FUNCTION' AS kind, q.obj, p.obj AS recv, '{mode}' AS mode
FROM {methods} q JOIN pt_class_attributes a ON q.node = a.binding_id AND a.name = '{name}'
JOIN {pts} p ON a.class_id = p.obj
JOIN pt_callee_flows f ON f.src = p.node
WHERE p.kind = '{kind}' AND q.kind = 'FUNCTION' AND f.mode IN ('call', 'decorator')"""
    return f"""SELECT f.call_id, 'FUNCTION' AS kind, q.obj, p.obj AS recv, '{mode}' AS mode
FROM {pts} p JOIN pt_callee_flows f ON f.src = p.node
JOIN pt_class_attributes a ON a.class_id = p.obj AND a.name = '{name}'
JOIN {methods} q ON q.node = a.binding_id AND q.kind = 'FUNCTION'
WHERE p.kind = '{kind}' AND f.mode IN ('call', 'decorator')"""


_PROTOCOL_MODES = ", ".join(f"'{name}'" for name in PROTOCOL_METHODS)


def _protocol(pts: str, methods: str) -> str:
    return f"""SELECT f.call_id, 'FUNCTION' AS kind, q.obj, p.obj AS recv, f.mode
FROM pt_protocol_flows f JOIN {pts} p ON p.node = f.src
JOIN pt_class_attributes a ON a.class_id = p.obj AND a.name = f.mode
JOIN {methods} q ON q.node = a.binding_id AND q.kind = 'FUNCTION'
WHERE p.kind = 'INSTANCE'"""


def _callbacks(callees: str, pts: str) -> str:
    names = ", ".join([*(f"'{BUILTIN_PREFIX}.{name}'" for name in CALLBACK_BUILTINS),
                       *(f"'{name}'" for name in CALLBACK_METHODS)])
    return f"""SELECT c.call_id, 'FUNCTION' AS kind, q.obj, NULL AS recv, 'callback' AS mode
FROM {callees} c JOIN pt_arg_flows a ON a.call_id = c.call_id JOIN {pts} q ON q.node = a.src
WHERE c.kind = 'EXTERNAL' AND c.obj IN ({names}) AND q.kind = 'FUNCTION'"""


# A string is immutable and holds nothing: one abstract str (`new:Str:`) stands for every one made,
# and one list of strings (`new:List:split`) for every list `str.split` and the like make.
_NEW = ("CASE WHEN r.pytype = 'Str' THEN 'new:Str:' WHEN c.obj IN ({}) THEN 'new:List:split' "
        "ELSE concat('new:', r.pytype, ':', c.call_id) END").format(", ".join(
            f"'<**PyStr**>.{name}'" for name in STR_LISTS))
_STR_LISTS = ", ".join(f"'<**PyStr**>.{name}'" for name in STR_LISTS)
_PAIRING = ", ".join(f"'{BUILTIN_PREFIX}.{name}'" for name in PAIRING_BUILTINS)
# The new object a call of a builtin makes (and the strings in the list `str.split` makes).
_BUILTIN_RESULTS = f"""SELECT c.call_id AS node, 'CONTAINER' AS kind, {_NEW} AS obj, NULL AS recv
FROM delta_callees c JOIN pt_result_types r ON r.name = c.obj WHERE c.kind = 'EXTERNAL' AND c.mode = 'call'
UNION ALL
SELECT concat('elm:', {_NEW}, slot.key), 'CONTAINER', 'new:Str:', NULL
FROM delta_callees c JOIN pt_result_types r ON r.name = c.obj
CROSS JOIN (SELECT '[?]' AS key UNION ALL SELECT '[*]') slot
WHERE c.kind = 'EXTERNAL' AND c.mode = 'call' AND c.obj IN ({_STR_LISTS})
UNION ALL
SELECT concat('elm:', {_NEW}, slot.key), 'CONTAINER', concat('new:Tuple:', c.call_id, ':pair'), NULL
FROM delta_callees c JOIN pt_result_types r ON r.name = c.obj
CROSS JOIN (SELECT '[?]' AS key UNION ALL SELECT '[*]') slot
WHERE c.kind = 'EXTERNAL' AND c.mode = 'call' AND c.obj IN ({_PAIRING})"""

# `staticmethod(f)`, `classmethod(f)` hand back f (as the class attribute they make); `next(it, d)`
# returns d when it is exhausted.
_PASSED_THROUGH = f"""SELECT a.src, c.call_id AS dst, NULL AS recv
FROM delta_callees c JOIN pt_arg_flows a ON a.call_id = c.call_id
WHERE c.kind = 'EXTERNAL' AND c.mode = 'call' AND a.key IS NULL AND (
    (c.obj IN ('{BUILTIN_PREFIX}.staticmethod', '{BUILTIN_PREFIX}.classmethod') AND a.position = 0)
    OR (c.obj = '{BUILTIN_PREFIX}.next' AND a.position = 1))"""


# `list(x)` and the like hold the elements of x; `next(x)` is one of them; the pairs of `enumerate(x)`
# hold them second, those of `zip(a, b)` a's first and b's second. (Calls of these builtins by their
# name: `pt_builtin_args`.)
_BUILTIN_ELEMENTS = f"""WITH given AS (
    SELECT b.call_id, b.builtin, b.position, p.obj AS container
    FROM pt_builtin_args b JOIN delta_pts p ON p.node = b.src WHERE p.kind = 'CONTAINER'
),
slot AS (SELECT '[?]' AS key UNION ALL SELECT '[*]')
SELECT concat('elm:', g.container, '[*]') AS src, concat('elm:new:', r.pytype, ':', g.call_id, slot.key) AS dst,
    NULL AS recv
FROM given g JOIN pt_result_types r ON r.name = g.builtin CROSS JOIN slot
WHERE g.position = 0 AND g.builtin NOT IN ({_PAIRING})
UNION ALL
SELECT concat('elm:', container, '[*]'), call_id, NULL FROM given
WHERE builtin = '{BUILTIN_PREFIX}.next' AND position = 0
UNION ALL
SELECT concat('elm:', g.container, '[*]'), concat('elm:new:Tuple:', g.call_id, ':pair', slot.key), NULL
FROM given g CROSS JOIN (SELECT '[*]' AS key UNION ALL SELECT '[?]') slot WHERE g.builtin IN ({_PAIRING})
UNION ALL
SELECT concat('elm:', container, '[*]'), concat('elm:new:Tuple:', call_id, ':pair[',
    CAST(CASE WHEN builtin = '{BUILTIN_PREFIX}.enumerate' THEN 1 ELSE position END AS VARCHAR), ']'), NULL
FROM given WHERE builtin IN ({_PAIRING}) AND (position = 0 OR builtin = '{BUILTIN_PREFIX}.zip')"""


_SLICED = """WITH sliced AS (
    SELECT l.dst, p.obj AS container, l.lo, l.hi, l.unknown, coalesce(t.pytype, CASE WHEN p.obj LIKE 'new:%'
        THEN split_part(p.obj, ':', 2) END, '') AS pytype
    FROM delta_pts p JOIN pt_slices l ON l.src = p.node LEFT JOIN pt_container_types t ON t.obj = p.obj
    WHERE p.kind = 'CONTAINER'
)"""
# `c[a:b]`: a new container of c's type (`new:<type>:<slice>`), whose element i is c's element a + i.
_SLICES = f"""{_SLICED}
SELECT dst AS node, 'CONTAINER' AS kind,
    CASE WHEN pytype = 'Str' THEN 'new:Str:' ELSE concat('new:', pytype, ':', dst) END AS obj, NULL AS recv
FROM sliced"""
_SLICE_ELEMENTS = f"""{_SLICED},
copied AS (
    SELECT s.container, s.pytype, s.dst, CAST(s.lo + o.i AS VARCHAR) AS from_key, CAST(o.i AS VARCHAR) AS to_key
    FROM sliced s CROSS JOIN pt_slice_offsets o WHERE NOT s.unknown AND (s.hi IS NULL OR s.lo + o.i < s.hi)
    UNION ALL
    SELECT container, pytype, dst, '?', '?' FROM sliced WHERE NOT unknown
    UNION ALL
    SELECT container, pytype, dst, '*', '?' FROM sliced WHERE unknown
)
SELECT concat('elm:', container, '[', from_key, ']') AS src,
    concat('elm:new:', pytype, ':', dst, '[', to_key, ']') AS dst, NULL AS recv
FROM copied
UNION ALL
SELECT concat('elm:', container, '[', from_key, ']'), concat('elm:new:', pytype, ':', dst, '[*]'), NULL FROM copied"""


# `@d def f` with d a function whose every `return` returns its first parameter (`identity_functions`):
# f stays the function below (not whatever any application of d returns: d's result is not merged
# over its call sites).
_IDENTITY = "c.kind = 'FUNCTION' AND c.mode = 'decorator' AND c.recv IS NULL"
_IDENTITY_DECORATORS = f"""SELECT a.src, c.call_id AS dst, NULL AS recv
FROM delta_callees c JOIN pt_identity_functions i ON i.function_id = c.obj
JOIN pt_arg_flows a ON a.call_id = c.call_id AND a.position = 0 WHERE {_IDENTITY}"""
_RETURNS = f"""SELECT concat('ret:', c.obj) AS src, c.call_id AS dst, NULL AS recv
FROM delta_callees c LEFT JOIN pt_identity_functions i ON i.function_id = c.obj
WHERE c.kind = 'FUNCTION' AND c.mode IN ('call', 'decorator', {_PROTOCOL_MODES})
    AND NOT ({_IDENTITY} AND i.function_id IS NOT NULL)"""
# `@functools.wraps(fn) def wrapper`: what `functools.wraps(fn)` returns hands back what it is applied to.
DECORATOR_FACTORIES = ("functools.wraps",)
_FACTORY_DECORATORS = f"""SELECT a.src, f.call_id AS dst, NULL AS recv
FROM delta_callees c JOIN pt_callee_flows f ON f.src = c.call_id AND f.mode = 'decorator'
JOIN pt_arg_flows a ON a.call_id = f.call_id AND a.position = 0
WHERE c.kind = 'EXTERNAL' AND c.mode = 'call' AND c.obj IN ({", ".join(f"'{name}'" for name in DECORATOR_FACTORIES)})"""


# A call of a class makes an instance: the call's result, and one of the instances the class has made
# (`made:<class>`, what a method's `self` and an `except` target can be).
_INSTANTIATION = " UNION ALL ".join(
    f"SELECT {node} AS node, 'INSTANCE' AS kind, obj, NULL AS recv FROM delta_callees "
    "WHERE kind = 'CLASS' AND mode IN ('call', 'decorator')" for node in ("call_id", "concat('made:', obj)"))


# A round runs three stages: values move along copies; then call sites find what they call; then calls
# bind arguments, parameters and results, and attribute and element accesses connect to fields.
_MOVE, _CALL, _BIND_CALLS = 0, 1, 2

def _on(new: str, *keys: str) -> Probe:
    """A rule's probe: its new rows' ``new`` (`relation.column`) joined with the prepared ``keys``
    (`table.column`), as the rule's every row is."""
    relation, column = new.split(".")
    return Probe(relation, column, tuple((table, key_column) for table, key_column in
                                         (key.split(".") for key in keys)))


_RULES = (
    Rule("propagate", "pts", _PROPAGATE, _MOVE, Closure("edges", "recv", "recv", "kind", ("FUNCTION",))),
    Rule("callees", "callees", "SELECT f.call_id, p.kind, p.obj, p.recv, f.mode FROM delta_pts p "
                               "JOIN pt_callee_flows f ON f.src = p.node "
                               "WHERE p.kind IN ('FUNCTION', 'CLASS', 'EXTERNAL') AND f.mode IN ('call', 'decorator')",
         _CALL, probe=_on("pts.node", "pt_callee_flows.src")),
    Rule("protocol_of_new_instance", "callees", _protocol("delta_pts", "pts"), _CALL,
         probe=_on("pts.node", "pt_protocol_flows.src")),
    Rule("new_protocol_of_instance", "callees", _protocol("pts", "delta_pts"), _CALL,
         probe=_on("pts.node", "pt_class_attributes.binding_id")),
    Rule("init_of_new_class", "callees", _special_method("delta_pts", "pts", "CLASS", "__init__", "init"), _CALL,
         probe=_on("pts.node", "pt_callee_flows.src")),
    Rule("new_init_of_class", "callees", _special_method("pts", "delta_pts", "CLASS", "__init__", "init"), _CALL,
         probe=_on("pts.node", "pt_class_attributes.binding_id")),
    Rule("call_of_new_instance", "callees", _special_method("delta_pts", "pts", "INSTANCE", "__call__", "call"),
         _CALL, probe=_on("pts.node", "pt_callee_flows.src")),
    Rule("new_call_of_instance", "callees", _special_method("pts", "delta_pts", "INSTANCE", "__call__", "call"),
         _CALL, probe=_on("pts.node", "pt_class_attributes.binding_id")),
    Rule("callbacks_of_new_callees", "callees", _callbacks("delta_callees", "pts"), _CALL,
         probe=_on("callees.call_id", "pt_arg_flows.call_id")),
    Rule("new_callbacks", "callees", _callbacks("callees", "delta_pts"), _CALL,
         probe=_on("pts.node", "pt_arg_flows.src")),
    Rule("receiver", "pts", _RECEIVER, _BIND_CALLS,
         probe=_on("callees.obj", "pt_parameters.function_id")),
    Rule("instantiation", "pts", _INSTANTIATION, _BIND_CALLS),
    Rule("attribute_values", "pts", _ATTRIBUTE_VALUES, _BIND_CALLS,
         probe=_on("pts.node", "pt_attr_loads.src")),
    Rule("raised_classes", "pts", "SELECT concat('made:', p.obj) AS node, 'INSTANCE' AS kind, p.obj, NULL AS recv "
                                  "FROM delta_pts p JOIN pt_raises r ON r.node = p.node WHERE p.kind = 'CLASS'",
         _BIND_CALLS, probe=_on("pts.node", "pt_raises.node")),
    # `except E as e`: e is an instance of E or of a subclass of E, whichever is made somewhere
    Rule("caught", "edges", "SELECT concat('made:', a.class_id) AS src, i.dst, NULL AS recv "
                            "FROM delta_pts p JOIN pt_instances i ON i.src = p.node "
                            "JOIN pt_class_ancestors a ON a.ancestor_id = p.obj WHERE p.kind = 'CLASS'", _BIND_CALLS,
         probe=_on("pts.node", "pt_instances.src")),
    Rule("super", "pts", "SELECT s.call_id AS node, 'SUPER' AS kind, s.class_id AS obj, p.obj AS recv "
                         "FROM delta_pts p JOIN pt_supers s ON s.self = p.node WHERE p.kind IN ('INSTANCE', 'CLASS')",
         _BIND_CALLS, probe=_on("pts.node", "pt_supers.self")),
    Rule("super_attributes", "edges", _SUPER_EDGES, _BIND_CALLS,
         probe=_on("pts.node", "pt_attr_loads.src")),
    Rule("arguments", "edges", _ARGUMENT_EDGES, _BIND_CALLS,
         probe=_on("callees.call_id", "pt_arg_flows.call_id")),
    Rule("packing", "edges", _PACKING, _BIND_CALLS,
         probe=_on("callees.obj", "pt_var_params.function_id")),
    Rule("builtin_results", "pts", _BUILTIN_RESULTS, _BIND_CALLS,
         probe=_on("callees.obj", "pt_result_types.name")),
    Rule("passed_through", "edges", _PASSED_THROUGH, _BIND_CALLS,
         probe=_on("callees.call_id", "pt_arg_flows.call_id")),
    Rule("builtin_elements", "edges", _BUILTIN_ELEMENTS, _BIND_CALLS,
         probe=_on("pts.node", "pt_builtin_args.src")),
    Rule("spread_arguments", "edges", _SPREAD_NODES, _BIND_CALLS,
         probe=_on("callees.call_id", "pt_star_args.call_id")),
    Rule("unpacking", "edges", _UNPACKING, _BIND_CALLS, probe=Probe("pts", "node", prefix="spread|")),
    Rule("returns", "edges", _RETURNS, _BIND_CALLS),
    Rule("opaque_decorators", "edges",
         "SELECT a.src, c.call_id AS dst, NULL AS recv FROM delta_callees c "
         "JOIN pt_arg_flows a ON a.call_id = c.call_id AND a.position = 0 "
         "WHERE c.kind = 'EXTERNAL' AND c.mode = 'decorator'", _BIND_CALLS,
         probe=_on("callees.call_id", "pt_arg_flows.call_id")),
    Rule("identity_decorators", "edges", _IDENTITY_DECORATORS, _BIND_CALLS,
         probe=_on("callees.obj", "pt_identity_functions.function_id")),
    Rule("factory_decorators", "edges", _FACTORY_DECORATORS, _BIND_CALLS,
         probe=_on("callees.call_id", "pt_callee_flows.src")),
    Rule("attribute_loads", "edges", _ATTRIBUTE_EDGES, _BIND_CALLS,
         probe=_on("pts.node", "pt_attr_loads.src")),
    Rule("stores", "edges", _STORE_EDGES, _BIND_CALLS,
         probe=_on("pts.node", "pt_attr_stores.dst", "pt_elem_stores.dst")),
    Rule("slices", "pts", _SLICES, _BIND_CALLS,
         probe=_on("pts.node", "pt_slices.src")),
    Rule("slice_elements", "edges", _SLICE_ELEMENTS, _BIND_CALLS,
         probe=_on("pts.node", "pt_slices.src")),
    Rule("element_loads", "edges", _LOAD_EDGES, _BIND_CALLS,
         probe=_on("pts.node", "pt_elem_loads.src", "pt_iters.src")),
)

# The values of the nodes left out of the rounds: a node no rule reads, from its static sources (at
# most VALUES_PER_NODE of them, smallest first), then a replaced node, from its representative.
_RESULT = f"""WITH sinks AS (
    SELECT node, kind, obj, recv FROM (
        SELECT node, kind, obj, recv,
            row_number() OVER (PARTITION BY node ORDER BY kind, obj, recv NULLS FIRST) AS rank
        FROM (SELECT DISTINCT s.dst AS node, p.kind, p.obj, p.recv FROM pt_sink_edges s JOIN pts p ON p.node = s.src)
    ) WHERE rank <= {VALUES_PER_NODE}
),
computed AS (SELECT node, kind, obj, recv FROM pts UNION ALL SELECT node, kind, obj, recv FROM sinks)
SELECT 'pts' AS relation, node, kind, obj, recv, CAST(NULL AS VARCHAR) AS mode FROM computed
UNION ALL
SELECT 'pts', r.node, c.kind, c.obj, c.recv, NULL FROM pt_rep r JOIN computed c ON c.node = r.rep
UNION ALL
SELECT 'callees', call_id, kind, obj, recv, mode FROM callees"""

POINTS_TO_PROGRAM = FixpointProgram(
    relations=(_PTS, _EDGES, _CALLEES),
    prepare=_PREPARE,
    seeds=_SEEDS,
    rules=_RULES,
    result=_RESULT,
    caps=(Cap("pts", "node", VALUES_PER_NODE),),
    stage_names=("move", "call", "bind"),
)

# The C3 linearisation (the MRO) of every class of the code base, over its bases in the code base,
# as a fixpoint: a class's MRO is built once its bases' MROs are complete — with one base, the base's
# MRO after the class in one step; with several, the C3 merge one class per round (the first head of
# the bases' MROs and the base list that is in no other's tail). A hierarchy C3 rejects (a TypeError
# in Python) keeps what the merge placed before it got stuck; a cycle of bases, the class alone.
_MRO = Relation("mro", (col("class_id", "string", S.FOREIGN_ID, False), col("rank", "int64", S.ORDINAL, False),
                        col("ancestor_id", "string", S.FOREIGN_ID, False)))
_COMPLETE = Relation("complete", (col("class_id", "string", S.FOREIGN_ID, False),))

_READY = """ready AS (  -- classes not complete whose bases all are
    SELECT b.class_id, max(n.bases) AS bases
    FROM c3_bases b JOIN c3_base_counts n ON n.class_id = b.class_id JOIN complete d ON d.class_id = b.base_id
    LEFT ANTI JOIN complete c ON c.class_id = b.class_id
    GROUP BY b.class_id HAVING count(*) = max(n.bases)
)"""


def _merge(select: str) -> str:
    """The C3 merge step of every ready class with several bases, then ``select`` over `chosen`
    (the class placed next, if any) and `sizes` (how many the class has placed)."""
    return f"""WITH {_READY},
pending AS (SELECT class_id FROM ready WHERE bases > 1),
placed AS (SELECT m.class_id, m.ancestor_id FROM mro m JOIN pending p ON p.class_id = m.class_id),
sequences AS (  -- each base's MRO, then the list of bases itself
    SELECT b.class_id, b.position AS seq, b.base_id AS seq_key, m.rank AS pos, m.ancestor_id
    FROM pending p JOIN c3_bases b ON b.class_id = p.class_id JOIN mro m ON m.class_id = b.base_id
    UNION ALL
    SELECT b.class_id, 2147483647, '', b.position, b.base_id FROM pending p JOIN c3_bases b ON b.class_id = p.class_id
),
remaining AS (
    SELECT s.*, row_number() OVER (PARTITION BY s.class_id, s.seq, s.seq_key ORDER BY s.pos, s.ancestor_id) AS k
    FROM sequences s LEFT ANTI JOIN placed x ON x.class_id = s.class_id AND x.ancestor_id = s.ancestor_id
),
heads AS (  -- a head in no sequence's tail
    SELECT h.class_id, h.seq, h.seq_key, h.ancestor_id FROM remaining h
    LEFT ANTI JOIN remaining t ON t.class_id = h.class_id AND t.ancestor_id = h.ancestor_id AND t.k > 1
    WHERE h.k = 1
),
chosen AS (
    SELECT class_id, ancestor_id FROM (
        SELECT class_id, ancestor_id, row_number() OVER (PARTITION BY class_id ORDER BY seq, seq_key) AS k FROM heads
    ) WHERE k = 1
),
sizes AS (SELECT class_id, count(*) AS placed FROM placed GROUP BY class_id)
{select}"""


MRO_PROGRAM = FixpointProgram(
    relations=(_MRO, _COMPLETE),
    prepare=(
        Prepared("c3_bases", "SELECT DISTINCT class_id, position, target_id AS base_id FROM class_bases "
                             "WHERE target_kind = 'CLASS' AND target_id <> class_id"),
        Prepared("c3_base_counts", "SELECT class_id, count(*) AS bases FROM c3_bases GROUP BY class_id"),
    ),
    seeds=(
        Rule("itself", "mro", "SELECT node_id AS class_id, CAST(0 AS BIGINT) AS rank, node_id AS ancestor_id "
                              "FROM definitions WHERE def_kind = 'CLASS'"),
        Rule("no_bases", "complete", "SELECT d.node_id AS class_id FROM definitions d "
                                     "LEFT ANTI JOIN c3_bases b ON b.class_id = d.node_id WHERE d.def_kind = 'CLASS'"),
    ),
    rules=(
        Rule("one_base", "mro", f"""WITH {_READY}
SELECT r.class_id, m.rank + 1 AS rank, m.ancestor_id
FROM ready r JOIN c3_bases b ON b.class_id = r.class_id JOIN mro m ON m.class_id = b.base_id WHERE r.bases = 1"""),
        Rule("one_base_complete", "complete", f"WITH {_READY} SELECT class_id FROM ready WHERE bases = 1"),
        Rule("merge", "mro", _merge("SELECT c.class_id, s.placed AS rank, c.ancestor_id FROM chosen c "
                                    "JOIN sizes s ON s.class_id = c.class_id")),
        Rule("merge_complete", "complete", _merge("SELECT class_id FROM pending LEFT ANTI JOIN chosen c "
                                                  "USING (class_id)")),
    ),
    result="SELECT class_id, ancestor_id, rank FROM mro",
    evaluator="c3_linearization",  # semantics/c3.py: one pass, not a DataFusion round per merge step
)


def _nearest_attributes(min_rank: int) -> str:
    """For each class and attribute name, the bindings of the first class of its MRO (from
    ``min_rank`` on) whose class body binds the name: every such binding of that class."""
    return f"""WITH candidates AS (
    SELECT a.class_id, b.name, b.binding_id, a.rank
    FROM class_ancestors a JOIN ex_scopes s ON s.owner_id = a.ancestor_id AND s.scope_kind = 'class'
    JOIN effective_bindings b ON b.scope_id = s.id
    WHERE a.rank >= {min_rank}
),
nearest AS (SELECT class_id, name, min(rank) AS rank FROM candidates GROUP BY class_id, name)
SELECT DISTINCT c.class_id, c.name, c.binding_id FROM candidates c JOIN nearest n
    ON n.class_id = c.class_id AND n.name = c.name AND n.rank = c.rank"""


SPECS: list[AnySpec] = [
    DeriveSpec(
        name="lambdas",
        columns=(col("node_id", "string", S.ENTITY_ID, False), col("qualname", "string", S.QUALNAME, False)),
        inputs=("ex_functions",),
        sql="SELECT id AS node_id, qualname FROM ex_functions WHERE function_kind = 'lambda'",
        doc="the lambdas of the code base: function values no name binds (`definitions` has the named ones)",
    ),
    DeriveSpec(
        name="value_flows", columns=VALUE_FLOWS, inputs=("ex_flows",),
        sql="SELECT file_id, kind, dst, src, key, position FROM ex_flows",
        doc="the value-flow facts of every file (assignments, calls, returns, attribute and element stores and "
            "loads), as the points-to fixpoint reads them",
    ),
    DeriveSpec(
        name="parameter_bindings", columns=PARAMETER_BINDINGS, inputs=("ex_parameters", "ex_bindings", "ex_decorators",
                                                                        "ex_functions"),
        sql="""WITH kinds AS (
    SELECT f.id AS function_id,
        CASE WHEN max(CASE WHEN d.name = 'staticmethod' THEN 1 ELSE 0 END) = 1 THEN 'staticmethod'
             WHEN max(CASE WHEN d.name = 'classmethod' THEN 1 ELSE 0 END) = 1 THEN 'classmethod'
             WHEN f.is_method THEN 'method' ELSE 'function' END AS method_kind
    FROM ex_functions f LEFT JOIN ex_decorators d ON d.target_id = f.id
    GROUP BY f.id, f.is_method
)
SELECT p.function_id, p.position, p.name, p.param_kind, b.id AS binding_id, k.method_kind
FROM ex_parameters p JOIN ex_bindings b ON b.definition_id = p.id AND b.binding_kind = 'parameter'
JOIN kinds k ON k.function_id = p.function_id""",
        doc="each function's parameters with the bindings they make, and whether it is a method, a staticmethod "
            "or a classmethod",
    ),
    DeriveSpec(
        name="class_ancestors", columns=CLASS_ANCESTORS, inputs=("definitions", "class_bases"), recursive=True,
        fixpoint=MRO_PROGRAM, sql=MRO_PROGRAM.text(),
        doc="each class with itself and its ancestors in the code base, in the order of its C3 MRO (rank)",
    ),
    DeriveSpec(
        name="class_attributes", columns=CLASS_ATTRIBUTES,
        inputs=("class_ancestors", "ex_scopes", "effective_bindings"), sql=_nearest_attributes(0),
        doc="for each class and name, the class-body bindings it finds: those of the first class of its MRO "
            "that binds it",
    ),
    DeriveSpec(
        name="class_body_bindings", columns=CLASS_ATTRIBUTES, inputs=("ex_scopes", "effective_bindings"),
        sql="SELECT s.owner_id AS class_id, b.name, b.binding_id FROM ex_scopes s "
            "JOIN effective_bindings b ON b.scope_id = s.id WHERE s.scope_kind = 'class'",
        doc="the names each class body binds (what `super()` looks up, class by class along an MRO)",
    ),
    DeriveSpec(
        name="identity_functions", columns=(col("function_id", "string", S.FOREIGN_ID, False, ("function",)),),
        inputs=("ex_functions", "ex_scopes", "parameter_bindings", "effective_bindings", "value_flows"),
        sql="""SELECT f.id AS function_id FROM ex_functions f
JOIN parameter_bindings p ON p.function_id = f.id AND p.position = 0
JOIN ex_scopes s ON s.owner_id = f.id AND s.scope_kind IN ('function', 'lambda')
LEFT ANTI JOIN effective_bindings b ON b.scope_id = s.id AND b.name = p.name AND b.binding_kind <> 'parameter'
LEFT ANTI JOIN value_flows g ON g.dst = f.id AND g.kind = 'generator'
WHERE f.returns_param AND f.function_kind <> 'async_def' AND p.method_kind IN ('function', 'staticmethod')
    AND p.param_kind IN ('positional_only', 'positional')""",
        doc="functions that return their first argument itself: every `return` returns the first parameter, "
            "which nothing rebinds (no generator, no coroutine)",
    ),
    DeriveSpec(
        name="value_flow_fixpoint", columns=FIXPOINT_ROWS, recursive=True, fixpoint=POINTS_TO_PROGRAM,
        inputs=("value_flows", "definitions", "lambdas", "binding_denotes", "reference_edges", "import_targets",
                "effective_bindings", "parameter_bindings", "class_attributes", "class_body_bindings",
                "module_bindings", "identity_functions", "class_ancestors", "class_bases", "call_targets", "denotes"),
        sql=POINTS_TO_PROGRAM.text(),
        doc="the points-to fixpoint: what every value node can hold and what every call site calls",
    ),
    DeriveSpec(
        name="points_to", columns=POINTS_TO,
        inputs=("value_flow_fixpoint", "ex_bindings", "ex_references", "ex_calls", "ex_decorators"),
        # each node's count and file first, then its values: a window over the values (a sort of
        # them all) and a join keyed by them held 225 MiB more on the standard library
        sql="""WITH nodes AS (
    SELECT id, file_id FROM ex_bindings UNION ALL SELECT id, file_id FROM ex_references
    UNION ALL SELECT id, file_id FROM ex_calls UNION ALL SELECT id, file_id FROM ex_decorators
),
held AS (SELECT node, count(*) AS values_held FROM value_flow_fixpoint WHERE relation = 'pts' GROUP BY node),
owned AS (SELECT h.node, h.values_held, n.file_id FROM held h JOIN nodes n ON n.id = h.node)
SELECT p.node, o.file_id, p.kind AS value_kind, CASE WHEN p.kind = 'EXTERNAL' THEN NULL ELSE p.obj END AS value_id,
    CASE WHEN p.kind = 'EXTERNAL' THEN p.obj END AS qualname, p.recv AS receiver_id,
    1.0 / CAST(o.values_held AS DOUBLE) AS confidence, 'points_to' AS resolver
FROM value_flow_fixpoint p JOIN owned o ON o.node = p.node WHERE p.relation = 'pts'""",
        doc="what each binding, name or attribute use, call result and decorator application can hold, with "
            "confidence 1/(values it can hold)",
    ),
    DeriveSpec(
        name="pt_call_targets", columns=PT_CALL_TARGETS,
        inputs=("value_flow_fixpoint", "definitions", "lambdas", "ex_calls", "ex_decorators", "value_flows"),
        sql="""WITH sites AS (  -- a statement's special-method call: from the node it is made on, in its mode
    SELECT id AS site, id AS call_id, file_id, CAST(NULL AS VARCHAR) AS statement FROM ex_calls
    UNION ALL SELECT id AS site, id AS call_id, file_id, NULL FROM ex_decorators
    UNION ALL SELECT dst, src, file_id, key FROM value_flows WHERE kind = 'site'
),
targets AS (  -- one row per target, whatever receivers a method was bound to
    SELECT DISTINCT node AS site, kind AS target_kind,
        CASE WHEN kind = 'EXTERNAL' THEN NULL ELSE obj END AS target_id, obj, mode
    FROM value_flow_fixpoint WHERE relation = 'callees'
),
counts AS (
    SELECT site, sum(CASE WHEN init THEN 0 ELSE 1 END) AS callees, sum(CASE WHEN init THEN 1 ELSE 0 END) AS inits
    FROM (SELECT DISTINCT site, obj, mode = 'init' AS init FROM targets) GROUP BY site  -- no count(DISTINCT):
    -- DataFusion keeps a hash set per group for it (15 s and gigabytes on the stdlib)
)
SELECT s.call_id, s.file_id, t.target_kind, t.target_id, coalesce(d.qualname, t.obj) AS qualname,
    coalesce(s.statement, t.mode) AS mode,
    1.0 / CAST(CASE WHEN n.callees = 0 THEN 1 ELSE n.callees END AS DOUBLE)
        / CAST(CASE WHEN t.mode = 'init' THEN n.inits ELSE 1 END AS DOUBLE) AS confidence
FROM targets t JOIN sites s ON s.site = t.site JOIN counts n ON n.site = t.site
LEFT JOIN (SELECT node_id, qualname FROM definitions UNION ALL SELECT node_id, qualname FROM lambdas) d
    ON d.node_id = t.target_id""",
        doc="what each call site (or decorator application) calls, from the points-to fixpoint: confidence "
            "1/(distinct targets of the site); the __init__ an instantiation runs, that times 1/(its candidates); "
            "the special methods a `with` or `for` statement calls, from the node of the expression it calls them "
            "on (mode `with`, `for`)",
    ),
]
