"""Which views are file-local, inferred from DataFusion plans and semantic types (semantics.locality).

Each case is a view's SQL over two file-owned tables (``facts``, ``scopes``: file_id of semantic type
FILE_ID; their ids name entities of the row's own file, ``fact_id`` and ``scopes.scope_id`` never NULL,
``facts.scope_id`` maybe) and a table owned by no file (``names``); the verdict is derived by hand from
what the SQL lets a file's rows depend on."""

from __future__ import annotations

import pytest

from semantics.entities import Column
from semantics.ir import EmittedView, SemanticPlan
from semantics.locality import infer_locality
from semantics.types import SemanticType as S

FILE = Column("file_id", "string", S.FILE_ID, nullable=False)
SOURCES = {
    "facts": (FILE, Column("fact_id", "string", S.ENTITY_ID, nullable=False), Column("name", "string", S.NAME),
              Column("scope_id", "string", S.SCOPE_ID), Column("bstart", "int64", S.SPAN_START)),
    "scopes": (FILE, Column("scope_id", "string", S.SCOPE_ID, nullable=False),
               Column("qualname", "string", S.QUALNAME)),
    "names": (Column("name", "string", S.NAME),),
}
OUT = (FILE, Column("name", "string", S.NAME))


def _locality(sql: str, columns: tuple[Column, ...] = OUT, before: tuple[EmittedView, ...] = ()):
    view = EmittedView("v", "derive", sql, "delta_staging", (), columns)
    return infer_locality(SemanticPlan((*before, view), ("v",)), SOURCES)["v"]


LOCAL = [
    ("a filter and a projection", "SELECT file_id, name FROM facts WHERE bstart > 3"),
    ("a join on the file identity and a scope",
     "SELECT f.file_id, s.qualname AS name FROM facts f JOIN scopes s ON f.file_id = s.file_id "
     "AND f.scope_id = s.scope_id"),
    ("a join with a table owned by no file", "SELECT f.file_id, f.name FROM facts f JOIN names n ON f.name = n.name"),
    ("an anti join on the file identity",
     "SELECT f.file_id, f.name FROM facts f WHERE NOT EXISTS "
     "(SELECT 1 FROM scopes s WHERE s.file_id = f.file_id AND s.scope_id = f.scope_id)"),
    ("a grouping by the file identity", "SELECT file_id, min(name) AS name FROM facts GROUP BY file_id, scope_id"),
    ("a window partitioned by the file identity",
     "SELECT file_id, name FROM (SELECT file_id, name, row_number() OVER (PARTITION BY file_id, scope_id "
     "ORDER BY bstart) AS n FROM facts) WHERE n = 1"),
    ("a union of owned rows", "SELECT file_id, name FROM facts UNION ALL SELECT file_id, qualname FROM scopes"),
    ("a renamed owner", "SELECT f AS file_id, name FROM (SELECT file_id AS f, name FROM facts)"),
    ("a join on ids of one file (a scope is one file's)",
     "SELECT f.file_id, s.qualname AS name FROM facts f JOIN scopes s ON f.scope_id = s.scope_id"),
    ("a join with ids read without their owner",
     "SELECT f.file_id, f.name FROM facts f JOIN (SELECT scope_id FROM scopes) s ON s.scope_id = f.scope_id"),
    ("a window partitioned by an id of one file, never NULL",
     "SELECT file_id, name FROM (SELECT file_id, name, row_number() OVER (PARTITION BY fact_id "
     "ORDER BY bstart) AS n FROM facts) WHERE n = 1"),
    ("a NOT EXISTS on an id that may be NULL (a NULL matches nothing)",
     "SELECT file_id, name FROM facts f WHERE NOT EXISTS (SELECT 1 FROM scopes s WHERE s.scope_id = f.scope_id)"),
    ("a NOT IN beside another condition (a mark join), on ids never NULL",
     "SELECT file_id, name FROM facts WHERE fact_id NOT IN (SELECT scope_id FROM scopes) OR name = 'x'"),
    ("a recursion keyed by an id at its fixpoint",
     "WITH RECURSIVE r(file_id, id, name) AS (SELECT file_id, fact_id, name FROM facts UNION ALL "
     "SELECT r.file_id, r.id, s.qualname FROM r JOIN facts f ON f.fact_id = r.id "
     "JOIN scopes s ON s.scope_id = f.scope_id WHERE r.name <> s.qualname) SELECT file_id, name FROM r"),
    ("an outer join keeping the owner of its unpadded side",
     "SELECT f.file_id, s.qualname AS name FROM facts f LEFT JOIN scopes s ON s.scope_id = f.scope_id"),
    ("a recursion within a file",
     "WITH RECURSIVE r(file_id, name, depth) AS (SELECT file_id, name, 0 FROM facts UNION ALL "
     "SELECT f.file_id, f.name, r.depth + 1 FROM r JOIN facts f ON f.file_id = r.file_id AND f.name = r.name "
     "WHERE r.depth < 2) SELECT file_id, name FROM r"),
]

