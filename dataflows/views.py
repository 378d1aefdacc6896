"""One Hamilton node per view of the semantic plan, generated from the view specs.

Each node runs its view's emitted SQL on the run's DataFusion session and registers the result
under the view's name for its consumers. A view whose cache hint is `delta_staging` (read by two or
more views) is computed once and held (DataFrame.cache) so its consumers do not recompute it.
Node dependencies are the views' inputs, so the Hamilton graph *is* the view graph.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from datafusion import DataFrame, SessionContext

from semantics.ir import SOURCE_COLUMNS, SemanticPlan
from semantics.specs import AnySpec, spec_inputs
from semantics.views import discover_specs

SOURCES_NODE = "source_catalog"


def run_view(name: str, plan: SemanticPlan, session: SessionContext) -> DataFrame:
    emitted = plan.view(name)
    frame = session.sql(emitted.sql)
    if emitted.cache == "delta_staging":
        frame = frame.cache()
    session.register_view(name, frame)
    return frame


def _view_node(spec: AnySpec) -> Callable[..., DataFrame]:
    name = spec.name

    def view(**inputs: object) -> DataFrame:
        plan = inputs["semantic_plan"]
        session = inputs["session"]
        assert isinstance(plan, SemanticPlan) and isinstance(session, SessionContext)
        return run_view(name, plan, session)

    parameter = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [
        inspect.Parameter("semantic_plan", parameter, annotation=SemanticPlan),
        inspect.Parameter("session", parameter, annotation=SessionContext),
    ]
    inputs = spec_inputs(spec)
    if any(source in SOURCE_COLUMNS for source in inputs):
        parameters.append(inspect.Parameter(SOURCES_NODE, parameter, annotation=dict[str, int]))
    parameters += [inspect.Parameter(source, parameter, annotation=DataFrame)
                   for source in inputs if source not in SOURCE_COLUMNS]
    view.__name__ = view.__qualname__ = name
    view.__module__ = __name__
    view.__doc__ = spec.doc
    view.__signature__ = inspect.Signature(parameters, return_annotation=DataFrame)  # type: ignore[attr-defined]
    view.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": DataFrame}
    return view


for _spec in discover_specs():
    globals()[_spec.name] = _view_node(_spec)
del _spec
