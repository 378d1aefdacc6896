"""Name resolution: every name use to the bindings it can read, by Python's scoping rules.

A use in scope S looks in S, then in each enclosing scope outwards — class scopes are skipped
except S itself (methods do not see class attributes as bare names) — and stops at the first scope
where the name is bound or declared `global`. `global` sends the search to the module scope;
`nonlocal` makes a scope skip its own binding. Bindings made under a `global`/`nonlocal`
declaration belong to the scope the declaration names. Names bound nowhere fall back to builtins.

When the resolving scope binds the name more than once, the use's candidates are the bindings
before it in the same scope if any, else all; it gets an edge to each, with confidence
1/candidates — to at most the `MAX_CANDIDATES` nearest of them (the last before it, else the last in
the scope), so a name rebound n times in one scope costs O(n) edges, not O(n²). Candidates are
found by rank, not by pairing every use with every binding of its name.
"""

from __future__ import annotations

from semantics.qualnames import BUILTIN_PREFIX
from semantics.specs import AnySpec, DeriveSpec, RelateSpec
from semantics.types import SemanticType as S
from semantics.views.columns import RESOLVED_EDGE, col

MAX_CANDIDATES = 16  # edges from one use: the nearest candidates
# Every (scope, name) that binds: its bindings' count, and how many bindings sort before its own in
# one global order by (scope, name, position). Ranks within a group are positions in that order
# minus `earlier`: DataFusion runs a window partitioned into many small groups ~6x slower.
_BINDING_GROUPS = """totals AS (
    SELECT scope_id, name, count(*) AS total FROM effective_bindings GROUP BY scope_id, name
),
binding_groups AS (
    SELECT scope_id, name, total,
        sum(total) OVER (ORDER BY scope_id, name ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - total AS earlier
    FROM totals
)"""
# (edges, slot) for every number of edges a use can get: an equi-join gives a use its slots
_SLOTS = ", ".join(f"({edges}, {slot})" for edges in range(1, MAX_CANDIDATES + 1) for slot in range(edges))

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
)

NAME_RESOLUTION = (
    col("scope_id", "string", S.SCOPE_ID, False),  # where the name is used
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
)

BINDING_RANKS = (
    col("binding_id", "string", S.ENTITY_ID, False),
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
        sql="SELECT id AS ref_id, file_id, scope_id, name, bstart FROM ex_references WHERE ref_kind = 'name'",
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
        name="name_presence", columns=NAME_PRESENCE, inputs=("ex_bindings", "ex_declarations"),
        sql="""SELECT DISTINCT b.scope_id, b.name, 'bound' AS mode FROM ex_bindings b
LEFT JOIN ex_declarations d ON d.scope_id = b.scope_id AND d.name = b.name
WHERE d.name IS NULL
UNION
SELECT DISTINCT scope_id, name, 'global' AS mode FROM ex_declarations WHERE decl_kind = 'global'""",
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
        sql="""WITH nearest AS (
    SELECT use_scope_id, name, min(depth) AS depth FROM scope_candidates GROUP BY use_scope_id, name
),
chosen AS (
    SELECT c.*, CASE WHEN c.mode = 'global' THEN m.scope_id ELSE c.scope_id END AS resolved
    FROM scope_candidates c
    JOIN nearest n ON n.use_scope_id = c.use_scope_id AND n.name = c.name AND n.depth = c.depth
    JOIN module_scopes m ON m.file_id = c.file_id
)
SELECT c.use_scope_id AS scope_id, c.name, c.resolved AS resolved_scope_id, c.depth, c.mode, p.scope_kind
FROM chosen c JOIN scope_parents p ON p.scope_id = c.resolved""",
        doc="the one scope each used (scope, name) resolves in: the nearest candidate (global: the module scope)",
    ),
    RelateSpec(
        name="resolved_uses", columns=RESOLVED_USES, left="name_uses", right="name_resolution", relation="in_scope",
        select="l.ref_id, l.file_id, l.name, l.bstart, r.resolved_scope_id AS scope_id, r.depth, r.mode, "
               "r.scope_kind",
        doc="every name use with the scope it resolves in",
    ),
    DeriveSpec(
        name="effective_bindings", columns=EFFECTIVE_BINDINGS,
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
    b.name, b.bstart, b.binding_kind, b.definition_id, b.value_call_id
FROM b JOIN module_scopes m ON m.file_id = b.file_id
LEFT JOIN nonlocal_target n ON n.id = b.id AND n.rn = 1""",
        doc="every binding with the scope it really binds in (global/nonlocal declarations applied)",
    ),
    DeriveSpec(
        name="binding_ranks", columns=BINDING_RANKS, inputs=("effective_bindings",),
        sql="""WITH """ + _BINDING_GROUPS + """,
ordered AS (
    SELECT binding_id, scope_id, name,
        CAST(row_number() OVER (ORDER BY scope_id, name, bstart, binding_id) AS BIGINT) AS position
    FROM effective_bindings
)
SELECT o.binding_id, o.scope_id, o.name, CAST(o.position - g.earlier AS BIGINT) AS rank
FROM ordered o JOIN binding_groups g ON g.scope_id = o.scope_id AND g.name = o.name""",
        doc="each binding's rank among the bindings of its name in its scope, in source order",
    ),
    DeriveSpec(
        name="use_slots", columns=USE_SLOTS, inputs=("resolved_uses", "effective_bindings"),
        sql="""WITH """ + _BINDING_GROUPS + """,
events AS (
    SELECT scope_id, name, bstart, 0 AS is_binding, ref_id, file_id, depth, mode, scope_kind FROM resolved_uses
    UNION ALL
    SELECT scope_id, name, bstart, 1, NULL, NULL, NULL, NULL, NULL FROM effective_bindings
),
counted AS (
    SELECT *, sum(is_binding) OVER (ORDER BY scope_id, name, bstart, is_binding
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS bindings_before
    FROM events
),
reach AS (
    SELECT c.ref_id, c.file_id, c.scope_id, c.name, c.depth, c.mode, c.scope_kind,
        CASE WHEN c.depth = 0 AND c.bindings_before > g.earlier THEN c.bindings_before - g.earlier
             ELSE g.total END AS candidates
    FROM counted c JOIN binding_groups g ON g.scope_id = c.scope_id AND g.name = c.name
    WHERE c.is_binding = 0
)
SELECT r.ref_id, r.file_id, r.scope_id, r.name, r.depth, r.mode, r.scope_kind, r.candidates,
    r.candidates - s.column2 AS rank
FROM reach r JOIN (VALUES """ + _SLOTS + """) s
    ON s.column1 = CASE WHEN r.candidates < """ + str(MAX_CANDIDATES) + """ THEN r.candidates
                        ELSE """ + str(MAX_CANDIDATES) + """ END""",
        doc="for every name use, the ranks of the bindings it gets an edge to: the nearest of those before "
            "it in its own scope, else of all in the scope it resolves in",
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
LEFT JOIN name_resolution r ON r.scope_id = u.scope_id AND r.name = u.name
JOIN builtin_names b ON b.name = u.name
WHERE r.scope_id IS NULL""",
        doc="name uses bound nowhere in the code's scopes that name a builtin",
    ),
]
