"""A build tracked in a real Hamilton UI server (the `ui` extra), read back through the server's HTTP API:
the run, its nodes with their `role` tags and timings, and the result summaries it records."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import assert_one_line_error, run_cli, write_tree
from shop_fixture import FIXTURE
from ui_helpers import USER, UiServer, free_port, log_tail, wait_for

from driver.api import build_driver
from driver.options import BuildOptionError
from driver.reports import node_role
from driver.tracking import build_tracker

FLUSH_SECONDS = 60  # the tracker sends node results in batches, at least every 5 s
# The execution driver's roles (policy: the views' fingerprints); planning — inference and the policy
# compiler — reaches it as inputs: the execution authority context.
ROLES = {"extract", "policy", "view", "materializer", "output", "authority"}
# The attribute types a node's result summary can take (the run API returns only the types asked for).
SUMMARY_TYPES = ["primitive", "dict", "schema", "unsupported", "observability_failure"]


class TrackedRun(msgspec.Struct, frozen=True):
    run: dict[str, Any]  # the run with its node runs and their attributes
    template: dict[str, Any]  # the DAG the run executed: its nodes, with their tags
    roles: dict[str, str]  # each Hamilton node's `role` tag, as the driver itself has it
    summary: dict[str, Any]  # the build's BuildSummary, as builtins
    tags: dict[str, str]  # the tags the run should carry


def _run_with_all_results(server: UiServer, run_id: int, nodes: int) -> dict[str, Any] | None:
    """The run once its ``nodes`` node runs are all on the server, each with its result summary."""
    (run,) = server.get(f"dag_runs/{run_id}", attr=SUMMARY_TYPES)
    summarised = [node for node in run["node_runs"] if node["attributes"]]
    return run if len(summarised) == nodes else None


@pytest.fixture(scope="module")
def tracked(ui_server: UiServer, tmp_path_factory: pytest.TempPathFactory) -> TrackedRun:
    """The shop fixture built once with a tracker, in a project created (as the tracker requires) with
    the user among its writers."""
    project_id = ui_server.create_project("tests/test_ui.py")
    root = write_tree(tmp_path_factory.mktemp("ui_src") / "shop_src", FIXTURE)
    out = tmp_path_factory.mktemp("ui_out")
    tracker = build_tracker(root, out, project_id=project_id, username=USER, api_url=ui_server.url)
    dr = build_driver(root, out, jobs=1, adapters=[tracker])
    summary = dr.execute(["build_summary"])["build_summary"]
    roles = {var.name: node_role(var.tags) for var in dr.list_available_variables() if not var.is_external_input}
    (latest,) = ui_server.get("dag_runs/latest/", project_id=project_id)
    run = wait_for(lambda: _run_with_all_results(ui_server, latest["id"], len(roles)), FLUSH_SECONDS,
                    f"the {len(roles)} node runs of run {latest['id']}:\n{log_tail(ui_server.log)}")
    (template,) = ui_server.get(f"dag_templates/{run['dag_template_id']}")
    tags = {"source_root": str(root.resolve()), "output_dir": summary.output_dir}
    return TrackedRun(run, template, roles, msgspec.to_builtins(summary), tags)


def _attribute(run: dict[str, Any], node: str, name: str) -> dict[str, Any]:
    (node_run,) = [item for item in run["node_runs"] if item["node_name"] == node]
    (attribute,) = [item for item in node_run["attributes"] if item["name"] == name]
    return attribute


def test_the_run_is_recorded_as_succeeded(tracked: TrackedRun) -> None:
    run = tracked.run
    assert run["run_status"] == "SUCCESS"
    assert run["outputs"] == ["build_summary"]
    assert run["tags"] == tracked.tags
    assert tracked.template["name"] == "cpgflow build shop_src"
    assert run["run_start_time"] < run["run_end_time"]


def test_every_node_ran_once_with_its_timing(tracked: TrackedRun) -> None:
    node_runs = {node["node_name"]: node for node in tracked.run["node_runs"]}
    assert len(node_runs) == len(tracked.run["node_runs"])
    assert set(node_runs) == set(tracked.roles)
    for name, node in node_runs.items():
        assert node["status"] == "SUCCESS", name
        assert node["start_time"] <= node["end_time"], name


def test_the_dag_carries_every_role_tag(tracked: TrackedRun) -> None:
    nodes = {node["name"]: node for node in tracked.template["nodes"]}
    executed = {name: node for name, node in nodes.items() if node["classifications"] != ["input"]}
    assert {name: node_role(node["tags"]) for name, node in executed.items()} == tracked.roles
    assert set(tracked.roles.values()) == ROLES
    assert nodes["cpg_nodes"]["tags"]["role"] == "output"
    assert nodes["name_keys"]["tags"]["role"] == nodes["name_uses__query"]["tags"]["role"] == "view"
    assert nodes["extraction"]["tags"]["role"] == "extract"
    assert nodes["maintenance"]["tags"]["role"] == "output"
    assert tracked.roles["cpg_nodes__published"] == tracked.roles["reference_edges__staged"] == "materializer"
    assert "cpg_nodes__published" in nodes["published_cpg"]["dependencies"]
    # the configuration the build ran with, and the execution authority context planning built: its inputs
    inputs = {name for name, node in nodes.items() if node["classifications"] == ["input"]}
    assert inputs >= {"source_root", "jobs", "execution_authority", "compiled_policy", "semantic_plan"}
    assert tracked.template["config"]["jobs"] == 1


def test_result_summaries(tracked: TrackedRun) -> None:
    failed = [node["node_name"] for node in tracked.run["node_runs"]
              if any(attribute["type"] == "observability_failure" for attribute in node["attributes"])]
    assert not failed, f"the tracker could not summarise the results of {failed}"

    summary = _attribute(tracked.run, "build_summary", "result_summary")
    assert summary["type"] == "dict"
    assert summary["value"] == {"type": "BuildSummary", "value": tracked.summary}
    assert tracked.summary["files"] == len([path for path in FIXTURE if path.endswith(".py")])

    nodes_frame = _attribute(tracked.run, "cpg_nodes", "result_summary")
    assert nodes_frame["type"] == "primitive"
    assert "DataFusion" in nodes_frame["value"]["value"]
    schema = _attribute(tracked.run, "cpg_nodes", "Schema")
    assert list(schema["value"]) == ["node_id", "kind", "file_id", "path", "name", "qualname", "bstart", "bend",
                                     "line", "col", "end_line", "end_col"]
    assert schema["value"]["bstart"]["type"] == "int64"

    published = _attribute(tracked.run, "cpg_nodes__published", "result_summary")["value"]["value"]  # a saver's
    assert published["table_uri"] == f"{tracked.tags['output_dir']}/cpg_nodes"
    assert published["version"] == 0 and published["outcome"] == "published" and published["rows"] > 0


def test_an_unknown_project_is_a_one_line_error(ui_server: UiServer, tmp_path: Path) -> None:
    with pytest.raises(BuildOptionError) as raised:
        build_tracker(tmp_path, tmp_path / "out", project_id=999, username=USER, api_url=ui_server.url)
    assert raised.value.option == "project_id"
    assert "project 999 is not on the Hamilton UI" in str(raised.value)


def test_no_server_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BuildOptionError, match=f"no Hamilton UI answers at {url}") as raised:
        build_tracker(tmp_path, tmp_path / "out", username=USER, api_url=url)
    assert raised.value.option == "api_url"


@pytest.mark.parametrize("project_id", [0, -1, "1", True])
def test_a_bad_project_id_is_refused_first(project_id: object, tmp_path: Path) -> None:
    with pytest.raises(BuildOptionError, match="must be a positive project number") as raised:
        build_tracker(tmp_path, tmp_path / "out", project_id=project_id, api_url="http://127.0.0.1:9")  # type: ignore[arg-type]
    assert raised.value.option == "project_id"


def test_without_the_ui_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "hamilton_sdk", None)  # as if the `ui` extra were not installed
    monkeypatch.setitem(sys.modules, "hamilton_sdk.adapters", None)
    with pytest.raises(BuildOptionError, match=r"pip install 'cpgflow\[ui\]'") as raised:
        build_tracker(tmp_path, tmp_path / "out")
    assert raised.value.option == "track"
    assert "\n" not in str(raised.value)


def test_cpgflow_build_track_sends_the_run(ui_server: UiServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI: `--track --project-id N` with the UI's address in HAMILTON_API_URL and the
    login name as the user."""
    project_id = ui_server.create_project("cpgflow build --track", getpass.getuser())
    root = write_tree(tmp_path / "cli_src", {"m.py": "def f():\n    return 1\n"})
    monkeypatch.setenv("HAMILTON_API_URL", ui_server.url)
    done = run_cli("build", root, "--out", tmp_path / "out", "-j", "1", "-q", "--track",
                   "--project-id", str(project_id))
    assert done.returncode == 0, done.stderr
    (latest,) = ui_server.get("dag_runs/latest/", project_id=project_id)
    run = wait_for(lambda: _finished(ui_server, latest["id"]), FLUSH_SECONDS, f"run {latest['id']} to finish")
    assert run["run_status"] == "SUCCESS" and run["outputs"] == ["build_summary"]
    assert run["tags"]["source_root"] == str(root.resolve())


def _finished(ui_server: UiServer, run_id: int) -> dict[str, Any] | None:
    (run,) = ui_server.get(f"dag_runs/{run_id}")
    return run if run["run_status"] != "RUNNING" else None


def test_cpgflow_build_track_errors_are_one_line(ui_server: UiServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "src", {"m.py": "x = 1\n"})
    monkeypatch.setenv("HAMILTON_API_URL", ui_server.url)
    unknown = run_cli("build", root, "--out", tmp_path / "a", "--track", "--project-id", "999")
    assert unknown.returncode == 1 and "--project-id: project 999" in unknown.stderr
    assert_one_line_error(unknown.stderr)
    monkeypatch.setenv("HAMILTON_API_URL", f"http://127.0.0.1:{free_port()}")
    nobody = run_cli("build", root, "--out", tmp_path / "b", "--track")
    assert nobody.returncode == 1 and "no Hamilton UI answers" in nobody.stderr
    assert_one_line_error(nobody.stderr)
