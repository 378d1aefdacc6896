"""`cpgflow export` (driver/exports.py): GraphML read back by networkx, Neo4j import CSV checked against
the header grammar of `neo4j-admin database import`, Parquet compared row for row with the Delta tables.
Each format is exported once through the real console script, from the app fixture program."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import networkx as nx
import pyarrow.parquet as pq
import pytest
from conftest import assert_one_line_error, query, run_cli

from driver.api import export, open_session
from driver.cli import EXPORT_FORMATS
from driver.exports import EXPORTERS, ExportError
from relspec.catalog import CPG_TABLES

# neo4j-admin's header: `<name>:<field_type>` or a bare `<name>` (a string property). Field types: the
# node id (`:ID`, optionally in an id space `:ID(space)`), `:LABEL`, a relationship's `:START_ID`,
# `:END_ID` (with the same id space) and `:TYPE`, `:IGNORE`, or a property type, `[]` for an array.
NEO4J_TYPES = ("int", "long", "float", "double", "boolean", "byte", "short", "char", "string", "point", "date",
               "localtime", "time", "localdatetime", "datetime", "duration")
HEADER_TOKEN = re.compile(
    r"(?P<name>[^:]*):(?P<special>ID|START_ID|END_ID)(\([^)]+\))?"
    r"|(?P<name2>[^:]*):(?P<special2>LABEL|TYPE|IGNORE)"
    rf"|(?P<property>[^:]+)(:(?:{'|'.join(NEO4J_TYPES)})(\[\])?)?"
)


@pytest.fixture(scope="module")
def exported(app_built: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every format exported with the CLI; {format: what it wrote (the GraphML file, or the folder)}."""
    base = tmp_path_factory.mktemp("exports")
    destinations = {"graphml": base / "cpg.graphml", "neo4j-csv": base / "neo4j", "parquet": base / "parquet"}
    for export_format, destination in destinations.items():
        done = run_cli("export", app_built, destination, "--format", export_format)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert done.stdout.startswith("wrote ")
    return destinations


def test_formats_listed_by_the_cli_are_the_exporters() -> None:
    assert tuple(EXPORTERS) == EXPORT_FORMATS


# -- GraphML ------------------------------------------------------------------------------------------


def test_graphml_reads_back_with_networkx(exported: dict[str, Path], app_built: Path) -> None:
    graph = nx.read_graphml(exported["graphml"], force_multigraph=True)
    assert graph.is_directed()
    nodes = query(app_built, "SELECT node_id, kind, name, qualname, path, file_id, line, col, end_line, end_col, "
                             "bstart, bend FROM cpg_nodes")
    edges = query(app_built, "SELECT edge_id, src, dst, kind, confidence, resolver, file_id FROM cpg_edges")
    assert graph.number_of_nodes() == len(nodes) and graph.number_of_edges() == len(edges)
    for node in nodes:  # every attribute as in the table, NULL ones absent
        assert graph.nodes[node.pop("node_id")] == {key: value for key, value in node.items() if value is not None}
    read_edges = {key: (src, dst, data) for src, dst, key, data in graph.edges(keys=True, data=True)}
    for edge in edges:
        src, dst, data = read_edges[edge.pop("edge_id")]
        assert (src, dst) == (edge.pop("src"), edge.pop("dst"))
        assert data == edge


def test_graphml_escapes_names(exported: dict[str, Path]) -> None:
    """The module app/r&d.py and a lambda (`<lambda1>`) need escaping in XML."""
    graph = nx.read_graphml(exported["graphml"], force_multigraph=True)
    qualnames = {data.get("qualname") for _, data in graph.nodes(data=True)}
    assert {"app.r&d", "app.r&d.probe", "app.core.<lambda1>"} <= qualnames
    calls = {(graph.nodes[src].get("qualname"), graph.nodes[dst].get("qualname"))
             for src, dst, data in graph.edges(data=True) if data["kind"] == "CALLS"}
    assert ("app.core.parse", "json.loads") not in calls  # the source is the CALL node, not the function
    assert (None, "json.loads") in calls


def test_xml_forbidden_characters_are_replaced() -> None:
    from driver.exports import _xml

    assert _xml("a\x01b\ud800c\ufffe") == "a\ufffdb\ufffdc\ufffd"


# -- Neo4j CSV ----------------------------------------------------------------------------------------


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        header, *body = list(csv.reader(handle))
    return header, body


