"""Hamilton nodes around the views: the sources they read, and publishing what they produce."""

from __future__ import annotations

import pyarrow as pa
from datafusion import DataFrame, SessionContext

from relspec.catalog import TableStore
from relspec.summary import BuildSummary
from semantics.entities import BUILTIN_NAMES, FILE, builtin_names_table
from semantics.extract.manifest import FileManifest
from semantics.views.graph import OUTPUT_SCHEMAS


def builtin_names() -> pa.Table:
    """The names of the running interpreter's `builtins`: where unbound names resolve."""
    return builtin_names_table()


def source_catalog(extraction_tables: dict[str, int], builtin_names: pa.Table, session: SessionContext,
                   table_store: TableStore) -> dict[str, int]:
    """The tables the views read, registered in the session: the extraction tables at the versions
    just written, and the builtin names."""
    for name in extraction_tables:
        table_store.register(session, name)
    if session.table_exist(BUILTIN_NAMES.table):
        session.deregister_table(BUILTIN_NAMES.table)
    session.register_record_batches(BUILTIN_NAMES.table, [builtin_names.to_batches()])
    return extraction_tables


def published_cpg(cpg_nodes: DataFrame, cpg_edges: DataFrame, cpg_props: DataFrame,
                  cpg_diagnostics: DataFrame, table_store: TableStore) -> dict[str, int]:
    """The CPG tables written to the output, one Delta commit each; returns their versions."""
    frames = {"cpg_nodes": cpg_nodes, "cpg_edges": cpg_edges, "cpg_props": cpg_props,
              "cpg_diagnostics": cpg_diagnostics}
    return {name: table_store.overwrite(name, frame, OUTPUT_SCHEMAS[name]) for name, frame in frames.items()}


def _counts(session: SessionContext, sql: str) -> dict[str, int]:
    table = session.sql(sql).to_arrow_table()
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def build_summary(published_cpg: dict[str, int], source_catalog: dict[str, int], file_manifest: FileManifest,
                  session: SessionContext, table_store: TableStore) -> BuildSummary:
    """Counts of what the build produced, read back from the published tables."""
    published = {name: f"published_{name}" for name in published_cpg}
    for name, alias in published.items():
        table_store.register(session, name)
        session.register_view(alias, session.table(name))
    lines = session.sql(f"SELECT coalesce(sum(line_count), 0) AS n FROM {FILE.table}").to_arrow_table()
    files = session.sql(f"SELECT count(*) AS n FROM {FILE.table}").to_arrow_table()
    return BuildSummary(
        output_dir=table_store.catalog.root,
        files=files.column(0)[0].as_py(),
        files_extracted=len(file_manifest.tasks),
        files_reused=len(file_manifest.unchanged),
        files_removed=len(file_manifest.removed),
        lines=lines.column(0)[0].as_py(),
        nodes_by_kind=_counts(session, "SELECT kind, count(*) FROM cpg_nodes GROUP BY kind ORDER BY kind"),
        edges_by_kind=_counts(session, "SELECT kind, count(*) FROM cpg_edges GROUP BY kind ORDER BY kind"),
        diagnostics_by_code=_counts(session, "SELECT code, count(*) FROM cpg_diagnostics GROUP BY code ORDER BY code"),
        table_versions={**source_catalog, **published_cpg},
    )