GLOBAL = [
    ("a join on a qualified name",
     "SELECT f.file_id, s.file_id AS name FROM facts f JOIN scopes s ON f.name = s.qualname",
     "a join across files (f.name = s.qualname)"),
    ("a grouping without the file identity", "SELECT min(file_id) AS file_id, name FROM facts GROUP BY name",
     "an aggregate not grouped by the file identity"),
    ("a window over every file",
     "SELECT file_id, name FROM (SELECT file_id, name, row_number() OVER (PARTITION BY name ORDER BY bstart) "
     "AS n FROM facts) WHERE n = 1", "a window not partitioned by the file identity"),
    ("a limit", "SELECT file_id, name FROM facts ORDER BY bstart LIMIT 3", "a limit over rows of every file"),
    ("rows of no file beside file rows", "SELECT file_id, name FROM facts UNION ALL SELECT 'x', name FROM names",
     "a union of file rows with rows of no file"),
    ("a projection that drops the owner", "SELECT 'f' AS file_id, name FROM facts WHERE file_id <> 'a'",
     "a projection that drops the file identity"),
    ("a scan that drops the owner", "SELECT 'f' AS file_id, name FROM facts",
     "reads facts without its file identity"),
    ("a limit pushed into the scan", "SELECT file_id, name FROM facts LIMIT 3", "a limit over rows of every file"),
    ("a cross join", "SELECT f.file_id, s.file_id AS name FROM facts f CROSS JOIN scopes s",
     "a join across files (no equality)"),
    ("an id joined with an owner (different keys)",
     "SELECT f.file_id, s.qualname AS name FROM facts f JOIN scopes s ON f.scope_id = s.file_id",
     "a join across files (f.scope_id = s.file_id)"),
    ("the owner of the side an outer join pads with NULLs",  # a fact of no scope would have no file
     "SELECT s.file_id, f.name FROM facts f LEFT JOIN scopes s ON s.file_id = f.file_id AND s.scope_id = f.scope_id",
     "a projection that drops the file identity"),
    ("a window partitioned by an id that may be NULL (the NULL partition holds every file's rows)",
     "SELECT file_id, name FROM (SELECT file_id, name, count(*) OVER (PARTITION BY scope_id) AS n FROM facts) "
     "WHERE n > 1", "a window not partitioned by the file identity"),
    ("a grouping by an id that may be NULL",
     "SELECT min(file_id) AS file_id, min(name) AS name FROM facts GROUP BY scope_id",
     "an aggregate not grouped by the file identity"),
    ("a join pairing NULL ids", "SELECT f.file_id, g.name FROM facts f JOIN facts g "
     "ON f.scope_id IS NOT DISTINCT FROM g.scope_id", "a join across files (f.scope_id = g.scope_id)"),
    ("a NOT IN (one NULL on its other side drops every row)",
     "SELECT file_id, name FROM facts WHERE fact_id NOT IN (SELECT f.scope_id FROM facts f)",
     "a join across files (facts.fact_id = __correlated_sq_1.scope_id)"),
    ("a NULL tested NOT IN (kept only while the subquery, of every file, is empty)",
     "SELECT file_id, name FROM facts WHERE scope_id NOT IN (SELECT scope_id FROM scopes WHERE qualname = 'X')",
     "a join across files (facts.scope_id = __correlated_sq_1.scope_id)"),
    ("rows of no file kept by what the files hold",
     "SELECT 'f' AS file_id, n.name FROM names n WHERE EXISTS (SELECT 1 FROM facts f WHERE f.fact_id = n.name)",
     "rows of no file kept or dropped by what the files hold"),
    ("rows of no file marked by what the files hold (a mark join)",
     "SELECT 'f' AS file_id, n.name FROM names n WHERE n.name IN (SELECT fact_id FROM facts) OR n.name = 'x'",
     "rows of no file kept or dropped by what the files hold"),
    ("a recursion whose step moves a name into the id's place",
     "WITH RECURSIVE r(file_id, id, name) AS (SELECT file_id, scope_id, name FROM facts UNION ALL "
     "SELECT s.file_id, r.name, s.scope_id FROM r JOIN scopes s ON s.scope_id = r.id) SELECT file_id, name FROM r",
     "reads r without its file identity"),  # (its second step reads names where ids were)
    ("a full join", "SELECT coalesce(f.file_id, s.file_id) AS file_id, f.name FROM facts f "
     "FULL JOIN scopes s ON s.file_id = f.file_id", "an outer join padding the side of the file with NULLs"),
    ("rows of no file joined with the files' rows, kept when none match",
     "SELECT f.file_id, n.name FROM names n LEFT JOIN facts f ON f.name = n.name",
     "an outer join padding the side of the file with NULLs"),
]


