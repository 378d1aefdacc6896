"""The Python API: the README's notebook example, a hand-checked build, stable ids, per-file caching."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import datafusion
import pytest
from conftest import CPG_TABLE_NAMES, build, query, row_set, snapshot, table_rows, write_tree

from driver.api import build_driver, open_session
from relspec.catalog import LOG_TABLES
from semantics.ids import file_id_for

INIT = '''\
"""Package docs."""
from .mod import Class
'''

MOD = '''\
import functools


class Class:
    """A class."""

    @functools.cache
    def method(self, x, y=2):
        """A method."""
        return f(x, scale=y)


def f(a, scale=1):
    g = lambda v: v * scale
    return g(a), sorted([a], key=lambda w: -w)
'''

FIXTURE = {"pkg/__init__.py": INIT, "pkg/mod.py": MOD}

NODE_COLUMNS = ["node_id", "kind", "file_id", "path", "name", "qualname", "bstart", "bend", "line", "col",
                "end_line", "end_col"]
EDGE_COLUMNS = ["edge_id", "kind", "src", "dst", "file_id", "confidence", "resolver"]
STRUCTURAL_EDGE_KINDS = ("CONTAINS", "DEFINES", "ARGUMENT", "DOCUMENTS", "DECORATES", "PARAMETER_OF")

# Counted by hand from INIT and MOD (see the edge lists below for the details).
EXPECTED_NODES = {
    "MODULE": 2,  # pkg, pkg.mod
    "CLASS": 1,  # Class
    "FUNCTION": 4,  # method, f, <lambda1>, <lambda2>
    "PARAMETER": 7,  # self x y | a scale | v | w
    "SCOPE": 7,  # pkg, pkg.mod, Class, method, f, <lambda1>, <lambda2>
    "BINDING": 13,  # see DEFINES
    "REFERENCE": 12,  # see EXPECTED_REFERENCES
    "IMPORT": 2,  # .mod.Class, functools
    "CALL": 3,  # f(...), g(a), sorted(...)
    "ARGUMENT": 5,  # x, scale=y | a | [a], key=...
    "DOCSTRING": 3,  # package, class, method
    "DECORATOR": 1,  # functools.cache
}

M = "MODULE"
C = "CLASS"
F = "FUNCTION"
S = "SCOPE"
# (src kind, src label, dst kind, dst label); a label is the qualname, or else the node's source text.
EXPECTED_EDGES = {
    "CONTAINS": [
        (M, "pkg", "IMPORT", "pkg.mod.Class"),
        (M, "pkg", S, "pkg"),
        (M, "pkg.mod", "IMPORT", "functools"),
        (M, "pkg.mod", S, "pkg.mod"),
        (M, "pkg.mod", C, "pkg.mod.Class"),
        (M, "pkg.mod", F, "pkg.mod.f"),
        (C, "pkg.mod.Class", S, "pkg.mod.Class"),
        (C, "pkg.mod.Class", F, "pkg.mod.Class.method"),
        (F, "pkg.mod.Class.method", S, "pkg.mod.Class.method"),
        (F, "pkg.mod.Class.method", "CALL", "f(x, scale=y)"),
        (F, "pkg.mod.f", S, "pkg.mod.f"),
        (F, "pkg.mod.f", F, "pkg.mod.f.<lambda1>"),
        (F, "pkg.mod.f", F, "pkg.mod.f.<lambda2>"),
        (F, "pkg.mod.f", "CALL", "g(a)"),
        (F, "pkg.mod.f", "CALL", "sorted([a], key=lambda w: -w)"),
        (F, "pkg.mod.f.<lambda1>", S, "pkg.mod.f.<lambda1>"),
        (F, "pkg.mod.f.<lambda2>", S, "pkg.mod.f.<lambda2>"),
    ],
    "PARAMETER_OF": [
        ("PARAMETER", "self", F, "pkg.mod.Class.method"),
        ("PARAMETER", "x", F, "pkg.mod.Class.method"),
        ("PARAMETER", "y", F, "pkg.mod.Class.method"),
        ("PARAMETER", "a", F, "pkg.mod.f"),
        ("PARAMETER", "scale", F, "pkg.mod.f"),
        ("PARAMETER", "v", F, "pkg.mod.f.<lambda1>"),
        ("PARAMETER", "w", F, "pkg.mod.f.<lambda2>"),
    ],
    "DEFINES": [
        (S, "pkg", "BINDING", "Class"),
        (S, "pkg.mod", "BINDING", "functools"),
        (S, "pkg.mod", "BINDING", "Class"),
        (S, "pkg.mod", "BINDING", "f"),
        (S, "pkg.mod.Class", "BINDING", "method"),
        (S, "pkg.mod.Class.method", "BINDING", "self"),
        (S, "pkg.mod.Class.method", "BINDING", "x"),
        (S, "pkg.mod.Class.method", "BINDING", "y"),
        (S, "pkg.mod.f", "BINDING", "a"),
        (S, "pkg.mod.f", "BINDING", "scale"),
        (S, "pkg.mod.f", "BINDING", "g"),
        (S, "pkg.mod.f.<lambda1>", "BINDING", "v"),
        (S, "pkg.mod.f.<lambda2>", "BINDING", "w"),
    ],
    "ARGUMENT": [
        ("CALL", "f(x, scale=y)", "ARGUMENT", "x"),
        ("CALL", "f(x, scale=y)", "ARGUMENT", "scale=y"),
        ("CALL", "g(a)", "ARGUMENT", "a"),
        ("CALL", "sorted([a], key=lambda w: -w)", "ARGUMENT", "[a]"),
        ("CALL", "sorted([a], key=lambda w: -w)", "ARGUMENT", "key=lambda w: -w"),
    ],
    "DOCUMENTS": [
        ("DOCSTRING", '"""Package docs."""', M, "pkg"),
        ("DOCSTRING", '"""A class."""', C, "pkg.mod.Class"),
        ("DOCSTRING", '"""A method."""', F, "pkg.mod.Class.method"),
    ],
    "DECORATES": [
        ("DECORATOR", "functools.cache", F, "pkg.mod.Class.method"),
    ],
}

# (scope qualname, reference source text)
EXPECTED_REFERENCES = sorted([
    ("pkg.mod.Class", "functools"),
    ("pkg.mod.Class", "functools.cache"),
    ("pkg.mod.Class.method", "f"),
    ("pkg.mod.Class.method", "x"),
    ("pkg.mod.Class.method", "y"),
    ("pkg.mod.f.<lambda1>", "v"),
    ("pkg.mod.f.<lambda1>", "scale"),
    ("pkg.mod.f", "g"),
    ("pkg.mod.f", "a"),
    ("pkg.mod.f", "sorted"),
    ("pkg.mod.f", "a"),
    ("pkg.mod.f.<lambda2>", "w"),
])


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("driver")
    root = write_tree(base / "src", FIXTURE)
    out = base / "out"
    summary = build(root, out, jobs=1)
    return root, out, summary


def _labelled_nodes(root: Path, out: Path) -> dict[str, tuple[str, str]]:
    """node_id -> (kind, label): the qualname when there is one, else the node's source text."""
    nodes = query(out, "SELECT node_id, kind, path, qualname, bstart, bend FROM cpg_nodes")
    sources = {path: (root / path).read_bytes() for path in FIXTURE}
    return {
        n["node_id"]: (n["kind"], n["qualname"] or sources[n["path"]][n["bstart"]:n["bend"]].decode())
        for n in nodes
    }


