"""Observe the calls a call-graph fixture really makes, without cpgflow.

``python -I -S -B tests/callgraph_trace.py FIXTURE_DIR`` runs ``FIXTURE_DIR/main.py`` (the fixture
folder is the only entry added to ``sys.path``) under ``sys.setprofile`` and prints, as JSON, the
sorted ``[caller, callee]`` pairs among the fixture's own modules and functions, named as
DESIGN.md section 4 and the interchange format name them:

- a name is the module (from the path relative to the fixture folder: ``pkg/mod.py`` -> ``pkg.mod``,
  ``pkg/__init__.py`` -> ``pkg``) plus the nesting of definitions (``main.C.method``,
  ``main.outer.inner``); a lambda is ``<lambdaN>``, numbered from 1 in order of appearance within its
  enclosing definition; comprehensions are no definitions (what runs in one belongs to the enclosing
  definition, as do its lambdas);
- a caller is the function whose frame makes the call, or the module for module-level code, or the
  class for code in a class body;
- a callee is a function frame entered by a call: the frame's caller must be a frame of the fixture
  itself (a call made from eval'd or exec'd code, or from the standard library, is not recorded);
  or a builtin function (``<builtin>.len``) or a method bound to a str, list, dict, set or tuple
  (``<**PyStr**>.join``) called from the fixture's code. Builtin *types* called (``str(x)``,
  ``range(2)``, ``ValueError()``) are not seen: a profiler reports no call event for them.
  Instantiation shows as a call of ``__init__`` and an instance call as ``__call__`` because those
  are the frames the interpreter enters; a class body, a module body (an import) and a comprehension
  are not callees.

Limit: a profiler sees a generator's frame only when it is resumed, never when the generator
function is called, so calls *of* generator functions (and coroutines) are not recorded; the calls
made *inside* them are.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

_COMPREHENSIONS = {
    ast.ListComp: "<listcomp>",
    ast.SetComp: "<setcomp>",
    ast.DictComp: "<dictcomp>",
    ast.GeneratorExp: "<genexpr>",
}
_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(eq=False)
class Definition:
    """A scope of one source file: the module, a class body, a function, a lambda or a comprehension."""

    kind: str  # module | class | function | lambda | comprehension
    name: str
    parent: Definition | None
    co_qualname: str  # what CPython puts in the code object's co_qualname
    firstlineno: int
    span: tuple[int, int, int, int]  # lambda: its body; otherwise the whole node
    position: tuple[int, int] = (0, 0)
    number: int = 0  # lambdas: <lambdaN>
    lambdas: list[Definition] = field(default_factory=list)

    def definition(self) -> Definition:
        """The nearest enclosing scope that is no comprehension (this one when it is none)."""
        scope = self
        while scope.kind == "comprehension":
            assert scope.parent is not None
            scope = scope.parent
        return scope

    @property
    def qualname(self) -> str:
        scope = self.definition()
        if scope.kind == "module":
            return scope.name
        assert scope.parent is not None
        name = f"<lambda{scope.number}>" if scope.kind == "lambda" else scope.name
        return f"{scope.parent.qualname}.{name}"


def _span(node: ast.AST) -> tuple[int, int, int, int]:
    return (node.lineno, node.col_offset, node.end_lineno or node.lineno, node.end_col_offset or 0)


class _Indexer:
    def __init__(self, module: str) -> None:
        self.definitions: list[Definition] = []
        self.module = Definition("module", module, None, "<module>", 1, (0, 0, 0, 0))

    def add(self, definition: Definition) -> Definition:
        self.definitions.append(definition)
        if definition.kind == "lambda":
            definition.parent.definition().lambdas.append(definition)  # type: ignore[union-attr]
        return definition

    @staticmethod
    def child_prefix(scope: Definition) -> str:
        if scope.kind == "module":
            return ""
        # CPython adds `<locals>` after a function or lambda only (not after a class or comprehension)
        return scope.co_qualname + (".<locals>." if scope.kind in ("function", "lambda") else ".")

    def walk(self, node: ast.AST, scope: Definition) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child, scope)

    def visit(self, node: ast.AST, scope: Definition) -> None:
        prefix = self.child_prefix(scope)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for decorator in node.decorator_list:
                self.visit(decorator, scope)
            if isinstance(node, ast.ClassDef):
                for base in [*node.bases, *node.keywords]:
                    self.visit(base, scope)
            else:
                self.visit(node.args, scope)
                if node.returns is not None:
                    self.visit(node.returns, scope)
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            inner = self.add(Definition(kind, node.name, scope, prefix + node.name, first, _span(node)))
            for statement in node.body:
                self.visit(statement, inner)
        elif isinstance(node, ast.Lambda):
            self.visit(node.args, scope)
            inner = self.add(Definition("lambda", "<lambda>", scope, prefix + "<lambda>", node.lineno,
                                        _span(node.body), (node.lineno, node.col_offset)))
            self.visit(node.body, inner)
        elif isinstance(node, tuple(_COMPREHENSIONS)):
            generators = node.generators  # type: ignore[attr-defined]
            self.visit(generators[0].iter, scope)  # evaluated in the enclosing scope
            name = _COMPREHENSIONS[type(node)]
            inner = self.add(Definition("comprehension", name, scope, prefix + name, node.lineno, _span(node)))
            for index, generator in enumerate(generators):
                self.visit(generator.target, inner)
                if index:
                    self.visit(generator.iter, inner)
                for condition in generator.ifs:
                    self.visit(condition, inner)
            for part in ("elt", "key", "value"):
                if hasattr(node, part):
                    self.visit(getattr(node, part), inner)
        else:
            self.walk(node, scope)


class FixtureIndex:
    """Every definition of every ``.py`` file under a fixture folder, found by its code object."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.modules: dict[str, str] = {}  # filename -> module name
        self._by_code: dict[tuple[str, str, int], list[Definition]] = {}
        self.functions: set[str] = set()
        self.classes: set[str] = set()
        for path in sorted(self.root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = module_name(self.root, path)
            self.modules[str(path)] = name
            indexer = _Indexer(name)
            indexer.walk(ast.parse(path.read_bytes(), str(path)), indexer.module)
            for scope in [indexer.module, *indexer.definitions]:
                scope.lambdas.sort(key=lambda definition: definition.position)
                for number, definition in enumerate(scope.lambdas, 1):
                    definition.number = number
            self._by_code.setdefault((str(path), "<module>", 1), []).append(indexer.module)
            for definition in indexer.definitions:
                key = (str(path), definition.co_qualname, definition.firstlineno)
                self._by_code.setdefault(key, []).append(definition)
                if definition.kind in ("function", "lambda"):
                    self.functions.add(definition.qualname)
                elif definition.kind == "class":
                    self.classes.add(definition.qualname)

    @property
    def module_names(self) -> set[str]:
        return set(self.modules.values())

    def find(self, code) -> Definition | None:
        """The definition a code object was compiled from (None: not the fixture's code)."""
        if code.co_name == "<module>":
            candidates = self._by_code.get((code.co_filename, "<module>", 1), [])
        else:
            candidates = self._by_code.get((code.co_filename, code.co_qualname, code.co_firstlineno), [])
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        # several lambdas (or comprehensions) on one line: the one whose text holds the code's instructions
        positions = [(line, col) for line, _, col, _ in code.co_positions() if line is not None and col]

        def inside(definition: Definition) -> int:
            start_line, start_col, end_line, end_col = definition.span
            return sum((start_line, start_col) <= at <= (end_line, end_col) for at in positions)

        return max(candidates, key=inside)


_BUILTIN_TYPES = {str: "<**PyStr**>", list: "<**PyList**>", dict: "<**PyDict**>", set: "<**PySet**>",
                  tuple: "<**PyTuple**>"}


def builtin_name(function) -> str | None:
    """``<builtin>.len`` for a builtin function, ``<**PyStr**>.join`` for a method bound to a str, list,
    dict, set or tuple; None for any other C function (and for ``__build_class__``, which runs a class
    statement: no call site)."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", None)
    if name is None:
        return None
    if type(owner) in _BUILTIN_TYPES:
        return f"{_BUILTIN_TYPES[type(owner)]}.{name}"
    if getattr(function, "__module__", None) == "builtins" and name != "__build_class__":
        return f"<builtin>.{name}"
    return None


def trace(root: Path) -> dict[str, list]:
    """Run ``root/main.py`` in this process. Returns the observed caller -> callee pairs (``edges``)
    and the fixture's code objects the index could not name (``unmatched``: a tracer bug)."""
    index = FixtureIndex(root)
    edges: set[tuple[str, str]] = set()
    unmatched: set[str] = set()
    prefix = str(index.root) + os.sep

    def named(code) -> Definition | None:
        found = index.find(code)
        if found is None and code.co_filename.startswith(prefix):
            unmatched.add(f"{code.co_filename}:{code.co_firstlineno}:{code.co_qualname}")
        return found

    def profile(frame, event, arg) -> None:
        if event == "c_call":
            callee_name = builtin_name(arg)
            caller = named(frame.f_code) if callee_name else None
            if caller is not None:
                edges.add((caller.qualname, callee_name))
            return
        if event != "call":
            return
        code = frame.f_code
        if code.co_flags & _SUSPENDABLE or code.co_name == "<module>":
            return
        callee = named(code)
        if callee is None or callee.kind not in ("function", "lambda"):
            return  # not the fixture's code, a class body or a comprehension
        back = frame.f_back
        caller = named(back.f_code) if back is not None else None
        if caller is None:
            return
        edges.add((caller.qualname, callee.qualname))

    sys.path.insert(0, str(index.root))
    sys.dont_write_bytecode = True
    import runpy

    sys.setprofile(profile)
    try:
        runpy.run_path(str(index.root / "main.py"), run_name="__main__")
    finally:
        sys.setprofile(None)
    return {"edges": sorted(edges), "unmatched": sorted(unmatched)}


if __name__ == "__main__":
    fixture = Path(sys.argv[1]).resolve()
    # only the fixture folder on the import path, whatever started us
    sys.path[:] = [entry for entry in sys.path if entry and Path(entry).resolve() != Path(__file__).parent.resolve()]
    os.chdir(fixture)
    json.dump(trace(fixture), sys.stdout)
    sys.stdout.write("\n")