@pytest.mark.parametrize(("case", "sql"), LOCAL, ids=[case for case, _ in LOCAL])
def test_file_local_views(case, sql):
    locality = _locality(sql)
    assert locality.local, (case, locality.evidence)
    assert locality.owner == "file_id"


@pytest.mark.parametrize(("case", "sql", "reason"), GLOBAL, ids=[case for case, _, _ in GLOBAL])
def test_views_across_files(case, sql, reason):
    locality = _locality(sql)
    assert not locality.local
    assert locality.owner is None
    assert reason in locality.evidence, (case, locality.evidence)


def test_locality_follows_the_views_a_view_reads():
    local = EmittedView("owned", "derive", "SELECT file_id, name FROM facts", "delta_staging", (), OUT)
    across = EmittedView("across", "derive", "SELECT f.file_id, f.name FROM facts f JOIN scopes s "
                         "ON f.name = s.qualname", "delta_staging", (), OUT)
    sql = "SELECT o.file_id, o.name FROM owned o JOIN facts f ON o.file_id = f.file_id AND o.name = f.name"
    assert _locality(sql, before=(local, across)).local
    beside = _locality("SELECT o.file_id, o.name FROM owned o JOIN across a ON o.file_id = a.file_id",
                       before=(local, across))
    assert beside.local and beside.bases == ("across",)  # local relative to the global view, by its file column
    assert beside.evidence[-1] == ("local relative to across: its rows for a file also change when their rows "
                                   "credited to that file do")


ACROSS = EmittedView("across", "derive", "SELECT f.file_id, f.fact_id AS id, s.qualname AS name FROM facts f "
                     "JOIN scopes s ON f.name = s.qualname", "delta_staging", (),
                     (FILE, Column("id", "string", S.ENTITY_ID, nullable=False), Column("name", "string", S.NAME)))


def test_a_global_view_credits_its_rows_to_the_file_in_its_file_column():
    """`across` joins two files' rows on a name: global, but each row names a file (a FILE_ID column
    that is never NULL), so its readers may read it by that file."""
    found = infer_locality(SemanticPlan((ACROSS,), ("across",)), SOURCES)["across"]
    assert not found.local and found.owner is None and found.bases == ()
    assert found.credited_to == "file_id"
    assert found.evidence[-1] == "it credits each row to a file (file_id): its readers can be local relative to it"


RELATIVE = [
    ("a filter of the global view", "SELECT file_id, name FROM across WHERE name <> 'x'"),
    ("a join with a file's rows on the file column",
     "SELECT f.file_id, a.name FROM facts f JOIN across a ON a.file_id = f.file_id AND a.name = f.name"),
    ("a grouping by the file column", "SELECT file_id, min(name) AS name FROM across GROUP BY file_id"),
    ("a union with a file's rows", "SELECT file_id, name FROM across UNION ALL SELECT file_id, name FROM facts"),
]


@pytest.mark.parametrize(("case", "sql"), RELATIVE, ids=[case for case, _ in RELATIVE])
def test_views_local_relative_to_a_global_view(case, sql):
    locality = _locality(sql, before=(ACROSS,))
    assert locality.local and locality.owner == "file_id", (case, locality.evidence)
    assert locality.bases == ("across",)


NOT_RELATIVE = [
    # the global view's ids may name entities of other files than the one its row is credited to
    ("a join on the global view's id", "SELECT a.file_id, f.name FROM facts f JOIN across a ON a.id = f.fact_id",
     "a join across files (f.fact_id = a.id)"),
    ("a join that drops the file column", "SELECT f.file_id, f.name FROM facts f JOIN across a ON a.id = f.fact_id",
     "reads across without its file identity"),
    ("a grouping by the global view's id", "SELECT min(file_id) AS file_id, id AS name FROM across GROUP BY id",
     "an aggregate not grouped by the file identity"),
    ("a join with a file's rows on a name",
     "SELECT a.file_id, f.file_id AS name FROM facts f JOIN across a ON a.name = f.name",
     "a join across files (f.name = a.name)"),
]


@pytest.mark.parametrize(("case", "sql", "reason"), NOT_RELATIVE, ids=[case for case, _, _ in NOT_RELATIVE])
def test_views_reading_a_global_view_by_other_columns_are_global(case, sql, reason):
    locality = _locality(sql, before=(ACROSS,))
    assert not locality.local and locality.bases == ()
    assert reason in locality.evidence, (case, locality.evidence)


def test_a_global_view_without_a_file_column_it_never_leaves_null_has_no_relative_readers():
    nullable = EmittedView("across", "derive", ACROSS.sql, "delta_staging", (),
                           (Column("file_id", "string", S.FILE_ID), *ACROSS.columns[1:]))
    assert infer_locality(SemanticPlan((nullable,), ("across",)), SOURCES)["across"].credited_to is None
    reader = _locality("SELECT file_id, name FROM across", before=(nullable,))
    assert not reader.local and reader.evidence[0] == "reads across, which is not file-local"


