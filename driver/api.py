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

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.questions import callees_of, callers_of, import_graph, points_to, subclasses_of, unused_functions
from driver.storage import output_location
from relspec.catalog import LOG_TABLES, RUNS_TABLE, DatasetCatalog
from relspec.releases import current_release, run_versions
from relspec.runs import find_record
from semantics.fixpoint import reads_table, register_in_memory

_RECURSIVE = re.compile(r"\bWITH\s+RECURSIVE\b", re.IGNORECASE)
# The tables a report reads are read into memory once when together they hold at most this many rows
# (see `hold_small_tables`): ~70 MB of cpg_nodes and cpg_edges, read in well under a second.
HELD_TABLE_ROWS = 500_000

if TYPE_CHECKING:
    from driver.exports import export
    from driver.factory import build_driver

__all__ = ["NotReleased", "build_driver", "callees_of", "callers_of", "content_fingerprint", "export",
           "hold_small_tables", "import_graph", "open_session", "points_to", "prepare_query", "subclasses_of",
           "unused_functions"]


class NotReleased(LookupError):
    """The output holds no release to read (nothing built yet, or no build released)."""


def open_session(output_dir: str | Path, *, run_id: str | None = None,
                 storage_options: dict[str, str] | None = None,
                 reading: str | None = None) -> tuple[SessionContext, list[str]]:
    """A DataFusion session with every table of a built output registered by name, each at the
    version its current release names (Delta time travel): a build in progress, one that died and a
    quarantined one stay invisible. The run and release logs are read as they are now.

    ``run_id`` reads the tables a given run wrote instead (a quarantined run's, to see why it was).
    ``storage_options`` reach an output on object storage (``s3://BUCKET/PREFIX``; see `driver.storage`).
    ``reading``: the SQL the session is for; only the tables it names are registered (opening each of
    an output's ~30 tables costs a few milliseconds, most of a small output's fixed question).
    """
    store = DeltaTableStore(DatasetCatalog(output_location(output_dir)), storage_options)
    versions = _run_versions(store, run_id) if run_id else _release_versions(store)
    session = new_session()
    registered = []
    for name in store.catalog.names():
        if reading is not None and not reads_table(reading, name):
            continue
        if name in versions:
            store.register(session, name, versions[name])
        elif name in LOG_TABLES and store.version(name) is not None:
            store.register(session, name)
        else:
            continue
        registered.append(name)
    return session, registered


def _release_versions(store: DeltaTableStore) -> dict[str, int]:
    release = current_release(store.releases())
    if release is None:
        raise NotReleased(f"{store.catalog.root} holds no released build (cpgflow runs lists its runs)")
    return release.versions


def _run_versions(store: DeltaTableStore, run_id: str) -> dict[str, int]:
    """The versions of the tables ``run_id`` wrote (see `relspec.releases.run_versions`)."""
    record = find_record(store.read(RUNS_TABLE), run_id)
    versions = run_versions(store.releases(), record) if record is not None else {}
    if not versions:
        raise NotReleased(f"no run {run_id!r} with written tables in {store.catalog.root} (cpgflow runs lists them)")
    return versions


def prepare_query(session: SessionContext, sql: str) -> None:
    """Make ``session`` ready to run ``sql`` exactly: a recursive query re-scans the tables its
    recursive step reads at every iteration, and a Delta scan yields its rows to the first scan of a
    plan only (later iterations would silently see no rows), so before a ``WITH RECURSIVE`` query each
    table it names is read once into memory under its name."""
    if _RECURSIVE.search(sql):
        _read_into_memory(session, _tables_named(session, sql))


def hold_small_tables(session: SessionContext, sql: str, max_rows: int = HELD_TABLE_ROWS) -> None:
    """Read the tables ``sql`` names into memory under their names, when together they hold at most
    ``max_rows`` rows (counted from the tables' statistics: usually no scan). A report's plan scans
    cpg_nodes and cpg_edges several times each, and each scan of a Delta table opens its files again:
    `cpgflow callgraph` of a requests-sized output ran its query in 0.18 s over the tables and in
    0.06 s, the reads included, over them in memory. A large output's tables stay where they are."""
    names = _tables_named(session, sql)
    if not names:
        return
    counted = session.sql(" UNION ALL ".join(f"SELECT count(*) AS n FROM {name}" for name in names))
    if sum(counted.to_arrow_table().column(0).to_pylist()) <= max_rows:
        _read_into_memory(session, names)


def _tables_named(session: SessionContext, sql: str) -> list[str]:
    """The tables of ``session`` that ``sql`` names."""
    return [name for name in session.catalog().schema().names() if reads_table(sql, name)]


def _read_into_memory(session: SessionContext, names: list[str]) -> None:
    """Each of the tables ``names`` read once and registered in memory under its name."""
    for name in names:
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


def content_fingerprint(session: SessionContext, table: str) -> str:
    """A digest of a table's rows, independent of their order and of how they are stored: the md5 of
    the sorted per-row md5s of every column's text (NULL apart from any text)."""
    columns = session.table(table).schema().names
    cells = ", ".join(f"coalesce(CAST({_quoted(name)} AS VARCHAR), '\\x00null')" for name in columns)
    rows = session.sql(f"SELECT md5(concat_ws('\\x1f', {cells})) AS h FROM {table} ORDER BY h")
    digest = hashlib.md5(usedforsecurity=False)
    for batch in rows.execute_stream():
        digest.update("\n".join(batch.to_pyarrow().column(0).to_pylist()).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
