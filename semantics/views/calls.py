"""What names and attribute chains denote, class inheritance, and the call graph.

`denotes` says, for a name or attribute use, what it stands for: a module, class or function of
the code base, a module-level binding, an instance of a class of the code base, or an external
symbol by qualified name. It is built in two phases:

1. static: names through their bindings (a def or class; an import's target; the first parameter
   of a method — an instance of its class, or the class itself under `@classmethod`), and attribute
   chains over modules, classes and external names by composing qualified names (`os.path.join`);
2. typed: with the class hierarchy known (INHERITS_FROM, and each class's C3 MRO:
   `class_ancestors`), attributes of instances and classes find methods, inherited ones
   included; a name bound by `x = C(...)` denotes an instance of C. When the nearest class that
   defines a method name defines it k times (`def f` in both branches of an if/else), any of them
   can be the method at run time: each is a candidate, at 1/k.

CALLS edges come from each call's callee: a function (its confidence lowered when a decorator
might replace it); a class — to the class and to its `__init__`, own or inherited; or an external
symbol. When a callee denotes several targets, there is an edge to each, with the confidence of
the resolution that found it.
"""

from __future__ import annotations

from semantics.specs import AnySpec, DeriveSpec, RelateSpec
from semantics.types import SemanticType as S
from semantics.views.columns import RESOLVED_EDGE, col
from semantics.views.imports import TARGET

# Decorators known to hand back the function they decorate (or a callable that calls it).
TRANSPARENT_DECORATORS = (
    "staticmethod", "classmethod", "abstractmethod", "abc.abstractmethod", "functools.wraps", "wraps",
    "functools.lru_cache", "lru_cache", "functools.cache", "cache", "typing.overload", "overload",
    "typing.final", "final", "typing.override", "override", "typing_extensions.override",
)
DECORATED_FACTOR = 0.6  # a call to a function under a decorator that may replace it
METHOD_FACTOR = 0.9  # a method found through a receiver's class (a subclass may override it)
INSTANCE_FACTOR = 0.9  # a name bound by `x = C(...)`
ATTRIBUTE_LEVELS = 3  # attribute chains followed: a.b, a.b.c, a.b.c.d

