"""One Hamilton node per view of the semantic plan, generated from the view specs.

Each node hands its view and the frames it is passed (the views it reads) to the run's execution
authority, which runs the view's SQL over exactly those frames, as the compiled policy says (lazy,
staged, or kept for publishing). Node dependencies are the views' inputs, so the Hamilton graph *is*
the view graph, and a frame given to `dr.execute(..., overrides=...)` is what its readers read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from datafusion import DataFrame
from hamilton.function_modifiers import tag

from relspec.authority import ExecutionAuthority
from semantics.ir import SOURCE_COLUMNS, SemanticPlan
from semantics.specs import AnySpec, spec_inputs
from semantics.views import OUTPUTS, discover_specs

SOURCES_NODE = "source_catalog"


def _view_node(spec: AnySpec) -> Callable[..., DataFrame]:
    name = spec.name

    def view(**inputs: object) -> DataFrame:
        plan, fingerprints, authority = inputs["semantic_plan"], inputs["view_fingerprints"], inputs[
            "execution_authority"]
        assert isinstance(plan, SemanticPlan) and isinstance(authority, ExecutionAuthority)
        assert isinstance(fingerprints, dict)
        frames = {source: frame for source, frame in inputs.items() if isinstance(frame, DataFrame)}
        return authority.run_view(plan.view(name), fingerprints[name], frames)

    parameter = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [
        inspect.Parameter("semantic_plan", parameter, annotation=SemanticPlan),
        inspect.Parameter("view_fingerprints", parameter, annotation=dict[str, str]),
        inspect.Parameter("execution_authority", parameter, annotation=ExecutionAuthority),
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
    return tag(role="output" if name in OUTPUTS else "view")(view)


for _spec in discover_specs():
    globals()[_spec.name] = _view_node(_spec)
del _spec
