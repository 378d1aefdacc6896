"""Exports of a built output for other tools: GraphML, Neo4j bulk-import CSV, Parquet.

Each reads the tables through a DataFusion session and writes them batch by batch (a code base
with millions of rows is never held in memory whole), to a temporary name renamed into place when
complete: a failed export leaves no half-written file. docs/exports.md describes the formats.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from datafusion import DataFrame, SessionContext

from relspec.catalog import CPG_TABLES


class ExportError(ValueError):
    """A destination the export cannot write to."""


class Written(msgspec.Struct, frozen=True):
    """One file an export wrote, and what it holds: {"rows": n}, or {"nodes": n, "edges": m}."""

    path: str
    counts: dict[str, int]

    def __str__(self) -> str:
        return f"{self.path} ({', '.join(f'{count:,} {what}' for what, count in self.counts.items())})"


# (column of cpg_nodes / cpg_edges, GraphML attr.type, Neo4j header type; None: string)
NODE_COLUMNS = (("kind", "string", None), ("name", "string", None), ("qualname", "string", None),
                ("path", "string", None), ("file_id", "string", None), ("line", "int", "int"),
                ("col", "int", "int"), ("end_line", "int", "int"), ("end_col", "int", "int"),
                ("bstart", "long", "long"), ("bend", "long", "long"))
EDGE_COLUMNS = (("kind", "string", None), ("confidence", "double", "double"), ("resolver", "string", None),
                ("file_id", "string", None))

# Characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE/U+FFFF): replaced in values.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _batches(frame: DataFrame) -> Iterator[pa.RecordBatch]:
    for batch in frame.execute_stream():
        yield batch.to_pyarrow()


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path``, renamed to ``path`` when the block completes."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ExportError(f"'{path}' exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot make the folder '{path}': {err.strerror or err}") from None
    return path


def _file(path: Path) -> Path:
    if path.is_dir():
        raise ExportError(f"'{path}' is a folder: give the name of the file to write")
    if not path.parent.is_dir():
        raise ExportError(f"the folder of '{path}' does not exist")
    return path


# -- GraphML ------------------------------------------------------------------------------------------


def _xml(value: object) -> str:
    return NOT_XML.sub("\ufffd", str(value))


def _graphml_elements(out: IO[str], element: str, frame: DataFrame, ends: tuple[str, ...],
                      columns: tuple[tuple[str, str, str | None], ...], prefix: str) -> int:
    """Write one element per row: its id and ends (``ends``: id, then source/target columns) as
    attributes, each non-null value of ``columns`` as a <data> child. Returns the rows written."""
    names = ("id", "source", "target")[: len(ends)]
    rows = 0
    for batch in _batches(frame):
        lines = []
        for row in batch.to_pylist():
            attributes = " ".join(f"{name}={quoteattr(_xml(row[end]))}" for name, end in zip(names, ends, strict=True))
            data = "".join(f'<data key="{prefix}{column}">{escape(_xml(row[column]))}</data>'
                           for column, _, _ in columns if row[column] is not None)
            lines.append(f"    <{element} {attributes}>{data}</{element}>\n")
        out.writelines(lines)
        rows += batch.num_rows
    return rows


def export_graphml(session: SessionContext, path: Path) -> list[Written]:
    """The graph as one GraphML file: every node of ``cpg_nodes`` (id: node_id) with its kind, name,
    qualname, path, file_id and span; every edge of ``cpg_edges`` (id: edge_id) with its kind,
    confidence, resolver and file_id. Directed; NULL values are left out."""
    path = _file(path)
    node_sql = f"SELECT node_id, {', '.join(column for column, _, _ in NODE_COLUMNS)} FROM cpg_nodes"
    edge_sql = f"SELECT edge_id, src, dst, {', '.join(column for column, _, _ in EDGE_COLUMNS)} FROM cpg_edges"
    with _replacing(path) as partial, partial.open("w", encoding="utf-8", newline="\n") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                  '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"\n'
                  '         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
                  '         xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
                  'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n')
        for domain, prefix, columns in (("node", "n_", NODE_COLUMNS), ("edge", "e_", EDGE_COLUMNS)):
            for column, graphml_type, _ in columns:
                out.write(f'  <key id="{prefix}{column}" for="{domain}" attr.name="{column}" '
                          f'attr.type="{graphml_type}"/>\n')
        out.write('  <graph id="cpg" edgedefault="directed">\n')
        nodes = _graphml_elements(out, "node", session.sql(node_sql), ("node_id",), NODE_COLUMNS, "n_")
        edges = _graphml_elements(out, "edge", session.sql(edge_sql), ("edge_id", "src", "dst"), EDGE_COLUMNS, "e_")
        out.write("  </graph>\n</graphml>\n")
    return [Written(str(path), {"nodes": nodes, "edges": edges})]


# -- Neo4j CSV ----------------------------------------------------------------------------------------


def _header_token(column: str, neo4j_type: str | None) -> str:
    return column if neo4j_type is None else f"{column}:{neo4j_type}"


def _write_csv(path: Path, header: list[str], frame: DataFrame) -> Written:
    """``frame`` as CSV under a header line of our own (unquoted, as neo4j-admin reads it); strings
    quoted, NULL as an empty unquoted field (no property)."""
    rows = 0
    with _replacing(path) as partial, partial.open("wb") as out:
        out.write((",".join(header) + "\n").encode())
        schema = frame.schema()
        with pa_csv.CSVWriter(out, schema, write_options=pa_csv.WriteOptions(include_header=False)) as writer:
            for batch in _batches(frame):
                writer.write_batch(batch)
                rows += batch.num_rows
    return Written(str(path), {"rows": rows})


def export_neo4j_csv(session: SessionContext, folder: Path) -> list[Written]:
    """``nodes.csv`` and ``edges.csv`` in the header format of ``neo4j-admin database import``: nodes
    keyed by ``node_id:ID``, labelled by their kind (``:LABEL``); relationships from ``:START_ID`` to
    ``:END_ID``, typed by their kind (``:TYPE``); numeric properties typed in the header."""
    folder = _folder(folder)
    node_header = ["node_id:ID", ":LABEL", *(_header_token(c, t) for c, _, t in NODE_COLUMNS if c != "kind")]
    node_sql = f"SELECT node_id, kind, {', '.join(c for c, _, _ in NODE_COLUMNS if c != 'kind')} FROM cpg_nodes"
    edge_header = [":START_ID", ":END_ID", ":TYPE", "edge_id",
                   *(_header_token(c, t) for c, _, t in EDGE_COLUMNS if c != "kind")]
    edge_sql = (f"SELECT src, dst, kind, edge_id, {', '.join(c for c, _, _ in EDGE_COLUMNS if c != 'kind')} "
                "FROM cpg_edges")
    return [_write_csv(folder / "nodes.csv", node_header, session.sql(node_sql)),
            _write_csv(folder / "edges.csv", edge_header, session.sql(edge_sql))]


# -- Parquet ------------------------------------------------------------------------------------------


def export_parquet(session: SessionContext, folder: Path) -> list[Written]:
    """Each published table (``cpg_nodes``, ``cpg_edges``, ``cpg_props``, ``cpg_diagnostics``,
    ``cpg_points_to``) as ``<table>.parquet``, with the table's columns and types."""
    folder = _folder(folder)
    written = []
    for table in CPG_TABLES:
        frame = session.table(table)
        path, rows = folder / f"{table}.parquet", 0
        with _replacing(path) as partial, pq.ParquetWriter(partial, frame.schema()) as writer:
            for batch in _batches(frame):
                writer.write_batch(batch)
                rows += batch.num_rows
        written.append(Written(str(path), {"rows": rows}))
    return written


EXPORTERS: dict[str, Callable[[SessionContext, Path], list[Written]]] = {
    "graphml": export_graphml,
    "neo4j-csv": export_neo4j_csv,
    "parquet": export_parquet,
}


def export(session: SessionContext, export_format: str, destination: str | Path) -> list[Written]:
    """Export the tables of ``session`` (from ``open_session``) in ``export_format`` — ``graphml``
    (``destination`` is the file), ``neo4j-csv`` or ``parquet`` (``destination`` is a folder, made
    if missing). Returns the files written; raises ``ExportError`` (a ``ValueError``) for a format or
    destination it cannot use."""
    if export_format not in EXPORTERS:
        raise ExportError(f"unknown export format {export_format!r} (one of {', '.join(EXPORTERS)})")
    return EXPORTERS[export_format](session, Path(destination))
