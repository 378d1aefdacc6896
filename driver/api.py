"""The public API for scripts and notebooks.

    from driver.api import build_driver, open_session
    dr = build_driver("path/to/code", "build/cpg")
    summary = dr.execute(["build_summary"])["build_summary"]
    session, tables = open_session("build/cpg")
    session.sql("SELECT kind, count(*) FROM cpg_nodes GROUP BY kind").show()

Reading a built output needs DataFusion and deltalake, not the pipeline: ``build_driver`` (Hamilton,
the extractor, the dataflows) is imported the first time it is asked for, so `cpgflow query` and
a notebook that only reads never load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from relspec.catalog import DatasetCatalog

if TYPE_CHECKING:
    from driver.factory import build_driver

__all__ = ["build_driver", "open_session"]


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
    """``build_driver``, imported when first asked for (`from driver.api import build_driver` works)."""
    if name == "build_driver":
        from driver.factory import build_driver

        return build_driver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
