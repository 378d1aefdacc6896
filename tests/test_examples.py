"""The driver scripts of docs/examples, each run as a user runs it — a subprocess of this Python on a
small code base — with its output checked against answers worked out by hand from ZOO."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, write_tree
from ui_helpers import USER, UiServer

EXAMPLES = REPO / "docs" / "examples"
SCRIPT_SECONDS = 300

ZOO = {
    "zoo/__init__.py": "from .animals import Animal, Dog\n",
    "zoo/animals.py": '''class Animal:
    def __init__(self, name):
        self.name = name

    def speak(self):
        return "..."

    def describe(self):
        return f"{self.name} says {self.speak()}"


class Dog(Animal):
    def speak(self):
        return "woof"
''',
    "zoo/keeper.py": '''from zoo.animals import Dog


def adopt(name):
    return Dog(name)


def tour(names):
    return [adopt(name).describe() for name in names]


def opening():
    return tour(["rex", "fido"])
''',
}


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "zoo_src", ZOO)


def run_example(script: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=SCRIPT_SECONDS, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def table_after(output: str, title: str) -> list[list[str]]:
    """The rows (split on whitespace, header first) of the table printed under the line ``title``."""
    lines = output.splitlines()
    start = lines.index(title) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_every_example_is_tested_here() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == [
        "build_and_query.py", "custom_view.py", "override_cache_policy.py", "track_to_ui.py"]
    for path in EXAMPLES.glob("*.py"):
        assert path.read_text().startswith('"""'), f"{path.name} says what it shows in its docstring"


def test_build_and_query(zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_example("build_and_query.py", zoo, "--out", out, "--callers", "zoo.keeper.adopt")
    assert done.stdout.startswith("built 3 files: ")
    assert done.stdout.splitlines()[0].endswith(f" into {out}")
    # Animal defines __init__, speak and describe; Dog overrides speak
    assert table_after(done.stdout, "classes with the most methods:") == [
        ["class", "methods"], ["zoo.animals.Animal", "3"], ["zoo.animals.Dog", "1"]]
    # adopt is called in tour's comprehension (line 9), tour by opening (line 13)
    assert table_after(done.stdout, "who calls zoo.keeper.adopt (two calls deep):") == [
        ["depth", "caller", "path", "line"],
        ["1", "zoo.keeper.tour", "zoo/keeper.py", "9"],
        ["2", "zoo.keeper.opening", "zoo/keeper.py", "13"],
    ]


def test_custom_view(zoo: Path, tmp_path: Path) -> None:
    done = run_example("custom_view.py", zoo, "--out", tmp_path / "out")
    # animals: Animal.__init__, speak, describe and Dog.speak; keeper: adopt, tour, opening; zoo: none
    assert table_after(done.stdout, "functions per module:") == [
        ["module", "functions"], ["zoo.animals", "4"], ["zoo.keeper", "3"], ["zoo", "0"]]
    assert done.stdout.rstrip().endswith("busiest module: zoo.animals")


def test_override_cache_policy(zoo: Path, tmp_path: Path) -> None:
    done = run_example("override_cache_policy.py", zoo, "--out", tmp_path / "out")
    lines = done.stdout.splitlines()
    # name_keys has a single reader, so the compiler leaves it lazy; staged, it gets its saver and loader
    assert lines[0].startswith("compiled policy of name_keys: none (")
    assert lines[1] == "its nodes without the override: name_keys"
    assert lines[2] == "its nodes with name_keys=delta_staging: name_keys, name_keys__query, name_keys__staged"
    # the zoo is small: its staged views are held in memory for the run, not written to staging tables
    assert re.fullmatch(r"run [0-9a-f]{12}: name_keys ran under delta_staging: computed_in_memory, [1-9][\d,]* rows",
                        lines[3]), lines[3]
    assert len(lines) == 4


def test_track_to_ui(zoo: Path, tmp_path: Path, ui_server: UiServer) -> None:
    project_id = ui_server.create_project("tests/test_examples.py")
    env = {**os.environ, "HAMILTON_API_URL": ui_server.url}  # the script's default UI
    done = run_example("track_to_ui.py", zoo, "--out", tmp_path / "out", "--project-id", str(project_id),
                       "--username", USER, env=env)
    assert done.stdout.startswith("built 3 files: ")
    assert done.stdout.rstrip().endswith(f"the run is in project {project_id} of the Hamilton UI")

    (run,) = ui_server.get("dag_runs/latest/", project_id=project_id)
    assert f"{ui_server.url}/dashboard/project/{project_id}/runs/{run['id']}" in done.stderr  # the tracker's line
    (run,) = ui_server.get(f"dag_runs/{run['id']}")
    assert run["run_status"] == "SUCCESS"
    assert run["outputs"] == ["build_summary"]
    assert run["tags"]["source_root"] == str(zoo.resolve())
    # the script has exited, so the tracker has sent every node's result
    node_runs = {node["node_name"]: node["status"] for node in run["node_runs"]}
    assert {"extraction", "cpg_nodes", "cpg_nodes__published", "build_summary"} <= set(node_runs)
    assert set(node_runs.values()) == {"SUCCESS"}
    (template,) = ui_server.get(f"dag_templates/{run['dag_template_id']}")
    assert template["name"] == "cpgflow build zoo_src"
