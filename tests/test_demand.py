"""A staged view held in memory is computed only when a view the run computes reads it: a rebuild whose
outputs all hold its result already computes none of them (relspec/demand.py), shown from what ran
(the run record) and giving the tables a fresh build gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rustworkx as rx
from conftest import build, query, run_cli, write_tree
from datafusion import SessionContext
from hamilton import ad_hoc_utils

import relspec.demand
from driver.api import build_driver
from driver.delta_store import DeltaTableStore
from driver.factory import plan_driver
from relspec.catalog import RUNS_TABLE, DatasetCatalog
from relspec.demand import view_demand
from relspec.runs import read_records
from relspec.view_graph import ViewGraph
from tests.test_memory_staging import TREE, _fingerprints
from tests.test_schedule import _graph


def test_a_view_held_in_memory_is_unneeded_when_every_path_from_it_ends_at_a_reused_view() -> None:
    # a -> b (lazy) -> out1;  a -> s (held) -> out2;  c (held) -> out2;  d (held) -> e (staged table);
    # f (held) -> g (staged table); out1 -> h (staged table): h reads out1's frame
    graph = _graph({"a": (), "b": ("a",), "s": ("a",), "c": (), "d": (), "f": (), "out1": ("b",),
                    "out2": ("s", "c"), "e": ("d",), "g": ("f",), "h": ("out1",)})
    written, outputs = frozenset({"out1", "out2", "e", "g", "h"}), frozenset({"out1", "out2"})
    held = frozenset({"a", "s", "c", "d", "f", "ex_files"})
    # out2 runs, so s and c do, and a through s (though b feeds only out1, reused and read by h, reused);
    # d feeds only e, reused; g runs, so f does
    demand = view_demand(graph, written, outputs, held, frozenset({"out1", "e", "h"}), frames_requested=False)
    assert demand.unneeded == {"d"}
    everything = view_demand(graph, written, outputs, held, written, frames_requested=False)
    assert everything.unneeded == {"a", "s", "c", "d", "f"}
    # h runs and reads out1's frame (though out1's table holds its result): b and a are read
    assert view_demand(graph, written, outputs, held, written - {"h"}, False).unneeded == {"s", "c", "d", "f"}
    assert view_demand(graph, written, outputs, held, frozenset(), frames_requested=False).unneeded == set()
    asked = view_demand(graph, written, outputs, held, written, frames_requested=True)
    assert asked.unneeded == set() and "reads view frames itself" in asked.confidence.evidence[0]
    staged = view_demand(graph, written | {"a", "s", "c", "d", "f"}, outputs, frozenset({"ex_files"}), written, False)
    assert staged.unneeded == set() and "no staged view is held in memory" in staged.confidence.evidence[0]


def _records(out: Path):
    return read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))


def test_an_unchanged_rebuild_in_memory_computes_no_staged_view(tmp_path: Path) -> None:
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    before = _fingerprints(out)
    summary = build(root, out)
    record = _records(out)[-1]
    staged = {outcome.view: outcome.outcome for outcome in record.views if outcome.policy == "delta_staging"}
    assert "value_flow_fixpoint" in staged and set(staged.values()) == {"unneeded"}
    assert {outcome.outcome for outcome in record.views if outcome.policy == "delta_output"} == {"reused"}
    assert summary.view_outcomes["unneeded"] == len(staged)
    decision = next(decision for decision in record.decisions if decision.decision_type == "view_demand")
    assert decision.decision_value == f"{len(staged)} unneeded" and "5 of 5 written views" in decision.evidence[0]
    assert _fingerprints(out) == before
    why = run_cli("why", out, "value_flow_fixpoint")  # the provenance graph says why it was not computed
    assert why.returncode == 0, why.stderr
    assert "value_flow_fixpoint: view demand unneeded, confidence 1.00" in why.stdout
    assert "5 of 5 written views hold this run's result already (same fingerprint)" in why.stdout


def test_an_edit_computes_every_view_its_published_outputs_read(tmp_path: Path) -> None:
    """Appending a function changes every output but the diagnostics (reused): every staged view an
    output that is published reads, directly or not, was computed, and the tables are a fresh build's."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    (root / "pkg/a.py").write_text(TREE["pkg/a.py"] + "\n\ndef extra():\n    return helper(3)\n")
    build(root, out)
    record = _records(out)[-1]
    outcomes = {outcome.view: outcome.outcome for outcome in record.views}
    policies = {outcome.view: outcome.policy for outcome in record.views}
    assert outcomes["cpg_diagnostics"] == "reused" and outcomes["cpg_nodes"] == "published"
    graph = ViewGraph(plan_driver(root).execute(["semantic_plan"])["semantic_plan"])
    published = [name for name, outcome in outcomes.items() if outcome == "published"]
    read: set[str] = set()  # the staged views the published outputs read
    for view in published:
        upstream = {graph.graph[index] for index in rx.ancestors(graph.graph, graph.index[view])}
        read |= {name for name in upstream if policies[name] == "delta_staging"}
    assert "value_flow_fixpoint" in read and {outcomes[name] for name in read} == {"computed_in_memory"}
    fresh = tmp_path / "fresh"
    build(root, fresh)
    assert _fingerprints(out) == _fingerprints(fresh)


