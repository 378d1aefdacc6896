"""A hand-written code base and the edits a developer makes to it, for the incremental-build tests.

`FIXTURE` is a ledger package (re-exports in `__init__.py`, relative and absolute imports, classes
with inheritance, `super()` calls, a callback passed as an argument, functions stored in a dict and
called through it) plus an `app` package and a top-level script that use it.

A tree is a ``{repo-relative posix path: text}`` dict. Each edit is a function ``(tree, rng) ->
description`` that changes the tree in place and keeps every file valid Python; it returns None
(and leaves the tree alone) when the tree offers it nothing to act on. `EDITS` names them all;
`edit_sequence` draws a seeded random sequence of them; `sync_tree` makes a folder on disk hold
exactly a tree, writing only the files whose text changed (as an editor would).
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

Tree = dict[str, str]
Edit = Callable[[Tree, random.Random], "str | None"]

FIXTURE: dict[str, str] = {
    "ledger/__init__.py": '''"""Ledger: accounts, entries and the rules that price them."""
from .accounts import Account, SavingsAccount
from .entries import post, reverse
from ledger.rules import RULES, apply_rule

__all__ = ["RULES", "Account", "SavingsAccount", "apply_rule", "post", "reverse"]
''',
    "ledger/money.py": '''"""Amounts in cents — never floats (the dash is three UTF-8 bytes)."""


def cents(amount):
    return int(round(amount * 100))


def fmt(value):
    return f"{value / 100:.2f} €"


def clamp(value, low, high):
    return max(low, min(value, high))
''',
    "ledger/accounts.py": '''from ledger.money import cents, clamp


class Account:
    """An account holds a balance in cents."""

    def __init__(self, name, balance=0):
        self.name = name
        self.balance = cents(balance)

    def deposit(self, amount):
        self.balance += cents(amount)
        return self.balance

    def limit(self):
        return clamp(self.balance, 0, 10_000)


class SavingsAccount(Account):
    def __init__(self, name, rate):
        super().__init__(name)
        self.rate = rate

    def deposit(self, amount):
        return super().deposit(amount * (1 + self.rate))
''',
    "ledger/entries.py": '''from ledger import money
from ledger.accounts import Account


def post(account, amount, on_posted=None):
    account.deposit(amount)
    if on_posted is not None:
        on_posted(account)
    return money.fmt(account.balance)


def reverse(account, amount):
    return post(account, -amount)


def each(accounts, callback):
    return [callback(account) for account in accounts]


def opening(name):
    return Account(name)
''',
    "ledger/rules.py": '''from .money import clamp


def no_fee(amount):
    return amount


def flat_fee(amount):
    return amount - 25


def capped(amount):
    return clamp(amount, 0, 5_000)


RULES = {"none": no_fee, "flat": flat_fee, "capped": capped}


def apply_rule(name, amount):
    rule = RULES[name]
    return rule(amount)
''',
    "ledger/reports.py": '''import ledger.accounts
from ledger.entries import each
from ledger.money import fmt


def line(account):
    return f"{account.name}: {fmt(account.balance)}"


def render(accounts):
    return "\\n".join(each(accounts, line))


class Report:
    title = "Balances"

    def __init__(self, accounts):
        self.accounts = accounts

    def text(self):
        return self.title + "\\n" + render(self.accounts)


class AuditReport(Report):
    title = "Audit"

    def text(self):
        extra = ledger.accounts.Account("audit")
        return super().text() + extra.name
''',
    "app/__init__.py": "",
    "app/main.py": '''from ledger import Account, SavingsAccount, apply_rule, post
from ledger.reports import AuditReport, render


def notify(account):
    print("posted", account.name)


def main():
    accounts = [Account("cash", 10), SavingsAccount("savings", 0.02)]
    post(accounts[0], 5, on_posted=notify)
    post(accounts[1], apply_rule("flat", 100), notify)
    print(render(accounts))
    print(AuditReport(accounts).text())


if __name__ == "__main__":
    main()
''',
    "run.py": '''import app.main
from ledger.money import cents as to_cents

HANDLERS = {"main": app.main.main}


def dispatch(name):
    return HANDLERS[name]()


to_cents(1.5)
dispatch("main")
''',
}


# ---- paths, module names and text surgery -------------------------------------------------------------

def module_name(path: str) -> str:
    """`pkg/mod.py` → `pkg.mod`, `pkg/__init__.py` → `pkg` (the data contract's rule)."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(path: str) -> str:
    """The package a file's relative imports start from."""
    name = module_name(path)
    return name if path.endswith("__init__.py") else name.rpartition(".")[0]


def _absolute(path: str, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, relative imports resolved against the file's package."""
    if not node.level:
        return node.module or ""
    base = _package(path).split(".") if _package(path) else []
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, node.module] if node.module else base)


