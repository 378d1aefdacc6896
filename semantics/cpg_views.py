"""The CPG output tables, as DataFusion SQL generated from the entity declarations.

Nodes are the union of every node entity projected onto the node columns by semantic type;
structural edges are the foreign keys that declare an edge; props are the columns marked `prop`,
unpivoted into typed value columns. Nothing here names an entity's column directly.
"""

from __future__ import annotations

from semantics.entities import DIAGNOSTIC, FILE, NODE_ENTITIES, Column, EntityDecl
from semantics.ids import SEPARATOR
from semantics.types import SemanticType as S

# The columns of cpg_nodes, each with the semantic type that fills it.
NODE_COLUMNS: tuple[Column, ...] = (
    Column("node_id", "string", S.ENTITY_ID, nullable=False),
    Column("kind", "string", S.KIND, nullable=False),
    Column("file_id", "string", S.FILE_ID, nullable=False),
    Column("path", "string", S.PATH, nullable=False),
    Column("name", "string", S.NAME),
    Column("qualname", "string", S.QUALNAME),
    Column("bstart", "int64", S.SPAN_START, nullable=False),
    Column("bend", "int64", S.SPAN_END, nullable=False),
    Column("line", "int32", S.LINE, nullable=False),
    Column("col", "int32", S.COL, nullable=False),
    Column("end_line", "int32", S.END_LINE, nullable=False),
    Column("end_col", "int32", S.END_COL, nullable=False),
)

EDGE_COLUMNS: tuple[Column, ...] = (
    Column("edge_id", "string", S.ENTITY_ID, nullable=False),
    Column("kind", "string", S.KIND, nullable=False),
    Column("src", "string", S.FOREIGN_ID, nullable=False),
    Column("dst", "string", S.FOREIGN_ID, nullable=False),
    Column("file_id", "string", S.FILE_ID, nullable=False),
    Column("confidence", "float64", S.ORDINAL, nullable=False),
    Column("resolver", "string", S.KIND, nullable=False),
)

PROP_COLUMNS: tuple[Column, ...] = (
    Column("node_id", "string", S.FOREIGN_ID, nullable=False),
    Column("kind", "string", S.KIND, nullable=False),
    Column("file_id", "string", S.FILE_ID, nullable=False),
    Column("key", "string", S.NAME, nullable=False),
    Column("value_str", "string", S.TEXT),
    Column("value_int", "int64", S.ORDINAL),
    Column("value_bool", "bool", S.FLAG),
)

OUTPUTS: dict[str, EntityDecl] = {
    "cpg_nodes": EntityDecl("cpg_nodes", "cpg_nodes", "node", NODE_COLUMNS),
    "cpg_edges": EntityDecl("cpg_edges", "cpg_edges", "edge", EDGE_COLUMNS),
    "cpg_props": EntityDecl("cpg_props", "cpg_props", "prop", PROP_COLUMNS),
    "cpg_diagnostics": EntityDecl("cpg_diagnostics", "cpg_diagnostics", "diag", DIAGNOSTIC.columns),
}

STRUCTURAL_RESOLVER = "syntax"

_SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "int32": "INT", "bool": "BOOLEAN", "float64": "DOUBLE"}
_PROP_VALUE_COLUMN = {"string": "value_str", "int64": "value_int", "int32": "value_int", "bool": "value_bool"}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _typed(expression: str, column: Column) -> str:
    return f"CAST({expression} AS {_SQL_TYPES[column.type]}) AS {column.name}"


def sql_stable_id(prefix: str, *parts: str) -> str:
    """SQL for `semantics.ids.stable_id(prefix, *parts)`; parts are SQL expressions."""
    joined = ", ".join(parts)
    return f"concat({_quote(prefix + ':')}, md5(concat_ws({_quote(SEPARATOR)}, {joined})))"


def nodes_sql() -> str:
    selects = []
    for entity in NODE_ENTITIES:
        projection = []
        for column in NODE_COLUMNS:
            if column.semantic is S.KIND:
                source = _quote(entity.node_kind or "")
            elif column.semantic is S.PATH:
                continue  # from the file table below
            else:
                found = entity.column_of(column.semantic)
                source = found.name if found is not None else "NULL"
            projection.append(_typed(source, column))
        selects.append(f"SELECT {', '.join(projection)} FROM {entity.table}")
    file_key = FILE.require(S.FILE_ID).name
    path = FILE.require(S.PATH).name
    node_file = next(c.name for c in NODE_COLUMNS if c.semantic is S.FILE_ID)
    outer = ", ".join(
        _typed(f"f.{path}", c) if c.semantic is S.PATH else f"n.{c.name}" for c in NODE_COLUMNS
    )
    union = "\nUNION ALL\n".join(selects)
    return f"SELECT {outer}\nFROM (\n{union}\n) n\nJOIN {FILE.table} f ON n.{node_file} = f.{file_key}"


def structural_edge_selects() -> list[str]:
    selects = []
    for entity in NODE_ENTITIES:
        row_id = entity.require(S.ENTITY_ID).name
        file_id = entity.require(S.FILE_ID).name
        for column, edge in entity.edges():
            src, dst = (row_id, column.name) if edge.direction == "row_to_target" else (column.name, row_id)
            edge_id = sql_stable_id("edge", file_id, _quote(edge.kind), src, dst)
            selects.append(
                f"SELECT {edge_id} AS edge_id, {_quote(edge.kind)} AS kind, {src} AS src, {dst} AS dst, "
                f"{file_id} AS file_id, CAST(1.0 AS DOUBLE) AS confidence, "
                f"{_quote(STRUCTURAL_RESOLVER)} AS resolver "
                f"FROM {entity.table} WHERE {column.name} IS NOT NULL"
            )
    return selects


def edges_sql() -> str:
    return "\nUNION ALL\n".join(structural_edge_selects())


def props_sql() -> str:
    selects = []
    for entity in NODE_ENTITIES:
        row_id = entity.require(S.ENTITY_ID).name
        file_id = entity.require(S.FILE_ID).name
        for column in entity.columns:
            if not column.prop:
                continue
            target = _PROP_VALUE_COLUMN[column.type]
            values = []
            for value_column in PROP_COLUMNS[4:]:
                source = column.name if value_column.name == target else "NULL"
                values.append(_typed(source, value_column))
            selects.append(
                f"SELECT {row_id} AS node_id, {_quote(entity.node_kind or '')} AS kind, {file_id} AS file_id, "
                f"{_quote(column.name)} AS key, {', '.join(values)} "
                f"FROM {entity.table} WHERE {column.name} IS NOT NULL"
            )
    return "\nUNION ALL\n".join(selects)


def diagnostics_sql() -> str:
    return f"SELECT {', '.join(_typed(c.name, c) for c in DIAGNOSTIC.columns)} FROM {DIAGNOSTIC.table}"


OUTPUT_SQL = {
    "cpg_nodes": nodes_sql,
    "cpg_edges": edges_sql,
    "cpg_props": props_sql,
    "cpg_diagnostics": diagnostics_sql,
}
