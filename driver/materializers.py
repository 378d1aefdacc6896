"""Delta materializers: the Hamilton data saver and loader through which views are staged and
published, and the choice of which to attach to each view, from the compiled cache policy.

Per view, the factory attaches: nothing for `none` (the view's node is its lazy frame, composed into
its readers' plans); for `delta_staging`, a saver that computes the view (node ``<view>__query``, a
`StagedQuery`) and writes it to its staging table, and a loader its readers read (node ``<view>``); for
`delta_output`, a saver that publishes the view's frame (node ``<view>``) to its output table. The
savers hand back what they wrote (table URI, Delta version, rows, fingerprint, outcome), which
Hamilton records as the saver node's result and a tracker sends to the Hamilton UI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any, Literal

from datafusion import DataFrame
from hamilton import registry
from hamilton.function_modifiers import save_to, source, value
from hamilton.io.data_adapters import DataLoader, DataSaver
from hamilton.io.materialization import ExtractorFactory, from_

from dataflows.views import query_node
from relspec.authority import ExecutionAuthority, StagedQuery
from relspec.policy import CompiledExecutionPolicy

ADAPTER_NAME = "cpgflow_delta"
AUTHORITY_NODE = "execution_authority"
Layer = Literal["staging", "output"]


def saver_node(view: str, layer: Layer) -> str:
    return f"{view}__staged" if layer == "staging" else f"{view}__published"


@dataclasses.dataclass
class DeltaViewSaver(DataSaver):
    """Writes a view to its Delta table through the run's execution authority: a staged view (a
    `StagedQuery`, computed here) to its staging table, an output's frame to its published table;
    the write is skipped when the table already holds this result, by fingerprint."""

    view: str
    authority: ExecutionAuthority

    @classmethod
    def applicable_types(cls) -> Collection[type]:
        return [DataFrame, StagedQuery]

    @classmethod
    def name(cls) -> str:
        return ADAPTER_NAME

    def save_data(self, data: DataFrame | StagedQuery) -> dict[str, Any]:
        if isinstance(data, StagedQuery):
            return self.authority.stage(data)
        return self.authority.publish(self.view, data)


@dataclasses.dataclass
class DeltaViewLoader(DataLoader):
    """Reads a staged view back for its readers: the table its saver wrote, registered in the run's
    session as the compiled policy says (a Delta scan, or in memory for a recursive reader)."""

    view: str
    staged: dict  # the saver's metadata: loading waits for the write
    authority: ExecutionAuthority

    @classmethod
    def applicable_types(cls) -> Collection[type]:
        return [DataFrame]

    @classmethod
    def name(cls) -> str:
        return ADAPTER_NAME

    def load_data(self, type_: type) -> tuple[DataFrame, dict[str, Any]]:
        return self.authority.load_staged(self.view), dict(self.staged)


registry.register_adapter(DeltaViewSaver)
registry.register_adapter(DeltaViewLoader)


def view_savers(policy: CompiledExecutionPolicy) -> dict[str, Callable[[Callable], Callable]]:
    """The saver the compiled cache policy attaches to each view node that has one, by node name:
    staging for `delta_staging` (on ``<view>__query``), publishing for `delta_output`."""
    savers: dict[str, Callable[[Callable], Callable]] = {}
    for view, choice in sorted(policy.cache.items()):
        if choice.cache == "delta_staging":
            savers[query_node(view)] = _saver(view, "staging")
        elif choice.cache == "delta_output":
            savers[view] = _saver(view, "output")
    return savers


def view_loaders(policy: CompiledExecutionPolicy) -> list[ExtractorFactory]:
    """The loader each staged view's readers read (node ``<view>``), reading what its saver wrote."""
    return [from_.cpgflow_delta(target=view, view=value(view), staged=source(saver_node(view, "staging")),
                                authority=source(AUTHORITY_NODE))
            for view, choice in sorted(policy.cache.items()) if choice.cache == "delta_staging"]


def _saver(view: str, layer: Layer) -> Callable[[Callable], Callable]:
    return save_to.cpgflow_delta(output_name_=saver_node(view, layer), view=value(view),
                                 authority=source(AUTHORITY_NODE))
