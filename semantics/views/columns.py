"""Column sets shared by many views: the node shape, the edge shape, the prop shape."""

from __future__ import annotations

from semantics.entities import Column
from semantics.types import SemanticType as S


def col(name: str, type_: str, semantic: S, nullable: bool = True, references: tuple[str, ...] = ()) -> Column:
    return Column(name, type_, semantic, nullable=nullable, references=references)


SPAN_COLUMNS: tuple[Column, ...] = (
    col("bstart", "int64", S.SPAN_START, False),
    col("bend", "int64", S.SPAN_END, False),
    col("line", "int32", S.LINE, False),
    col("col", "int32", S.COL, False),
    col("end_line", "int32", S.END_LINE, False),
    col("end_col", "int32", S.END_COL, False),
)

# A node-shaped view: what every normalize view produces (cpg_nodes adds the path).
NODE_SHAPE: tuple[Column, ...] = (
    col("node_id", "string", S.ENTITY_ID, False),
    col("kind", "string", S.KIND, False),
    col("file_id", "string", S.FILE_ID, False),
    col("name", "string", S.NAME),
    col("qualname", "string", S.QUALNAME),
    *SPAN_COLUMNS,
)

NODE_COLUMNS: tuple[Column, ...] = (
    *NODE_SHAPE[:3],
    col("path", "string", S.PATH, False),
    *NODE_SHAPE[3:],
)

EDGE_COLUMNS: tuple[Column, ...] = (
    col("edge_id", "string", S.ENTITY_ID, False),
    col("kind", "string", S.KIND, False),
    col("src", "string", S.FOREIGN_ID, False),
    col("dst", "string", S.FOREIGN_ID, False),
    col("file_id", "string", S.FILE_ID, False),
    col("confidence", "float64", S.ORDINAL, False),
    col("resolver", "string", S.KIND, False),
)

# A resolution result before ids are minted: a target inside the code base (dst) or outside it
# (external, by qualified name).
RESOLVED_EDGE: tuple[Column, ...] = (
    col("kind", "string", S.KIND, False),
    col("src", "string", S.FOREIGN_ID, False),
    col("dst", "string", S.FOREIGN_ID),
    col("external", "string", S.QUALNAME),
    col("file_id", "string", S.FILE_ID, False),
    col("confidence", "float64", S.ORDINAL, False),
    col("resolver", "string", S.KIND, False),
)

PROP_COLUMNS: tuple[Column, ...] = (
    col("node_id", "string", S.FOREIGN_ID, False),
    col("kind", "string", S.KIND, False),
    col("file_id", "string", S.FILE_ID, False),
    col("key", "string", S.NAME, False),
    col("value_str", "string", S.TEXT),
    col("value_int", "int64", S.ORDINAL),
    col("value_bool", "bool", S.FLAG),
)
