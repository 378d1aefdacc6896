"""The cost-aware schedule: the order in which execution starts the views, from their predicted costs
over the view graph (rustworkx).

Bottom level (a view's cost plus the costliest path below it), top level, slack and the critical
path are the classic list-scheduling quantities; betweenness centrality breaks ties between views of
equal bottom level (the one more paths go through first); articulation points and bridges of the
undirected view graph are where the graph splits into parts that share only one view or one
dependency: the parts a second lane could run apart. The order is highest bottom level first among
the views whose inputs are done, so the critical path starts as early as it can and a run that
fails on an expensive view fails early.
"""

from __future__ import annotations

import msgspec
import rustworkx as rx

from relspec.view_graph import ViewGraph
from semantics.inference import InferenceConfidence


class ViewSchedule(msgspec.Struct, frozen=True):
    order: tuple[str, ...]  # every view, in the order execution starts it
    bottom_level: dict[str, float]
    top_level: dict[str, float]
    slack: dict[str, float]  # how much later a view could start without delaying the run (one lane per path)
    critical_path: tuple[str, ...]
    betweenness: dict[str, float]
    articulation_points: tuple[str, ...]
    bridges: tuple[tuple[str, str], ...]
    lanes: int  # views executed at once
    confidence: InferenceConfidence


def compile_schedule(graph: ViewGraph, costs: dict[str, float], lanes: int,
                     lanes_evidence: tuple[str, ...]) -> ViewSchedule:
    """The schedule of ``graph`` under ``costs`` (seconds by view), run ``lanes`` views at once."""
    dag = graph.graph
    names = graph.names()  # topological
    bottom: dict[str, float] = {}
    for name in reversed(names):
        below = [bottom[dag[node]] for node in dag.successor_indices(graph.index[name])]
        bottom[name] = costs[name] + max(below, default=0.0)
    top: dict[str, float] = {}
    for name in names:
        above = [top[dag[node]] + costs[dag[node]] for node in dag.predecessor_indices(graph.index[name])]
        top[name] = max(above, default=0.0)
    length = max(bottom.values(), default=0.0)
    slack = {name: max(0.0, length - top[name] - bottom[name]) for name in names}
    centrality = rx.betweenness_centrality(dag, normalized=True)
    betweenness = {dag[node]: float(score) for node, score in centrality.items()}
    undirected = dag.to_undirected()
    articulation = tuple(sorted(undirected[node] for node in rx.articulation_points(undirected)))
    bridges = tuple(sorted(tuple(sorted((undirected[a], undirected[b]))) for a, b in rx.bridges(undirected)))
    order = _list_order(graph, bottom, betweenness)
    critical = _critical_path(graph, bottom)
    evidence = (f"critical path {length:.2f} s over {len(critical)} views, "
                f"{sum(costs.values()):.2f} s of views in all", *lanes_evidence)
    return ViewSchedule(
        order=order, bottom_level=bottom, top_level=top, slack=slack,
        critical_path=critical, betweenness=betweenness, articulation_points=articulation,
        bridges=bridges,  # type: ignore[arg-type]
        lanes=lanes, confidence=InferenceConfidence("schedule", "bottom_level_first", 1.0, evidence),
    )


def _priority(name: str, bottom: dict[str, float], betweenness: dict[str, float]) -> tuple[float, float, str]:
    return (-bottom[name], -betweenness[name], name)


def _list_order(graph: ViewGraph, bottom: dict[str, float], betweenness: dict[str, float]) -> tuple[str, ...]:
    """Highest bottom level first among the views whose inputs are all started (then betweenness,
    then name: deterministic)."""
    waiting = {name: len(graph.inputs(name)) for name in graph.index}
    ready = sorted((name for name, count in waiting.items() if count == 0),
                   key=lambda name: _priority(name, bottom, betweenness))
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for reader in graph.consumers(name):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
        ready.sort(key=lambda name: _priority(name, bottom, betweenness))
    return tuple(order)


def _critical_path(graph: ViewGraph, bottom: dict[str, float]) -> tuple[str, ...]:
    """From the source view of highest bottom level, each step to the reader of highest bottom level."""
    if not bottom:
        return ()
    sources = [name for name in graph.index if not graph.inputs(name)]
    path = [max(sources, key=lambda name: (bottom[name], name))]
    while readers := graph.consumers(path[-1]):
        path.append(max(readers, key=lambda name: (bottom[name], name)))
    return tuple(path)


def compile_lanes() -> tuple[int, tuple[str, ...]]:
    """How many views execution runs at once, and why: one, from what was measured on 2 cores
    (tests/benchmarks/bench_concurrency.py, stdlib views over their staged inputs)."""
    return 1, ("one lane: two long independent views on two threads finished 10-16% sooner only with a core "
               "free, 0-10% later under load, and the fixpoint (mostly serial) gained nothing "
               "(bench_concurrency.py, 2 cores)",
               "the views share one session: per-view options (SET) and the fixpoints' working tables "
               "would collide between two running at once")
