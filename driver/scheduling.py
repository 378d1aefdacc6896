"""The compiled schedule, obeyed: Hamilton's executor, visiting the written views in the schedule's order.

Hamilton executes a graph depth-first from the requested outputs, in the order of each node's
parameters. Executed so, the views run in an order the graph's shape decides, not their costs. This
executor asks first for the saver node of every written view the request needs (`<view>__staged`,
`<view>__published`), in the compiled schedule's order; the schedule is a topological order of the
views, so each saver's inputs are done when it is reached and the views compute exactly in that
order. Lazy views are planned when their first reader is: they cost nothing of their own. Every node
still runs through Hamilton's node lifecycle (hooks, trackers, the Hamilton UI).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from hamilton import driver as hamilton_driver
from hamilton import graph as hamilton_graph
from hamilton import node as hamilton_node

from dataflows.views import query_node
from driver.materializers import saver_node
from relspec.policy import CompiledExecutionPolicy

FRAMES_REQUESTED = "view_frames_requested"  # the input of dataflows.cpg.view_demand
FRAME_HOLDERS = frozenset({"session", "execution_authority"})  # nodes through which every view's rows are reached
PIPELINE_PACKAGES = frozenset({"dataflows", "driver"})  # where the pipeline's own nodes come from


def scheduled_savers(policy: CompiledExecutionPolicy) -> tuple[str, ...]:
    """The saver nodes of the written views, in the order the compiled schedule starts the views."""
    if policy.schedule is None:
        return ()
    layers = {"delta_staging": "staging", "delta_output": "output"}
    return tuple(saver_node(view, layers[policy.cache[view].cache])  # type: ignore[arg-type]
                 for view in policy.schedule.order if policy.cache[view].cache in layers)


class ScheduledGraphExecutor(hamilton_driver.DefaultGraphExecutor):
    """Hamilton's default executor, with the scheduled saver nodes visited first (those the request
    needs). It also tells the pipeline (input ``view_frames_requested``) when nothing the request runs
    reads a view's frame but the views and their savers: then a staged view that no view the run
    computes reads is not computed (`relspec.demand`)."""

    def __init__(self, adapter: Any, savers: Sequence[str], views: Collection[str] = ()) -> None:
        super().__init__(adapter)
        self.savers = tuple(savers)
        self.views = frozenset(views)

    def execute(self, fg: hamilton_graph.FunctionGraph, final_vars: list[str], overrides: dict[str, Any],
                inputs: dict[str, Any], run_id: str) -> dict[str, Any]:
        needed, _ = fg.get_upstream_nodes(final_vars, inputs, overrides)
        names = {node_.name for node_ in needed}
        first = [name for name in self.savers if name in names and name not in overrides]
        memoized: dict[str, Any] = {}
        nodes = [fg.nodes[name] for name in (*first, *final_vars) if name in fg.nodes]
        inputs = {**inputs, FRAMES_REQUESTED: bool(overrides) or self._reads_frames(needed, final_vars)}
        fg.execute(nodes, memoized, overrides, inputs, run_id=run_id)
        return {name: memoized.get(name, inputs.get(name)) for name in final_vars}

    def _reads_frames(self, needed: Collection[hamilton_node.Node], final_vars: list[str]) -> bool:
        """Whether the request asks for a view's frame (its node, or its loader's, saver's or query's)
        or for what every frame is registered in (the session, the authority), or runs a caller's node
        that reads one of these."""
        view_nodes = self.views | {query_node(view) for view in self.views} | {
            saver_node(view, layer) for view in self.views for layer in ("staging", "output")} | {
            f"load_data.{view}" for view in self.views}
        if set(final_vars) & (view_nodes | FRAME_HOLDERS):
            return True
        return any(_from_caller(node_) and any(dependency.name in self.views or dependency.name in FRAME_HOLDERS
                                               for dependency in node_.dependencies)
                   for node_ in needed)


def _from_caller(node_: hamilton_node.Node) -> bool:
    """Whether ``node_`` comes from a module of the caller's (`build_driver(..., modules=...)`), not the pipeline's."""
    return any(function.__module__.split(".")[0] not in PIPELINE_PACKAGES
               for function in node_.originating_functions or ())


def obey_schedule(dr: hamilton_driver.Driver, policy: CompiledExecutionPolicy) -> hamilton_driver.Driver:
    """``dr``, executing the written views in ``policy``'s schedule order."""
    dr.graph_executor = ScheduledGraphExecutor(dr.graph_executor.adapter, scheduled_savers(policy), policy.cache)
    return dr