DENOTES = (
    col("ref_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    *TARGET,
)

BINDING_DENOTES = (col("binding_id", "string", S.ENTITY_ID, False), *TARGET)

ATTRIBUTES = (
    col("ref_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("base_id", "string", S.FOREIGN_ID, False, ("reference",)),
    col("name", "string", S.NAME, False),
)

CLASS_BASES = (
    col("class_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("position", "int32", S.ORDINAL, False),
    *TARGET,
)

METHODS = (
    col("class_id", "string", S.FOREIGN_ID, False, ("class",)),
    col("name", "string", S.NAME, False),
    col("function_id", "string", S.ENTITY_ID, False),
    col("qualname", "string", S.QUALNAME, False),
)

METHOD_LOOKUP = (
    col("class_id", "string", S.FOREIGN_ID, False, ("class",)),
    col("name", "string", S.NAME, False),
    col("function_id", "string", S.FOREIGN_ID, False, ("function",)),
    col("qualname", "string", S.QUALNAME, False),
    col("depth", "int64", S.ORDINAL, False),
    col("confidence", "float64", S.ORDINAL, False),  # 1/k when the nearest class defines the name k times
)

DECORATOR_FACTORS = (
    col("function_id", "string", S.ENTITY_ID, False),
    col("factor", "float64", S.ORDINAL, False),
)

_TARGET_COLUMNS = "target_kind, target_id, qualname, confidence, resolver"

_BINDING_DENOTES_SQL = """WITH receivers AS (
    SELECT p.id AS param_id, f.parent_id AS class_id, max(CASE WHEN d.name = 'classmethod' THEN 1 ELSE 0 END) AS cm,
        max(CASE WHEN d.name = 'staticmethod' THEN 1 ELSE 0 END) AS sm
    FROM ex_parameters p JOIN ex_functions f ON f.id = p.function_id
    LEFT JOIN ex_decorators d ON d.target_id = f.id
    WHERE f.is_method AND p.position = 0
    GROUP BY p.id, f.parent_id
)
SELECT b.binding_id, d.def_kind AS target_kind, d.node_id AS target_id, d.qualname, 1.0 AS confidence,
    'name.definition' AS resolver
FROM effective_bindings b JOIN definitions d ON d.node_id = b.definition_id
WHERE b.binding_kind IN ('def', 'class')
UNION ALL
SELECT b.binding_id, t.target_kind, t.target_id, t.qualname, t.confidence, concat('name.', t.resolver)
FROM effective_bindings b JOIN ex_imports i ON i.id = b.definition_id
JOIN import_targets t ON t.import_id = i.id
WHERE b.binding_kind = 'import' AND NOT (i.from_module IS NULL AND i.asname IS NULL AND strpos(i.name, '.') > 0)
UNION ALL
SELECT b.binding_id, coalesce(d.def_kind, 'EXTERNAL'), d.node_id, split_part(i.name, '.', 1), 1.0,
    CASE WHEN d.node_id IS NULL THEN 'name.imports.external' ELSE 'name.imports.module' END
FROM effective_bindings b JOIN ex_imports i ON i.id = b.definition_id
LEFT JOIN definitions d ON d.qualname = split_part(i.name, '.', 1) AND d.def_kind = 'MODULE'
LEFT JOIN top_packages t ON t.package = split_part(i.name, '.', 1)
WHERE b.binding_kind = 'import' AND i.from_module IS NULL AND i.asname IS NULL AND strpos(i.name, '.') > 0
    AND (d.node_id IS NOT NULL OR t.package IS NULL)
UNION ALL
SELECT b.binding_id, CASE WHEN r.cm = 1 THEN 'CLASS' ELSE 'INSTANCE' END, r.class_id, c.qualname, 1.0,
    CASE WHEN r.cm = 1 THEN 'name.receiver.class' ELSE 'name.receiver.instance' END
FROM effective_bindings b JOIN receivers r ON r.param_id = b.definition_id
JOIN ex_classes c ON c.id = r.class_id
WHERE b.binding_kind = 'parameter' AND r.sm = 0"""


def _name_denotes_sql(bindings_view: str) -> str:
    return f"""SELECT e.src AS ref_id, e.file_id, d.target_kind, d.target_id, d.qualname,
    e.confidence * d.confidence AS confidence, d.resolver
FROM reference_edges e JOIN {bindings_view} d ON d.binding_id = e.dst
UNION ALL
SELECT src, file_id, 'EXTERNAL', CAST(NULL AS VARCHAR), external, confidence, 'name.builtin'
FROM reference_edges WHERE external IS NOT NULL"""


def _attribute_level_sql(base_view: str) -> str:
    """Attributes whose base denotes a module, class or external name: compose qualified names. A
    qualified name defined k times (a method or function defined in both branches of an if/else)
    is each of them at 1/k."""
    return f"""WITH composed AS (
    SELECT a.ref_id, a.file_id, b.target_kind AS base_kind, concat(b.qualname, '.', a.name) AS qualname,
        b.confidence
    FROM attributes a JOIN {base_view} b ON b.ref_id = a.base_id
    WHERE b.target_kind IN ('MODULE', 'CLASS', 'EXTERNAL')
)
SELECT c.ref_id, c.file_id, d.def_kind AS target_kind, d.node_id AS target_id, d.qualname,
    c.confidence / CAST(k.n AS DOUBLE) AS confidence, 'attribute.definition' AS resolver
FROM composed c JOIN definitions d ON d.qualname = c.qualname
JOIN (SELECT qualname, count(*) AS n FROM definitions GROUP BY qualname) k ON k.qualname = c.qualname
WHERE c.base_kind <> 'EXTERNAL'
UNION ALL
SELECT c.ref_id, c.file_id, t.target_kind, t.target_id, t.qualname, c.confidence * t.confidence,
    concat('attribute.', t.resolver)
FROM composed c JOIN module_bindings m ON m.qualname = c.qualname
JOIN import_targets t ON t.import_id = m.definition_id
WHERE c.base_kind = 'MODULE' AND m.binding_kind = 'import'
UNION ALL
SELECT ref_id, file_id, 'EXTERNAL', CAST(NULL AS VARCHAR), qualname, confidence, 'attribute.external'
FROM composed WHERE base_kind = 'EXTERNAL'"""


def _static_levels() -> list[AnySpec]:
    specs: list[AnySpec] = []
    previous = "name_denotes_static"
    for level in range(1, ATTRIBUTE_LEVELS + 1):
        name = f"attribute_denotes_{level}"
        specs.append(DeriveSpec(
            name=name, columns=DENOTES,
            inputs=("attributes", previous, "definitions", "module_bindings", "import_targets"),
            sql=_attribute_level_sql(previous),
            doc=f"attribute chains of length {level} over modules, classes and external names",
        ))
        previous = name
    return specs


_STATIC_INPUTS = ("name_denotes_static", *(f"attribute_denotes_{level}" for level in range(1, ATTRIBUTE_LEVELS + 1)))


def _union_sql(views: tuple[str, ...]) -> str:
    columns = ", ".join(column.name for column in DENOTES)
    return "\nUNION ALL\n".join(f"SELECT {columns} FROM {view}" for view in views)


SPECS: list[AnySpec] = [
    DeriveSpec(
        name="attributes", columns=ATTRIBUTES, inputs=("ex_references",),
        sql="SELECT id AS ref_id, file_id, base_id, name FROM ex_references "
            "WHERE ref_kind = 'attribute' AND base_id IS NOT NULL",
        doc="attribute uses whose base is itself a name or attribute use",
    ),
    DeriveSpec(
        name="binding_denotes", columns=BINDING_DENOTES,
        inputs=("effective_bindings", "definitions", "ex_imports", "import_targets", "top_packages",
                "ex_parameters", "ex_functions", "ex_decorators", "ex_classes"),
        sql=_BINDING_DENOTES_SQL,
        doc="what a binding stands for: its def or class, its import's target, or its method's receiver",
    ),
    DeriveSpec(
        name="name_denotes_static", columns=DENOTES, inputs=("reference_edges", "binding_denotes"),
        sql=_name_denotes_sql("binding_denotes"),
        doc="what each name use stands for, through the bindings it reads",
    ),
    *_static_levels(),
    DeriveSpec(
        name="denotes_static", columns=DENOTES, inputs=_STATIC_INPUTS, sql=_union_sql(_STATIC_INPUTS),
        entity="reference",
        doc="names and attribute chains resolved without types",
    ),
    RelateSpec(
        name="class_bases", columns=CLASS_BASES, left="ex_bases", right="denotes_static", relation="refers_to",
        select=f"l.class_id, l.file_id, l.position, r.{', r.'.join(_TARGET_COLUMNS.split(', '))}",
        where="r.target_kind IN ('CLASS', 'EXTERNAL')",
        doc="each class's bases that denote a class of the code base or an external symbol",
    ),
    DeriveSpec(
        name="inherits_edges", columns=RESOLVED_EDGE, inputs=("class_bases",),
        sql="""SELECT 'INHERITS_FROM' AS kind, class_id AS src, target_id AS dst,
    CASE WHEN target_kind = 'EXTERNAL' THEN qualname END AS external, file_id, confidence,
    concat('inherits.', resolver) AS resolver
FROM class_bases""",
        doc="INHERITS_FROM edges: class to base class, across files",
    ),
    DeriveSpec(
        name="methods", columns=METHODS, inputs=("ex_functions",),
        sql="SELECT parent_id AS class_id, name, id AS function_id, qualname FROM ex_functions WHERE is_method",
        doc="the methods defined in each class body",
    ),
    # The first class of the MRO (class_ancestors, C3) that defines a name may define it several times
    # (def in both branches of an if/else): all of them are kept, each a candidate at 1/k.
    DeriveSpec(
        name="method_lookup", columns=METHOD_LOOKUP, inputs=("class_ancestors", "methods"),
        sql="""WITH found AS (
    SELECT DISTINCT a.class_id, m.name, m.function_id, m.qualname, a.rank AS depth
    FROM class_ancestors a JOIN methods m ON m.class_id = a.ancestor_id
),
nearest AS (
    SELECT *, min(depth) OVER (PARTITION BY class_id, name) AS best FROM found
)
SELECT class_id, name, function_id, qualname, depth,
    1.0 / CAST(count(*) OVER (PARTITION BY class_id, name) AS DOUBLE) AS confidence
FROM nearest WHERE depth = best""",
        doc="for each class and method name, the methods it resolves to: those of the first class of its C3 MRO "
            "that defines it; every definition in that class is a candidate, at 1/k",
    ),
    DeriveSpec(
        name="instance_bindings", columns=BINDING_DENOTES,
        inputs=("effective_bindings", "ex_calls", "denotes_static", "ex_classes"),
        sql=f"""SELECT b.binding_id, 'INSTANCE' AS target_kind, d.target_id, d.qualname,
    d.confidence * {INSTANCE_FACTOR} AS confidence, 'name.instance' AS resolver
FROM effective_bindings b JOIN ex_calls c ON c.id = b.value_call_id
JOIN denotes_static d ON d.ref_id = c.callee_ref_id
WHERE d.target_kind = 'CLASS'""",
        doc="names bound by `x = C(...)` with C a class of the code base: an instance of C",
    ),
    DeriveSpec(
        name="name_denotes_typed", columns=DENOTES, inputs=("reference_edges", "instance_bindings"),
        sql="""SELECT e.src AS ref_id, e.file_id, d.target_kind, d.target_id, d.qualname,
    e.confidence * d.confidence AS confidence, d.resolver
FROM reference_edges e JOIN instance_bindings d ON d.binding_id = e.dst""",
        doc="name uses that denote an instance, through an assignment from a class call",
    ),
    DeriveSpec(
        name="method_denotes", columns=DENOTES,
        inputs=("attributes", "denotes_static", "name_denotes_typed", "method_lookup"),
        sql=f"""WITH bases AS (
    SELECT ref_id, target_kind, target_id, confidence FROM denotes_static WHERE target_kind IN ('INSTANCE', 'CLASS')
    UNION ALL
    SELECT ref_id, target_kind, target_id, confidence FROM name_denotes_typed
)
SELECT a.ref_id, a.file_id, 'FUNCTION' AS target_kind, m.function_id AS target_id, m.qualname,
    b.confidence * {METHOD_FACTOR} * m.confidence AS confidence,
    CASE WHEN b.target_kind = 'INSTANCE' THEN 'attribute.method' ELSE 'attribute.inherited' END AS resolver
FROM attributes a JOIN bases b ON b.ref_id = a.base_id
JOIN method_lookup m ON m.class_id = b.target_id AND m.name = a.name
WHERE b.target_kind = 'INSTANCE' OR m.depth > 0""",
        doc="attributes of an instance or a class that find a method through the class hierarchy",
    ),
    DeriveSpec(
        name="denotes", columns=DENOTES, inputs=("denotes_static", "name_denotes_typed", "method_denotes"),
        entity="reference",
        sql=_union_sql(("denotes_static", "name_denotes_typed", "method_denotes")),
        doc="what every resolvable name and attribute use stands for",
    ),
    DeriveSpec(
        name="decorator_factors", columns=DECORATOR_FACTORS, inputs=("ex_decorators", "denotes", "ex_functions"),
        sql=f"""SELECT d.target_id AS function_id,
    min(CASE WHEN d.name IN ({", ".join(f"'{name}'" for name in TRANSPARENT_DECORATORS)})
             OR f.returns_param THEN 1.0 ELSE {DECORATED_FACTOR} END) AS factor
FROM ex_decorators d
LEFT JOIN denotes n ON n.ref_id = d.ref_id AND n.target_kind = 'FUNCTION'
LEFT JOIN ex_functions f ON f.id = n.target_id
GROUP BY d.target_id""",
        doc="how far a decorated definition can be trusted to be what a call reaches: 1 when every decorator "
            "returns the function unchanged (known ones, or code-base decorators returning their parameter)",
    ),
    RelateSpec(
        name="call_targets", columns=(col("call_id", "string", S.ENTITY_ID, False),
                                      col("file_id", "string", S.FILE_ID, False), *TARGET),
        left="ex_calls", right="denotes", relation="refers_to",
        select=f"l.id AS call_id, l.file_id, r.{', r.'.join(_TARGET_COLUMNS.split(', '))}",
        doc="what each call's callee expression denotes",
    ),
    DeriveSpec(
        name="call_edges", columns=RESOLVED_EDGE,
        inputs=("call_targets", "decorator_factors", "method_lookup", "pt_call_targets"),
        # `legacy` read twice, not once a target kind: DataFusion computes a CTE again at each reading
        sql="""WITH resolved AS (SELECT DISTINCT call_id FROM pt_call_targets WHERE mode NOT IN ('with', 'for')),
legacy AS (
    SELECT t.* FROM call_targets t LEFT JOIN resolved r ON r.call_id = t.call_id WHERE r.call_id IS NULL
)
SELECT 'CALLS' AS kind, t.call_id AS src, CASE WHEN t.target_kind = 'EXTERNAL' THEN NULL ELSE t.target_id END AS dst,
    CAST(CASE WHEN t.target_kind = 'EXTERNAL' THEN t.qualname END AS VARCHAR) AS external, t.file_id,
    CASE WHEN t.target_kind = 'FUNCTION' THEN t.confidence * coalesce(f.factor, 1.0) ELSE t.confidence END
        AS confidence,
    CASE t.target_kind
        WHEN 'FUNCTION' THEN concat('calls.', t.resolver, CASE WHEN f.factor < 1.0 THEN '.decorated' ELSE '' END)
        WHEN 'CLASS' THEN concat('calls.class.', t.resolver)
        ELSE concat('calls.', t.resolver) END AS resolver
FROM legacy t LEFT JOIN decorator_factors f ON t.target_kind = 'FUNCTION' AND f.function_id = t.target_id
WHERE t.target_kind IN ('FUNCTION', 'CLASS', 'EXTERNAL')
UNION ALL
SELECT 'CALLS', t.call_id, m.function_id, NULL, t.file_id, t.confidence * m.confidence, 'calls.class_init'
FROM legacy t JOIN method_lookup m ON m.class_id = t.target_id AND m.name = '__init__'
WHERE t.target_kind = 'CLASS'
UNION ALL
SELECT 'CALLS', call_id, CASE WHEN target_kind = 'EXTERNAL' THEN NULL ELSE target_id END,
    CASE WHEN target_kind = 'EXTERNAL' THEN qualname END, file_id, confidence,
    CASE WHEN target_kind = 'CLASS' THEN 'calls.points_to.class'
         WHEN target_kind = 'EXTERNAL' THEN 'calls.points_to.external'
         WHEN mode = 'init' THEN 'calls.class_init' WHEN mode = 'call' THEN 'calls.points_to'
         ELSE concat('calls.points_to.', mode) END
FROM pt_call_targets WHERE target_kind IN ('FUNCTION', 'CLASS', 'EXTERNAL')""",
        doc="CALLS edges: each call site (and decorator application) to what it calls, from the points-to "
            "analysis; a call it finds nothing for keeps what name resolution alone finds",
    ),
]
