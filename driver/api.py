"""The public API for scripts and notebooks.

    from driver.api import build_driver, open_session
    dr = build_driver("path/to/code", "build/cpg")
    summary = dr.execute(["build_summary"])["build_summary"]
    session, tables = open_session("build/cpg")
    session.sql("SELECT kind, count(*) FROM cpg_nodes GROUP BY kind").show()
    callers_of(session, "pkg.mod.f", depth=2)       # a pyarrow.Table; see driver/questions.py
    export(session, "graphml", "cpg.graphml")       # see driver/exports.py

Reading a built output needs DataFusion and deltalake, not the pipeline: ``build_driver`` (Hamilton,
the extractor, the dataflows) is imported the first time it is asked for, so `cpgflow query` and
a notebook that only reads never load it (nor ``export``'s writers, until asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.questions import callees_of, callers_of, import_graph, points_to, subclasses_of, unused_functions
from relspec.catalog import DatasetCatalog

if TYPE_CHECKING:
    from driver.exports import export
    from driver.factory import build_driver

__all__ = ["build_driver", "callees_of", "callers_of", "export", "import_graph", "open_session", "points_to",
           "subclasses_of", "unused_functions"]


def open_session(output_dir: str | Path) -> tuple[SessionContext, list[str]]:
    """A DataFusion session with every table of a built output registered by name."""
    location = str(output_dir) if "://" in str(output_dir) else str(Path(output_dir).resolve())
    store = DeltaTableStore(DatasetCatalog(location))
    session = new_session()
    registered = []
    for name in store.catalog.names():
        if store.version(name) is not None:
            store.register(session, name)
            registered.append(name)
    return session, registered


def __getattr__(name: str) -> object:
    """``build_driver`` and ``export``, imported when first asked for (`from driver.api import
    build_driver` works): a query loads neither the pipeline nor the Parquet and CSV writers."""
    if name == "build_driver":
        from driver.factory import build_driver

        return build_driver
    if name == "export":
        from driver.exports import export

        return export
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
