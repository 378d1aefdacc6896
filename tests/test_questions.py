"""driver.questions, through the API and the CLI, on the app fixture program (tests/app_fixture.py),
whose calls, imports, classes and values are worked out there by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

from driver.api import (
    callees_of,
    callers_of,
    import_graph,
    open_session,
    points_to,
    subclasses_of,
    unused_functions,
)

CLEAN, REPORT = "app.core.clean", "app.main.report"


@pytest.fixture(scope="module")
def session(app_built: Path):
    return open_session(app_built)[0]


def rows(table) -> list[tuple]:
    return [tuple(row.values()) for row in table.to_pylist()]


def test_callers_to_a_depth(session) -> None:
    """clean is called by normalize and Shape.describe; they by load and report; report by main and
    run. report also reaches clean through load (depth 3), but is reported at its smallest depth."""
    assert rows(callers_of(session, CLEAN, depth=3)) == [
        (1, "app.core.normalize", CLEAN, "FUNCTION", "app/core.py", 10, 1.0),
        (1, "app.shapes.Shape.describe", CLEAN, "FUNCTION", "app/shapes.py", 9, 1.0),
        (2, "app.core.load", "app.core.normalize", "FUNCTION", "app/core.py", 18, 1.0),
        (2, REPORT, "app.shapes.Shape.describe", "FUNCTION", "app/main.py", 7, 1.0),
        (3, "app.__main__.run", REPORT, "FUNCTION", "app/__main__.py", 5, 1.0),
        (3, "app.main.main", REPORT, "FUNCTION", "app/main.py", 11, 1.0),
    ]
    assert callers_of(session, CLEAN).column_names == ["depth", "caller", "callee", "kind", "path", "line",
                                                       "confidence"]
    assert rows(callers_of(session, CLEAN)) == rows(callers_of(session, CLEAN, depth=3))[:2]


def test_callers_reach_module_code_and_stop_there(session) -> None:
    """main is called by the module app.main's own code; nothing calls a module."""
    assert rows(callers_of(session, "app.main.main", depth=5)) == [
        (1, "app.main", "app.main.main", "MODULE", "app/main.py", 15, 1.0),
    ]


def test_callers_of_a_class_external_and_recursive_function(session) -> None:
    assert rows(callers_of(session, "app.shapes.Cube")) == [
        (1, "app.shapes.make", "app.shapes.Cube", "FUNCTION", "app/shapes.py", 29, 1.0)]
    assert rows(callers_of(session, "<builtin>.len")) == [
        (1, REPORT, "<builtin>.len", "FUNCTION", "app/main.py", 6, 1.0)]
    assert rows(callers_of(session, "app.core.countdown", depth=4)) == [
        (1, "app.core.countdown", "app.core.countdown", "FUNCTION", "app/core.py", 22, 1.0)]


def test_callees_to_a_depth(session) -> None:
    """report's calls, then theirs: the walk goes on through functions, not through the class Cube or
    external names; describe's self is a Cube (the only class the program instantiates): Square.area."""
    assert rows(callees_of(session, REPORT, depth=2)) == [
        (1, REPORT, "<builtin>.len", "EXTERNAL_SYMBOL", "app/main.py", 6, 1.0),
        (1, REPORT, "app.core.load", "FUNCTION", "app/main.py", 6, 1.0),
        (1, REPORT, "app.shapes.Shape.describe", "FUNCTION", "app/main.py", 7, 1.0),
        (1, REPORT, "app.shapes.make", "FUNCTION", "app/main.py", 6, 1.0),
        (2, "app.core.load", "app.core.normalize", "FUNCTION", "app/core.py", 18, 1.0),
        (2, "app.core.load", "app.core.parse", "FUNCTION", "app/core.py", 18, 1.0),
        (2, "app.shapes.Shape.describe", "<builtin>.str", "EXTERNAL_SYMBOL", "app/shapes.py", 9, 1.0),
        (2, "app.shapes.Shape.describe", CLEAN, "FUNCTION", "app/shapes.py", 9, 1.0),
        (2, "app.shapes.Shape.describe", "app.shapes.Square.area", "FUNCTION", "app/shapes.py", 9, 1.0),
        (2, "app.shapes.make", "app.shapes.Cube", "CLASS", "app/shapes.py", 29, 1.0),
        (2, "app.shapes.make", "app.shapes.Square.__init__", "FUNCTION", "app/shapes.py", 29, 1.0),
    ]


