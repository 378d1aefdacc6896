"""Extraction counts and spans agree with CPython's `ast` over the whole standard library.

For every `.py` file of the running interpreter's standard library (its `site-packages` excluded),
the file's raw bytes are parsed with `ast.parse` and extracted with `extract_file`:

* a file `ast` accepts must yield exactly one row per ast construct of each mapped kind
  (CLASS, FUNCTION, CALL, IMPORT, DECORATOR, PARAMETER, ARGUMENT, DOCSTRING) and exactly one MODULE
  row, and the (line, col, end_line, end_col) multisets of CLASS, FUNCTION and CALL rows must equal
  those of the ast nodes;
* a file `ast` rejects must yield exactly one MODULE row and at least one diagnostic row.

Every mismatch of every file is collected and reported in one assertion message.
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections import Counter
from pathlib import Path

from semantics.entities import ENTITIES_BY_NAME
from semantics.extract.files import FileTask, content_hash, extract_file

STDLIB = Path(sysconfig.get_paths()["stdlib"])

SPAN_COLUMNS = ("line", "col", "end_line", "end_col")
COUNTED_KINDS = ("module", "class", "function", "call", "import", "decorator", "parameter", "argument", "docstring")
POSITION_KINDS = ("class", "function", "call")
MAX_REPORTED = 200


def stdlib_files() -> list[Path]:
    return sorted(
        path for path in STDLIB.rglob("*.py") if "site-packages" not in path.relative_to(STDLIB).parts
    )


def _position(node: ast.AST) -> tuple[int, int, int, int]:
    return (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def _has_docstring(body: list[ast.stmt]) -> bool:
    return (
        bool(body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def expected_from_ast(tree: ast.Module) -> tuple[Counter, dict[str, Counter]]:
    """Counts per entity name, and position multisets for CLASS/FUNCTION/CALL, as `ast` sees them."""
    counts: Counter = Counter(module=1, docstring=int(_has_docstring(tree.body)))
    positions: dict[str, Counter] = {kind: Counter() for kind in POSITION_KINDS}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            counts["class"] += 1
            positions["class"][_position(node)] += 1
            counts["decorator"] += len(node.decorator_list)
            counts["docstring"] += _has_docstring(node.body)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            counts["function"] += 1
            positions["function"][_position(node)] += 1
            counts["decorator"] += len(node.decorator_list)
            counts["docstring"] += _has_docstring(node.body)
        elif isinstance(node, ast.Lambda):
            counts["function"] += 1
            positions["function"][_position(node)] += 1
        elif isinstance(node, ast.Call):
            counts["call"] += 1
            positions["call"][_position(node)] += 1
            counts["argument"] += len(node.args) + len(node.keywords)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            counts["import"] += len(node.names)
        elif isinstance(node, ast.arguments):
            counts["parameter"] += (
                len(node.posonlyargs)
                + len(node.args)
                + len(node.kwonlyargs)
                + (node.vararg is not None)
                + (node.kwarg is not None)
            )
    return counts, positions


def _column_indexes(entity: str) -> list[int]:
    names = [column.name for column in ENTITIES_BY_NAME[entity].columns]
    return [names.index(column) for column in SPAN_COLUMNS]


SPAN_INDEXES = {kind: _column_indexes(kind) for kind in POSITION_KINDS}


def check_file(path: Path) -> list[str]:
    """Every mismatch of one file, as report lines."""
    rel = path.relative_to(STDLIB).as_posix()
    raw = path.read_bytes()
    with warnings.catch_warnings():  # invalid escape sequences etc. in the stdlib's test data
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(raw, filename=str(path))
        except Exception:  # SyntaxError, ValueError (null bytes), RecursionError, ...: not parseable
            tree = None
        try:
            rows = extract_file(FileTask(path=rel, raw=raw, content_hash=content_hash(raw)))
        except Exception as err:
            return [f"{rel}: extract_file raised {type(err).__name__}: {err}"]

    problems: list[str] = []
    if tree is None:
        if len(rows.get("module", [])) != 1:
            problems.append(f"{rel} [unparseable] MODULE: expected 1, got {len(rows.get('module', []))}")
        if not rows.get("diagnostic"):
            problems.append(f"{rel} [unparseable] diagnostic: expected >= 1, got 0")
        return problems

    counts, positions = expected_from_ast(tree)
    del tree
    for kind in COUNTED_KINDS:
        actual = len(rows.get(kind, []))
        if actual != counts[kind]:
            problems.append(f"{rel} {kind.upper()} count: expected {counts[kind]}, got {actual}")
    for kind in POSITION_KINDS:
        indexes = SPAN_INDEXES[kind]
        actual_positions = Counter(tuple(row[i] for i in indexes) for row in rows.get(kind, []))
        if actual_positions != positions[kind]:
            missing = positions[kind] - actual_positions
            extra = actual_positions - positions[kind]
            problems.append(
                f"{rel} {kind.upper()} positions: expected-but-missing {sorted(missing.elements())[:5]}"
                f" ({sum(missing.values())} total), unexpected {sorted(extra.elements())[:5]}"
                f" ({sum(extra.values())} total)"
            )
    return problems


def test_stdlib_files_found() -> None:
    files = stdlib_files()
    assert len(files) > 500, f"only {len(files)} .py files under {STDLIB}"


def test_extraction_matches_ast_over_stdlib() -> None:
    problems: list[str] = []
    files = stdlib_files()
    for path in files:
        problems.extend(check_file(path))
    shown = "\n".join(problems[:MAX_REPORTED])
    more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    assert not problems, f"{len(problems)} mismatches over {len(files)} stdlib files:\n{shown}{more}"
