"""The driver factory: plans a build, builds its execution authority context, then the Hamilton
driver that executes it.

Planning is a Hamilton driver of its own (`plan_driver`: discovery, the semantic plan, the policy
compiler, the engines and the execution authority context), cached across runs. Its results are
passed into the execution driver (`build_driver`), whose view nodes get the Delta savers and loaders
the compiled cache policy asks for (`driver.materializers`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import datafusion
import msgspec
from hamilton import driver as hamilton_driver
from hamilton.caching import fingerprinting
from hamilton.caching.stores.base import ResultRetrievalError, StoredResult
from hamilton.caching.stores.file import FileResultStore
from hamilton.caching.stores.sqlite import SQLiteMetadataStore
from hamilton.lifecycle import base as lifecycle_base

import dataflows.cpg
import dataflows.extraction
import dataflows.manifest
import dataflows.policy
import dataflows.provenance
import dataflows.release
import dataflows.semantic_plan
import dataflows.views
import driver.authority
import driver.dask_extraction
import driver.engines
from driver.authority import BuildLockHolder, FailedRunRecorder
from driver.delta_store import DeltaTableStore
from driver.lock import BuildLock, restore_release
from driver.materializers import view_loaders, view_savers
from driver.options import BuildOptionError, check_build_options
from driver.scheduling import obey_schedule
from driver.storage import cache_home, local_folder, output_location
from relspec.calibration import CalibrationMode
from relspec.catalog import DatasetCatalog, TableStore
from relspec.policy import CompiledExecutionPolicy, ExtractionExecutor, StagingMedium, ValidationMode
from relspec.profiles import SessionProfile, compile_session_profile
from relspec.releases import current_release
from semantics.discovery import DEFAULT_MAX_FILE_BYTES
from semantics.ir import CachePolicy

PACKAGE_ROOT = Path(__file__).resolve().parent.parent

PLANNING_MODULES = (driver.engines, dataflows.manifest, dataflows.semantic_plan, dataflows.policy)
EXECUTION_MODULES = (dataflows.extraction, driver.dask_extraction, dataflows.cpg, dataflows.release,  # and the views
                     driver.authority, dataflows.provenance)
# What planning hands to the execution driver: the execution authority context and what it was built from
# (the IR, view graph and statistics the policy was compiled from are the decision provenance's evidence).
# `release_log` is the log the plan was made on: `BuildLockHolder` refuses to execute once the folder was
# released again, so the execution nodes can read it instead of the table.
CONTEXT = ("execution_authority", "semantic_plan", "compiled_policy", "validation", "capabilities", "session",
           "table_store", "file_manifest", "optimized_ir", "view_graph", "table_statistics", "release_log",
           "workload_class")

# The planning chain is pure: its results depend only on the code of `semantics` and `relspec`, so
# Hamilton's cache keeps them across runs, in a folder per version of that code (a node's own code
# version would miss a change in the library it calls). Every other node holds live engine objects
# (sessions, lazy frames, stores) or reads tables, whose reuse the fingerprinted staging decides.
CACHED_NODES = ("view_specs", "compiled_ir", "view_logical_plans", "scan_counts", "pass_through_views",
                "graph_positions", "join_plans", "cache_hints", "inferred_ir", "optimized_ir", "semantic_plan",
                "view_localities")
PLANNING_CACHE_FOLDER = "planning"  # under the machine's cpgflow cache (`driver.storage.cache_home`)
FORMER_CACHE_FOLDER = "_hamilton_cache"  # where it was, in each output folder
UNUSED_CACHE_DAYS = 30  # a version of the code's planning cache no build used for so long is removed


@fingerprinting.hash_value.register(msgspec.Struct)
def _hash_struct(obj: msgspec.Struct, *args: object, **kwargs: object) -> str:
    """Hamilton's data version of a typed artifact: a hash of its encoding (not a random version)."""
    return hashlib.md5(msgspec.json.encode(obj), usedforsecurity=False).hexdigest()


