"""Name resolution: every name use to the bindings it can read, by Python's scoping rules.

A use in scope S looks in S, then in each enclosing scope outwards — class scopes are skipped
except S itself (methods do not see class attributes as bare names) — and stops at the first scope
where the name is bound or declared `global`. `global` sends the search to the module scope;
`nonlocal` makes a scope skip its own binding. Bindings made under a `global`/`nonlocal`
declaration belong to the scope the declaration names. Names bound nowhere fall back to builtins.

When the resolving scope binds the name more than once, the use's candidates are the bindings before
it in the same scope if any (in a loop: before the end of the outermost loop around it, whose next
pass brings the bindings after it back) — only the last of them when it surely replaced the others
(an assignment, def, class or import statement that ended before the use, in its statement list or
one enclosing it, no loop in between, the name bound from no other scope) —, else all; it gets an
edge to each, with confidence 1/candidates — to at most the `MAX_CANDIDATES` nearest of them (the
last before it, else the last in the scope), so a name rebound n times in one scope costs O(n)
edges, not O(n²). Candidates are found by rank, not by pairing every use with every binding of its
name.
"""

from __future__ import annotations

from semantics.qualnames import BUILTIN_PREFIX
from semantics.specs import AnySpec, DeriveSpec, RelateSpec
from semantics.types import SemanticType as S
from semantics.views.columns import RESOLVED_EDGE, col

MAX_CANDIDATES = 16  # edges from one use: the nearest candidates
# Every (scope, name) that binds: its bindings' count, and how many bindings sort before its own in
# its file's order by (scope, name, position). Ranks within a group are positions in that order minus
# `earlier`: DataFusion runs a window partitioned into many small groups ~6x slower. Partitioned by
# the file (a scope is one file's), so that a file's ranks read only its own bindings.
_BINDING_GROUPS = """totals AS (
    SELECT file_id, scope_id, name, count(*) AS total FROM effective_bindings GROUP BY file_id, scope_id, name
),
binding_groups AS (
    SELECT file_id, scope_id, name, total,
        sum(total) OVER (PARTITION BY file_id ORDER BY scope_id, name
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - total AS earlier
    FROM totals
)"""
# (edges, slot) for every number of edges a use can get: an equi-join gives a use its slots
_SLOTS = ", ".join(f"({edges}, {slot})" for edges in range(1, MAX_CANDIDATES + 1) for slot in range(edges))

STAR_DEPTH = 4  # star imports of star imports followed: `from a import *` where a does `from b import *`
# `from m import *` binds, at the import, each module-level name of m that m exports: the names of its
# literal `__all__` when it has one (`all`/`export` flows), none when its `__all__` is computed, else
# every name not starting with `_`. The binding is m's own (its id), so a use reads what m binds.
_STAR_IMPORTS_SQL = """WITH stars AS (
    SELECT i.id AS import_id, i.file_id, i.scope_id, i.bstart, m.id AS module_id, s.id AS source_scope
    FROM ex_imports i JOIN ex_modules m ON m.qualname = substr(i.qualname, 1, length(i.qualname) - 2)
    JOIN ex_scopes s ON s.owner_id = m.id AND s.scope_kind = 'module'
    WHERE i.name = '*'
),
declared AS (
    SELECT dst AS module_id, max(CASE WHEN key = 'computed' THEN 1 ELSE 0 END) AS computed
    FROM ex_flows WHERE kind = 'all' GROUP BY dst
),
exported AS (SELECT DISTINCT dst AS module_id, key AS name FROM ex_flows WHERE kind = 'export')
SELECT s.import_id, s.file_id, s.scope_id, s.bstart, s.source_scope, d.computed IS NOT NULL AS declared,
    coalesce(d.computed = 1, false) AS computed, e.name AS listed
FROM stars s LEFT JOIN declared d ON d.module_id = s.module_id LEFT JOIN exported e ON e.module_id = s.module_id"""
_EXPORTED = ("((NOT v.declared AND substr(b.name, 1, 1) <> '_') "
             "OR (v.declared AND NOT v.computed AND v.listed = b.name))")
