"""One large generated module, built end to end: every function and call resolved as constructed.

Big enough (2 MiB, ~140k lines, ~400k nodes) that per-file work superlinear in the file's size would
show; speed itself is measured by tests/benchmarks/bench_large_file.py, not asserted here.
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