def test_bases_pass_through_local_views():
    beside = EmittedView("beside", "derive", "SELECT f.file_id, f.name FROM facts f JOIN across a "
                         "ON a.file_id = f.file_id", "delta_staging", (), OUT)
    reader = _locality("SELECT b.file_id, b.name FROM beside b JOIN facts f ON f.file_id = b.file_id",
                       before=(ACROSS, beside))
    assert reader.local and reader.bases == ("across",)


def test_a_view_of_ids_without_its_owner_is_local_to_its_readers():
    """A view that keeps a scope id but not the file is recomputed whole (nothing to replace by), and a
    view joining it on that id is still local."""
    scope_ids = EmittedView("scope_ids", "derive", "SELECT scope_id FROM scopes", "delta_staging", (),
                            (Column("scope_id", "string", S.SCOPE_ID),))
    alone = infer_locality(SemanticPlan((scope_ids,), ("scope_ids",)), SOURCES)["scope_ids"]
    assert not alone.local and alone.owner is None
    assert alone.evidence[-1] == ("it keeps ids of its rows' files, but does not output its file identity: "
                                  "maintained whole")
    reader = _locality("SELECT f.file_id, f.name FROM facts f JOIN scope_ids i ON i.scope_id = f.scope_id",
                       before=(scope_ids,))
    assert reader.local and reader.owner == "file_id"
    assert "joins on ids of one file (f.scope_id = i.scope_id)" in reader.evidence


def test_extraction_ids_name_entities_of_one_file(stdlib_build):
    """What the analysis assumes of the extraction tables (an id value is never held by rows of two
    files), checked on the standard library: every value of every id column, across all the tables."""
    from deltalake import DeltaTable

    from driver.engine import new_session
    from semantics.entities import EXTRACTION_ENTITIES
    from semantics.locality import _ID_TYPES

    session = new_session()
    pairs = []
    for entity in EXTRACTION_ENTITIES:
        owner = entity.column_of(S.FILE_ID)
        ids = [column.name for column in entity.columns if column.semantic in _ID_TYPES]
        if owner is None or not ids or not (stdlib_build / "extract" / entity.table).exists():
            continue
        session.register_table(entity.table, DeltaTable(str(stdlib_build / "extract" / entity.table)))
        pairs += [f"SELECT {column} AS id, {owner.name} AS file FROM {entity.table} WHERE {column} IS NOT NULL"
                  for column in ids]
    assert len(pairs) > 30
    found = session.sql(f"SELECT count(*) AS ids, count(*) FILTER (WHERE files > 1) AS shared FROM ("
                        f"SELECT id, count(DISTINCT file) AS files FROM ({' UNION ALL '.join(pairs)}) GROUP BY id)"
                        ).to_pylist()[0]
    assert found["ids"] > 2_000_000
    assert found["shared"] == 0


def test_the_pipelines_own_views():
    """On the real plan: the node projections of the extraction tables are file-local, the fixpoint and
    name resolution across imports are not."""
    from hamilton import driver

    import dataflows.semantic_plan
    from semantics.ir import SOURCE_COLUMNS

    plan = driver.Builder().with_modules(dataflows.semantic_plan).build().execute(["semantic_plan"])["semantic_plan"]
    found = infer_locality(plan, SOURCE_COLUMNS)
    assert found["nodes_function"].local and found["cpg_diagnostics"].local
    # bindings joined with their scopes' declarations and chains: all by ids of the binding's own file
    assert found["own_bindings"].local and found["own_bindings"].owner == "file_id"
    assert not found["value_flow_fixpoint"].local
    assert "a fixpoint program: values flow across the whole code base" in found["value_flow_fixpoint"].evidence
    # the edges of a file: its own structure, and the rows credited to it of the views resolving calls,
    # imports and bases across files, and of the star imports its names may resolve through
    assert found["cpg_edges"].local
    assert found["cpg_edges"].bases == ("call_edges", "class_bases", "import_targets", "star_bindings")
    # a file's names resolve in its own scopes (windows partitioned by file, joins on one scope and its
    # file), among its own bindings and those its star imports bring
    for view in ("binding_ranks", "name_resolution", "reference_candidates", "builtin_uses", "reference_edges"):
        assert (found[view].local, found[view].owner, found[view].bases) == (True, "file_id", ("star_bindings",))
    # a file's bindings: its own, and those its star imports bring (followed across files)
    assert found["star_bindings"].credited_to == "file_id" and not found["star_bindings"].local
    assert found["effective_bindings"].local and found["effective_bindings"].bases == ("star_bindings",)