_STAR_BINDINGS_SQL = f"""WITH RECURSIVE bound(binding_id, file_id, scope_id, name, bstart, definition_id, depth) AS (
    SELECT b.binding_id, v.file_id, v.scope_id, b.name, v.bstart, v.import_id, 1
    FROM star_imports v JOIN own_bindings b ON b.scope_id = v.source_scope WHERE {_EXPORTED}
    UNION ALL
    SELECT b.binding_id, v.file_id, v.scope_id, b.name, v.bstart, v.import_id, b.depth + 1
    FROM star_imports v JOIN bound b ON b.scope_id = v.source_scope WHERE b.depth < {STAR_DEPTH} AND {_EXPORTED}
)
SELECT DISTINCT binding_id, file_id, scope_id, name, CAST(bstart AS BIGINT) AS bstart, 'star' AS binding_kind,
    definition_id, CAST(NULL AS VARCHAR) AS value_call_id, '' AS block, CAST(NULL AS BIGINT) AS statement_end,
    false AS declared
FROM bound"""

STAR_IMPORTS = (
    col("import_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("scope_id", "string", S.SCOPE_ID, False),  # where the import binds
    col("bstart", "int64", S.SPAN_START, False),
    col("source_scope", "string", S.FOREIGN_ID, False, ("scope",)),  # the module scope of the module it names
    col("declared", "bool", S.FLAG, False),  # that module assigns `__all__`
    col("computed", "bool", S.FLAG, False),  # ... not as a literal list or tuple of strings
    col("listed", "string", S.NAME),  # a name its literal `__all__` lists (one row each)
)

MODULE_SCOPES = (col("scope_id", "string", S.SCOPE_ID, False), col("file_id", "string", S.FILE_ID, False))

SCOPE_PARENTS = (
    col("scope_id", "string", S.SCOPE_ID, False),
    col("parent_scope_id", "string", S.FOREIGN_ID, references=("scope",)),
    col("scope_kind", "string", S.KIND, False),
)

SCOPE_CHAIN = (
    col("scope_id", "string", S.SCOPE_ID, False),  # the scope whose chain this is
    col("lookup_scope_id", "string", S.FOREIGN_ID, False, ("scope",)),  # a scope on that chain
    col("depth", "int64", S.ORDINAL, False),
)

NAME_USES = (
    col("ref_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("scope_id", "string", S.SCOPE_ID, False),
    col("name", "string", S.NAME, False),
    col("bstart", "int64", S.SPAN_START, False),
    col("block", "string", S.TEXT, False),
    col("position", "int64", S.ORDINAL, False),  # where its bindings are counted from: its loop's end, if any
)

NAME_KEYS = (
    col("scope_id", "string", S.SCOPE_ID, False),
    col("name", "string", S.NAME, False),
    col("file_id", "string", S.FILE_ID, False),
)

KEY_SCOPES = (
    col("use_scope_id", "string", S.FOREIGN_ID, False, ("scope",)),  # where the name is used
    col("name", "string", S.NAME, False),
    col("file_id", "string", S.FILE_ID, False),
    col("scope_id", "string", S.SCOPE_ID, False),  # a scope the name may resolve in
    col("depth", "int64", S.ORDINAL, False),
)

NAME_PRESENCE = (
    col("scope_id", "string", S.SCOPE_ID, False),
    col("name", "string", S.NAME, False),
    col("mode", "string", S.KIND, False),
    col("file_id", "string", S.FILE_ID, False),
)

NAME_RESOLUTION = (
    col("scope_id", "string", S.SCOPE_ID, False),  # where the name is used
    col("file_id", "string", S.FILE_ID, False),
    col("name", "string", S.NAME, False),
    col("resolved_scope_id", "string", S.FOREIGN_ID, False, ("scope",)),
    col("depth", "int64", S.ORDINAL, False),
    col("mode", "string", S.KIND, False),
    col("scope_kind", "string", S.KIND, False),
)

RESOLVED_USES = (
    col("ref_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("name", "string", S.NAME, False),
    col("bstart", "int64", S.SPAN_START, False),
    col("block", "string", S.TEXT, False),
    col("position", "int64", S.ORDINAL, False),
    col("scope_id", "string", S.SCOPE_ID, False),  # the scope the use resolves in
    col("depth", "int64", S.ORDINAL, False),
    col("mode", "string", S.KIND, False),
    col("scope_kind", "string", S.KIND, False),
)

EFFECTIVE_BINDINGS = (
    col("binding_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("scope_id", "string", S.SCOPE_ID, False),
    col("name", "string", S.NAME, False),
    col("bstart", "int64", S.SPAN_START, False),
    col("binding_kind", "string", S.KIND, False),
    col("definition_id", "string", S.FOREIGN_ID),
    col("value_call_id", "string", S.FOREIGN_ID, references=("call",)),
    col("block", "string", S.TEXT, False),  # the statement list it is made in ('' for a star import's)
    col("statement_end", "int64", S.ORDINAL),  # where the statement that makes it definitely ends
    col("declared", "bool", S.FLAG, False),  # made under a `global` or `nonlocal` declaration
)

BINDING_RANKS = (
    col("binding_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("scope_id", "string", S.SCOPE_ID, False),
    col("name", "string", S.NAME, False),
    col("rank", "int64", S.ORDINAL, False),  # 1 for the first binding of the name in the scope
)

USE_SLOTS = (
    col("ref_id", "string", S.FOREIGN_ID, False, ("reference",)),
    col("file_id", "string", S.FILE_ID, False),
    col("scope_id", "string", S.SCOPE_ID, False),  # the scope the use resolves in
    col("name", "string", S.NAME, False),
    col("depth", "int64", S.ORDINAL, False),
    col("mode", "string", S.KIND, False),
    col("scope_kind", "string", S.KIND, False),
    col("candidates", "int64", S.ORDINAL, False),
    col("rank", "int64", S.ORDINAL, False),  # the rank of one binding the use gets an edge to
)

REFERENCE_CANDIDATES = (
    col("ref_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("depth", "int64", S.ORDINAL, False),
    col("mode", "string", S.KIND, False),
    col("scope_kind", "string", S.KIND, False),
    col("candidates", "int64", S.ORDINAL, False),
    col("binding_id", "string", S.FOREIGN_ID, False, ("binding",)),
)

BUILTIN_USES = (
    col("ref_id", "string", S.ENTITY_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("name", "string", S.NAME, False),
)

SPECS: list[AnySpec] = [
    DeriveSpec(
        name="module_scopes", columns=MODULE_SCOPES, inputs=("ex_scopes",),
        sql="SELECT id AS scope_id, file_id FROM ex_scopes WHERE scope_kind = 'module'",
        doc="each file's module scope",
    ),
    DeriveSpec(
        name="scope_parents", columns=SCOPE_PARENTS, inputs=("ex_scopes",),
        sql="SELECT id AS scope_id, parent_scope_id, scope_kind FROM ex_scopes",
        doc="each scope's enclosing scope and kind",
    ),
    DeriveSpec(
        name="scope_chain", columns=SCOPE_CHAIN, inputs=("scope_parents",), recursive=True,
        sql="""WITH RECURSIVE chain(scope_id, ancestor_id, depth) AS (
    SELECT scope_id, scope_id AS ancestor_id, CAST(0 AS BIGINT) AS depth FROM scope_parents
    UNION ALL
    SELECT c.scope_id, s.parent_scope_id, c.depth + 1
    FROM chain c JOIN scope_parents s ON s.scope_id = c.ancestor_id
    WHERE s.parent_scope_id IS NOT NULL
)
SELECT c.scope_id, c.ancestor_id AS lookup_scope_id, c.depth FROM chain c
JOIN scope_parents a ON a.scope_id = c.ancestor_id
WHERE c.depth = 0 OR a.scope_kind <> 'class'""",
        doc="for every scope, the scopes its names are looked up in, nearest first (enclosing class scopes skipped)",
    ),
    DeriveSpec(
        name="name_uses", columns=NAME_USES, inputs=("ex_references",),
        sql="SELECT id AS ref_id, file_id, scope_id, name, bstart, block, coalesce(loop_end, bstart) AS position "
            "FROM ex_references WHERE ref_kind = 'name'",
        doc="every use of a bare name (reads and deletions)",
    ),
    DeriveSpec(
        name="name_keys", columns=NAME_KEYS, inputs=("name_uses",),
        sql="SELECT DISTINCT scope_id, name, file_id FROM name_uses",
        doc="each (scope, name) that is used: resolution depends on these, not on each use",
    ),
    RelateSpec(
        name="key_scopes", columns=KEY_SCOPES, left="name_keys", right="scope_chain", relation="same_scope",
        select="l.scope_id AS use_scope_id, l.name, l.file_id, r.lookup_scope_id AS scope_id, r.depth",
        doc="every scope a used name may resolve in (its scope's chain)",
    ),
    DeriveSpec(
        name="name_presence", columns=NAME_PRESENCE, inputs=("ex_bindings", "ex_declarations", "star_bindings"),
        sql="""SELECT DISTINCT b.scope_id, b.name, 'bound' AS mode, b.file_id FROM ex_bindings b
LEFT JOIN ex_declarations d ON d.scope_id = b.scope_id AND d.name = b.name
WHERE d.name IS NULL
UNION
SELECT DISTINCT scope_id, name, 'bound', file_id FROM star_bindings
UNION
SELECT DISTINCT scope_id, name, 'global' AS mode, file_id FROM ex_declarations WHERE decl_kind = 'global'""",
        doc="the names each scope binds itself, or declares global (nonlocal names are not the scope's own)",
    ),
    RelateSpec(
        name="scope_candidates", columns=(*KEY_SCOPES, NAME_PRESENCE[2]), left="key_scopes",
        right="name_presence", relation="in_scope",
        select="l.use_scope_id, l.name, l.file_id, l.scope_id, l.depth, r.mode",
        doc="the scopes of a used name's chain that bind (or declare global) it",
    ),
    DeriveSpec(
        name="name_resolution", columns=NAME_RESOLUTION,
        inputs=("scope_candidates", "module_scopes", "scope_parents"),
        # (a name declared global resolves in the module's scope, whose kind is 'module')
        sql="""WITH nearest AS (
    SELECT use_scope_id, file_id, name, min(depth) AS depth FROM scope_candidates
    GROUP BY use_scope_id, file_id, name
),
chosen AS (
    SELECT c.*, m.scope_id AS module_scope_id
    FROM scope_candidates c
    JOIN nearest n ON n.use_scope_id = c.use_scope_id AND n.file_id = c.file_id AND n.name = c.name
        AND n.depth = c.depth
    JOIN module_scopes m ON m.file_id = c.file_id
)
SELECT c.use_scope_id AS scope_id, c.file_id, c.name,
    CASE WHEN c.mode = 'global' THEN c.module_scope_id ELSE c.scope_id END AS resolved_scope_id, c.depth, c.mode,
    CASE WHEN c.mode = 'global' THEN 'module' ELSE p.scope_kind END AS scope_kind
FROM chosen c JOIN scope_parents p ON p.scope_id = c.scope_id""",
        doc="the one scope each used (scope, name) resolves in: the nearest candidate (global: the module scope)",
    ),
    RelateSpec(
        name="resolved_uses", columns=RESOLVED_USES, left="name_uses", right="name_resolution", relation="in_scope",
        select="l.ref_id, l.file_id, l.name, l.bstart, l.block, l.position, r.resolved_scope_id AS scope_id, "
               "r.depth, r.mode, "
               "r.scope_kind",
        doc="every name use with the scope it resolves in",
    ),
    DeriveSpec(
        name="own_bindings", columns=EFFECTIVE_BINDINGS,
        inputs=("ex_bindings", "ex_declarations", "scope_chain", "module_scopes"),
        sql="""WITH b AS (
    SELECT b.*, d.decl_kind FROM ex_bindings b
    LEFT JOIN ex_declarations d ON d.scope_id = b.scope_id AND d.name = b.name
),
nonlocal_target AS (
    SELECT b.id, c.lookup_scope_id AS target,
        row_number() OVER (PARTITION BY b.id ORDER BY c.depth, c.lookup_scope_id) AS rn
    FROM b JOIN scope_chain c ON c.scope_id = b.scope_id AND c.depth > 0
    JOIN ex_bindings o ON o.scope_id = c.lookup_scope_id AND o.name = b.name
    WHERE b.decl_kind = 'nonlocal'
)
SELECT b.id AS binding_id, b.file_id,
    CASE WHEN b.decl_kind = 'global' THEN m.scope_id
         WHEN b.decl_kind = 'nonlocal' THEN coalesce(n.target, b.scope_id)
         ELSE b.scope_id END AS scope_id,
    b.name, b.bstart, b.binding_kind, b.definition_id, b.value_call_id, b.block, b.statement_end,
    b.decl_kind IS NOT NULL AS declared
FROM b JOIN module_scopes m ON m.file_id = b.file_id
LEFT JOIN nonlocal_target n ON n.id = b.id AND n.rn = 1""",
        doc="every binding the code makes, with the scope it really binds in (global/nonlocal declarations "
            "applied)",
    ),
    DeriveSpec(
        name="star_imports", columns=STAR_IMPORTS, inputs=("ex_imports", "ex_modules", "ex_scopes", "ex_flows"),
        sql=_STAR_IMPORTS_SQL,
        doc="each star import of a module of the code base, with that module's scope and what its `__all__` lists",
    ),
    DeriveSpec(
        name="star_bindings", columns=EFFECTIVE_BINDINGS, inputs=("star_imports", "own_bindings"), recursive=True,
        sql=_STAR_BINDINGS_SQL,
        doc="the names a star import binds: the module-level bindings of the module it names that the module "
            "exports (binding ids of that module, placed at the import)",
    ),
    DeriveSpec(
        name="effective_bindings", columns=EFFECTIVE_BINDINGS, inputs=("own_bindings", "star_bindings"),
        sql="SELECT * FROM own_bindings UNION ALL SELECT * FROM star_bindings",
        doc="every binding with the scope it really binds in, star imports included",
    ),
    DeriveSpec(
        name="binding_ranks", columns=BINDING_RANKS, inputs=("effective_bindings",),
        sql="""WITH """ + _BINDING_GROUPS + """,
ordered AS (
    SELECT binding_id, file_id, scope_id, name,
        CAST(row_number() OVER (PARTITION BY file_id ORDER BY scope_id, name, bstart, binding_id) AS BIGINT)
            AS position
    FROM effective_bindings
)
SELECT o.binding_id, o.file_id, o.scope_id, o.name, CAST(o.position - g.earlier AS BIGINT) AS rank
FROM ordered o JOIN binding_groups g ON g.file_id = o.file_id AND g.scope_id = o.scope_id AND g.name = o.name""",
        doc="each binding's rank among the bindings of its name in its scope, in source order",
    ),
    # A strong update: the last binding before a use in its own scope is the only one it reads when that
    # binding's statement (an assignment, def, class or import: it binds once it completes) ended before
    # the use, in the use's statement list or one enclosing it, with no loop between the two (a loop's
    # next pass could bring a later binding back), and no binding of the name is made from another scope
    # (`global`, `nonlocal`: a call in between could run it).
    DeriveSpec(
        name="use_slots", columns=USE_SLOTS, inputs=("resolved_uses", "effective_bindings", "binding_ranks"),
        sql="""WITH """ + _BINDING_GROUPS + """,
events AS (
    SELECT scope_id, name, position AS bstart, 0 AS is_binding, ref_id, file_id, depth, mode, scope_kind, block,
        bstart AS use_start
    FROM resolved_uses
    UNION ALL
    SELECT scope_id, name, bstart, 1, NULL, file_id, NULL, NULL, NULL, NULL, NULL FROM effective_bindings
),
counted AS (
    SELECT *, sum(is_binding) OVER (PARTITION BY file_id ORDER BY scope_id, name, bstart, is_binding
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS bindings_before
    FROM events
),
declared AS (SELECT DISTINCT file_id, scope_id, name FROM effective_bindings WHERE declared),
reach AS (
    SELECT c.ref_id, c.file_id, c.scope_id, c.name, c.depth, c.mode, c.scope_kind, c.use_start, c.block,
        c.depth = 0 AND c.mode <> 'global' AND c.bindings_before > g.earlier AS after_bindings,
        CASE WHEN c.depth = 0 AND c.bindings_before > g.earlier THEN c.bindings_before - g.earlier
             ELSE g.total END AS candidates
    FROM counted c JOIN binding_groups g ON g.file_id = c.file_id AND g.scope_id = c.scope_id AND g.name = c.name
    WHERE c.is_binding = 0
),
-- the last binding before the use is the only one it reads (a strong update): outer joins rather than a
-- second reading of `reach`, which DataFusion would compute again (its window sorts every use and binding)
chosen AS (
    SELECT r.*, CASE WHEN b.binding_id IS NULL THEN r.candidates ELSE 1 END AS edges
    FROM reach r
    LEFT JOIN declared d ON d.file_id = r.file_id AND d.scope_id = r.scope_id AND d.name = r.name
    LEFT JOIN binding_ranks k ON k.file_id = r.file_id AND k.scope_id = r.scope_id AND k.name = r.name
        AND k.rank = r.candidates AND r.after_bindings AND d.scope_id IS NULL
    LEFT JOIN effective_bindings b ON b.file_id = r.file_id AND b.binding_id = k.binding_id
        AND b.scope_id = k.scope_id
        AND b.statement_end <= r.use_start AND b.block <> ''
        AND substr(r.block, 1, length(b.block)) = b.block AND strpos(substr(r.block, length(b.block) + 1), 'L') = 0
)
SELECT r.ref_id, r.file_id, r.scope_id, r.name, r.depth, r.mode, r.scope_kind, r.edges AS candidates,
    r.candidates - s.column2 AS rank
FROM chosen r JOIN (VALUES """ + _SLOTS + """) s
    ON s.column1 = CASE WHEN r.edges < """ + str(MAX_CANDIDATES) + """ THEN r.edges
                        ELSE """ + str(MAX_CANDIDATES) + """ END""",
        doc="for every name use, the ranks of the bindings it gets an edge to: the last before it when that "
            "one surely replaced the others (a strong update), else the nearest of those before it in its own "
            "scope, else of all in the scope it resolves in",
    ),
    RelateSpec(
        name="reference_candidates", columns=REFERENCE_CANDIDATES, left="use_slots",
        right="binding_ranks", relation="in_scope", where="r.rank = l.rank",
        select="l.ref_id, l.file_id, l.depth, l.mode, l.scope_kind, l.candidates, r.binding_id",
        doc="the bindings of a use's name in the scope it resolves in, by the ranks its slots name",
    ),
    DeriveSpec(
        name="reference_edges", columns=RESOLVED_EDGE, inputs=("reference_candidates", "builtin_uses"),
        sql="""SELECT 'REFERENCES' AS kind, ref_id AS src, binding_id AS dst, CAST(NULL AS VARCHAR) AS external,
    file_id, 1.0 / CAST(candidates AS DOUBLE) AS confidence,
    CASE WHEN mode = 'global' THEN 'scope.global_declaration'
         WHEN scope_kind = 'module' THEN 'scope.module'
         WHEN depth = 0 THEN 'scope.local'
         ELSE 'scope.enclosing' END AS resolver
FROM reference_candidates
UNION ALL
SELECT 'REFERENCES', ref_id, NULL, concat('""" + BUILTIN_PREFIX + """.', name), file_id, 1.0, 'scope.builtin'
FROM builtin_uses""",
        doc="REFERENCES edges: each name use to the bindings it can read, or to a builtin",
    ),
    DeriveSpec(
        name="builtin_uses", columns=BUILTIN_USES, inputs=("name_uses", "name_resolution", "builtin_names"),
        sql="""SELECT u.ref_id, u.file_id, u.name FROM name_uses u
LEFT JOIN name_resolution r ON r.file_id = u.file_id AND r.scope_id = u.scope_id AND r.name = u.name
JOIN builtin_names b ON b.name = u.name
WHERE r.scope_id IS NULL""",
        doc="name uses bound nowhere in the code's scopes that name a builtin",
    ),
]
