"""Resolution edges on a hand-checked fixture code base: every expectation below was worked out by
reading the fixture, not by running the tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driver.api import build_driver, open_session
from driver.cli import main as cli_main


def _query(out: Path, sql: str) -> list[dict]:
    session, _ = open_session(out)
    return session.sql(sql).to_arrow_table().to_pylist()


def _edges(out: Path, kind: str) -> set[tuple]:
    rows = _query(out, f"""
        SELECT s.path, s.line, s.name AS src, coalesce(d.qualname, d.name) AS dst, d.kind AS dst_kind,
               round(e.confidence, 2) AS confidence, e.resolver
        FROM cpg_edges e JOIN cpg_nodes s ON s.node_id = e.src JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE e.kind = '{kind}'""")
    return {(r["path"], r["line"], r["src"], r["dst"], r["dst_kind"], r["confidence"], r["resolver"]) for r in rows}


def test_call_graph_is_exactly_the_hand_checked_one(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["callgraph", str(built)]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert graph == {
        "shop": [],
        "shop.base": [],
        "shop.base.Model.__init__": [],
        "shop.base.Model.save": ["shop.base.Model.validate"],
        "shop.base.Model.validate": [],
        "shop.base.Timestamped.touch": ["shop.base.Model.save"],
        # applying a decorator is a call from the scope that defines what it decorates; the unbound
        # `unknown_decorator` gets no edge
        "shop.items": ["functools.lru_cache", "shop.money.identity"],
        "shop.items.Item": ["<builtin>.classmethod", "<builtin>.range", "<builtin>.staticmethod"],
        "shop.items.Item.price": ["shop.money.to_cents"],
        "shop.items.Item.make": ["shop.base.Model.__init__"],
        "shop.items.Item.label": ["<builtin>.str"],
        "shop.items.build": ["os.path.join", "shop.base.Model.__init__", "shop.base.Timestamped.touch",
                             "shop.items.Item.price"],
        "shop.items.cached": ["shop.money.to_cents"],
        "shop.items.wrapped": ["<builtin>.len"],
        "shop.items.bump": [],
        "shop.items.outer": [],
        "shop.items.outer.inner": ["<**PyList**>.append", "<builtin>.sorted"],  # seen = [] in outer
        "shop.items.shadow": [],
        "shop.money": [],
        "shop.money.to_cents": ["math.floor"],
        "shop.money.identity": [],
    }


def test_a_small_outputs_report_reads_its_tables_into_memory_once(built: Path) -> None:
    """`hold_small_tables` (what `cpgflow callgraph` does): the tables the SQL names go into memory
    when they hold few enough rows, and stay Delta scans otherwise; the answer is the same."""
    from driver.api import hold_small_tables
    from driver.reports import CALL_GRAPH_SQL, call_graph

    def scans(session: object) -> str:
        return "\n".join(session.sql("EXPLAIN SELECT * FROM cpg_nodes, cpg_edges").to_arrow_table()  # type: ignore[attr-defined]
                         .column(1).to_pylist())

    large, _ = open_session(built, reading=CALL_GRAPH_SQL)
    rows = sum(_query(built, f"SELECT count(*) AS n FROM {name}")[0]["n"] for name in ("cpg_nodes", "cpg_edges"))
    hold_small_tables(large, CALL_GRAPH_SQL, max_rows=rows - 1)  # one row too many: stays where it is
    assert scans(large).count("DeltaScanExec") == 2
    small, _ = open_session(built, reading=CALL_GRAPH_SQL)
    hold_small_tables(small, CALL_GRAPH_SQL, max_rows=rows)
    assert "DeltaScanExec" not in scans(small)
    assert call_graph(small) == call_graph(large)


def test_calls_edges_carry_the_rule_and_confidence(built: Path) -> None:
    calls = _edges(built, "CALLS")
    items = "shop/items.py"
    # Every call here has one target by the points-to analysis: confidence 1 (1/targets).
    expected = {
        # a class call reaches the class and its inherited __init__
        (items, 27, "Item", "shop.items.Item", "CLASS", 1.0, "calls.points_to.class"),
        (items, 27, "Item", "shop.base.Model.__init__", "FUNCTION", 1.0, "calls.class_init"),
        # methods through the instance `item = Item(name)` holds, one found by inheritance
        (items, 28, "touch", "shop.base.Timestamped.touch", "FUNCTION", 1.0, "calls.points_to"),
        (items, 29, "price", "shop.items.Item.price", "FUNCTION", 1.0, "calls.points_to"),
        (items, 30, "join", "os.path.join", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        # a name imported through the package's re-export
        (items, 14, "to_cents", "shop.money.to_cents", "FUNCTION", 1.0, "calls.points_to"),
        # `cls(name)` under @classmethod: the class, and its inherited __init__
        (items, 18, "cls", "shop.items.Item", "CLASS", 1.0, "calls.points_to.class"),
        (items, 18, "cls", "shop.base.Model.__init__", "FUNCTION", 1.0, "calls.class_init"),
        (items, 22, "str", "<builtin>.str", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        (items, 11, "range", "<builtin>.range", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        # a module attribute through `from . import money`
        (items, 35, "to_cents", "shop.money.to_cents", "FUNCTION", 1.0, "calls.points_to"),
        (items, 40, "len", "<builtin>.len", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        (items, 57, "sorted", "<builtin>.sorted", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        # a method of the list `seen = []` of the enclosing function
        (items, 56, "append", "<**PyList**>.append", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        # decorator applications: edges from the DECORATOR node; `@unknown_decorator` is unbound: none
        (items, 16, "classmethod", "<builtin>.classmethod", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        (items, 20, "staticmethod", "<builtin>.staticmethod", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
        (items, 25, "same", "shop.money.identity", "FUNCTION", 1.0, "calls.points_to.decorator"),
        (items, 33, "functools.lru_cache", "functools.lru_cache", "EXTERNAL_SYMBOL", 1.0,
         "calls.points_to.external"),
        ("shop/base.py", 6, "validate", "shop.base.Model.validate", "FUNCTION", 1.0, "calls.points_to"),
        ("shop/base.py", 14, "save", "shop.base.Model.save", "FUNCTION", 1.0, "calls.points_to"),
        ("shop/money.py", 7, "floor", "math.floor", "EXTERNAL_SYMBOL", 1.0, "calls.points_to.external"),
    }
    assert calls == expected


def test_calls_to_decorated_functions_follow_what_the_decorator_returns(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('''import functools


def keep(fn):
    return fn


def swap(fn):
    return print


@keep
def a():
    pass


@swap
def b():
    pass


@functools.wraps(a)
def c():
    pass


a()
b()
c()
''')
    out = tmp_path / "out"
    build_driver(tmp_path, out, jobs=1).execute(["build_summary"])
    calls = {(line, dst, conf, resolver) for _, line, _, dst, _, conf, resolver in _edges(out, "CALLS")}
    assert (27, "m.a", 1.0, "calls.points_to") in calls  # keep returns its parameter: a is still a
    assert (28, "<builtin>.print", 1.0, "calls.points_to.external") in calls  # swap returns print: b is print
    assert not {edge for edge in calls if edge[0] == 28 and edge[1] == "m.b"}
    # what functools.wraps(a) returns hands back what it decorates: c is still c
    assert (29, "m.c", 1.0, "calls.points_to") in calls


def test_references_follow_python_scoping(built: Path) -> None:
    refs = _edges(built, "REFERENCES")
    items = [edge for edge in refs if edge[0] == "shop/items.py"]

    def uses(line: int, name: str) -> set[tuple]:
        return {(dst, conf, resolver) for _, at, src, dst, _, conf, resolver in items if at == line and src == name}

    # `global TOTAL`: the read resolves in the module scope, whose TOTAL has two bindings before it
    # (`TOTAL = 0`, and the one made under the declaration): an edge to each, confidence 1/2
    targets = _query(built, """
        SELECT d.line FROM cpg_edges e JOIN cpg_nodes s ON s.node_id = e.src JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE e.kind = 'REFERENCES' AND s.path = 'shop/items.py' AND s.line = 49 AND s.name = 'TOTAL'
        ORDER BY d.line""")
    assert [row["line"] for row in targets] == [43, 48]
    assert uses(49, "TOTAL") == {("TOTAL", 0.5, "scope.global_declaration")}
    # a closure reads the enclosing function's binding
    assert uses(56, "seen") == {("seen", 1.0, "scope.enclosing")}
    # a parameter shadows the builtin
    assert uses(63, "len") == {("len", 1.0, "scope.local")}
    # a class-body comprehension cannot see the class's `count`: the name resolves nowhere in the
    # code base and is no builtin, so it gets no edge rather than a wrong one
    assert uses(11, "count") == set()
    assert uses(11, "range") == {("<builtin>.range", 1.0, "scope.builtin")}
    # a method body does not see class attributes as bare names: `to_cents` is the module's import
    assert uses(14, "to_cents") == {("to_cents", 1.0, "scope.module")}


def test_imports_and_inheritance_resolve_across_files(built: Path) -> None:
    imports = {(path, line, src, dst, kind, conf, resolver)
               for path, line, src, dst, kind, conf, resolver in _edges(built, "IMPORTS")}
    items = "shop/items.py"
    assert imports == {
        ("shop/__init__.py", 1, "to_cents", "shop.money.to_cents", "FUNCTION", 1.0, "imports.definition"),
        ("shop/money.py", 1, "math", "math", "EXTERNAL_SYMBOL", 1.0, "imports.external"),
        (items, 1, "os.path", "os.path", "EXTERNAL_SYMBOL", 1.0, "imports.external"),
        (items, 2, "functools", "functools", "EXTERNAL_SYMBOL", 1.0, "imports.external"),
        (items, 3, "to_cents", "shop.money.to_cents", "FUNCTION", 0.9, "imports.reexport"),
        (items, 4, "Timestamped", "shop.base.Timestamped", "CLASS", 1.0, "imports.definition"),
        (items, 5, "identity", "shop.money.identity", "FUNCTION", 1.0, "imports.definition"),
        (items, 6, "money", "shop.money", "MODULE", 1.0, "imports.module"),
    }
    inherits = {(src, dst, kind, resolver) for _, _, src, dst, kind, _, resolver in _edges(built, "INHERITS_FROM")}
    assert inherits == {
        ("Timestamped", "shop.base.Model", "CLASS", "inherits.name.definition"),
        ("Item", "shop.base.Timestamped", "CLASS", "inherits.name.imports.definition"),
    }


def test_every_edge_endpoint_is_a_node_and_confidence_in_range(built: Path) -> None:
    dangling = _query(built, """
        SELECT e.kind, count(*) AS n FROM cpg_edges e
        LEFT JOIN cpg_nodes s ON s.node_id = e.src LEFT JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE s.node_id IS NULL OR d.node_id IS NULL GROUP BY e.kind""")
    assert dangling == []
    bad = _query(built, "SELECT count(*) AS n FROM cpg_edges WHERE confidence <= 0 OR confidence > 1")
    assert bad == [{"n": 0}]
    externals = _query(built, "SELECT qualname, path FROM cpg_nodes WHERE kind = 'EXTERNAL_SYMBOL' ORDER BY qualname")
    assert [row["qualname"] for row in externals] == [
        "<**PyList**>.append", "<builtin>.classmethod", "<builtin>.len", "<builtin>.range", "<builtin>.sorted",
        "<builtin>.staticmethod", "<builtin>.str", "functools", "functools.lru_cache", "math", "math.floor",
        "os.path", "os.path.join",
    ]
    assert {row["path"] for row in externals} == {"<external>"}
