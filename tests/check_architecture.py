"""Architecture drift checks, read from the source's syntax trees (no imports, no name guessing).

    python tests/check_architecture.py      # prints every violation, exits 1 if there is one

- layering: each package imports only what DESIGN.md section 3 allows;
- join logic never spells a column name: the inference and IR modules hold no string constant that
  is a declared column name (keys come from semantic types);
- policy is never decided from names: the functions that decide cache hints call no string
  matching (startswith, endswith, regular expressions) and compare no name with a literal;
- every view is declared once, in one SPECS list;
- every Hamilton node of `dataflows/` declares the type it returns;
- no Delta table is read through deltalake's pyarrow readers (`to_pyarrow_table`,
  `to_pyarrow_dataset`): their thread pool can abort the process at exit; read through DataFusion.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level modules it must not import
FORBIDDEN_IMPORTS: dict[str, set[str]] = {
    "semantics": {"hamilton", "rustworkx", "deltalake", "relspec", "dataflows", "driver"},
    "relspec": {"hamilton", "deltalake", "dataflows", "driver"},
    "dataflows": {"deltalake", "driver"},
}
JOIN_LOGIC_MODULES = ("semantics/inference.py", "semantics/ir.py")
POLICY_FUNCTIONS = {"infer_cache_hints"}
NAME_MATCHING_CALLS = {"startswith", "endswith", "match", "fullmatch", "search", "fnmatch"}
PACKAGES = ("semantics", "relspec", "dataflows", "driver")
PYARROW_DELTA_READERS = {"to_pyarrow_table", "to_pyarrow_dataset"}


def _python_files(root: Path, package: str) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def check_layering(root: Path = ROOT) -> list[str]:
    problems = []
    for package, forbidden in FORBIDDEN_IMPORTS.items():
        for path in _python_files(root, package):
            bad = _imported_roots(ast.parse(path.read_bytes())) & forbidden
            problems += [f"{path.relative_to(root)}: imports {name}, which {package}/ must not" for name in sorted(bad)]
    return problems


def _declared_column_names(root: Path) -> set[str]:
    names: set[str] = set()
    for path in [root / "semantics/entities.py", *_python_files(root, "semantics/views")]:
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Column", "col") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
    return names


def check_join_logic(root: Path = ROOT) -> list[str]:
    columns = _declared_column_names(root)
    problems = []
    for relative in JOIN_LOGIC_MODULES:
        tree = ast.parse((root / relative).read_bytes())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in columns
                    and id(node) not in docstrings):
                problems.append(f"{relative}:{node.lineno}: join logic spells column name {node.value!r}")
    return problems


def check_policy_from_names(root: Path = ROOT) -> list[str]:
    problems = []
    for path in _python_files(root, "semantics") + _python_files(root, "relspec"):
        for function in ast.walk(ast.parse(path.read_bytes())):
            if not isinstance(function, ast.FunctionDef) or function.name not in POLICY_FUNCTIONS:
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in NAME_MATCHING_CALLS:
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: {function.name} matches names "
                                    f"with .{node.func.attr}()")
                if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and isinstance(c.value, str)
                                                         for c in node.comparators):
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: {function.name} compares with a "
                                    "string literal")
    return problems


def check_views_declared_once(root: Path = ROOT) -> list[str]:
    names: Counter[str] = Counter()
    for path in _python_files(root, "semantics/views"):
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("Spec"):
                for keyword in node.keywords:
                    if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                        names[keyword.value.value] += 1
    return [f"view {name!r} is declared {count} times" for name, count in names.items() if count > 1]


def check_node_types(root: Path = ROOT) -> list[str]:
    problems = []
    for path in _python_files(root, "dataflows"):
        for node in ast.parse(path.read_bytes()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                returns = node.returns
                if returns is None or (isinstance(returns, ast.Name) and returns.id in ("object", "Any")):
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: node {node.name} has no artifact type")
    return problems


def check_delta_reads(root: Path = ROOT) -> list[str]:
    """Any use of the reader methods counts, called or passed on: only deltalake's tables have them."""
    problems = []
    for package in PACKAGES:
        for path in _python_files(root, package):
            for node in ast.walk(ast.parse(path.read_bytes())):
                if isinstance(node, ast.Attribute) and node.attr in PYARROW_DELTA_READERS:
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: reads a Delta table with "
                                    f".{node.attr}(); read it through a DataFusion session")
    return problems


CHECKS = (check_layering, check_join_logic, check_policy_from_names, check_views_declared_once, check_node_types,
          check_delta_reads)


def violations(root: Path = ROOT) -> list[str]:
    return [problem for check in CHECKS for problem in check(root)]


def main() -> int:
    problems = violations()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} architecture violation(s)" if problems else "architecture checks: all hold")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