# -- the README example ------------------------------------------------------------------------------


def test_readme_notebook_example(tmp_path):
    root = write_tree(tmp_path / "code", FIXTURE)
    out = tmp_path / "build" / "cpg"
    dr = build_driver(root, out, jobs=1)
    nodes = dr.execute(["cpg_nodes"])["cpg_nodes"]
    assert isinstance(nodes, datafusion.DataFrame)
    assert nodes.schema().names == NODE_COLUMNS
    classes = nodes.filter("kind = 'CLASS'").limit(5).to_pandas()
    assert list(classes["qualname"]) == ["pkg.mod.Class"]

    summary = dr.execute(["build_summary"])["build_summary"]
    assert summary.nodes_by_kind["CLASS"] == 1
    session, tables = open_session(out)
    assert isinstance(session, datafusion.SessionContext)
    assert {*CPG_TABLE_NAMES, "ex_files", "ex_modules", "ex_functions"} <= set(tables)
    functions = session.sql("SELECT name, qualname FROM cpg_nodes WHERE kind = 'FUNCTION' LIMIT 10")
    functions.show()
    assert sorted(functions.to_arrow_table().column("qualname").to_pylist()) == [
        "pkg.mod.Class.method", "pkg.mod.f", "pkg.mod.f.<lambda1>", "pkg.mod.f.<lambda2>"]
    if shutil.which("dot"):
        dr.display_all_functions(str(tmp_path / "pipeline.png"))
        assert (tmp_path / "pipeline.png").exists()


