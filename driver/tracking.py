"""Tracking a build in the Hamilton UI: a `HamiltonTracker` lifecycle adapter for `build_driver(...,
adapters=[tracker])`, so the UI shows the run's DAG (views, policies, outputs with their `role` tags),
each node's timing and a summary of its result. The tracker SDK is the `ui` extra
(`pip install 'cpgflow[ui]'`); it is imported only when a tracker is asked for. docs/ui.md says how to
start the UI and create its project."""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.options import BuildOptionError
from driver.storage import output_location

if TYPE_CHECKING:
    import msgspec
    from datafusion import DataFrame
    from hamilton_sdk.adapters import HamiltonTracker

# Where `hamilton ui` serves its API and its pages by default (one server in its mini mode).
LOCAL_UI_URL = "http://localhost:8241"
# A struct result larger than this, encoded as JSON, is summarised by its type and size alone.
MAX_SUMMARY_BYTES = 64 * 1024


def build_tracker(
    source_root: str | Path,
    output_dir: str | Path,
    *,
    project_id: int = 1,
    username: str | None = None,
    dag_name: str | None = None,
    api_url: str | None = None,
    ui_url: str | None = None,
) -> HamiltonTracker:
    """A Hamilton UI tracker for the build of ``source_root`` into ``output_dir``.

    The run is recorded in project ``project_id`` (which must exist, with ``username`` among its
    writers: 1 is the first project made in a fresh UI) as ``dag_name`` (default
    ``cpgflow build <root folder name>``), tagged with the source root and the output folder.
    ``username`` defaults to the login name; ``api_url`` to ``$HAMILTON_API_URL`` or the local UI
    (``http://localhost:8241``); ``ui_url`` (where the run's pages are) to ``$HAMILTON_UI_URL`` or
    ``api_url``. Raises `driver.options.BuildOptionError` (a ValueError, one line) when the `ui`
    extra is not installed, no UI answers at ``api_url``, or the project is not there.
    """
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id <= 0:
        raise BuildOptionError("project_id", f"must be a positive project number, not {project_id!r}")
    tracker_class = _tracker_class()
    api = (api_url or os.environ.get("HAMILTON_API_URL") or LOCAL_UI_URL).rstrip("/")
    return _connect(
        tracker_class,
        project_id=project_id,
        username=username or getpass.getuser(),
        dag_name=dag_name or f"cpgflow build {Path(source_root).resolve().name}",
        tags={"source_root": str(Path(source_root).resolve()), "output_dir": output_location(output_dir)},
        hamilton_api_url=api,
        hamilton_ui_url=(ui_url or os.environ.get("HAMILTON_UI_URL") or api).rstrip("/"),
    )


def _tracker_class() -> type[HamiltonTracker]:
    """The SDK's tracker, with our result summaries registered; a one-line error without the SDK."""
    try:
        from hamilton_sdk.adapters import HamiltonTracker
    except ImportError:
        raise BuildOptionError("track", "the Hamilton UI tracker is not installed: "
                                        "pip install 'cpgflow[ui]' (see docs/ui.md)") from None
    _register_result_summaries()
    return HamiltonTracker


def _connect(tracker_class: type[HamiltonTracker], **arguments: Any) -> HamiltonTracker:
    """The tracker, which checks the UI and the project as it starts: a failure is one line."""
    import requests
    from hamilton_sdk.api import clients

    api, project_id, user = arguments["hamilton_api_url"], arguments["project_id"], arguments["username"]
    try:
        with _quiet("hamilton_sdk.adapters"):  # it logs what our one-line error says
            return tracker_class(**arguments)
    except requests.ConnectionError:
        raise BuildOptionError("api_url", f"no Hamilton UI answers at {api}: start one (see docs/ui.md)") from None
    except clients.ResourceDoesNotExistException:
        raise BuildOptionError("project_id", f"project {project_id} is not on the Hamilton UI at {api}, "
                                             f"or {user!r} may not see it: create it there first") from None
    except clients.UnauthorizedException:
        raise BuildOptionError("username", f"the Hamilton UI at {api} refused user {user!r}") from None


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


@functools.cache
def _register_result_summaries() -> None:
    """What the UI shows of our results: a lazy DataFusion frame by its schema (never computing it),
    a typed artifact (a msgspec struct: the build summary, the compiled policy...) by its fields."""
    import msgspec
    from datafusion import DataFrame
    from hamilton_sdk.tracking import data_observation

    data_observation.compute_stats.register(DataFrame, _frame_stats)
    data_observation.compute_schema.register(DataFrame, _frame_schema)
    data_observation.compute_stats.register(msgspec.Struct, _struct_stats)


def _frame_stats(result: DataFrame, node_name: str, node_tags: dict[str, Any]) -> dict[str, Any]:
    return _primitive(f"DataFusion frame, {len(result.schema())} columns (lazy: its rows are not counted here)")


def _frame_schema(result: DataFrame, node_name: str, node_tags: dict[str, Any]) -> dict[str, Any]:
    from hamilton.plugins import h_schema

    return {"observability_type": "schema", "observability_schema_version": "0.0.1", "name": "Schema",
            "observability_value": h_schema.pyarrow_schema_to_json(result.schema())}


def _struct_stats(result: msgspec.Struct, node_name: str, node_tags: dict[str, Any]) -> dict[str, Any]:
    import msgspec

    encoded = msgspec.json.encode(result)
    if len(encoded) > MAX_SUMMARY_BYTES:
        return _primitive(f"{type(result).__name__}, {len(encoded) // 1024} KiB as JSON")
    return {"observability_type": "dict", "observability_schema_version": "0.0.2",
            "observability_value": {"type": type(result).__name__, "value": msgspec.json.decode(encoded)}}


def _primitive(text: str) -> dict[str, Any]:
    return {"observability_type": "primitive", "observability_schema_version": "0.0.1",
            "observability_value": {"type": "str", "value": text}}
