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

import re
from pathlib import Path
from typing import TYPE_CHECKING

from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.questions import callees_of, callers_of, import_graph, points_to, subclasses_of, unused_functions
from relspec.catalog import DatasetCatalog
from semantics.fixpoint import register_in_memory

_RECURSIVE = re.compile(r"\bWITH\s+RECURSIVE\b", re.IGNORECASE)

if TYPE_CHECKING:
    from driver.exports import export
    from driver.factory import build_driver

__all__ = ["build_driver", "callees_of", "callers_of", "export", "import_graph", "open_session", "points_to",
           "prepare_query", "subclasses_of", "unused_functions"]


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


def prepare_query(session: SessionContext, sql: str) -> None:
    """Make ``session`` ready to run ``sql`` exactly: a recursive query re-scans the tables its
    recursive step reads at every iteration, and a Delta scan yields its rows to the first scan of a
    plan only (later iterations would silently see no rows), so before a ``WITH RECURSIVE`` query each
    table it names is read once into memory under its name."""
    if not _RECURSIVE.search(sql):
        return
    for name in session.catalog().schema().names():
        if re.search(rf"\b{re.escape(name)}\b", sql):
            register_in_memory(session, name, session.table(name).to_arrow_table())


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