def test_edge_and_other_frames_have_the_documented_columns(tmp_path):
    root = write_tree(tmp_path / "code", FIXTURE)
    dr = build_driver(root, tmp_path / "out", jobs=1)
    frames = dr.execute(["cpg_edges", "cpg_props", "cpg_diagnostics"])
    assert frames["cpg_edges"].schema().names == EDGE_COLUMNS
    assert frames["cpg_props"].schema().names == ["node_id", "kind", "file_id", "key", "value_str", "value_int",
                                                   "value_bool"]
    assert frames["cpg_diagnostics"].schema().names == ["file_id", "path", "stage", "code", "message", "line"]


# -- a hand-checked build -----------------------------------------------------------------------------


def test_summary_counts(fixture_build):
    _, _, summary = fixture_build
    assert summary.files == 2
    assert summary.files_extracted == 2
    assert summary.files_reused == 0
    assert summary.files_removed == 0
    assert summary.lines == 2 + 15
    assert summary.diagnostics_by_code == {}
    assert {k: v for k, v in summary.nodes_by_kind.items() if k != "EXTERNAL_SYMBOL"} == EXPECTED_NODES
    structural = {k: v for k, v in summary.edges_by_kind.items() if k in STRUCTURAL_EDGE_KINDS}
    assert structural == {kind: len(edges) for kind, edges in EXPECTED_EDGES.items()}


@pytest.mark.parametrize("kind", list(EXPECTED_EDGES))
def test_edges_of_kind_exactly(fixture_build, kind):
    root, out, _ = fixture_build
    labels = _labelled_nodes(root, out)
    edges = query(out, f"SELECT src, dst, confidence, resolver FROM cpg_edges WHERE kind = '{kind}'")
    found = sorted((*labels[e["src"]], *labels[e["dst"]]) for e in edges)
    assert found == sorted(EXPECTED_EDGES[kind])
    assert {e["confidence"] for e in edges} == {1.0}  # structural: certain
    assert all(e["resolver"] for e in edges)


def test_references_exactly(fixture_build):
    root, out, _ = fixture_build
    raw = (root / "pkg/mod.py").read_bytes()
    refs = query(out, "SELECT s.qualname AS scope, r.bstart, r.bend FROM ex_references r "
                      "JOIN ex_scopes s ON s.id = r.scope_id")
    assert sorted((r["scope"], raw[r["bstart"]:r["bend"]].decode()) for r in refs) == EXPECTED_REFERENCES