def _modules(tree: Tree) -> dict[str, str]:
    """{module name: path} of every file."""
    return {module_name(path): path for path in tree}


def _top_functions(text: str) -> list[ast.FunctionDef]:
    return [node for node in ast.parse(text).body if isinstance(node, ast.FunctionDef)]


def _fresh(tree: Tree, stem: str) -> str:
    """A name (and module leaf) used nowhere in the tree yet."""
    number = 1
    while any(f"{stem}{number}" in path or f"{stem}{number}" in text for path, text in tree.items()):
        number += 1
    return f"{stem}{number}"


def _replace_lines(text: str, replacements: dict[tuple[int, int], list[str]]) -> str:
    """Replace the 1-based inclusive line ranges by the given lines (ranges must not overlap)."""
    lines = text.splitlines(keepends=True)
    for (first, last), new in sorted(replacements.items(), reverse=True):
        lines[first - 1:last] = [line + "\n" for line in new]
    return "".join(lines)


def _indent(text: str, node: ast.stmt) -> str:
    line = text.splitlines()[node.lineno - 1]
    return line[: len(line) - len(line.lstrip())]


def line_after_docstring(source: str | bytes) -> int:
    """The 0-based line right after the module's docstring (0 when it has none): where a statement
    goes before every other one."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].end_lineno or 0
    return 0


def _import_at_top(text: str, statement: str) -> str:
    """Insert an import after the module's docstring (if any), before every other statement."""
    lines = text.splitlines(keepends=True)
    lines.insert(line_after_docstring(text), statement + "\n")
    return "".join(lines)


def _append(text: str, block: str) -> str:
    return (text.rstrip("\n") + "\n\n\n" if text.strip() else "") + block


def _rewrite_imports(tree: Tree, path: str,
                     rewrite: Callable[[ast.Import | ast.ImportFrom], list[str] | None]) -> None:
    """Give each import statement of a file to ``rewrite``: None keeps it, a list of statements (one
    line each, unindented) replaces it. `pass` stands in for a removed statement so blocks stay valid."""
    text = tree[path]
    replacements: dict[tuple[int, int], list[str]] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            new = rewrite(node)
            if new is not None:
                indent = _indent(text, node)
                replacements[(node.lineno, node.end_lineno or node.lineno)] = [indent + s for s in new or ["pass"]]
    if replacements:
        tree[path] = _replace_lines(text, replacements)


# ---- the edits ------------------------------------------------------------------------------------------

def modify_body(tree: Tree, rng: random.Random) -> str | None:
    """Insert a statement into a function's body: every byte offset after it shifts (by a non-ASCII
    string: bytes and characters shift differently)."""
    targets = [(path, node) for path in sorted(tree) for node in ast.walk(ast.parse(tree[path]))
               if isinstance(node, ast.FunctionDef)]
    if not targets:
        return None
    path, function = rng.choice(targets)
    last = function.body[-1]
    indent = _indent(tree[path], last)
    name = _fresh(tree, "note_")
    statement = rng.choice([f'{name} = "édition {name}"', f'{name} = len("ß{name}")'])
    lines = tree[path].splitlines(keepends=True)
    lines.insert(last.lineno - 1, f"{indent}{statement}\n")
    tree[path] = "".join(lines)
    return f"modify the body of {function.name} in {path}"


