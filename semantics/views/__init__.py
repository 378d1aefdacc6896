"""The pipeline's view specs, discovered by convention: every module of this package that defines
a module-level ``SPECS`` list contributes its specs. Adding a view is adding it to a ``SPECS``."""

from __future__ import annotations

import importlib
import pkgutil

from semantics.specs import AnySpec

OUTPUTS = ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_diagnostics", "cpg_points_to")


def discover_specs() -> tuple[AnySpec, ...]:
    specs: list[AnySpec] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        specs.extend(getattr(module, "SPECS", ()))
    return tuple(specs)
