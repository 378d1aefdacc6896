"""Import resolution: every import alias to the module or definition it names.

An import's target qualified name is resolved at extraction (relative imports against the file's
package). It names, in order of preference: a module or a class/function of the code base
(`imports.module`, `imports.definition`); a module-level name bound by another import, followed once
(`imports.reexport`, e.g. a package `__init__` re-exporting); a module-level variable
(`imports.binding`); or, when its top-level package is not part of the code base, an external
symbol named by its import path (`imports.external`). A name inside the code base that none of
these find gets no edge.
"""

from __future__ import annotations

from semantics.specs import AnySpec, DeriveSpec, RelateSpec
from semantics.types import SemanticType as S
from semantics.views.columns import RESOLVED_EDGE, col

DEFINITIONS = (
    col("qualname", "string", S.QUALNAME, False),
    col("node_id", "string", S.ENTITY_ID, False),
    col("def_kind", "string", S.KIND, False),
    col("file_id", "string", S.FILE_ID, False),
)

MODULE_BINDINGS = (
    col("qualname", "string", S.QUALNAME, False),
    col("binding_id", "string", S.ENTITY_ID, False),
    col("binding_kind", "string", S.KIND, False),
    col("definition_id", "string", S.FOREIGN_ID),
    col("file_id", "string", S.FILE_ID, False),
)

IMPORT_NAMES = (
    col("import_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("qualname", "string", S.QUALNAME, False),
)

IMPORT_DEFINITIONS = (
    col("import_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("node_id", "string", S.FOREIGN_ID, False),
    col("def_kind", "string", S.KIND, False),
    col("qualname", "string", S.QUALNAME, False),
)

IMPORT_BINDINGS = (
    col("import_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("binding_id", "string", S.FOREIGN_ID, False),
    col("binding_kind", "string", S.KIND, False),
    col("definition_id", "string", S.FOREIGN_ID),
    col("qualname", "string", S.QUALNAME, False),
)

# What a name denotes: a node of the code base (target_id) or an external name (qualname).
TARGET = (
    col("target_kind", "string", S.KIND, False),
    col("target_id", "string", S.FOREIGN_ID),
    col("qualname", "string", S.QUALNAME, False),
    col("confidence", "float64", S.ORDINAL, False),
    col("resolver", "string", S.KIND, False),
)

IMPORT_TARGETS = (
    col("import_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    *TARGET,
)

TOP_PACKAGES = (col("package", "string", S.NAME, False),)

SPECS: list[AnySpec] = [
    DeriveSpec(
        name="definitions", columns=DEFINITIONS, inputs=("ex_modules", "ex_classes", "ex_functions"),
        sql="""SELECT qualname, id AS node_id, 'MODULE' AS def_kind, file_id FROM ex_modules
UNION ALL SELECT qualname, id, 'CLASS', file_id FROM ex_classes
UNION ALL SELECT qualname, id, 'FUNCTION', file_id FROM ex_functions WHERE function_kind <> 'lambda'""",
        doc="every module, class and named function of the code base by qualified name",
    ),
    DeriveSpec(
        name="top_packages", columns=TOP_PACKAGES, inputs=("ex_modules",),
        sql="SELECT DISTINCT split_part(qualname, '.', 1) AS package FROM ex_modules",
        doc="the top-level packages and modules of the code base",
    ),
    DeriveSpec(
        name="module_bindings", columns=MODULE_BINDINGS, inputs=("effective_bindings", "ex_scopes"),
        sql="""SELECT concat(s.qualname, '.', b.name) AS qualname, b.binding_id, b.binding_kind, b.definition_id,
    b.file_id
FROM effective_bindings b JOIN ex_scopes s ON s.id = b.scope_id
WHERE s.scope_kind = 'module'""",
        doc="every name bound at module level, by its qualified name (pkg.mod.NAME)",
    ),
    DeriveSpec(
        name="import_names", columns=IMPORT_NAMES, inputs=("ex_imports",),
        sql="""SELECT id AS import_id, file_id,
    CASE WHEN name = '*' THEN substr(qualname, 1, length(qualname) - 2) ELSE qualname END AS qualname
FROM ex_imports WHERE qualname NOT LIKE '.%'""",
        doc="each import's absolute target name (a star import names its module)",
    ),
    RelateSpec(
        name="import_definitions", columns=IMPORT_DEFINITIONS, left="import_names", right="definitions",
        relation="named", select="l.import_id, l.file_id, r.node_id, r.def_kind, r.qualname",
        doc="imports naming a module, class or function of the code base",
    ),
    RelateSpec(
        name="import_bindings", columns=IMPORT_BINDINGS, left="import_names", right="module_bindings",
        relation="named",
        select="l.import_id, l.file_id, r.binding_id, r.binding_kind, r.definition_id, r.qualname",
        doc="imports naming a module-level binding of the code base",
    ),
    DeriveSpec(
        name="import_targets", columns=IMPORT_TARGETS,
        inputs=("import_names", "import_definitions", "import_bindings", "top_packages"),
        sql="""WITH direct AS (
    SELECT import_id, file_id, def_kind AS target_kind, node_id AS target_id, qualname,
        1.0 / CAST(count(*) OVER (PARTITION BY import_id) AS DOUBLE) AS confidence,
        CASE def_kind WHEN 'MODULE' THEN 'imports.module' ELSE 'imports.definition' END AS resolver
    FROM import_definitions
),
external AS (
    SELECT n.import_id, n.file_id, 'EXTERNAL' AS target_kind, CAST(NULL AS VARCHAR) AS target_id, n.qualname,
        1.0 AS confidence, 'imports.external' AS resolver
    FROM import_names n LEFT JOIN top_packages t ON t.package = split_part(n.qualname, '.', 1)
    WHERE t.package IS NULL
),
first_level AS (SELECT * FROM direct UNION ALL SELECT * FROM external),
via AS (
    SELECT b.* FROM import_bindings b LEFT JOIN first_level f ON f.import_id = b.import_id
    WHERE f.import_id IS NULL
),
reexport AS (
    SELECT v.import_id, v.file_id, f.target_kind, f.target_id, f.qualname, f.confidence * 0.9 AS confidence,
        'imports.reexport' AS resolver
    FROM via v JOIN first_level f ON f.import_id = v.definition_id
    WHERE v.binding_kind = 'import'
),
bound AS (
    SELECT import_id, file_id, 'BINDING' AS target_kind, binding_id AS target_id, qualname,
        1.0 / CAST(count(*) OVER (PARTITION BY import_id) AS DOUBLE) AS confidence, 'imports.binding' AS resolver
    FROM via WHERE binding_kind <> 'import'
)
SELECT * FROM first_level UNION ALL SELECT * FROM reexport UNION ALL SELECT * FROM bound""",
        doc="what each import names: a module, class, function or module-level binding, or an external symbol",
    ),
    DeriveSpec(
        name="import_edges", columns=RESOLVED_EDGE, inputs=("import_targets",),
        sql="""SELECT 'IMPORTS' AS kind, import_id AS src, target_id AS dst,
    CASE WHEN target_kind = 'EXTERNAL' THEN qualname END AS external, file_id, confidence, resolver
FROM import_targets""",
        doc="IMPORTS edges: each import alias to what it names",
    ),
]