def test_callees_of_module_code(session) -> None:
    """The module app.main calls main; main calls print and report; the rest is report's (depth 3)."""
    callees = callees_of(session, "app.main", depth=3).to_pylist()
    assert [(row["depth"], row["callee"]) for row in callees if row["depth"] < 3] == [
        (1, "app.main.main"), (2, "<builtin>.print"), (2, REPORT)]
    assert {row["caller"] for row in callees if row["depth"] == 3} == {REPORT}


def test_direct_callers_agree_with_the_call_graph(session, app_built: Path) -> None:
    """Depth-1 callers of every function are the callers `cpgflow callgraph` lists it under."""
    done = run_cli("callgraph", app_built)
    assert done.returncode == 0, done.stderr
    graph = json.loads(done.stdout)
    functions = session.sql("SELECT DISTINCT qualname FROM cpg_nodes WHERE kind = 'FUNCTION'").to_arrow_table()
    for function in functions.column("qualname").to_pylist():
        expected = {caller for caller, callees in graph.items() if function in callees}
        assert set(callers_of(session, function).column("caller").to_pylist()) == expected, function


def test_unused_functions(session) -> None:
    """unused_helper, Cube.volume and probe are never called or referenced; countdown only calls
    itself; run is in a __main__ module (flagged), __repr__ is the language's (flagged). make is used
    (handler = make); Shape.area is never called (describe's self is a Cube, whose area is Square's); the
    lambda FIRST is left out."""
    assert rows(unused_functions(session)) == [
        ("app.__main__.run", "app/__main__.py", 4, "entry_point"),
        ("app.core.countdown", "app/core.py", 21, None),
        ("app.core.unused_helper", "app/core.py", 25, None),
        ("app.r&d.probe", "app/r&d.py", 1, None),
        ("app.shapes.Cube.volume", "app/shapes.py", 24, None),
        ("app.shapes.Shape.__repr__", "app/shapes.py", 11, "dunder"),
        ("app.shapes.Shape.area", "app/shapes.py", 5, None),
    ]


def test_import_graph(session) -> None:
    expected = [
        ("app.__main__", "app.main", True),
        ("app.core", "collections", False),
        ("app.core", "json", False),
        ("app.main", "app.core", True),  # from app import core: core is a module of the code base
        ("app.main", "app.shapes", True),
        ("app.shapes", "app.core", True),
    ]
    assert rows(import_graph(session)) == expected
    assert rows(import_graph(session, "app")) == expected
    assert rows(import_graph(session, "app.main")) == expected[3:5]


def test_subclasses(session) -> None:
    assert rows(subclasses_of(session, "app.shapes.Shape")) == [
        ("app.shapes.Square", 1, "app/shapes.py", 15), ("app.shapes.Cube", 2, "app/shapes.py", 23),
        ("app.shapes.Tesseract", 3, "app/shapes.py", 35)]
    assert rows(subclasses_of(session, "app.shapes.Tesseract")) == []


def test_points_to(session) -> None:
    assert rows(points_to(session, "app.shapes.handler")) == [
        ("app/shapes.py", 32, "FUNCTION", "app.shapes.make", 1.0)]
    assert rows(points_to(session, "app.main.report.shape")) == [
        ("app/main.py", 6, "INSTANCE", "app.shapes.Cube", 1.0)]


@pytest.mark.parametrize(("ask", "message"), [
    (lambda s: callers_of(s, "app.core.nope"), "no function named 'app.core.nope' in the graph"),
    (lambda s: callees_of(s, "nope"), "no function named 'nope' in the graph"),
    (lambda s: callers_of(s, "app.core"), "'app.core' is not a function"),
    (lambda s: callers_of(s, CLEAN, depth=0), "depth must be a whole number of at least 1, not 0"),
    (lambda s: subclasses_of(s, CLEAN), f"'{CLEAN}' is not a class"),
    (lambda s: subclasses_of(s, "app.Nope"), "no class named 'app.Nope' in the graph"),
    (lambda s: import_graph(s, "ap"), "no module named 'ap' in the graph"),
    (lambda s: points_to(s, "app.main.report.nope"), "no variable named 'app.main.report.nope' in the graph"),
    (lambda s: points_to(s, "nope"), "no variable named 'nope' in the graph"),
])
def test_unknown_names_are_value_errors(session, ask, message) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        ask(session)


