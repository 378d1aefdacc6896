"""Entity declarations: the single source of the extraction schemas, node kinds and structural edges.

Each declaration names its extraction table, its node kind (if its rows are CPG nodes), its id
prefix and its columns, each column with a semantic type. Foreign keys may declare the structural
edge they imply. Everything else — Arrow schemas, the CPG node/edge/prop views, the extractor's
row layout — is derived from these declarations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import msgspec
import pyarrow as pa

from semantics.types import ARROW_TYPES, SEMANTIC_METADATA_KEY, SemanticType

S = SemanticType

EdgeDirection = Literal["row_to_target", "target_to_row"]


class EdgeDecl(msgspec.Struct, frozen=True):
    """A structural edge implied by a foreign key: no resolution, confidence 1."""

    kind: str
    direction: EdgeDirection


class Column(msgspec.Struct, frozen=True):
    name: str
    type: str
    semantic: SemanticType
    nullable: bool = True
    references: tuple[str, ...] = ()  # entity names a FOREIGN_ID column may point to
    edge: EdgeDecl | None = None
    prop: bool = False  # exported to cpg_props

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


class EntityDecl(msgspec.Struct, frozen=True):
    name: str
    table: str
    id_prefix: str
    columns: tuple[Column, ...]
    node_kind: str | None = None

    def columns_of(self, semantic: SemanticType) -> list[Column]:
        return [c for c in self.columns if c.semantic is semantic]

    def column_of(self, semantic: SemanticType) -> Column | None:
        found = self.columns_of(semantic)
        if len(found) > 1:
            raise ValueError(f"{self.name} has {len(found)} columns of type {semantic}")
        return found[0] if found else None

    def require(self, semantic: SemanticType) -> Column:
        column = self.column_of(semantic)
        if column is None:
            raise KeyError(f"{self.name} has no column of semantic type {semantic}")
        return column

    def edges(self) -> Iterator[tuple[Column, EdgeDecl]]:
        for column in self.columns:
            if column.edge is not None:
                yield column, column.edge

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(
                    c.name,
                    c.arrow_type,
                    nullable=c.nullable,
                    metadata={SEMANTIC_METADATA_KEY: c.semantic.value.encode()},
                )
                for c in self.columns
            ]
        )


def _id() -> Column:
    return Column("id", "string", S.ENTITY_ID, nullable=False)


def _file_id() -> Column:
    return Column("file_id", "string", S.FILE_ID, nullable=False)


def _span() -> tuple[Column, ...]:
    return (
        Column("bstart", "int64", S.SPAN_START, nullable=False),
        Column("bend", "int64", S.SPAN_END, nullable=False),
        Column("line", "int32", S.LINE, nullable=False),
        Column("col", "int32", S.COL, nullable=False),
        Column("end_line", "int32", S.END_LINE, nullable=False),
        Column("end_col", "int32", S.END_COL, nullable=False),
    )


DEFINITIONS = ("module", "class", "function")


def _node(name: str, kind: str, prefix: str, *extra: Column) -> EntityDecl:
    return EntityDecl(
        name=name,
        table=f"ex_{name}s" if not name.endswith("s") else f"ex_{name}es",
        id_prefix=prefix,
        node_kind=kind,
        columns=(_id(), _file_id(), *_span(), *extra),
    )


def _contained_by() -> Column:
    return Column(
        "parent_id",
        "string",
        S.FOREIGN_ID,
        references=DEFINITIONS,
        edge=EdgeDecl("CONTAINS", "target_to_row"),
    )


FILE = EntityDecl(
    name="file",
    table="ex_files",
    id_prefix="file",
    columns=(
        Column("file_id", "string", S.FILE_ID, nullable=False),
        Column("path", "string", S.PATH, nullable=False),
        Column("module", "string", S.QUALNAME, nullable=False),
        Column("content_hash", "string", S.HASH, nullable=False),
        Column("size_bytes", "int64", S.ORDINAL, nullable=False),
        Column("line_count", "int64", S.ORDINAL, nullable=False),
        Column("encoding", "string", S.KIND),
        Column("extractor_version", "string", S.VERSION, nullable=False),
        Column("parsed", "bool", S.FLAG, nullable=False),
    ),
)

MODULE = _node(
    "module",
    "MODULE",
    "mod",
    Column("name", "string", S.NAME, nullable=False),
    Column("qualname", "string", S.QUALNAME, nullable=False),
    Column("is_package", "bool", S.FLAG, nullable=False, prop=True),
)

CLASS = _node(
    "class",
    "CLASS",
    "cls",
    Column("name", "string", S.NAME, nullable=False),
    Column("qualname", "string", S.QUALNAME, nullable=False),
    _contained_by(),
)

FUNCTION = _node(
    "function",
    "FUNCTION",
    "fn",
    Column("name", "string", S.NAME, nullable=False),
    Column("qualname", "string", S.QUALNAME, nullable=False),
    _contained_by(),
    Column("function_kind", "string", S.KIND, nullable=False, prop=True),
    Column("is_method", "bool", S.FLAG, nullable=False, prop=True),
    Column("returns_param", "bool", S.FLAG, nullable=False, prop=True),
)

PARAMETER = _node(
    "parameter",
    "PARAMETER",
    "param",
    Column("name", "string", S.NAME, nullable=False),
    Column(
        "function_id",
        "string",
        S.FOREIGN_ID,
        nullable=False,
        references=("function",),
        edge=EdgeDecl("PARAMETER_OF", "row_to_target"),
    ),
    Column("param_kind", "string", S.KIND, nullable=False, prop=True),
    Column("position", "int32", S.ORDINAL, nullable=False, prop=True),
    Column("has_default", "bool", S.FLAG, nullable=False, prop=True),
    Column("annotation", "string", S.TEXT, prop=True),
)

SCOPE = _node(
    "scope",
    "SCOPE",
    "scope",
    Column("name", "string", S.NAME, nullable=False),
    Column("qualname", "string", S.QUALNAME, nullable=False),
    Column("scope_kind", "string", S.KIND, nullable=False, prop=True),
    Column(
        "owner_id",
        "string",
        S.FOREIGN_ID,
        nullable=False,
        references=DEFINITIONS,
        edge=EdgeDecl("CONTAINS", "target_to_row"),
    ),
    Column("parent_scope_id", "string", S.SCOPE_ID, references=("scope",)),
)

BINDING = _node(
    "binding",
    "BINDING",
    "bind",
    Column("name", "string", S.NAME, nullable=False),
    Column(
        "scope_id",
        "string",
        S.SCOPE_ID,
        nullable=False,
        references=("scope",),
        edge=EdgeDecl("DEFINES", "target_to_row"),
    ),
    Column("binding_kind", "string", S.KIND, nullable=False, prop=True),
    Column(
        "definition_id",
        "string",
        S.FOREIGN_ID,
        references=("class", "function", "parameter", "import"),
        edge=EdgeDecl("BINDS", "row_to_target"),  # the def, class, parameter or import a name binds
    ),
    Column("value_call_id", "string", S.FOREIGN_ID, references=("call",)),
    # the statement list it is made in (`FileWalker.enter_block`), and for a binding an assignment, def,
    # class or import statement makes once it completes, that statement's end (a byte offset)
    Column("block", "string", S.TEXT, nullable=False),
    Column("statement_end", "int64", S.ORDINAL),
)

REFERENCE = _node(
    "reference",
    "REFERENCE",
    "ref",
    Column("name", "string", S.NAME, nullable=False),
    Column("scope_id", "string", S.SCOPE_ID, nullable=False, references=("scope",)),
    Column("ref_kind", "string", S.KIND, nullable=False, prop=True),
    Column("ctx", "string", S.KIND, nullable=False, prop=True),
    Column("base_id", "string", S.FOREIGN_ID, references=("reference",)),
    Column("block", "string", S.TEXT, nullable=False),  # the statement list it is in
    Column("loop_end", "int64", S.ORDINAL),  # in a loop of its scope: where the outermost one's body ends
)

IMPORT = _node(
    "import",
    "IMPORT",
    "imp",
    Column("name", "string", S.NAME, nullable=False),
    Column("qualname", "string", S.QUALNAME, nullable=False),
    _contained_by(),
    Column("scope_id", "string", S.SCOPE_ID, nullable=False, references=("scope",)),
    Column("from_module", "string", S.TEXT, prop=True),
    Column("asname", "string", S.TEXT, prop=True),
    Column("level", "int32", S.ORDINAL, nullable=False, prop=True),
)

CALL = _node(
    "call",
    "CALL",
    "call",
    Column("name", "string", S.NAME),
    _contained_by(),
    Column("scope_id", "string", S.SCOPE_ID, nullable=False, references=("scope",)),
    Column("callee", "string", S.TEXT, prop=True),
    Column("callee_ref_id", "string", S.FOREIGN_ID, references=("reference",)),
    Column("n_args", "int32", S.ORDINAL, nullable=False, prop=True),
)

ARGUMENT = _node(
    "argument",
    "ARGUMENT",
    "arg",
    Column("name", "string", S.NAME),
    Column(
        "call_id",
        "string",
        S.FOREIGN_ID,
        nullable=False,
        references=("call",),
        edge=EdgeDecl("ARGUMENT", "target_to_row"),
    ),
    Column("position", "int32", S.ORDINAL, nullable=False, prop=True),
    Column("arg_kind", "string", S.KIND, nullable=False, prop=True),
)

DOCSTRING = _node(
    "docstring",
    "DOCSTRING",
    "doc",
    Column(
        "owner_id",
        "string",
        S.FOREIGN_ID,
        nullable=False,
        references=DEFINITIONS,
        edge=EdgeDecl("DOCUMENTS", "row_to_target"),
    ),
    Column("text", "string", S.TEXT, nullable=False, prop=True),
)

DECORATOR = _node(
    "decorator",
    "DECORATOR",
    "deco",
    Column("name", "string", S.NAME),
    Column(
        "target_id",
        "string",
        S.FOREIGN_ID,
        nullable=False,
        references=("class", "function"),
        edge=EdgeDecl("DECORATES", "row_to_target"),
    ),
    Column("position", "int32", S.ORDINAL, nullable=False, prop=True),
    Column("ref_id", "string", S.FOREIGN_ID, references=("reference",)),  # a bare name/attribute decorator
)

# A class's base expressions, in order (not nodes: the base is a REFERENCE node already).
BASE = EntityDecl(
    name="base",
    table="ex_bases",
    id_prefix="base",
    columns=(
        Column("file_id", "string", S.FILE_ID, nullable=False),
        Column("class_id", "string", S.FOREIGN_ID, nullable=False, references=("class",)),
        Column("ref_id", "string", S.FOREIGN_ID, references=("reference",)),
        Column("position", "int32", S.ORDINAL, nullable=False),
        Column("text", "string", S.QUALNAME),
    ),
)

# `global` and `nonlocal` statements: they move a name's bindings out of the scope they appear in.
DECLARATION = EntityDecl(
    name="declaration",
    table="ex_declarations",
    id_prefix="decl",
    columns=(
        Column("file_id", "string", S.FILE_ID, nullable=False),
        Column("scope_id", "string", S.SCOPE_ID, nullable=False, references=("scope",)),
        Column("name", "string", S.NAME, nullable=False),
        Column("decl_kind", "string", S.KIND, nullable=False),
    ),
)

# Value flows, the facts of the points-to analysis (semantics/views/pointsto.py): each row says how
# values move between value nodes. A value node is a name or attribute use (its REFERENCE id), a call's
# result (its CALL id), a binding, a function or class object (its id), a decorator application (its
# DECORATOR id), or a synthetic node of a container literal, a subscript, an unpacked element or a
# loop item (`val:` ids, which are not CPG nodes). The kinds:
#   assign      dst (binding) holds whatever src holds
#   ret, yield  dst (a function) returns / yields what src holds;  generator: dst is a generator function
#   callee      dst (a call or decorator application) calls what src holds
#   arg         src is an argument of call dst, at `position` (positional) or named `key` (`*`, `**`: unpacked;
#               after a `*x`, `+` a positional argument and `*+` another `*y`, at `position` or later)
#   attr_load   dst (an attribute use) reads attribute `key` of what src holds
#   attr_store  attribute `key` of what dst holds is set to what src holds
#   elem_load   dst reads element `key` (NULL: unknown) of the containers src holds
#   elem_store  element `key` (NULL: unknown) of the containers dst holds is set to what src holds
#   iter        dst (a loop item) is an element of what src holds
#   slice       dst is a new container of the type of each container src holds, with its elements in slice
#               `key` (`lo:hi`, hi '' for the end; NULL: not known, every element)
#   alloc       dst is a new container of type `key` (list, tuple, set, dict, generator)
#   instance    dst (an `except E as e` binding) holds an instance of the classes src holds
#   super       dst (a `super()` call in a method of class src) is that method's super object
FLOW = EntityDecl(
    name="flow",
    table="ex_flows",
    id_prefix="flow",
    columns=(
        Column("file_id", "string", S.FILE_ID, nullable=False),
        Column("kind", "string", S.KIND, nullable=False),
        Column("dst", "string", S.FOREIGN_ID, nullable=False),
        Column("src", "string", S.FOREIGN_ID),
        Column("key", "string", S.TEXT),
        Column("position", "int32", S.ORDINAL),
    ),
)

DIAGNOSTIC = EntityDecl(
    name="diagnostic",
    table="ex_diagnostics",
    id_prefix="diag",
    columns=(
        Column("file_id", "string", S.FILE_ID, nullable=False),
        Column("path", "string", S.PATH, nullable=False),
        Column("stage", "string", S.KIND, nullable=False),
        Column("code", "string", S.KIND, nullable=False),
        Column("message", "string", S.TEXT, nullable=False),
        Column("line", "int32", S.LINE),
    ),
)

# Names Python resolves when no scope binds them (`len`, `print`): a source for name resolution,
# produced from the running interpreter's `builtins` module.
BUILTIN_NAMES = EntityDecl(
    name="builtin_name",
    table="builtin_names",
    id_prefix="builtin",
    columns=(Column("name", "string", S.NAME, nullable=False),),
)


def builtin_names_table() -> pa.Table:
    import builtins

    names = sorted(name for name in dir(builtins) if not name.startswith("__") or name == "__import__")
    return pa.table({"name": names}, schema=BUILTIN_NAMES.arrow_schema())


NODE_ENTITIES: tuple[EntityDecl, ...] = (
    MODULE,
    CLASS,
    FUNCTION,
    PARAMETER,
    SCOPE,
    BINDING,
    REFERENCE,
    IMPORT,
    CALL,
    ARGUMENT,
    DOCSTRING,
    DECORATOR,
)

# Every table the extractor produces, in one place; each row of each carries its file_id.
EXTRACTION_ENTITIES: tuple[EntityDecl, ...] = (FILE, *NODE_ENTITIES, BASE, DECLARATION, FLOW, DIAGNOSTIC)

ENTITIES_BY_NAME: dict[str, EntityDecl] = {e.name: e for e in EXTRACTION_ENTITIES}


class DataFile(msgspec.Struct, frozen=True):
    """A Parquet file of one extraction table's rows, written into the table's folder by a worker of
    a distributed extraction and not yet committed: invisible to readers until the build commits it
    (``path`` is relative to the table; ``stats`` is the Delta add action's statistics JSON)."""

    path: str
    size: int
    rows: int
    modified_ms: int
    stats: str