def test_exact_rows(fixture_build):
    _, out, _ = fixture_build
    method = query(out, "SELECT kind, path, name, line, col, end_line, end_col FROM cpg_nodes "
                        "WHERE qualname = 'pkg.mod.Class.method' AND kind = 'FUNCTION'")
    assert method == [{"kind": "FUNCTION", "path": "pkg/mod.py", "name": "method", "line": 8, "col": 4,
                       "end_line": 10, "end_col": 28}]
    lambda1 = query(out, "SELECT kind, name, line, col, end_line, end_col FROM cpg_nodes "
                         "WHERE qualname = 'pkg.mod.f.<lambda1>' AND kind = 'FUNCTION'")
    assert lambda1 == [{"kind": "FUNCTION", "name": "<lambda1>", "line": 14, "col": 8, "end_line": 14,
                        "end_col": 27}]
    lambda2 = query(out, "SELECT line, col FROM cpg_nodes WHERE qualname = 'pkg.mod.f.<lambda2>' AND kind = 'FUNCTION'")
    assert lambda2 == [{"line": 15, "col": 33}]
    modules = query(out, "SELECT path, name, qualname, bstart, bend FROM cpg_nodes WHERE kind = 'MODULE' ORDER BY path")
    assert modules == [
        {"path": "pkg/__init__.py", "name": "pkg", "qualname": "pkg", "bstart": 0, "bend": len(INIT)},
        {"path": "pkg/mod.py", "name": "mod", "qualname": "pkg.mod", "bstart": 0, "bend": len(MOD)},
    ]


def _props(out: Path, where: str) -> dict[str, object]:
    rows = query(out, "SELECT p.key, p.value_str, p.value_int, p.value_bool FROM cpg_props p "
                      f"JOIN cpg_nodes n ON n.node_id = p.node_id WHERE {where}")
    props = {}
    for row in rows:
        values = [v for v in (row["value_str"], row["value_int"], row["value_bool"]) if v is not None]
        assert len(values) == 1, row
        props[row["key"]] = values[0]
    return props


def test_props(fixture_build):
    """Some hand-checked properties (other properties may exist: each check is a subset)."""
    _, out, _ = fixture_build
    expected = [
        ("n.qualname = 'pkg.mod.Class.method' AND n.kind = 'FUNCTION'", {"function_kind": "def", "is_method": True}),
        ("n.qualname = 'pkg.mod.f.<lambda1>' AND n.kind = 'FUNCTION'", {"function_kind": "lambda",
                                                                        "is_method": False}),
        ("n.kind = 'PARAMETER' AND n.name = 'y'", {"param_kind": "positional", "position": 2, "has_default": True}),
        ("n.kind = 'PARAMETER' AND n.name = 'a'", {"param_kind": "positional", "position": 0, "has_default": False}),
        ("n.kind = 'ARGUMENT' AND n.name = 'scale'", {"position": 1, "arg_kind": "keyword"}),
        ("n.kind = 'DECORATOR'", {"position": 0}),
        ("n.kind = 'MODULE' AND n.qualname = 'pkg'", {"is_package": True}),
        ("n.kind = 'MODULE' AND n.qualname = 'pkg.mod'", {"is_package": False}),
        ("n.kind = 'IMPORT' AND n.qualname = 'pkg.mod.Class'", {"from_module": ".mod", "level": 1}),
        ("n.kind = 'DOCSTRING' AND n.path = 'pkg/__init__.py'", {"text": "Package docs."}),
    ]
    for where, props in expected:
        found = _props(out, where)
        assert found.items() >= props.items(), (where, found)
    assert "asname" not in _props(out, "n.kind = 'IMPORT' AND n.qualname = 'pkg.mod.Class'")  # NULL: no row