def test_neo4j_headers_follow_the_import_grammar(exported: dict[str, Path]) -> None:
    folder = exported["neo4j-csv"]
    assert sorted(path.name for path in folder.iterdir()) == ["edges.csv", "nodes.csv"]
    nodes_header, _ = read_csv(folder / "nodes.csv")
    edges_header, _ = read_csv(folder / "edges.csv")
    for token in nodes_header + edges_header:
        assert HEADER_TOKEN.fullmatch(token), token
    # the header line is as neo4j-admin reads it: plain tokens, no quotes
    assert (folder / "nodes.csv").read_text().splitlines()[0] == ",".join(nodes_header)
    assert nodes_header[:2] == ["node_id:ID", ":LABEL"]
    assert {"line:int", "bstart:long", "qualname"} <= set(nodes_header)
    assert edges_header[:3] == [":START_ID", ":END_ID", ":TYPE"]
    assert {"confidence:double", "resolver"} <= set(edges_header)


def test_neo4j_rows_are_the_tables(exported: dict[str, Path], app_built: Path) -> None:
    folder = exported["neo4j-csv"]
    nodes_header, nodes = read_csv(folder / "nodes.csv")
    edges_header, edges = read_csv(folder / "edges.csv")
    node_ids = [row[0] for row in nodes]
    assert len(set(node_ids)) == len(node_ids)
    for row in edges:  # every relationship joins two exported nodes
        assert row[0] in set(node_ids) and row[1] in set(node_ids)
    columns = [token.split(":")[0] or {":LABEL": "kind", ":START_ID": "src", ":END_ID": "dst", ":TYPE": "kind"}[token]
               for token in nodes_header]
    assert columns[:2] == ["node_id", "kind"]
    table = query(app_built, f"SELECT {', '.join(columns)} FROM cpg_nodes")
    as_text = {tuple("" if value is None else str(value) for value in row.values()) for row in table}
    assert {tuple(row) for row in nodes} == as_text
    edge_columns = [token.split(":")[0] or {":START_ID": "src", ":END_ID": "dst", ":TYPE": "kind"}[token]
                    for token in edges_header]
    edge_table = query(app_built, f"SELECT {', '.join(edge_columns)} FROM cpg_edges")
    exported_edges = {(*row[:4], float(row[4]), *row[5:]) for row in edges}
    assert exported_edges == {tuple(row.values()) for row in edge_table}


# -- Parquet ------------------------------------------------------------------------------------------


def sorted_rows(table) -> list[tuple]:
    return sorted((tuple(row.values()) for row in table.to_pylist()), key=repr)


def test_parquet_is_each_table_row_for_row(exported: dict[str, Path], app_built: Path) -> None:
    folder = exported["parquet"]
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{table}.parquet" for table in CPG_TABLES)
    session, _ = open_session(app_built)
    for table in CPG_TABLES:
        delta = session.table(table).to_arrow_table()
        written = pq.read_table(folder / f"{table}.parquet")
        assert written.schema.equals(delta.schema), table
        assert sorted_rows(written) == sorted_rows(delta), table
    assert pq.read_table(folder / "cpg_nodes.parquet").num_rows > 100


# -- the API and errors -------------------------------------------------------------------------------


def test_api_export_replaces_and_leaves_no_partial_file(app_built: Path, tmp_path: Path) -> None:
    session, _ = open_session(app_built)
    target = tmp_path / "g.graphml"
    target.write_text("old")
    [written] = export(session, "graphml", target)
    assert written.path == str(target) and set(written.counts) == {"nodes", "edges"}
    assert target.read_text().startswith("<?xml")
    assert [path.name for path in tmp_path.iterdir()] == ["g.graphml"]
    with pytest.raises(ExportError, match="unknown export format 'dot'"):
        export(session, "dot", tmp_path / "x")


@pytest.mark.parametrize(("export_format", "destination", "message", "status"), [
    ("parquet", "{file}", "exists and is not a folder", 1),
    ("graphml", "{folder}", "is a folder: give the name of the file to write", 1),
    ("graphml", "{folder}/no/such/x.graphml", "does not exist", 1),
    ("dot", "{folder}/x", "Invalid value for '--format'", 2),
])
def test_export_errors_are_one_line(app_built: Path, tmp_path: Path, export_format, destination, message,
                                    status) -> None:
    (tmp_path / "file").write_text("")
    target = destination.format(file=tmp_path / "file", folder=tmp_path)
    done = run_cli("export", app_built, target, "--format", export_format)
    assert done.returncode == status
    assert_one_line_error(done.stderr)
    assert message in done.stderr


def test_export_of_a_folder_that_is_no_build(tmp_path: Path) -> None:
    done = run_cli("export", tmp_path, tmp_path / "out", "--format", "parquet")
    assert done.returncode == 1
    assert_one_line_error(done.stderr)
    assert "holds no cpgflow tables" in done.stderr
