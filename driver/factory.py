"""The driver factory: a Hamilton driver over the whole pipeline, configured for one build."""

from __future__ import annotations

from pathlib import Path

from hamilton import driver as hamilton_driver
from hamilton.lifecycle import base as lifecycle_base

import dataflows.cpg
import dataflows.extraction
import dataflows.policy
import dataflows.semantic_plan
import dataflows.views
import driver.authority
from relspec.policy import ValidationMode
from semantics.discovery import DEFAULT_MAX_FILE_BYTES
from semantics.ir import CachePolicy

PIPELINE_MODULES = (driver.authority, dataflows.extraction, dataflows.semantic_plan, dataflows.policy,
                    dataflows.views, dataflows.cpg)


def build_driver(
    source_root: str | Path,
    output_dir: str | Path | None = None,
    *,
    jobs: int = 0,
    include: list[str] | tuple[str, ...] = (),
    exclude: list[str] | tuple[str, ...] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    cache_overrides: dict[str, CachePolicy] | None = None,
    validation_mode: ValidationMode = "warn",
    adapters: list[lifecycle_base.LifecycleAdapter] | None = None,
) -> hamilton_driver.Driver:
    """A Hamilton driver that builds the CPG of ``source_root`` into ``output_dir`` (which only
    planning, e.g. ``dr.execute(["optimized_ir"])``, may leave out).

    ``dr.execute(["cpg_nodes"])`` returns the lazy DataFusion frame of the nodes;
    ``dr.execute(["build_summary"])`` builds and publishes every table.
    ``jobs`` is the number of extraction processes (0: one per core). ``adapters`` are Hamilton
    lifecycle adapters (a UI tracker, timing hooks). ``cache_overrides`` ({view: policy}) win over
    the compiled cache policies; ``validation_mode="error"`` stops a run that fails validation
    before it writes anything.
    """
    config: dict[str, object] = {
        "source_root": str(Path(source_root).resolve()),
        "jobs": jobs,
        "include": list(include),
        "exclude": list(exclude),
        "max_file_bytes": max_file_bytes,
        "cache_overrides": dict(cache_overrides or {}),
        "validation_mode": validation_mode,
    }
    if output_dir is not None:  # planning alone needs no output
        config["output_dir"] = _output_location(output_dir)
    builder = hamilton_driver.Builder().with_modules(*PIPELINE_MODULES).with_config(config)
    if adapters:
        builder = builder.with_adapters(*adapters)
    return builder.build()


def _output_location(output_dir: str | Path) -> str:
    text = str(output_dir)
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).resolve())
