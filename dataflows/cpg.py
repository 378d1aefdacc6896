"""Hamilton nodes of the CPG views: DataFusion queries over the extraction tables, then publishing."""

from __future__ import annotations

from datafusion import DataFrame, SessionContext

from relspec.catalog import CPG_TABLES, TableStore
from relspec.summary import BuildSummary
from semantics.cpg_views import OUTPUT_SQL, OUTPUTS
from semantics.entities import FILE
from semantics.extract.manifest import FileManifest


def extract_catalog(extraction_tables: dict[str, int], session: SessionContext,
                    table_store: TableStore) -> dict[str, int]:
    """The extraction tables, registered in the session at the versions just written."""
    for name in extraction_tables:
        table_store.register(session, name)
    return extraction_tables


def _view(name: str, session: SessionContext) -> DataFrame:
    """The view's lazy frame; its columns are the declared ones (types are enforced at write)."""
    frame = session.sql(OUTPUT_SQL[name]())
    declared = OUTPUTS[name].arrow_schema().names
    if frame.schema().names != declared:
        raise TypeError(f"{name} view has columns {frame.schema().names}, declared {declared}")
    return frame


def cpg_nodes(extract_catalog: dict[str, int], session: SessionContext) -> DataFrame:
    """Every node of the graph: the union of the node entities, with the file's path."""
    return _view("cpg_nodes", session)


def cpg_edges(extract_catalog: dict[str, int], session: SessionContext) -> DataFrame:
    """Every edge: the structural edges the entity declarations' foreign keys imply."""
    return _view("cpg_edges", session)


def cpg_props(extract_catalog: dict[str, int], session: SessionContext) -> DataFrame:
    """Node properties, one row per (node, key), in typed value columns."""
    return _view("cpg_props", session)


def cpg_diagnostics(extract_catalog: dict[str, int], session: SessionContext) -> DataFrame:
    """Files that could not be read, decoded or parsed, and why."""
    return _view("cpg_diagnostics", session)


def published_cpg(cpg_nodes: DataFrame, cpg_edges: DataFrame, cpg_props: DataFrame,
                  cpg_diagnostics: DataFrame, table_store: TableStore) -> dict[str, int]:
    """The CPG tables written to the output, one Delta commit each; returns their versions."""
    frames = {"cpg_nodes": cpg_nodes, "cpg_edges": cpg_edges, "cpg_props": cpg_props,
              "cpg_diagnostics": cpg_diagnostics}
    return {name: table_store.overwrite(name, frames[name], OUTPUTS[name].arrow_schema()) for name in CPG_TABLES}


def _counts(session: SessionContext, sql: str) -> dict[str, int]:
    table = session.sql(sql).to_arrow_table()
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def build_summary(published_cpg: dict[str, int], extract_catalog: dict[str, int], file_manifest: FileManifest,
                  session: SessionContext, table_store: TableStore) -> BuildSummary:
    """Counts of what the build produced, read back from the published tables."""
    for name in published_cpg:
        table_store.register(session, name)
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
        table_versions={**extract_catalog, **published_cpg},
    )