def add_function(tree: Tree, rng: random.Random) -> str | None:
    """Append a function to one module and a function calling it (through an import) to another."""
    paths = sorted(path for path in tree if not path.endswith("__init__.py"))
    if len(paths) < 2:
        return None
    home, caller = rng.sample(paths, 2)
    name = _fresh(tree, "added_")
    tree[home] = _append(tree[home], f"def {name}(value):\n    return value + 1\n")
    tree[caller] = _import_at_top(tree[caller], f"from {module_name(home)} import {name}")
    tree[caller] = _append(tree[caller], f"def call_{name}():\n    return {name}(41)\n")
    return f"add {name} to {home}, called from {caller}"


def remove_function(tree: Tree, rng: random.Random) -> str | None:
    """Delete a module-level function; its callers keep their (now dangling) imports and calls."""
    targets = [(path, node) for path in sorted(tree) for node in _top_functions(tree[path])]
    if not targets:
        return None
    path, function = rng.choice(targets)
    first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    lines = tree[path].splitlines(keepends=True)
    del lines[first - 1:function.end_lineno]
    tree[path] = "".join(lines)
    return f"remove {function.name} from {path}"


def rename_module(tree: Tree, rng: random.Random) -> str | None:
    """Rename a module of a package and update every importer: dotted uses, relative imports and
    `from package import module` (aliased to the old name, so the importer's body stays right)."""
    paths = sorted(path for path in tree if "/" in path and not path.endswith("__init__.py"))
    if not paths:
        return None
    old_path = rng.choice(paths)
    old = module_name(old_path)
    package, _, old_leaf = old.rpartition(".")
    new_leaf = _fresh(tree, f"{old_leaf}_r")
    new = f"{package}.{new_leaf}"
    dotted = re.compile(rf"(?<![\w.]){re.escape(old)}(?!\w)")
    for path in sorted(tree):
        tree[path] = dotted.sub(new, tree[path])

        def rewrite(node: ast.Import | ast.ImportFrom, path: str = path) -> list[str] | None:
            if not isinstance(node, ast.ImportFrom):
                return None
            target = _absolute(path, node)
            if node.level and target == old:  # from .money import x
                parts = (node.module or "").split(".")
                node.module = ".".join([*parts[:-1], new_leaf])
                return [ast.unparse(node)]
            if target == package and any(alias.name == old_leaf for alias in node.names):
                for alias in node.names:  # from ledger import money
                    if alias.name == old_leaf:
                        alias.name, alias.asname = new_leaf, alias.asname or old_leaf
                return [ast.unparse(node)]
            return None

        _rewrite_imports(tree, path, rewrite)
    new_path = old_path.rpartition("/")[0] + f"/{new_leaf}.py"
    tree[new_path] = tree.pop(old_path)
    return f"rename {old_path} to {new_path}"


def add_file(tree: Tree, rng: random.Random) -> str | None:
    """A new module (in an existing folder) that imports an existing module, calls one of its
    functions and subclasses one of its classes when it has them."""
    paths = sorted(tree)
    if not paths:
        return None
    target = rng.choice(paths)
    folder = rng.choice(sorted({path.rpartition("/")[0] for path in paths}))
    leaf = _fresh(tree, "extra_")
    path = f"{folder}/{leaf}.py" if folder else f"{leaf}.py"
    body = ast.parse(tree[target]).body
    functions = [node.name for node in body if isinstance(node, ast.FunctionDef)]
    classes = [node.name for node in body if isinstance(node, ast.ClassDef)]
    text = f"import {module_name(target)} as target\n\n\ndef {leaf}_use():\n    return "
    text += f"target.{rng.choice(functions)}(1)\n" if functions else "target\n"
    if classes:
        text += f"\n\nclass {leaf.title()}(target.{rng.choice(classes)}):\n    pass\n"
    tree[path] = text
    return f"add {path} importing {target}"


