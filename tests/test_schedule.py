"""The cost-aware schedule: its quantities on a hand-made view graph, checked by hand; and, through
real builds, that execution follows the compiled order and that measured costs change it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pyarrow as pa
import pytest
from conftest import build, write_tree

from driver.delta_store import DeltaTableStore
from driver.factory import build_driver
from relspec.catalog import RUNS_TABLE, DatasetCatalog
from relspec.costs import ESTIMATED_SECONDS_PER_BYTE, predict_costs
from relspec.machine import available_cores
from relspec.policy import TableStats
from relspec.runs import RunRecord, ViewOutcome, new_run_id, overlap_seconds, read_records, run_row
from relspec.schedule import compile_schedule
from relspec.view_graph import ViewGraph

TREE = {
    "pkg/__init__.py": "from pkg.base import helper\n",
    "pkg/base.py": "def helper(x):\n    return x + 1\n\n\nclass Base:\n    def run(self):\n        return helper(1)\n",
    "pkg/a.py": "from pkg.base import Base, helper\n\n\nclass A(Base):\n    pass\n\n\n"
                "def main():\n    f = helper\n    A().run()\n    return f(2)\n",
}


def _graph(edges: dict[str, tuple[str, ...]]) -> ViewGraph:
    """A view graph of views named by ``edges`` ({view: the views it reads}), in dependency order."""
    views = [SimpleNamespace(name=name, inputs=inputs, fixpoint=None) for name, inputs in edges.items()]
    return ViewGraph(SimpleNamespace(views=views))  # type: ignore[arg-type]


def test_bottom_levels_slack_critical_path_and_order_by_hand() -> None:
    # a diamond a -> (b, c) -> d -> f, and e alone
    graph = _graph({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": (), "f": ("d",)})
    costs = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0, "e": 3.0, "f": 1.0}
    schedule = compile_schedule(graph, costs, 1, ())
    # bottom level: own cost + the costliest path below: f 1, d 1+1, b 5+2, c 2+2, a 1+7, e 3
    assert schedule.bottom_level == {"a": 8.0, "b": 7.0, "c": 4.0, "d": 2.0, "e": 3.0, "f": 1.0}
    # top level: the costliest path above: b and c after a (1), d after b (1+5), f after d (6+1)
    assert schedule.top_level == {"a": 0.0, "b": 1.0, "c": 1.0, "d": 6.0, "e": 0.0, "f": 7.0}
    # slack against the critical length 8: c could start 3 s later, e 5 s later
    assert schedule.slack == {"a": 0.0, "b": 0.0, "c": 3.0, "d": 0.0, "e": 5.0, "f": 0.0}
    assert schedule.critical_path == ("a", "b", "d", "f")
    # ready first {a 8, e 3}: a; then {b 7, c 4, e 3}: b; {c 4, e 3}: c; {d 2, e 3}: e; d; f
    assert schedule.order == ("a", "b", "c", "e", "d", "f")
    # removing d cuts f off; the edge d-f is the only way to f
    assert schedule.articulation_points == ("d",)
    assert schedule.bridges == (("d", "f"),)


def test_equal_bottom_levels_go_by_betweenness() -> None:
    # b and c cost the same; the path a -> c -> d runs through c, nothing runs through b
    graph = _graph({"a": (), "b": (), "c": ("a",), "d": ("c",)})
    schedule = compile_schedule(graph, {"a": 0.0, "b": 2.0, "c": 2.0, "d": 0.0}, 1, ())
    assert schedule.betweenness["c"] > schedule.betweenness["b"] == 0.0
    assert schedule.order == ("a", "c", "b", "d")  # a (bl 2) ties b (bl 2): a is on more paths


def _records(out: Path) -> list[RunRecord]:
    return read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))


def _executed_order(record: RunRecord) -> list[str]:
    return [outcome.view for outcome in sorted(record.views, key=lambda outcome: outcome.started)
            if outcome.outcome != "lazy"]


def _claim_seconds(out: Path, record: RunRecord, seconds: dict[str, float]) -> None:
    """Append a released run record saying ``record``'s views took ``seconds`` (the rest as measured)."""
    views = tuple(msgspec.structs.replace(outcome, seconds=seconds.get(outcome.view, outcome.seconds))
                  for outcome in record.views)
    claimed = msgspec.structs.replace(record, run_id=new_run_id(), started_at=datetime.now(UTC).isoformat(),
                                      views=views)
    DeltaTableStore(DatasetCatalog(str(out))).append(RUNS_TABLE, run_row(claimed))