def test_edges_point_at_nodes_and_ids_are_unique(fixture_build):
    _, out, _ = fixture_build
    dangling = query(out, "SELECT e.kind, e.src, e.dst FROM cpg_edges e "
                          "WHERE e.src NOT IN (SELECT node_id FROM cpg_nodes) "
                          "OR e.dst NOT IN (SELECT node_id FROM cpg_nodes)")
    assert dangling == []
    assert query(out, "SELECT count(*) AS n FROM cpg_nodes WHERE kind <> 'EXTERNAL_SYMBOL'") == [{"n": 60}]
    assert query(out, "SELECT count(*) - count(DISTINCT node_id) AS dup FROM cpg_nodes") == [{"dup": 0}]
    structural = ", ".join(f"'{kind}'" for kind in STRUCTURAL_EDGE_KINDS)
    assert query(out, f"SELECT count(*) AS n FROM cpg_edges WHERE kind IN ({structural})") == [{"n": 46}]
    assert query(out, "SELECT count(*) - count(DISTINCT edge_id) AS dup FROM cpg_edges") == [{"dup": 0}]
    props_dangling = query(out, "SELECT count(*) AS n FROM cpg_props WHERE node_id NOT IN "
                                "(SELECT node_id FROM cpg_nodes)")
    assert props_dangling == [{"n": 0}]
    id_shape = re.compile(r"^[a-z]+:[0-9a-f]{32}$")
    for table, column in (("cpg_nodes", "node_id"), ("cpg_edges", "edge_id")):
        assert all(id_shape.match(row[column]) for row in query(out, f"SELECT {column} FROM {table}"))


def test_every_row_has_a_file_id(fixture_build):
    _, out, _ = fixture_build
    _, tables = open_session(out)
    fact_tables = [table for table in tables if table not in LOG_TABLES]  # they record runs, not facts
    assert len(fact_tables) == len(tables) - len(LOG_TABLES)
    for table in fact_tables:
        assert query(out, f"SELECT count(*) AS n FROM {table} WHERE file_id IS NULL OR file_id = ''") == [{"n": 0}]
    # every row of the code base's own files is owned by a file of ex_files (EXTERNAL_SYMBOL nodes stand
    # outside the code base and may carry a file id of their own)
    file_ids = {row["file_id"] for row in query(out, "SELECT file_id FROM ex_files")}
    for table in CPG_TABLE_NAMES:
        where = "WHERE kind <> 'EXTERNAL_SYMBOL'" if table in ("cpg_nodes", "cpg_props") else ""
        owners = {row["file_id"] for row in query(out, f"SELECT DISTINCT file_id FROM {table} {where}")}
        assert owners <= file_ids, table


def test_ids_identical_across_builds_into_different_dirs(fixture_build, tmp_path):
    root, out, _ = fixture_build
    other = tmp_path / "elsewhere" / "out"
    build(root, other, jobs=1)
    for table in CPG_TABLE_NAMES:
        assert row_set(table_rows(other, table)) == row_set(table_rows(out, table)), table


def test_ids_identical_for_a_copy_of_the_code_base(fixture_build, tmp_path):
    """Ids hash the repo-relative path: the same code base elsewhere on disk has the same ids."""
    _, out, _ = fixture_build
    copy = write_tree(tmp_path / "another" / "checkout", FIXTURE)
    build(copy, tmp_path / "out", jobs=1)
    for table in CPG_TABLE_NAMES:
        assert row_set(table_rows(tmp_path / "out", table)) == row_set(table_rows(out, table)), table


def test_two_worker_processes_build_the_same_tables(tmp_path):
    many = {f"pkg/m{i}.py": MOD for i in range(6)}
    big_root = write_tree(tmp_path / "src", {**FIXTURE, **many})
    summary_1 = build(big_root, tmp_path / "one", jobs=1)
    summary_2 = build(big_root, tmp_path / "two", jobs=2)
    assert summary_2.nodes_by_kind == summary_1.nodes_by_kind
    assert summary_2.files_extracted == 8
    for table in CPG_TABLE_NAMES:
        assert row_set(table_rows(tmp_path / "two", table)) == row_set(table_rows(tmp_path / "one", table)), table


# -- per-file caching ----------------------------------------------------------------------------------

