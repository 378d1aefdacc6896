"""One Hamilton node per view of the semantic plan, generated from the view specs and the compiled
cache policy.

Each node hands its view and the frames it is passed (the views it reads) to the run's execution
authority, which plans the view's SQL over exactly those frames. Node dependencies are the views'
inputs, so the Hamilton graph *is* the view graph, and a frame given to
`dr.execute(..., overrides=...)` is what its readers read.

A view whose policy is `none` or `delta_output` is the node named after it: its lazy frame. A
`delta_staging` view is the node ``<view>__query``, a `StagedQuery`; the driver factory attaches the
Delta saver that computes and stages it (``<view>__staged``) and the loader its readers read
(``<view>``), see `driver.materializers`.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping

from datafusion import DataFrame
from hamilton.function_modifiers import tag

from relspec.authority import ExecutionAuthority, StagedQuery
from relspec.demand import ViewDemand
from semantics.ir import SOURCE_COLUMNS, SemanticPlan
from semantics.specs import AnySpec, spec_inputs
from semantics.views import OUTPUTS, discover_specs

SOURCES_NODE = "source_catalog"
DEMAND_NODE = "view_demand"
MODULE_NAME = "dataflows.views"


def query_node(view: str) -> str:
    """The node of a staged view before it is computed and written (its readers read ``view``)."""
    return f"{view}__query"


def _view_node(spec: AnySpec, node_name: str, staged: bool) -> Callable[..., DataFrame | StagedQuery]:
    name = spec.name
    returns = StagedQuery if staged else DataFrame

    def view(**inputs: object) -> DataFrame | StagedQuery:
        plan, fingerprints, authority = inputs["semantic_plan"], inputs["view_fingerprints"], inputs[
            "execution_authority"]
        assert isinstance(plan, SemanticPlan) and isinstance(authority, ExecutionAuthority)
        assert isinstance(fingerprints, dict)
        frames = {source: frame for source, frame in inputs.items() if isinstance(frame, DataFrame)}
        if staged:
            demand = inputs[DEMAND_NODE]
            assert isinstance(demand, ViewDemand)
            return authority.pending(plan.view(name), fingerprints[name], frames, name not in demand.unneeded)
        return authority.query(plan.view(name), fingerprints[name], frames)

    parameter = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [
        inspect.Parameter("semantic_plan", parameter, annotation=SemanticPlan),
        inspect.Parameter("view_fingerprints", parameter, annotation=dict[str, str]),
        inspect.Parameter("execution_authority", parameter, annotation=ExecutionAuthority),
    ]
    if staged:  # whether a view this run computes reads it
        parameters.append(inspect.Parameter(DEMAND_NODE, parameter, annotation=ViewDemand))
    inputs = spec_inputs(spec)
    if any(source in SOURCE_COLUMNS for source in inputs):
        parameters.append(inspect.Parameter(SOURCES_NODE, parameter, annotation=dict[str, int]))
    parameters += [inspect.Parameter(source, parameter, annotation=DataFrame)
                   for source in inputs if source not in SOURCE_COLUMNS]
    view.__name__ = view.__qualname__ = node_name
    view.__module__ = MODULE_NAME
    view.__doc__ = spec.doc
    view.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    view.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    return tag(role="output" if name in OUTPUTS else "view", target_=...)(view)  # and a saver made of it


def view_module(cache_policies: Mapping[str, str],
                savers: Mapping[str, Callable[[Callable], Callable]]) -> types.ModuleType:
    """The view nodes of a run whose views are cached as ``cache_policies`` ({view: policy}) say,
    each decorated with its saver in ``savers`` (by node name), if it has one."""
    module = types.ModuleType(MODULE_NAME, __doc__)
    for spec in discover_specs():
        staged = cache_policies.get(spec.name) == "delta_staging"
        node_name = query_node(spec.name) if staged else spec.name
        node = _view_node(spec, node_name, staged)
        setattr(module, node_name, savers[node_name](node) if node_name in savers else node)
    return module