def delete_file(tree: Tree, rng: random.Random) -> str | None:
    """Delete a file; its importers either keep dangling imports or lose them (their uses of the
    module's names stay, unresolved)."""
    if len(tree) <= 4:
        return None
    path = rng.choice(sorted(tree))
    del tree[path]
    gone = module_name(path)
    package, _, leaf = gone.rpartition(".")
    if rng.random() < 0.5:
        return f"delete {path}, leaving its importers' imports dangling"
    for importer in sorted(tree):

        def rewrite(node: ast.Import | ast.ImportFrom, importer: str = importer) -> list[str] | None:
            if isinstance(node, ast.Import):
                keep = [alias for alias in node.names if alias.name != gone]
            elif _absolute(importer, node) == gone:
                keep = []
            elif _absolute(importer, node) == package:
                keep = [a for a in node.names if a.name != leaf]
            else:
                return None
            if len(keep) == len(node.names):
                return None
            node.names = keep
            return [ast.unparse(node)] if keep else []

        _rewrite_imports(tree, importer, rewrite)
    return f"delete {path} and its importers' imports of it"


def change_import(tree: Tree, rng: random.Random) -> str | None:
    """Point a `from X import f` (f a function of X, called in the importer) at another module Y
    that defines an `f` of its own (written into Y when it has none): the call now resolves to Y's."""
    modules = _modules(tree)
    candidates: list[tuple[str, str, str]] = []
    for path in sorted(tree):
        syntax = ast.parse(tree[path])
        called = {node.func.id for node in ast.walk(syntax)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        for node in ast.walk(syntax):
            if isinstance(node, ast.ImportFrom) and _absolute(path, node) in modules:
                home = _absolute(path, node)
                defined = {f.name for f in _top_functions(tree[modules[home]])}
                candidates += [(path, home, alias.name) for alias in node.names
                               if alias.name in defined and (alias.asname or alias.name) in called]
    if not candidates:
        return None
    path, home, name = rng.choice(candidates)
    others = sorted(m for m, p in modules.items() if m not in (home, module_name(path)) and m
                    and not p.endswith("__init__.py"))
    if not others:
        return None
    other = rng.choice(others)
    if name not in {f.name for f in _top_functions(tree[modules[other]])}:
        tree[modules[other]] = _append(tree[modules[other]], f"def {name}(*args, **kwargs):\n    return args\n")

    def rewrite(node: ast.Import | ast.ImportFrom) -> list[str] | None:
        if not isinstance(node, ast.ImportFrom) or _absolute(path, node) != home:
            return None
        moved = [alias for alias in node.names if alias.name == name]
        if not moved:
            return None
        node.names = [alias for alias in node.names if alias.name != name]
        again = ast.ImportFrom(module=other, names=moved, level=0)
        return ([ast.unparse(node)] if node.names else []) + [ast.unparse(again)]

    _rewrite_imports(tree, path, rewrite)
    return f"in {path}, import {name} from {other} instead of {home}"


EDITS: dict[str, Edit] = {edit.__name__: edit for edit in (
    modify_body, add_function, remove_function, rename_module, add_file, delete_file, change_import)}


def edit_sequence(seed: int, steps: int, tree: Tree | None = None) -> Iterator[tuple[str, str, Tree]]:
    """Seeded random edits of the fixture: yields (edit name, description, the tree after it) per step.
    Kinds are drawn from a shuffled bag of every kind (refilled when empty), so a short sequence
    holds distinct kinds; an edit with nothing to act on is put back and the next one drawn."""
    rng = random.Random(seed)
    current = dict(FIXTURE if tree is None else tree)
    bag: list[str] = []
    for _ in range(steps):
        if not bag:
            bag = list(EDITS)
            rng.shuffle(bag)
        for name in list(bag):
            description = EDITS[name](current, rng)
            if description is not None:
                bag.remove(name)
                yield name, description, dict(current)
                break
        else:  # pragma: no cover - the fixture always offers an edit
            raise AssertionError(f"no edit applies to {sorted(current)}")


def sync_tree(root: Path, tree: Tree) -> None:
    """Make ``root`` hold exactly ``tree``'s .py files: changed and new files written, files the
    tree lacks deleted, unchanged files left alone."""
    root.mkdir(parents=True, exist_ok=True)
    for existing in sorted(root.rglob("*.py")):
        if existing.relative_to(root).as_posix() not in tree:
            existing.unlink()
    for path, text in tree.items():
        target = root / path
        data = text.encode("utf-8")
        if not target.exists() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