def test_a_request_that_reads_a_view_frame_gets_its_rows(tmp_path: Path) -> None:
    """Asking for a view by name (or giving an override) computes every view: the frame holds the rows
    of the published table, though every output is reused."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    published = query(out, "SELECT count(*) AS n FROM cpg_nodes")[0]["n"]
    result = build_driver(root, out, jobs=1).execute(["cpg_nodes", "definitions", "build_summary"])
    assert result["cpg_nodes"].count() == published > 0
    assert result["definitions"].count() > 0
    assert "unneeded" not in result["build_summary"].view_outcomes


def test_a_view_that_runs_over_an_uncomputed_view_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """Were the demand wrong, a view would compute over no rows: the run fails instead of publishing."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    real = relspec.demand.view_demand

    def every_held_view_unneeded(graph, written, outputs, held, reused, frames_requested):  # type: ignore[no-untyped-def]
        return real(graph, written, outputs, held, written, frames_requested)

    monkeypatch.setattr("dataflows.cpg.demanded", every_held_view_unneeded)
    (root / "pkg/a.py").write_text(TREE["pkg/a.py"] + "\n\ndef extra():\n    return 3\n")
    with pytest.raises(RuntimeError, match="which this run did not compute"):
        build(root, out)


def definitions_count(published_cpg: dict, session: SessionContext) -> int:
    """A caller's node: it reads the run's session, where every view is registered."""
    return session.sql("SELECT count(*) AS n FROM definitions").to_arrow_table().column(0)[0].as_py()


def test_a_callers_node_that_reads_the_session_gets_every_views_rows(tmp_path: Path) -> None:
    """TREE defines 3 modules, 2 classes (Base, A) and 3 functions (helper, run, main): 8 definitions,
    read through the session on a rebuild whose outputs are all reused."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    dr = build_driver(root, out, jobs=1, modules=[ad_hoc_utils.create_temporary_module(definitions_count)])
    result = dr.execute(["build_summary", "definitions_count"])
    assert result["definitions_count"] == 8
    assert "unneeded" not in result["build_summary"].view_outcomes


def test_a_driver_executed_again_computes_what_its_last_execution_left_out(tmp_path: Path) -> None:
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    published = query(out, "SELECT count(*) AS n FROM cpg_nodes")[0]["n"]
    dr = build_driver(root, out, jobs=1)
    dr.execute(["published_cpg"])  # every output reused: the staged views left out
    assert dr.execute(["cpg_nodes"])["cpg_nodes"].count() == published > 0


def test_a_replay_of_a_rebuild_compares_the_plans_of_the_views_it_planned(tmp_path: Path) -> None:
    """The rebuild planned none of its staged views (not needed) nor its outputs (reused): the replay,
    which computes every view, compares only the lazy views' plans, and says how many it left out."""
    root, out = write_tree(tmp_path / "src", TREE), tmp_path / "out"
    build(root, out)
    build(root, out)
    record = _records(out)[-1]
    unplanned = {outcome.view for outcome in record.views if outcome.outcome in ("unneeded", "reused")}
    lazy = {outcome.view for outcome in record.views if outcome.outcome == "lazy"}
    done = run_cli("replay", out, record.run_id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["unplanned"]) == unplanned and "value_flow_fixpoint" in unplanned
    assert {check["name"] for check in report["plans"]} == lazy
    assert all(check["matches"] for check in report["plans"])
    shown = run_cli("replay", out, record.run_id).stdout
    assert (f"plans: {len(lazy)} of {len(lazy)} views planned as recorded ({len(unplanned)} more the run did "
            "not plan: reused or not needed)") in shown
