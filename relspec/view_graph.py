"""The view graph: views as nodes, their dependencies as edges (rustworkx), built from the emitted plan.

Source tables (extraction tables, builtin names) are not nodes; each view records the sources it
reads, so the graph can say which views lie downstream of a changed table.
"""

from __future__ import annotations

import rustworkx as rx

from semantics.ir import SemanticPlan


class ViewGraph:
    def __init__(self, plan: SemanticPlan) -> None:
        self.graph: rx.PyDiGraph = rx.PyDiGraph()
        self.index: dict[str, int] = {}
        for view in plan.views:
            self.index[view.name] = self.graph.add_node(view.name)
        self.sources: dict[str, tuple[str, ...]] = {}
        self.fixpoints = frozenset(view.name for view in plan.views if view.fixpoint is not None)
        for view in plan.views:
            views_read = [name for name in view.inputs if name in self.index]
            for name in views_read:
                self.graph.add_edge(self.index[name], self.index[view.name], None)
            self.sources[view.name] = tuple(name for name in view.inputs if name not in self.index)

    def names(self) -> list[str]:
        return [self.graph[node] for node in rx.topological_sort(self.graph)]

    def consumers(self, name: str) -> list[str]:
        return sorted(self.graph[node] for node in self.graph.successor_indices(self.index[name]))

    def inputs(self, name: str) -> list[str]:
        return sorted(self.graph[node] for node in self.graph.predecessor_indices(self.index[name]))

    def generations(self) -> list[list[str]]:
        """Views in waves: every view of a wave depends only on earlier waves."""
        return [sorted(self.graph[node] for node in wave) for wave in rx.topological_generations(self.graph)]

    def transitive_sources(self, name: str) -> set[str]:
        found = set(self.sources[name])
        for ancestor in rx.ancestors(self.graph, self.index[name]):
            found.update(self.sources[self.graph[ancestor]])
        return found

    def downstream_of_sources(self, changed: set[str]) -> set[str]:
        """Every view whose result can depend on one of the changed source tables."""
        return {name for name in self.index if self.transitive_sources(name) & changed}

    def upstream_cost(self, name: str, source_rows: dict[str, int]) -> int:
        """Rows read, directly or through other views, to compute a view (a cost estimate)."""
        return sum(source_rows.get(source, 0) for source in self.transitive_sources(name))
