"""Large generated inputs, built end to end, with counts known by construction: a 2 MiB module
(~140k lines, ~400k nodes: per-file work superlinear in the file's size would show) and a name
rebound thousands of times in one scope. Speed is measured by tests/benchmarks/bench_large_file.py,
not asserted here.
"""

from __future__ import annotations

from pathlib import Path

from conftest import build, query
from large_file import (
    CALL_SITES_PER_UNIT,
    CALLS_EDGES_PER_UNIT,
    CLASSES_PER_UNIT,
    FUNCTIONS_PER_UNIT,
    large_module,
    units_for_bytes,
)

from semantics.views.names import MAX_CANDIDATES

SIZE = 2 * 2**20
UNITS = units_for_bytes(SIZE)


def test_a_large_module_builds_with_every_count_as_generated(tmp_path: Path) -> None:
    source = tmp_path / "src" / "big.py"
    source.parent.mkdir()
    source.write_text(large_module(UNITS))
    summary = build(source.parent, tmp_path / "out", max_file_bytes=2 * SIZE)
    assert summary.diagnostics_by_code == {}
    assert summary.nodes_by_kind["FUNCTION"] == FUNCTIONS_PER_UNIT * UNITS
    assert summary.nodes_by_kind["CLASS"] == CLASSES_PER_UNIT * UNITS
    assert summary.nodes_by_kind["CALL"] == CALL_SITES_PER_UNIT * UNITS
    assert summary.edges_by_kind["CALLS"] == CALLS_EDGES_PER_UNIT * UNITS
    resolvers = query(tmp_path / "out", "SELECT resolver, count(*) AS n FROM cpg_edges WHERE kind = 'CALLS' "
                                        "GROUP BY resolver ORDER BY resolver")
    assert resolvers == [  # every call found by the points-to analysis
        {"resolver": "calls.class_init", "n": UNITS},  # C{i}(1): its __init__
        {"resolver": "calls.points_to", "n": 3 * UNITS},  # helper_{i}(y), helper_{i}(3), c.m{i}(...)
        {"resolver": "calls.points_to.class", "n": UNITS},  # C{i}(1): the class
        {"resolver": "calls.points_to.external", "n": 2 * UNITS},  # len, str
    ]


REBINDINGS = 2_000


def test_a_name_rebound_thousands_of_times_gets_at_most_sixteen_edges_a_use(tmp_path: Path) -> None:
    """`x = x + 1` on line k + 1 reads x, bound k + 1 times before it (its own target comes first):
    all-pairs resolution made n²/2 edges; each use now gets the 16 nearest, at confidence 1/(k + 1)."""
    source = tmp_path / "src" / "rebind.py"
    source.parent.mkdir()
    source.write_text("x = 0\n" + "x = x + 1\n" * REBINDINGS)
    summary = build(source.parent, tmp_path / "out")
    assert summary.edges_by_kind["REFERENCES"] == sum(min(k + 1, MAX_CANDIDATES) for k in range(1, REBINDINGS + 1))
    last = query(tmp_path / "out", f"""
        SELECT d.line, e.confidence FROM cpg_edges e JOIN cpg_nodes s ON s.node_id = e.src
        JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE e.kind = 'REFERENCES' AND s.line = {REBINDINGS + 1} ORDER BY d.line""")
    assert [row["line"] for row in last] == list(range(REBINDINGS + 2 - MAX_CANDIDATES, REBINDINGS + 2))
    assert {row["confidence"] for row in last} == {1 / (REBINDINGS + 1)}