UTIL_V1 = "def helper():\n    return 1\n"
UTIL_V2 = "def helper():\n    return 1\n\n\ndef added(z):\n    return z\n"
CACHE_V1 = {**FIXTURE, "pkg/util.py": UTIL_V1, "other.py": "X = 1\n"}


def _all_tables(out: Path) -> dict[str, set[tuple]]:
    return snapshot(out)


def _node_ids_by_path(out: Path) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for row in query(out, "SELECT path, node_id FROM cpg_nodes"):
        ids.setdefault(row["path"], set()).add(row["node_id"])
    return ids


def test_per_file_caching(tmp_path):
    root = write_tree(tmp_path / "src", CACHE_V1)
    out = tmp_path / "out"
    first = build(root, out)
    assert (first.files, first.files_extracted, first.files_reused, first.files_removed) == (4, 4, 0, 0)
    after_first = _all_tables(out)
    ids_first = _node_ids_by_path(out)
    after_first_files = query(out, "SELECT file_id FROM ex_files")

    # same content (even rewritten with a new mtime): nothing is extracted again
    (root / "pkg/mod.py").write_text(MOD)
    second = build(root, out)
    assert (second.files, second.files_extracted, second.files_reused, second.files_removed) == (4, 0, 4, 0)
    assert second.nodes_by_kind == first.nodes_by_kind
    assert second.edges_by_kind == first.edges_by_kind
    assert _all_tables(out) == after_first

    # modify one file, delete another
    (root / "pkg/util.py").write_text(UTIL_V2)
    (root / "other.py").unlink()
    third = build(root, out)
    assert (third.files, third.files_extracted, third.files_reused, third.files_removed) == (3, 1, 2, 1)

    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _all_tables(out) == _all_tables(fresh)

    ids_third = _node_ids_by_path(out)
    assert "other.py" not in ids_third
    other_file_id = file_id_for("other.py")
    assert other_file_id in {row["file_id"] for row in after_first_files}
    session, tables = open_session(out)
    for table in (table for table in tables if table not in LOG_TABLES):
        gone = session.sql(f"SELECT count(*) AS n FROM {table} WHERE file_id = '{other_file_id}'")
        assert gone.to_arrow_table().to_pylist() == [{"n": 0}], table
    assert ids_third["pkg/__init__.py"] == ids_first["pkg/__init__.py"]
    assert ids_third["pkg/mod.py"] == ids_first["pkg/mod.py"]
    added = query(out, "SELECT path, kind FROM cpg_nodes WHERE qualname = 'pkg.util.added' AND kind <> 'SCOPE'")
    assert added == [{"path": "pkg/util.py", "kind": "FUNCTION"}]
    helper = query(out, "SELECT count(*) AS n FROM cpg_nodes WHERE qualname = 'pkg.util.helper' AND kind = 'FUNCTION'")
    assert helper == [{"n": 1}]


def test_fixed_file_loses_its_diagnostic(tmp_path):
    root = write_tree(tmp_path / "src", {"a.py": "def broken(:\n", "b.py": "B = 1\n"})
    out = tmp_path / "out"
    first = build(root, out)
    assert first.diagnostics_by_code == {"syntax_error": 1}
    (root / "a.py").write_text("def fixed():\n    pass\n")
    second = build(root, out)
    assert (second.files_extracted, second.files_reused) == (1, 1)
    assert second.diagnostics_by_code == {}
    assert query(out, "SELECT count(*) AS n FROM cpg_diagnostics") == [{"n": 0}]
    assert query(out, "SELECT qualname FROM cpg_nodes WHERE kind = 'FUNCTION'") == [{"qualname": "a.fixed"}]


# -- the Python API refuses what the CLI refuses, before anything is written ----------------------------------