def specs_version() -> str:
    """A hash of the source that defines the specs and compiles them: the planning cache's folder."""
    digest = hashlib.md5(datafusion.__version__.encode(), usedforsecurity=False)  # (it plans the scan counts)
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
    modules: Sequence[ModuleType] = (),
    lock_timeout: float | None = None,
    full: bool = False,
    staging: StagingMedium = "auto",
    calibration: CalibrationMode = "observe",
    storage_options: dict[str, str] | None = None,
    executor: ExtractionExecutor = "local",
    scheduler: str | None = None,
) -> hamilton_driver.Driver:
    """A Hamilton driver that builds the CPG of ``source_root`` into ``output_dir``.

    The build is planned first (files discovered, policy compiled and validated, the execution
    authority context built); the driver returned executes it: ``dr.execute(["build_summary"])``
    builds and publishes every table, ``dr.execute(["cpg_nodes"])`` returns the lazy DataFusion
    frame of the nodes. Without ``output_dir`` the planning driver is returned (see `plan_driver`).

    ``jobs`` is the number of extraction processes (0: one per core). ``adapters`` are Hamilton
    lifecycle adapters of the execution driver (a UI tracker, timing hooks). ``modules`` are Hamilton
    modules of your own added to the execution driver: their functions read any pipeline node (a
    view's frame, ``session``, ``build_summary``...) by parameter name. ``cache_overrides``
    ({view: policy}) win over the compiled cache policies; ``validation_mode="error"`` stops a run
    that fails validation before it writes anything. ``full=True`` extracts every file again and
    recomputes every view whole, where a build otherwise updates the views that are file-local by
    file (see `cpgflow plan`). ``staging`` says where staged views go: "auto" (default) holds them in
    memory on a code base of up to ~16 MB of source and writes staging tables past it; "delta" and
    "memory" force one.
    ``calibration`` says what the run's measurements do: "observe" (default) records them and the
    thresholds they would move to, "apply" also compiles the next build with the moved thresholds,
    "off" records nothing (see `relspec.calibration`). ``output_dir`` may be ``s3://BUCKET/PREFIX``
    with ``storage_options`` (delta-rs's keys; the ``AWS_*`` environment otherwise; see
    `driver.storage`). ``executor="dask"`` extracts the files on the Dask cluster at ``scheduler``
    (``tcp://HOST:PORT``; none: a local cluster of ``jobs`` worker processes that the build starts),
    whose workers write the extraction rows beside the tables (see `driver.dask_extraction`). A
    wrong option raises
    `driver.options.BuildOptionError` (a ValueError) before anything is written.

    One build writes an output folder at a time: the folder's lock is held while the build is planned
    and while the driver executes (``lock_timeout``: seconds to wait for another build to finish, None
    to wait as long as it takes; past it `driver.lock.FolderLocked` is raised). Tables that a build
    which died or was quarantined left past the current release are restored to it first. A driver
    executed after another build released the folder refuses to run (`driver.lock.FolderChanged`):
    its plan is stale; build the driver again.
    """
    planning = plan_driver(source_root, output_dir, jobs=jobs, include=include, exclude=exclude,
                           max_file_bytes=max_file_bytes, cache_overrides=cache_overrides,
                           validation_mode=validation_mode, full=full, staging=staging, calibration=calibration,
                           storage_options=storage_options, executor=executor, scheduler=scheduler)
    if output_dir is None:
        return planning
    lock = BuildLock(planning.config["output_dir"], timeout=lock_timeout, storage_options=storage_options)
    store = DeltaTableStore(DatasetCatalog(planning.config["output_dir"]), storage_options)
    lock.acquire()
    try:
        # (builds of earlier versions kept the planning cache in the output's folder: it is the machine's now)
        shutil.rmtree(Path(local_folder(planning.config["output_dir"])) / FORMER_CACHE_FOLDER, ignore_errors=True)
        releases = store.releases()
        restored = restore_release(store, releases)
        # one store for the run: its Delta handles, opened here, serve planning and execution alike
        context = planning.execute(list(CONTEXT), overrides={"release_log": releases, "table_store": store})
    finally:
        lock.release()
    planned_on = current_release(releases)
    _refuse_required_overrides(context["compiled_policy"])
    config = {**planning.config, **context, "restored_tables": list(restored)}
    holder = BuildLockHolder(lock, store, planned_on.sequence if planned_on else 0)
    return _execution_driver(config, [holder, *(adapters or ())], modules)


