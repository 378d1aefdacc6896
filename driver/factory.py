"""The driver factory: a Hamilton driver over the whole pipeline, configured for one build."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
from hamilton import driver as hamilton_driver
from hamilton.caching import fingerprinting
from hamilton.lifecycle import base as lifecycle_base

import dataflows.cpg
import dataflows.extraction
import dataflows.policy
import dataflows.semantic_plan
import dataflows.views
import driver.authority
from driver.options import check_build_options
from relspec.policy import ValidationMode
from semantics.discovery import DEFAULT_MAX_FILE_BYTES
from semantics.ir import CachePolicy

PACKAGE_ROOT = Path(__file__).resolve().parent.parent

PIPELINE_MODULES = (driver.authority, dataflows.extraction, dataflows.semantic_plan, dataflows.policy,
                    dataflows.views, dataflows.cpg)

# The planning chain is pure: its results depend only on the code of `semantics` and `relspec`, so
# Hamilton's cache keeps them across runs, in a folder per version of that code (a node's own code
# version would miss a change in the library it calls). Every other node holds live engine objects
# (sessions, lazy frames, stores) or reads tables, whose reuse the fingerprinted staging decides.
CACHED_NODES = ("view_specs", "compiled_ir", "graph_positions", "join_plans", "cache_hints", "inferred_ir",
                "optimized_ir", "semantic_plan")
HAMILTON_CACHE_FOLDER = "_hamilton_cache"


@fingerprinting.hash_value.register(msgspec.Struct)
def _hash_struct(obj: msgspec.Struct, *args: object, **kwargs: object) -> str:
    """Hamilton's data version of a typed artifact: a hash of its encoding (not a random version)."""
    return hashlib.md5(msgspec.json.encode(obj), usedforsecurity=False).hexdigest()


def specs_version() -> str:
    """A hash of the source that defines the specs and compiles them: the planning cache's folder."""
    digest = hashlib.md5(usedforsecurity=False)
    for folder in ("semantics", "relspec"):
        for path in sorted((PACKAGE_ROOT / folder).rglob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


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
    before it writes anything. A wrong option raises `driver.options.BuildOptionError` (a
    ValueError) before anything is written.
    """
    root = check_build_options(source_root, output_dir, jobs=jobs, include=include, exclude=exclude,
                               max_file_bytes=max_file_bytes, cache_overrides=cache_overrides or {},
                               validation_mode=validation_mode)
    config: dict[str, object] = {
        "source_root": str(root),
        "jobs": jobs,
        "include": list(include),
        "exclude": list(exclude),
        "max_file_bytes": max_file_bytes,
        "cache_overrides": dict(cache_overrides or {}),
        "validation_mode": validation_mode,
    }
    builder = hamilton_driver.Builder().with_modules(*PIPELINE_MODULES)
    if output_dir is not None:  # planning alone needs no output
        config["output_dir"] = _output_location(output_dir)
        builder = builder.with_cache(path=f"{config['output_dir']}/{HAMILTON_CACHE_FOLDER}/{specs_version()}",
                                     default=list(CACHED_NODES), default_behavior="disable")
    builder = builder.with_config(config)
    if adapters:
        builder = builder.with_adapters(*adapters)
    return builder.build()


def _output_location(output_dir: str | Path) -> str:
    text = str(output_dir)
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).resolve())
