"""Semantic column types: what a column *means*, independent of what it is called.

Code that needs "the span columns" or "the file identity" of a table asks its declaration for
the columns of a semantic type; it never spells a column name.
"""

from __future__ import annotations

import enum

import pyarrow as pa


class SemanticType(enum.StrEnum):
    ENTITY_ID = "entity_id"  # the row's own id (a cpg node id when the entity is a node)
    FOREIGN_ID = "foreign_id"  # an id of another entity
    FILE_ID = "file_id"  # the owning file's identity
    SCOPE_ID = "scope_id"  # the lexical scope a name is bound or used in
    PATH = "path"  # repo-relative POSIX path
    SPAN_START = "span_start"  # byte offset, inclusive
    SPAN_END = "span_end"  # byte offset, exclusive
    LINE = "line"
    COL = "col"
    END_LINE = "end_line"
    END_COL = "end_col"
    NAME = "name"  # a simple (unqualified) identifier
    QUALNAME = "qualname"  # a dotted qualified name
    KIND = "kind"  # a small enumerated vocabulary
    TEXT = "text"  # free text (source snippets, docstrings, messages)
    ORDINAL = "ordinal"  # a position or count
    FLAG = "flag"
    HASH = "hash"  # a content fingerprint
    VERSION = "version"


class CompatibilityGroup(enum.StrEnum):
    """Types in one group can be compared or joined with each other."""

    IDENTITY = "identity"
    FILE = "file"
    SPAN = "span"
    SCOPE = "scope"
    POSITION = "position"
    SYMBOL = "symbol"
    VALUE = "value"


COMPATIBILITY: dict[SemanticType, CompatibilityGroup] = {
    SemanticType.ENTITY_ID: CompatibilityGroup.IDENTITY,
    SemanticType.FOREIGN_ID: CompatibilityGroup.IDENTITY,
    SemanticType.FILE_ID: CompatibilityGroup.FILE,
    SemanticType.PATH: CompatibilityGroup.FILE,
    SemanticType.SCOPE_ID: CompatibilityGroup.SCOPE,
    SemanticType.SPAN_START: CompatibilityGroup.SPAN,
    SemanticType.SPAN_END: CompatibilityGroup.SPAN,
    SemanticType.LINE: CompatibilityGroup.POSITION,
    SemanticType.COL: CompatibilityGroup.POSITION,
    SemanticType.END_LINE: CompatibilityGroup.POSITION,
    SemanticType.END_COL: CompatibilityGroup.POSITION,
    SemanticType.NAME: CompatibilityGroup.SYMBOL,
    SemanticType.QUALNAME: CompatibilityGroup.SYMBOL,
    SemanticType.KIND: CompatibilityGroup.VALUE,
    SemanticType.TEXT: CompatibilityGroup.VALUE,
    SemanticType.ORDINAL: CompatibilityGroup.VALUE,
    SemanticType.FLAG: CompatibilityGroup.VALUE,
    SemanticType.HASH: CompatibilityGroup.VALUE,
    SemanticType.VERSION: CompatibilityGroup.VALUE,
}

# Arrow storage types by short name, so declarations stay readable.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "bool": pa.bool_(),
    "float64": pa.float64(),
}

# The metadata key under which a field carries its semantic type in an Arrow schema.
SEMANTIC_METADATA_KEY = b"cpgflow.semantic_type"
