"""The class hierarchy's C3 MRO evaluated in memory (semantics/c3.py) gives the rows the rules of
MRO_PROGRAM give on DataFusion, and both are what Python's C3 says, checked by hand on small
hierarchies, including the ones Python rejects."""

from __future__ import annotations

import pyarrow as pa
import pytest
from datafusion import SessionContext

from semantics.c3 import linearize
from semantics.fixpoint import register_in_memory, run_fixpoint
from semantics.views.pointsto import MRO_PROGRAM

# class -> its bases, in order; a base named "ext:..." is a name outside the code base (not a CLASS)
HIERARCHY = {
    "A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"],  # a diamond
    "X": [], "Y": ["X"], "Z": ["Y"],  # a chain
    "O": [], "P": ["O"], "R": ["O"], "S": ["P", "R"], "T": ["R", "P"], "U": ["S", "T"],  # C3 rejects U
    "K": ["L"], "L": ["K"], "M": ["K"],  # a cycle, and a class above it
    "N": ["ext:Base"],  # a base outside the code base
    "Q": ["A", "A"],  # a base listed twice (a TypeError in Python)
}
EXPECTED = {
    "A": ["A"], "B": ["B", "A"], "C": ["C", "A"], "D": ["D", "B", "C", "A"],  # D.__mro__ in Python
    "X": ["X"], "Y": ["Y", "X"], "Z": ["Z", "Y", "X"],
    "O": ["O"], "P": ["P", "O"], "R": ["R", "O"], "S": ["S", "P", "R", "O"], "T": ["T", "R", "P", "O"],
    # U merges S P R O | T R P O | S T: S heads the first and is in no tail; then P is in the tail of
    # T R P O, but T is in none; then P (in R P O) and R (in P R O) both are in a tail: stuck
    "U": ["U", "S", "T"],
    "K": ["K"], "L": ["L"], "M": ["M"],  # never complete: the class alone
    "N": ["N"],
    "Q": ["Q"],  # A heads both A's MRO and the base list, whose tail holds A again: stuck at once
}


def _inputs(session: SessionContext) -> None:
    definitions = pa.table({"node_id": list(HIERARCHY), "def_kind": ["CLASS"] * len(HIERARCHY)})
    rows = [(cls, position, base) for cls, bases in HIERARCHY.items() for position, base in enumerate(bases)]
    class_bases = pa.table({
        "class_id": [row[0] for row in rows],
        "position": pa.array([row[1] for row in rows], pa.int64()),
        "target_id": [row[2] for row in rows],
        "target_kind": ["EXTERNAL_SYMBOL" if row[2].startswith("ext:") else "CLASS" for row in rows],
    })
    register_in_memory(session, "definitions", definitions)
    register_in_memory(session, "class_bases", class_bases)


def _mros(table: pa.Table) -> dict[str, list[str]]:
    ranked = sorted(zip(table.column("class_id").to_pylist(), table.column("rank").to_pylist(),
                        table.column("ancestor_id").to_pylist(), strict=True))
    mros: dict[str, list[str]] = {}
    for cls, _, ancestor in ranked:
        mros.setdefault(cls, []).append(ancestor)
    return mros


@pytest.mark.parametrize("in_memory", [True, False], ids=["in memory", "by the rules on DataFusion"])
def test_the_mro_of_each_class_is_c3(in_memory: bool) -> None:
    session = SessionContext()
    _inputs(session)
    result, run = run_fixpoint(session, MRO_PROGRAM, in_memory=in_memory)
    assert _mros(result) == EXPECTED
    assert run.converged


def test_python_agrees_where_it_accepts_the_hierarchy() -> None:
    made: dict[str, type] = {}
    for name in ("A", "B", "C", "D", "X", "Y", "Z", "O", "P", "R", "S", "T"):
        made[name] = type(name, tuple(made[base] for base in HIERARCHY[name]), {})
        assert [cls.__name__ for cls in made[name].__mro__[:-1]] == EXPECTED[name]  # without object
    with pytest.raises(TypeError):
        type("U", (made["S"], made["T"]), {})


def test_linearize_takes_rows_in_any_order() -> None:
    rows = [(cls, position, base) for cls, bases in HIERARCHY.items() for position, base in enumerate(bases)
            if not base.startswith("ext:")]
    forward = linearize(list(HIERARCHY), rows)
    backward = linearize(list(reversed(HIERARCHY)), list(reversed(rows)))
    assert sorted(forward) == sorted(backward)
