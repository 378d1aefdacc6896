"""Hamilton node of the decision provenance graph: after the run is recorded, every decision it
made and the evidence behind each is appended to the provenance tables (relspec/provenance.py)."""

from __future__ import annotations

from hamilton.function_modifiers import tag

from relspec.catalog import TableStore
from relspec.policy import CompiledExecutionPolicy, TableStats
from relspec.provenance import derive_provenance, provenance_tables
from relspec.quarantine import DataCheck
from relspec.releases import Release
from relspec.runs import RunRecord
from relspec.view_graph import ViewGraph
from semantics.ir import SemanticIR


@tag(role="output")
def decision_provenance(run_record: RunRecord, compiled_policy: CompiledExecutionPolicy, optimized_ir: SemanticIR,
                        view_graph: ViewGraph, table_statistics: dict[str, TableStats],
                        data_checks: tuple[DataCheck, ...], release: Release | None,
                        table_store: TableStore) -> dict[str, int]:
    """The run's decisions, their evidence and the edges between them, appended to the provenance
    tables in one commit each; returns each table's new version."""
    graph = derive_provenance(run_record, compiled_policy, optimized_ir, view_graph, table_statistics,
                              data_checks, release)
    return {name: table_store.append(name, rows) for name, rows in provenance_tables(graph).items()}
