"""Builds are deterministic and ids identify one row.

Two builds of the same tree — another absolute path, another number of extraction processes — hold
the same rows; every `node_id` and `edge_id` is one row. The expected edges of the two small fixtures
below were worked out by reading them, not by running the tool.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import CPG_TABLE_NAMES, STDLIB, build, query, write_tree
from datafusion import SessionContext
from deltalake import DeltaTable

from driver.api import content_fingerprint, open_session
from relspec.catalog import LOG_TABLES, DatasetCatalog

# A method and `__init__` defined in both branches of an if/else: either can be the one at run time.
SHAPES = {"shapes.py": '''import sys


class Shape:
    if sys.platform == "win32":
        def __init__(self):
            self.sides = 0

        def area(self):
            return 1
    else:
        def __init__(self):
            self.sides = 1

        def area(self):
            return 2

    def describe(self):
        return self.area()


class Square(Shape):
    pass


def main():
    shape = Shape()
    square = Square()
    first = shape.area()
    second = square.area()
    third = Shape.area(shape) + Square.area(square)
    return first + second + third
'''}

# The same edge found twice: by one rule through two bindings of `lib`, and by two rules through
# two bindings of `helper` (a direct import and a re-export).
TWICE = {
    "lib.py": '''class Base:
    def run(self):
        return 1


def helper():
    return 2
''',
    "again.py": "from lib import helper\n",
    "app.py": '''import sys

if sys.version_info >= (3,):
    import lib
else:
    import lib

try:
    from lib import helper
except ImportError:
    from again import helper


class Job(lib.Base):
    pass


lib.helper()
helper()
job = Job()
job.run()
''',
}


def _edges(out: Path, kind: str) -> set[tuple]:
    """(src line, dst qualname, dst line, confidence, resolver) of every edge of one kind."""
    rows = query(out, f"""
        SELECT s.line AS src_line, d.qualname, d.line, round(e.confidence, 3) AS confidence, e.resolver
        FROM cpg_edges e JOIN cpg_nodes s ON s.node_id = e.src JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE e.kind = '{kind}'""")
    return {tuple(row.values()) for row in rows}


def _duplicate_ids(session: SessionContext, table: str, column: str, prefix: str = "") -> int:
    rows = session.sql(f"SELECT count(*) - count(DISTINCT {column}) AS n FROM {prefix}{table}").to_pylist()
    return rows[0]["n"]


def _session_over(first: Path, second: Path) -> SessionContext:
    """One session reading both outputs: the first's tables by name, the second's prefixed `other_`."""
    session, _ = open_session(first)
    catalog = DatasetCatalog(str(second.resolve()))
    for name in CPG_TABLE_NAMES:
        session.register_table(f"other_{name}", DeltaTable(catalog.location(name)))
    return session


def _unmatched(session: SessionContext, table: str) -> dict[str, int]:
    """Rows of each build that the other lacks: a full join on every column, NULLs equal."""
    on = " AND ".join(f"(a.{c} IS NOT DISTINCT FROM b.{c})" for c in session.table(table).schema().names)
    return session.sql(f"""SELECT count(*) - count(b.present) AS only_first, count(*) - count(a.present) AS only_second
        FROM (SELECT *, 1 AS present FROM {table}) a FULL JOIN (SELECT *, 1 AS present FROM other_{table}) b
        ON {on}""").to_pylist()[0]


def _examples(session: SessionContext, table: str, other: str) -> list[dict]:
    return session.sql(f"SELECT * FROM {table} EXCEPT SELECT * FROM {other} LIMIT 3").to_pylist()


def assert_same_cpg(first: Path, second: Path) -> None:
    """Both outputs have unique node and edge ids and hold the same CPG rows (as row sets)."""
    session = _session_over(first, second)
    for prefix in ("", "other_"):
        assert _duplicate_ids(session, "cpg_nodes", "node_id", prefix) == 0, f"{prefix}cpg_nodes"
        assert _duplicate_ids(session, "cpg_edges", "edge_id", prefix) == 0, f"{prefix}cpg_edges"
    for table in CPG_TABLE_NAMES:
        unmatched = _unmatched(session, table)
        assert unmatched["only_first"] == unmatched["only_second"] == 0, (
            f"{table}: {unmatched}; only in the first build, e.g. {_examples(session, table, f'other_{table}')}; "
            f"only in the second, e.g. {_examples(session, f'other_{table}', table)}")
    # and `cpgflow fingerprint`'s content digests agree for every table of both releases
    assert _fingerprints(first) == _fingerprints(second)


def _fingerprints(out: Path) -> dict[str, str]:
    session, tables = open_session(out)
    return {table: content_fingerprint(session, table) for table in tables if table not in LOG_TABLES}


def _build_twice(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """Built once with one extraction process, once with two from a copy at another absolute path."""
    first = tmp_path / "first" / "out"
    second = tmp_path / "second" / "out"
    build(write_tree(tmp_path / "first" / "src", files), first, jobs=1)
    build(write_tree(tmp_path / "elsewhere" / "copy" / "src", files), second, jobs=2)
    return first, second


def test_a_method_defined_in_both_branches_gets_an_edge_to_each(tmp_path: Path) -> None:
    first, second = _build_twice(tmp_path, SHAPES)
    area, init, pt = "shapes.Shape.area", "shapes.Shape.__init__", "calls.points_to"
    assert _edges(first, "CALLS") == {
        # `self` holds an instance of Shape: `area` is either of two definitions, 1/2 each
        (19, area, 9, 0.5, pt), (19, area, 15, 0.5, pt),
        # a class call reaches the class, and each of its two `__init__` at 1/2
        (27, "shapes.Shape", 4, 1.0, "calls.points_to.class"),
        (27, init, 6, 0.5, "calls.class_init"), (27, init, 12, 0.5, "calls.class_init"),
        # inherited, the two `__init__` are still the nearest (both one level up): 1/2 each
        (28, "shapes.Square", 22, 1.0, "calls.points_to.class"),
        (28, init, 6, 0.5, "calls.class_init"), (28, init, 12, 0.5, "calls.class_init"),
        # `shape = Shape()`, `square = Square()`: instances, each finding the two definitions
        (29, area, 9, 0.5, pt), (29, area, 15, 0.5, pt),
        (30, area, 9, 0.5, pt), (30, area, 15, 0.5, pt),
        # through the class (its own, or inherited by Square): the same two functions, unbound
        (31, area, 9, 0.5, pt), (31, area, 15, 0.5, pt),
    }
    assert_same_cpg(first, second)


def test_an_edge_found_twice_is_one_row(tmp_path: Path) -> None:
    first, second = _build_twice(tmp_path, TWICE)
    assert _edges(first, "CALLS") == {
        # `lib` is read through two bindings, both the module: one value, one target
        (18, "lib.helper", 6, 1.0, "calls.points_to"),
        # `helper`: the direct import and the re-export through again.py hold the same function
        (19, "lib.helper", 6, 1.0, "calls.points_to"),
        # Job has no __init__ in the code base: the class alone
        (20, "app.Job", 14, 1.0, "calls.points_to.class"),
        # Job's base is lib.Base twice over: one ancestor, so `run` is its only candidate
        (21, "lib.Base.run", 2, 1.0, "calls.points_to"),
    }
    assert _edges(first, "INHERITS_FROM") == {(14, "lib.Base", 1, 0.5, "inherits.attribute.definition")}
    assert_same_cpg(first, second)


def test_stdlib_builds_agree_and_ids_are_unique(stdlib_build: Path, tmp_path: Path) -> None:
    """The stdlib fixture (real path, two processes) against a copy built elsewhere with one."""
    copy = shutil.copytree(STDLIB, tmp_path / "elsewhere" / STDLIB.name,
                           ignore=shutil.ignore_patterns("site-packages", "__pycache__"))
    out = tmp_path / "out"
    build(copy, out, jobs=1, exclude=("site-packages",))
    assert_same_cpg(stdlib_build, out)
