"""The call-graph fixture suite (tests/callgraph_fixtures/<flow>/<case>/): small executable programs,
each with its expected call graph written by hand in the interchange format (DESIGN.md section 4,
`cpgflow callgraph`), from Python's semantics.

- `test_expected_graph_is_well_formed`: every module and function of the fixture is a key, lists are
  sorted, a code-base callee is one of the fixture's functions;
- `test_expected_graph_covers_execution`: every call observed by running the program
  (tests/callgraph_trace.py) is in the expected graph (an executed call missing from it is a mistake
  in the expectation);
- `test_callgraph_matches`: `cpgflow callgraph` of the fixture equals the expected graph exactly.
  Cases that do not match yet are listed in PENDING (strict xfail: a case that starts to pass fails
  the suite until it is taken out of PENDING).

Single-file fixtures are built together, in one cpgflow build, each under its own top-level folder
(`<flow>__<case>/main.py`, so module `main` is `<flow>__<case>.main` there: the expected names get
the same prefix here, not in the JSON files); fixtures with several modules import each other by
absolute name and are built one by one. CPGFLOW_FIXTURES_SEPARATE=1 builds every fixture on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from callgraph_trace import FixtureIndex
from conftest import run_cli

FIXTURES = Path(__file__).resolve().parent / "callgraph_fixtures"
TRACER = Path(__file__).resolve().parent / "callgraph_trace.py"
CASES = sorted(f"{path.parent.parent.name}/{path.parent.name}" for path in FIXTURES.glob("*/*/callgraph.json"))

# Cases whose `cpgflow callgraph` does not match yet, and why.
PENDING: dict[str, str] = {}

# Calls that happen when the program runs but that the convention leaves out, because the callee is
# not knowable statically (DESIGN.md section 4: "where a value cannot be known ... there is no edge").
DYNAMIC: dict[str, set[tuple[str, str]]] = {
    "negatives/getattr_computed": {("main.run", "main.Robot.walk")},  # getattr(robot, "wa" + suffix)
}


def _expected(case: str) -> dict[str, list[str]]:
    return json.loads((FIXTURES / case / "callgraph.json").read_text())


def _index(case: str) -> FixtureIndex:
    return FixtureIndex(FIXTURES / case)


def _in_code_base(name: str, modules: set[str]) -> bool:
    return any(name == module or name.startswith(module + ".") for module in modules)


def _edges(graph: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {(caller, callee) for caller, callees in graph.items() for callee in callees}


# -- the expectations themselves ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_expected_graph_is_well_formed(case: str) -> None:
    graph = _expected(case)
    index = _index(case)
    modules, functions = index.module_names, index.functions
    assert "main" in modules, "a fixture runs main.py"
    missing = (modules | functions) - set(graph)
    assert not missing, f"every module and function is a key: {sorted(missing)}"
    # a class is a key only for the calls its body makes (decorators of methods included)
    strays = {key for key in graph if key not in modules | functions and not (key in index.classes and graph[key])}
    assert not strays, f"keys that are no module or function of the fixture: {sorted(strays)}"
    for caller, callees in graph.items():
        assert callees == sorted(set(callees)), f"{caller}: callees sorted, without repeats"
        for callee in callees:
            if _in_code_base(callee, modules):
                assert callee in functions, f"{caller} -> {callee}: a code-base callee is a function of the fixture"
            else:
                assert callee.startswith(("<builtin>.", "<**Py")) or "." in callee, f"{caller} -> {callee}"


@pytest.mark.parametrize("case", CASES)
def test_expected_graph_covers_execution(case: str) -> None:
    run = subprocess.run([sys.executable, "-I", "-S", "-B", str(TRACER), str(FIXTURES / case)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    traced = json.loads(run.stdout)
    assert traced["unmatched"] == [], "the tracer could not name code objects of the fixture"
    observed = {tuple(edge) for edge in traced["edges"]}
    dynamic = DYNAMIC.get(case, set())
    assert dynamic <= observed, "a DYNAMIC edge that the run does not make: stale entry"
    expected = _edges(_expected(case))
    assert not dynamic & expected, "an edge both DYNAMIC and expected"
    assert sorted(observed - dynamic - expected) == [], "calls made at run time but missing from callgraph.json"


# -- cpgflow ------------------------------------------------------------------------------------------------


def _prefix(case: str) -> str:
    return case.replace("/", "__")


def _single_file(case: str) -> bool:
    return [path.name for path in (FIXTURES / case).rglob("*.py")] == ["main.py"]


def _copy_sources(case: str, target: Path) -> None:
    for path in (FIXTURES / case).rglob("*.py"):
        destination = target / path.relative_to(FIXTURES / case)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def _build_and_export(src: Path, out: Path) -> dict[str, list[str]] | str:
    """`cpgflow build` then `cpgflow callgraph`, through the console script: the graph, or what failed."""
    built = run_cli("build", src, "--out", out, "-j", "1", "--quiet")
    if built.returncode != 0:
        return f"cpgflow build {src} failed:\n{built.stderr}"
    exported = run_cli("callgraph", out)
    if exported.returncode != 0:
        return f"cpgflow callgraph {out} failed:\n{exported.stderr}"
    return json.loads(exported.stdout)


@pytest.fixture(scope="module")
def cpgflow_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, list[str]] | str, bool]]:
    """{case: (its `cpgflow callgraph` under the names of the build, or what failed; built combined?)}."""
    base = tmp_path_factory.mktemp("callgraph_fixtures")
    separate = os.environ.get("CPGFLOW_FIXTURES_SEPARATE") == "1"
    combined = set() if separate else {case for case in CASES if _single_file(case)}
    jobs: dict[str, tuple[Path, Path]] = {}
    for case in sorted(combined):
        _copy_sources(case, base / "combined" / "src" / _prefix(case))
    if combined:
        jobs["<combined>"] = (base / "combined" / "src", base / "combined" / "out")
    for case in CASES:
        if case not in combined:
            _copy_sources(case, base / _prefix(case) / "src")
            jobs[case] = (base / _prefix(case) / "src", base / _prefix(case) / "out")
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = dict(zip(jobs, pool.map(lambda paths: _build_and_export(*paths), jobs.values()), strict=True))
    graphs: dict[str, tuple[dict[str, list[str]] | str, bool]] = {}
    for case in CASES:
        if case in combined:
            graph, start = results["<combined>"], _prefix(case) + "."
            if not isinstance(graph, str):
                graph = {key: callees for key, callees in graph.items() if key.startswith(start)}
            graphs[case] = (graph, True)
        else:
            graphs[case] = (results[case], False)
    return graphs


def _as_built(case: str, graph: dict[str, list[str]], combined: bool) -> dict[str, list[str]]:
    """The expected graph under the names the fixture's code gets in the build."""
    if not combined:
        return graph
    modules = _index(case).module_names

    def name(qualname: str) -> str:
        return f"{_prefix(case)}.{qualname}" if _in_code_base(qualname, modules) else qualname

    return {name(caller): sorted(name(callee) for callee in callees) for caller, callees in graph.items()}


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=PENDING[case])) if case in PENDING else case
    for case in CASES
])
def test_callgraph_matches(case: str, cpgflow_graphs: dict) -> None:
    actual, combined = cpgflow_graphs[case]
    assert not isinstance(actual, str), actual
    assert actual == _as_built(case, _expected(case), combined)


def test_pending_and_dynamic_name_real_cases() -> None:
    assert set(PENDING) <= set(CASES)
    assert set(DYNAMIC) <= set(CASES)