def replay_driver(store: TableStore, scratch: str | Path, cache_policies: dict[str, CachePolicy],
                  profile: SessionProfile | None = None) -> hamilton_driver.Driver:
    """The execution driver of a replay: planned and executed like a build, with ``store`` (the
    recorded run's tables pinned at their versions, everything else written under ``scratch``) in
    place of the output's own store, and the cache policies and session ``profile`` the run had (the
    replay profile of this machine when it recorded none). Its extraction is not run: execute it with
    the pinned versions as the ``extraction_tables`` override (see `driver.replay`)."""
    planning = plan_driver(scratch, scratch, cache_overrides=cache_policies, calibration="off")
    context = planning.execute(list(CONTEXT), overrides={
        "table_store": store, "workload_class": "replay",
        "session_profile": compile_session_profile("replay", recorded=profile)})
    return _execution_driver({**planning.config, **context, "restored_tables": []}, [], ())


def _execution_driver(config: dict[str, object], adapters: list[lifecycle_base.LifecycleAdapter],
                      modules: Sequence[ModuleType]) -> hamilton_driver.Driver:
    """The execution driver over a planned context: the views with the savers and loaders the
    compiled policy attaches, executed in the compiled schedule's order, the run recorded as failed if
    it fails part-way."""
    policy: CompiledExecutionPolicy = config["compiled_policy"]  # type: ignore[assignment]
    recorder = FailedRunRecorder(config["execution_authority"], config["table_store"])  # type: ignore[arg-type]
    return obey_schedule(hamilton_driver.Builder()
                         .with_modules(*EXECUTION_MODULES, _view_nodes(policy), *modules)
                         .with_config(config)
                         .with_materializers(*view_loaders(policy))
                         .with_adapters(recorder, *adapters)
                         .build(), policy)


def _refuse_required_overrides(policy: CompiledExecutionPolicy) -> None:
    """An override may not turn a decision the compiler marks as required into a wrong result."""
    for view, choice in sorted(policy.cache.items()):
        if choice.override and choice.required and choice.cache == "none":
            raise BuildOptionError("cache_overrides", f"{view}=none: a recursive view re-scans {view}, so it "
                                   "must be staged (delta_staging); lazy, it would give wrong results")


def plan_driver(
    source_root: str | Path,
    output_dir: str | Path | None = None,
    *,
    jobs: int = 0,
    include: list[str] | tuple[str, ...] = (),
    exclude: list[str] | tuple[str, ...] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    cache_overrides: dict[str, CachePolicy] | None = None,
    validation_mode: ValidationMode = "warn",
    full: bool = False,
    staging: StagingMedium = "auto",
    calibration: CalibrationMode = "observe",
    storage_options: dict[str, str] | None = None,
    executor: ExtractionExecutor = "local",
    scheduler: str | None = None,
) -> hamilton_driver.Driver:
    """The planning driver: ``dr.execute(["compiled_policy", "validation"])`` plans a build of
    ``source_root`` into ``output_dir`` (whose tables' statistics the policy weighs) without running
    it. The semantic plan alone (``dr.execute(["optimized_ir"])``) needs no ``output_dir``."""
    root = check_build_options(source_root, output_dir, jobs=jobs, include=include, exclude=exclude,
                               max_file_bytes=max_file_bytes, cache_overrides=cache_overrides or {},
                               validation_mode=validation_mode, staging=staging, calibration=calibration,
                               executor=executor, scheduler=scheduler)
    config: dict[str, object] = {
        "source_root": str(root),
        "jobs": jobs,
        "include": list(include),
        "exclude": list(exclude),
        "max_file_bytes": max_file_bytes,
        "cache_overrides": dict(cache_overrides or {}),
        "validation_mode": validation_mode,
        "full_rebuild": bool(full),
        "staging": staging,
        "calibration_mode": calibration,
        "storage_options": dict(storage_options or {}),
        "extraction_executor": executor,
    }
    if scheduler:  # (an empty value would break Hamilton's rendering of the graph: `cpgflow dag --png`)
        config["dask_scheduler"] = scheduler
    builder = hamilton_driver.Builder().with_modules(*PLANNING_MODULES)
    if output_dir is not None:
        config["output_dir"] = output_location(output_dir)
    return _with_planning_cache(builder).with_config(config).build()