def test_the_graph_questions_read_only_the_tables_the_cli_opens_for_them() -> None:
    """`cpgflow callers` and the rest open only `GRAPH_TABLES`: every query of the graph questions
    names no other table of an output (the decisions' queries are `cpgflow why`'s)."""
    from driver import questions
    from relspec.catalog import DatasetCatalog
    from semantics.fixpoint import reads_table

    tables = DatasetCatalog("/nowhere").names()
    queries = {name: sql for name, sql in vars(questions).items() if name.endswith("_SQL")
               and name not in ("DECISIONS_SQL", "LATEST_EXPLAINED_RUN_SQL")}
    assert {"HOPS_SQL", "UNUSED_SQL", "IMPORTS_SQL", "POINTS_TO_SQL"} <= queries.keys()
    for name, sql in queries.items():
        assert {table for table in tables if reads_table(sql, table)} <= set(questions.GRAPH_TABLES), name


# -- the CLI ------------------------------------------------------------------------------------------


def test_cli_answers_as_the_api(session, app_built: Path) -> None:
    for args, table in [(["callers", app_built, CLEAN, "--depth", "3"], callers_of(session, CLEAN, 3)),
                        (["callees", app_built, REPORT, "-d", "2"], callees_of(session, REPORT, 2)),
                        (["unused", app_built], unused_functions(session)),
                        (["imports", app_built, "app.main"], import_graph(session, "app.main")),
                        (["subclasses", app_built, "app.shapes.Shape"], subclasses_of(session, "app.shapes.Shape")),
                        (["points-to", app_built, "app.shapes.handler"], points_to(session, "app.shapes.handler"))]:
        done = run_cli(*args, "--format", "json")
        assert (done.returncode, done.stderr) == (0, ""), args
        assert json.loads(done.stdout) == table.to_pylist(), args


def test_cli_table_output(app_built: Path) -> None:
    done = run_cli("subclasses", app_built, "app.shapes.Shape")
    assert done.returncode == 0, done.stderr
    assert "app.shapes.Tesseract" in done.stdout and "3 rows" in done.stdout


@pytest.mark.parametrize(("args", "message", "status"), [
    (["callers", "{out}", "app.nope"], "error: no function named 'app.nope' in the graph", 1),
    (["callees", "{out}", "json.loads"], "error: 'json.loads' is not a function", 1),
    (["callers", "{missing}", CLEAN], "is not a directory", 1),
    (["callers", "{out}", CLEAN, "--depth", "0"], "'--depth'", 2),
    (["points-to", "{out}", "x"], "error: no variable named 'x' in the graph", 1),
    (["imports", "{out}", "nope"], "error: no module named 'nope' in the graph", 1),
])
def test_cli_errors_are_one_line(app_built: Path, tmp_path: Path, args, message, status) -> None:
    done = run_cli(*(arg.format(out=app_built, missing=tmp_path / "missing") for arg in args))
    assert done.returncode == status
    assert_one_line_error(done.stderr)
    assert message in done.stderr


def test_a_recursive_query_through_the_cli_follows_the_whole_hierarchy(app_built: Path) -> None:
    """Shape <- Square <- Cube <- Tesseract: a recursive query re-reads cpg_edges at every step (a
    plain Delta scan would give its rows to the first step only and stop at Square)."""
    sql = """WITH RECURSIVE below(node_id, depth) AS (
        SELECT node_id, 0 FROM cpg_nodes WHERE qualname = 'app.shapes.Shape' AND kind = 'CLASS'
        UNION ALL
        SELECT e.src, b.depth + 1 FROM below b JOIN cpg_edges e ON e.dst = b.node_id AND e.kind = 'INHERITS_FROM'
    )
    SELECT n.qualname, b.depth FROM below b JOIN cpg_nodes n ON n.node_id = b.node_id ORDER BY b.depth"""
    done = run_cli("query", app_built, sql, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"qualname": "app.shapes.Shape", "depth": 0}, {"qualname": "app.shapes.Square", "depth": 1},
        {"qualname": "app.shapes.Cube", "depth": 2}, {"qualname": "app.shapes.Tesseract", "depth": 3}]