def test_execution_follows_the_schedule_and_measured_costs_change_it(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    build(root, out)
    first = _records(out)[-1]
    config = build_driver(root, out).config
    graph, policies = config["view_graph"], config["compiled_policy"].cache
    # two views a rebuild writes that read no other view: both ready from the start
    x, y = sorted(view for view, policy in policies.items() if policy.cache != "none" and not graph.inputs(view))[:2]

    orders = []
    for slow in (x, y):
        _claim_seconds(out, first, {slow: 100.0})
        dr = build_driver(root, out)
        schedule = dr.config["compiled_policy"].schedule
        assert dr.config["compiled_policy"].costs[slow].basis == "seconds"
        assert schedule.order[0] == slow  # the costliest path starts with it
        dr.execute(["build_summary"])
        executed = _executed_order(_records(out)[-1])
        assert executed == [view for view in schedule.order if view in set(executed)]
        orders.append(executed)
    assert orders[0][0] == x and orders[1][0] == y
    assert orders[0].index(x) < orders[0].index(y) and orders[1].index(y) < orders[1].index(x)


def test_a_request_for_one_output_runs_only_what_it_needs_in_schedule_order(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    build(root, out)
    dr = build_driver(root, out)
    frame = dr.execute(["cpg_diagnostics"])["cpg_diagnostics"]
    assert frame.count() >= 0  # a lazy frame, computed on demand
    authority = dr.config["execution_authority"]
    ran = [outcome.view for outcome in authority.outcomes() if outcome.outcome != "lazy"]
    order = dr.config["compiled_policy"].schedule.order
    assert "value_flow_fixpoint" not in ran  # cpg_diagnostics does not read it
    assert ran == [view for view in order if view in set(ran)]


# -- scan options from what each view's plan scanned -------------------------------------------------

# 60k name uses a module; each line padded so that the two modules' 2.4 MB of source make a first
# build (no table yet) estimate its largest table over the small tier, as the policy's rate goes
BIG_MODULE = "".join(f"v{index} = a + b + c  # {'padding ' * 5}\n" for index in range(20_000))


@pytest.mark.skipif(available_cores() < 2, reason="one core: every view runs on one partition anyway")
def test_a_view_whose_plan_scanned_little_runs_on_one_partition_and_the_next_view_does_not(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", {**TREE, "pkg/big.py": BIG_MODULE, "pkg/big2.py": BIG_MODULE})
    out = tmp_path / "out"
    build(root, out, staging="memory", jobs=0)  # every view computed, on every core
    dr = build_driver(root, out, staging="memory")
    policy, graph = dr.config["compiled_policy"], dr.config["view_graph"]
    # the outputs are reused; asking for a view's frame computes every staged view again (relspec/demand.py)
    dr.execute(["build_summary", "cpg_nodes"])
    first, second = _records(out)[-2:]
    # what each view read: its plan's scans, and the views it read from memory (no scan metrics), its
    # lazy inputs' plans being part of its own; a fixpoint, whose queries each read a few of its inputs:
    # its largest input
    rows = {outcome.view: outcome.rows for outcome in first.views if outcome.rows is not None}
    lazy = {outcome.view for outcome in first.views if outcome.outcome == "lazy"}

    def computed_inputs(view: str) -> set[str]:
        return {found for name in graph.inputs(view)
                for found in (computed_inputs(name) if name in lazy else {name})}

    def sources(view: str) -> set[str]:
        through = (found for name in graph.inputs(view) if name in lazy for found in sources(name))
        return {*graph.sources[view], *through}

    # (a view that scanned no file read its sources from memory: their rows count too)
    read = {outcome.view: outcome.executed.rows_scanned + sum(
        rows.get(name, 0) for name in computed_inputs(outcome.view)
        if name not in {scan.table for scan in outcome.executed.scans})
        + (0 if outcome.executed.scans else sum(first.source_rows.get(name, 0) for name in sources(outcome.view)))
        for outcome in first.views if outcome.executed and outcome.view not in graph.fixpoints}
    read |= {view: max([rows.get(name, 0) for name in computed_inputs(view)]
                       + [first.source_rows.get(name, 0) for name in sources(view)]) for view in graph.fixpoints}
    partitions = "datafusion.execution.target_partitions"
    ran = [outcome for outcome in sorted(second.views, key=lambda outcome: outcome.started) if outcome.planned]
    small = {outcome.view for outcome in ran if read.get(outcome.view, 10**9) < 100_000}
    large = {outcome.view for outcome in ran if read.get(outcome.view, 0) >= 100_000}
    assert small and large
    before = {outcome.view: outcome.planned.repartitions for outcome in first.views if outcome.planned}
    # the first build had no metrics: every view ran on every partition; the second repartitions far less
    assert sum(outcome.planned.repartitions for outcome in ran if outcome.view in small) \
        < sum(before[view] for view in small) / 2
    for outcome in ran:
        chosen = policy.scan.views[outcome.view]
        if outcome.view in small:
            assert chosen.options[partitions] == "1", outcome.view
            said = "its largest input held" if outcome.view in graph.fixpoints else "it read"
            assert f"{said} {read[outcome.view]:,} rows in run {first.run_id}" in chosen.confidence.evidence
            assert outcome.planned.repartitions <= before[outcome.view], outcome.view
        elif outcome.view in large:
            assert chosen.options[partitions] == str(available_cores())
    # a large view right after a small one ran on every partition again: the small one's option was undone
    after_small = [later for earlier, later in itertools.pairwise(ran) if earlier.view in small and later.view in large]
    partitions_before = {outcome.view: outcome.planned.partitions for outcome in first.views if outcome.planned}
    assert after_small and all(outcome.planned.partitions == partitions_before[outcome.view] > 1
                               for outcome in after_small)


def test_costs_of_a_history_whose_views_were_all_empty_fall_back_to_bytes() -> None:
    graph = _graph({"a": ()})
    graph.sources["a"] = ("t",)
    empty = RunRecord(run_id="r", started_at="1", finished_at="2", status="released", output_versions={},
                      views=(ViewOutcome("a", "delta_staging", "computed_staged", 0, 0.5, "f", "p",
                                         maintained="by_file"),),
                      validation=(), maintenance=(), package=None)
    policies = {"a": SimpleNamespace(cache="delta_staging")}
    maintenance = {"a": SimpleNamespace(mode="full")}
    stats = {"t": TableStats(rows=10, files=1, bytes=2_000_000, version=0)}
    (cost,) = predict_costs(graph, [empty], stats, policies, maintenance, frozenset()).values()  # type: ignore[arg-type]
    assert cost.basis == "bytes" and cost.seconds == 2_000_000 * ESTIMATED_SECONDS_PER_BYTE


def test_overlap_counts_only_time_when_two_views_ran_at_once() -> None:
    def ran(view: str, started: float, finished: float) -> ViewOutcome:
        return ViewOutcome(view, "delta_staging", "computed_staged", 1, finished - started, "f", "p",
                           started=started, finished=finished)
    assert overlap_seconds([ran("a", 0, 1), ran("b", 1, 2)]) == 0.0  # one after the other
    # b overlaps a from 2 to 3, c overlaps b from 4 to 5: two seconds with two running
    assert overlap_seconds([ran("a", 0, 3), ran("b", 2, 5), ran("c", 4, 6)]) == 2.0


def test_the_run_history_reads_the_latest_runs_only() -> None:
    records = [RunRecord(run_id=f"r{index}", started_at=f"2026-01-0{index}", finished_at="x", status="released",
                         output_versions={}, views=(), validation=(), maintenance=(), package=None)
               for index in (3, 1, 2)]  # appended out of order
    table = pa.concat_tables([run_row(record) for record in records])
    assert [record.run_id for record in read_records(table, last=2)] == ["r2", "r3"]
    assert [record.run_id for record in read_records(table)] == ["r1", "r2", "r3"]