@pytest.mark.parametrize(("option", "value", "fragment"), [
    ("cache_overrides", {"call_edges": "memory"}, "the policy must be one of"),
    ("cache_overrides", {"nosuchview": "none"}, "no view is named 'nosuchview'"),
    ("cache_overrides", {"cpg_nodes": "none"}, "published output"),
    ("cache_overrides", {"call_edges": "delta_output"}, "only the outputs"),
    ("validation_mode", "strict", "must be one of warn, error"),
    ("jobs", -1, "up to 1024"),
    ("jobs", 99999999999999999999, "up to 1024"),
    ("jobs", True, "up to 1024"),
    ("max_file_bytes", 0, "positive"),
    ("include", "pkg/*.py", "a list of non-empty glob strings"),
    ("exclude", [""], "a list of non-empty glob strings"),
])
def test_build_driver_refuses_a_bad_option(option, value, fragment, tmp_path):
    from driver.options import BuildOptionError

    root = write_tree(tmp_path / "src", {"m.py": "x = 1\n"})
    out = tmp_path / "out"
    with pytest.raises(BuildOptionError, match=re.escape(fragment)) as raised:
        build_driver(root, out, **{option: value})
    assert raised.value.option == option
    assert not out.exists()


@pytest.mark.parametrize(("source", "output", "option"), [
    ("missing", "out", "source_root"), ("", "out", "source_root"), ("src", "", "output_dir"),
    ("src", "   ", "output_dir"),
])
def test_build_driver_refuses_bad_folders(source, output, option, tmp_path, monkeypatch):
    from driver.options import BuildOptionError

    monkeypatch.chdir(tmp_path)
    write_tree(tmp_path / "src", {"m.py": "x = 1\n"})
    with pytest.raises(BuildOptionError) as raised:
        build_driver(source, output)
    assert raised.value.option == option
    assert sorted(path.name for path in tmp_path.iterdir()) == ["src"]


# -- data flows through Hamilton -------------------------------------------------------------------------

# Two classes, one inheriting from the other: the build's one INHERITS_FROM edge.
INHERITANCE = {"inh.py": "class Base:\n    pass\n\n\nclass Child(Base):\n    pass\n"}


def _edge_kinds(frame: datafusion.DataFrame) -> list[str]:
    return sorted(frame.to_arrow_table().column("kind").to_pylist())


def test_an_overridden_view_is_what_its_readers_read(tmp_path):
    root = write_tree(tmp_path / "code", INHERITANCE)
    out = tmp_path / "out"
    dr = build_driver(root, out, jobs=1)
    built = dr.execute(["cpg_edges", "inherits_edges"])
    assert _edge_kinds(built["cpg_edges"]).count("INHERITS_FROM") == 1
    empty = datafusion.SessionContext().from_arrow(built["inherits_edges"].to_arrow_table().slice(0, 0))
    overridden = dr.execute(["cpg_edges"], overrides={"inherits_edges": empty})["cpg_edges"]
    assert "INHERITS_FROM" not in _edge_kinds(overridden)  # read through resolved_edges and all_edges
    assert _edge_kinds(overridden) == [k for k in _edge_kinds(built["cpg_edges"]) if k != "INHERITS_FROM"]


def test_a_build_from_an_override_is_not_reused_by_the_next(tmp_path):
    """Staged and published results computed from an override carry a fingerprint of their own: the
    next plain build recomputes them instead of reusing what the override made."""
    root = write_tree(tmp_path / "code", INHERITANCE)
    out = tmp_path / "out"
    dr = build_driver(root, out, jobs=1)
    inherits = dr.execute(["inherits_edges"])["inherits_edges"].to_arrow_table()
    empty = datafusion.SessionContext().from_arrow(inherits.slice(0, 0))
    dr.execute(["build_summary"], overrides={"inherits_edges": empty})
    inheriting = "SELECT count(*) AS n FROM cpg_edges WHERE kind = 'INHERITS_FROM'"
    assert query(out, inheriting) == [{"n": 0}]
    build_driver(root, out, jobs=1).execute(["build_summary"])
    assert query(out, inheriting) == [{"n": 1}]