def _with_planning_cache(builder: hamilton_driver.Builder) -> hamilton_driver.Builder:
    """``builder`` with Hamilton's cache of the pure planning chain (`CACHED_NODES`: functions of the
    code alone), kept in the machine's cpgflow cache, a folder per version of the code: every build
    and plan on the machine reuses it, a first build of a code base too. A machine whose cache folder
    cannot be written plans without it."""
    folder = cache_home() / PLANNING_CACHE_FOLDER / specs_version()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _forget_unused_versions(folder.parent, keep=folder.name)
        metadata = SQLiteMetadataStore(str(folder), connection_kwargs={"timeout": 60})
        probe = folder / f".writable.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        if not os.access(folder / "metadata_store.db", os.W_OK):
            return builder
    except (OSError, sqlite3.Error):
        return builder
    return builder.with_cache(path=str(folder), metadata_store=metadata,
                              result_store=_WholeFileResultStore(str(folder)), default=list(CACHED_NODES),
                              default_behavior="disable")


def _forget_unused_versions(planning: Path, keep: str) -> None:
    """Remove the planning caches of other versions of the code that no build used for
    UNUSED_CACHE_DAYS (each build writes its version's metadata store)."""
    horizon = time.time() - UNUSED_CACHE_DAYS * 86_400
    for version in planning.iterdir():
        if version.name == keep or not version.is_dir():
            continue
        store = version / "metadata_store.db"
        if (store.stat().st_mtime if store.exists() else version.stat().st_mtime) < horizon:
            shutil.rmtree(version, ignore_errors=True)


class _WholeFileResultStore(FileResultStore):
    """Hamilton's file result store, each result written to a file of its own, synced and renamed
    into place: builds running at once share the planning cache, and one reading a result another
    is writing finds all of it or none. A result that cannot be written (a full disk) or read (one
    damaged some other way) is computed again, by the next build or by this one."""

    @staticmethod
    def _write_result(file_path: Path, stored_result: StoredResult) -> None:
        partial = file_path.with_name(f".{file_path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            with partial.open("wb") as written:
                written.write(stored_result.save())
                written.flush()
                os.fsync(written.fileno())
            os.replace(partial, file_path)
        except OSError:
            partial.unlink(missing_ok=True)

    def get(self, data_version: str) -> Any | None:
        try:
            return super().get(data_version)
        except Exception as error:  # Hamilton computes the node again on this error, and only on it
            raise ResultRetrievalError(f"planning cache result {data_version}: {error}") from error


def pipeline_driver(source_root: str | Path, output_dir: str | Path) -> hamilton_driver.Driver:
    """The whole pipeline as one Hamilton graph, planning and execution, with the materializers the
    compiled policy attaches: what `cpgflow dag` shows (a build runs the two halves apart)."""
    planning = plan_driver(source_root, output_dir)
    policy: CompiledExecutionPolicy = planning.execute(["compiled_policy"])["compiled_policy"]
    return (hamilton_driver.Builder()
            .with_modules(*PLANNING_MODULES, *EXECUTION_MODULES, _view_nodes(policy))
            .with_config(planning.config)
            .with_materializers(*view_loaders(policy))
            .build())


def _view_nodes(policy: CompiledExecutionPolicy) -> ModuleType:
    """The view nodes, with the savers the compiled cache policy attaches (the loaders are added
    to the graph as Hamilton materializers)."""
    choices = {view: choice.cache for view, choice in policy.cache.items()}
    return dataflows.views.view_module(choices, view_savers(policy))

