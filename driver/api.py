"""The public API for scripts and notebooks.

    from driver.api import build_driver, open_session
    dr = build_driver("path/to/code", "build/cpg")
    summary = dr.execute(["build_summary"])["build_summary"]
    session, tables = open_session("build/cpg")
    session.sql("SELECT kind, count(*) FROM cpg_nodes GROUP BY kind").show()
"""

from __future__ import annotations

from pathlib import Path

from datafusion import SessionContext

from driver.authority import session as new_session
from driver.delta_store import DeltaTableStore
from driver.factory import build_driver
from relspec.catalog import DatasetCatalog

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
