"""Hamilton nodes that end a build: check what it wrote, then release it (or quarantine it).

The release is one commit to the release log naming the version of every table the build produced;
until it lands, readers read the previous release. See `relspec.releases` and `relspec.quarantine`.
"""

from __future__ import annotations

from datafusion import SessionContext
from hamilton.function_modifiers import tag

from relspec.authority import ExecutionAuthority
from relspec.catalog import RELEASES_TABLE, TableStore
from relspec.maintenance import MaintenanceRecord
from relspec.quarantine import (
    DENSITY_TABLES,
    DataCheck,
    dangling_endpoints,
    density_in_history,
    failures,
    modules_present,
    schema_matches,
)
from relspec.releases import Release, current_release, density_history, new_release, release_row
from semantics.entities import FILE
from semantics.views.graph import OUTPUT_SCHEMAS


@tag(role="output")
def source_lines(source_catalog: dict[str, int], session: SessionContext) -> int:
    """Lines of the code base built (the size check's denominator)."""
    table = session.sql(f"SELECT coalesce(sum(line_count), 0) AS n FROM {FILE.table}").to_arrow_table()
    return int(table.column(0)[0].as_py())


@tag(role="output")
def output_rows(published_cpg: dict[str, int], table_store: TableStore) -> dict[str, int]:
    """Rows of each published output, from its Delta metadata (no scan): the size check's numerators
    and the release's size history."""
    return {name: table_store.statistics(name)[0] for name in published_cpg}  # type: ignore[index]


# The edges with an end that is no node, counted once each (edge ids are unique and never null), and
# one of them: both ends in one anti join, one hash table of the nodes (two NOT EXISTS built one per
# end: 0.81 -> 0.66 s on the stdlib).
DANGLING_ENDPOINTS_SQL = """SELECT count(DISTINCT e.edge_id) AS n, min(e.edge_id) AS example
FROM (SELECT edge_id, src AS node_id FROM cpg_edges UNION ALL SELECT edge_id, dst FROM cpg_edges) e
LEFT ANTI JOIN cpg_nodes n ON n.node_id = e.node_id"""


def _check_session(table_store: TableStore, names: list[str]) -> SessionContext:
    """A session of its own over the tables as this run wrote them (their latest versions)."""
    session = SessionContext()
    for name in names:
        table_store.register(session, name)
    return session


def _first(session: SessionContext, sql: str) -> tuple[int, str | None]:
    row = session.sql(sql).to_arrow_table().to_pylist()[0]
    return int(row["n"]), row["example"]


def _schema_checks(session: SessionContext, outputs: list[str]) -> list[DataCheck]:
    checks = []
    for name in outputs:
        written = [(field.name, str(field.type)) for field in session.table(name).schema()]
        declared = [(field.name, str(field.type)) for field in OUTPUT_SCHEMAS[name]]
        checks.append(schema_matches(name, written, declared))
    return checks


@tag(role="output")
def data_checks(published_cpg: dict[str, int], maintenance: tuple[MaintenanceRecord, ...], source_lines: int,
                output_rows: dict[str, int], release_log: list[Release], table_store: TableStore,
                execution_authority: ExecutionAuthority) -> tuple[DataCheck, ...]:
    """The invariants the run's output must hold to be released: every edge endpoint a node, the
    declared schemas, a MODULE node for every file read (one skipped unread at discovery, such as a
    symlink out of the root, has none), a graph density inside this output's history;
    and no error in the plan's validation (warn mode lets such a run execute, not be released)."""
    outputs = sorted(published_cpg)
    session = _check_session(table_store, [*outputs, FILE.table])
    released = current_release(release_log)
    endpoints = _released_check(released, table_store, "edges.dangling_endpoint", "cpg_edges",
                                ("cpg_edges", "cpg_nodes"))
    if endpoints is None:
        endpoints = dangling_endpoints("cpg_edges", *_first(session, DANGLING_ENDPOINTS_SQL))
    modules = _released_check(released, table_store, "files.module_missing", "cpg_nodes", ("cpg_nodes", FILE.table))
    if modules is None:
        modules = modules_present("cpg_nodes", *_first(session, f"""SELECT count(*) AS n, min(f.path) AS example
            FROM {FILE.table} f WHERE coalesce(f.content_hash, '') <> ''
                AND NOT EXISTS (SELECT 1 FROM cpg_nodes n WHERE n.kind = 'MODULE' AND n.file_id = f.file_id)"""))
    densities = [density_in_history(name, output_rows[name], source_lines, density_history(release_log, name))
                 for name in DENSITY_TABLES]
    errors = [issue for issue in execution_authority.validation.issues if issue.severity == "error"]
    validation = DataCheck("policy.validation_error", "plan", not errors,
                           "; ".join(f"{issue.code} ({issue.subject})" for issue in errors) or "no error")
    return (endpoints, *_schema_checks(session, outputs), modules, *densities, validation)


def _released_check(released: Release | None, table_store: TableStore, code: str, subject: str,
                    tables: tuple[str, ...]) -> DataCheck | None:
    """A check over ``tables`` that needs no scan: they all still hold the rows the current release
    names, whose build passed it before being released. None: run it."""
    if released is None or not all(name in released.versions
                                   and table_store.holds_version(name, released.versions[name]) for name in tables):
        return None
    return DataCheck(code, subject, True, f"{' and '.join(tables)} unchanged since release {released.sequence}, "
                                          "which passed this check")


@tag(role="output")
def release(data_checks: tuple[DataCheck, ...], published_cpg: dict[str, int], source_catalog: dict[str, int],
            source_lines: int, output_rows: dict[str, int], release_log: list[Release], table_store: TableStore,
            execution_authority: ExecutionAuthority) -> Release | None:
    """The run's release, committed to the release log, when every check passed; None (the run is
    quarantined) otherwise. It names the tables' versions after maintenance."""
    if failures(data_checks):
        return None
    execution_authority.check_resolver(table_store.catalog, "dataset_readiness")
    versions = {name: table_store.version(name) for name in (*published_cpg, *source_catalog)}
    made = new_release(current_release(release_log), execution_authority.run_id,
                       versions, rows=output_rows, source_lines=source_lines)  # type: ignore[arg-type]
    table_store.append(RELEASES_TABLE, release_row(made))
    return made
