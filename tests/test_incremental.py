"""Incremental rebuilds are exact: a rebuild after an edit holds what a fresh build of the edited tree holds.

1. A seeded random sequence of edits of the ledger fixture (tests/incremental_fixture.py): after each
   edit the tree is rebuilt into the same output folder, built fresh into a new one, and every table
   of the two current releases must have the same content fingerprint. The rebuild's summary must
   count the files the edit changed (extracted), added (extracted), deleted (removed) and left alone
   (reused), as worked out from the two trees.
2. A module imported by five others is edited (a function renamed, then moved to a new module and
   re-exported): the CALLS and INHERITS_FROM edges after each edit, by qualified names, are stated
   below from Python's semantics, and the rebuild — this one through the `cpgflow` CLI — must hold
   exactly them and agree with a fresh build table by table (`cpgflow fingerprint --json`).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from conftest import build as build_with_options
from conftest import query, run_cli, snapshot
from incremental_fixture import EDITS, FIXTURE, Tree, edit_sequence, sync_tree

from driver.api import content_fingerprint, open_session
from relspec.catalog import LOG_TABLES
from relspec.summary import BuildSummary


def build(root: Path, out: Path, **options: object) -> BuildSummary:
    """A build with staging tables: their by-file maintenance is what this module checks (a fixture
    this small has its staged views held in memory by default, see tests/test_memory_staging.py)."""
    return build_with_options(root, out, staging="delta", **options)


# Seeded sequences, {seed: number of edits}; a fresh build after every edit costs a build, so there are
# seven edits in all, and the two seeds together draw each kind once (checked below). Seed 1 renames
# money.py, repoints an import, deletes accounts.py (leaving dangling imports) and removes the callback
# `notify`, whose CALLS edge starts in entries.py, a file it does not touch. Seed 133 inserts a line into
# Report.text, which moves class AuditReport that app/main.py (unchanged) instantiates, then adds a
# function and a file.
SEQUENCES = {1: 4, 133: 3}


def fingerprints(out: Path) -> dict[str, str]:
    """The content digest of every table of the current release (run logs and provenance aside)."""
    session, tables = open_session(out)
    return {table: content_fingerprint(session, table) for table in tables if table not in LOG_TABLES}


def expected_counts(before: Tree, after: Tree) -> tuple[int, int, int]:
    """(extracted, reused, removed) of a rebuild from ``before`` to ``after``: a new or changed file
    is extracted, a file gone is removed, every other file is reused."""
    extracted = sum(1 for path, text in after.items() if before.get(path) != text)
    removed = sum(1 for path in before if path not in after)
    return extracted, len(after) - extracted, removed


def counts(summary: BuildSummary) -> tuple[int, int, int]:
    return summary.files_extracted, summary.files_reused, summary.files_removed


def describe_differences(first: Path, second: Path, tables: set[str]) -> str:
    """For each table, a few rows only the first output holds and a few only the second holds."""
    left, right = snapshot(first), snapshot(second)
    lines = []
    for table in sorted(tables):
        only_left = sorted(left.get(table, set()) - right.get(table, set()), key=repr)
        only_right = sorted(right.get(table, set()) - left.get(table, set()), key=repr)
        lines.append(f"{table}: {len(only_left)} rows only in the rebuild, e.g. {only_left[:3]}; "
                     f"{len(only_right)} only in the fresh build, e.g. {only_right[:3]}")
    return "\n".join(lines)


def assert_same_tables(rebuilt: Path, fresh: Path, history: list[str]) -> None:
    ours, theirs = fingerprints(rebuilt), fingerprints(fresh)
    differing = {table for table in ours.keys() | theirs.keys() if ours.get(table) != theirs.get(table)}
    assert not differing, (f"after {history}, the rebuild differs from a fresh build in {sorted(differing)}:\n"
                           + describe_differences(rebuilt, fresh, differing))


def test_the_seeds_draw_every_kind_of_edit_and_every_edit_keeps_the_code_valid() -> None:
    drawn: set[str] = set()
    for seed, steps in SEQUENCES.items():
        before = dict(FIXTURE)
        for name, description, tree in edit_sequence(seed, steps):
            drawn.add(name)
            assert tree != before, description
            before = tree
    assert drawn == set(EDITS)
    # and the edits are sound far past what the builds exercise: many seeds, long sequences
    for seed in range(40):
        for _, description, tree in edit_sequence(seed, 12):
            for path, text in tree.items():
                ast.parse(text, filename=path)  # a SyntaxError names the edit that broke it
            assert description


@pytest.mark.parametrize(("seed", "steps"), SEQUENCES.items())
def test_a_rebuild_after_each_edit_equals_a_fresh_build(seed: int, steps: int, tmp_path: Path) -> None:
    source, rebuilt = tmp_path / "src", tmp_path / "rebuilt"
    sync_tree(source, FIXTURE)
    summary = build(source, rebuilt)
    assert counts(summary) == (len(FIXTURE), 0, 0)
    # the fixture exercises value flow across files: a callback and functions called through a dict
    calls = {(row["caller"], row["callee"]) for row in calls_by_name(rebuilt)}
    assert {("ledger.entries.post", "app.main.notify"), ("ledger.entries.each", "ledger.reports.line"),
            ("ledger.rules.apply_rule", "ledger.rules.flat_fee"), ("run.dispatch", "app.main.main")} <= calls
    before, history = dict(FIXTURE), []
    for step, (_, description, tree) in enumerate(edit_sequence(seed, steps), 1):
        history.append(description)
        sync_tree(source, tree)
        summary = build(source, rebuilt)
        assert summary.status == "released", (history, summary.message)
        assert summary.files == len(tree), history
        assert counts(summary) == expected_counts(before, tree), history
        assert summary.files_added == sum(path not in before for path in tree), history
        assert summary.incremental
        fresh = build(source, tmp_path / f"fresh{step}")
        assert counts(fresh) == (len(tree), 0, 0)
        assert_same_tables(rebuilt, tmp_path / f"fresh{step}", history)
        before = tree


# ---- a widely imported module ---------------------------------------------------------------------------

WIDE: dict[str, str] = {
    "base.py": '''"""Shared helpers — imported everywhere."""


def helper():
    return 1


class Base:
    def run(self):
        return helper()
''',
    "one.py": '''import base


class One(base.Base):
    def go(self):
        return base.helper()
''',
    "two.py": '''from base import Base, helper


class Two(Base):
    pass


def two():
    return helper()
''',
    "three.py": '''import base
from one import One


def three():
    return base.helper() * One().run()
''',
    "four.py": '''from base import Base as Root
from base import helper


class Four(Root):
    def go(self):
        return helper()


class FourMore(Four):
    pass
''',
    "five.py": '''import one
from base import helper


class Five(one.One):
    def go(self):
        return super().go() + helper()
''',
}

# Step 1: `helper` renamed `helper2` in base.py (one byte longer: `Base` and everything after it
# move), and in exactly two importers, one.py and three.py. two.py, four.py and five.py keep
# `from base import helper`, which now names nothing: their `helper()` calls reach no function.
RENAMED: dict[str, str] = {
    **WIDE,
    "base.py": WIDE["base.py"].replace("helper()", "helper2()"),
    "one.py": WIDE["one.py"].replace("base.helper()", "base.helper2()"),
    "three.py": WIDE["three.py"].replace("base.helper()", "base.helper2()"),
}

# Step 2: `helper2` moved to a new module util.py; base.py imports it from there (a re-export), so
# one.py's and three.py's `base.helper2()` — files this step does not touch — now reach util.helper2.
MOVED: dict[str, str] = {
    **RENAMED,
    "base.py": '''"""Shared helpers — imported everywhere."""
from util import helper2


class Base:
    def run(self):
        return helper2()
''',
    "util.py": "def helper2():\n    return 1\n",
}

# Inheritance is the same in all three trees (only base.py's byte offsets, hence Base's id, change).
INHERITS = {("one.One", "base.Base"), ("two.Two", "base.Base"), ("four.Four", "base.Base"),
            ("four.FourMore", "four.Four"), ("five.Five", "one.One")}

# CALLS edges into the code base as (enclosing function, call line, callee). `One()` reaches the class
# only (no `__init__` in the code base); `One().run()` is Base.run, inherited; `super().go()` in
# Five.go is One.go. Calls of builtins (`super`) reach external symbols and are left out here.
CALLS_BEFORE = {
    ("base.Base.run", 10, "base.helper"),
    ("one.One.go", 6, "base.helper"),
    ("two.two", 9, "base.helper"),
    ("three.three", 6, "base.helper"), ("three.three", 6, "one.One"), ("three.three", 6, "base.Base.run"),
    ("four.Four.go", 7, "base.helper"),
    ("five.Five.go", 7, "one.One.go"), ("five.Five.go", 7, "base.helper"),
}
CALLS_RENAMED = {
    ("base.Base.run", 10, "base.helper2"),
    ("one.One.go", 6, "base.helper2"),
    ("three.three", 6, "base.helper2"), ("three.three", 6, "one.One"), ("three.three", 6, "base.Base.run"),
    ("five.Five.go", 7, "one.One.go"),
}
CALLS_MOVED = {
    ("base.Base.run", 7, "util.helper2"),
    ("one.One.go", 6, "util.helper2"),
    ("three.three", 6, "util.helper2"), ("three.three", 6, "one.One"), ("three.three", 6, "base.Base.run"),
    ("five.Five.go", 7, "one.One.go"),
}


def calls_by_name(out: Path) -> list[dict]:
    """Every CALLS edge into the code base: the qualified name of the function (or module, or class
    body) whose CONTAINS edge holds the call site, the call's line, the callee's qualified name."""
    return query(out, """
        SELECT c.qualname AS caller, s.line AS line, d.qualname AS callee
        FROM cpg_edges e
        JOIN cpg_nodes s ON s.node_id = e.src
        JOIN cpg_nodes d ON d.node_id = e.dst
        JOIN cpg_edges h ON h.kind = 'CONTAINS' AND h.dst = e.src
        JOIN cpg_nodes c ON c.node_id = h.src
        WHERE e.kind = 'CALLS' AND d.kind <> 'EXTERNAL_SYMBOL'""")


def call_edges(out: Path) -> set[tuple]:
    rows = calls_by_name(out)
    edges = {(row["caller"], row["line"], row["callee"]) for row in rows}
    assert len(edges) == len(rows), f"a CALLS edge counted twice (two edges, or two containers): {rows}"
    return edges


def inherits_edges(out: Path) -> set[tuple]:
    rows = query(out, """
        SELECT s.qualname AS cls, d.qualname AS base FROM cpg_edges e
        JOIN cpg_nodes s ON s.node_id = e.src JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE e.kind = 'INHERITS_FROM'""")
    edges = {(row["cls"], row["base"]) for row in rows}
    assert len(edges) == len(rows), f"an INHERITS_FROM edge twice: {rows}"
    return edges


def cli_fingerprint(out: Path) -> dict[str, str]:
    done = run_cli("fingerprint", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cli_rebuild_counts(source: Path, out: Path) -> tuple[int, int, int, int]:
    """Rebuild with `cpgflow build` and read (changed, added, removed, unchanged) from what it prints."""
    done = run_cli("build", source, "--out", out, "-j", "1", "--quiet", "--staging", "delta")
    assert done.returncode == 0, done.stderr
    found = re.search(r"changes: ([\d,]+) changed, ([\d,]+) added, ([\d,]+) removed; ([\d,]+) unchanged",
                      done.stdout)
    assert found, done.stdout
    changed, added, removed, unchanged = (int(text.replace(",", "")) for text in found.groups())
    return changed, added, removed, unchanged


def test_editing_a_widely_imported_module_rebuilds_exactly(tmp_path: Path) -> None:
    source, rebuilt = tmp_path / "src", tmp_path / "rebuilt"
    sync_tree(source, WIDE)
    build(source, rebuilt)
    assert call_edges(rebuilt) == CALLS_BEFORE
    assert inherits_edges(rebuilt) == INHERITS
    steps = [("rename helper to helper2", RENAMED, CALLS_RENAMED, (3, 3, 0)),  # base, one, three changed
             ("move helper2 to util.py", MOVED, CALLS_MOVED, (2, 5, 0))]  # base changed, util added
    changes = (3, 0, 0, 3)  # step 1 as the CLI says it: changed, added, removed, unchanged
    for step, (description, tree, expected_calls, expected_counts) in enumerate(steps, 1):
        sync_tree(source, tree)
        if step == 1:  # the user-facing path: the CLI rebuilds and reports what it extracted and reused
            assert cli_rebuild_counts(source, rebuilt) == changes, description
        else:
            assert counts(build(source, rebuilt)) == expected_counts, description
        assert call_edges(rebuilt) == expected_calls, description
        assert inherits_edges(rebuilt) == INHERITS, description
        fresh = tmp_path / f"fresh{step}"
        build(source, fresh)
        assert call_edges(fresh) == expected_calls, description
        if step == 1:
            ours, theirs = cli_fingerprint(rebuilt), cli_fingerprint(fresh)
            assert ours.keys() == theirs.keys()
            differing = {table for table in ours if ours[table] != theirs[table]}
            assert not differing, f"{description}: " + describe_differences(rebuilt, fresh, differing)
        else:
            assert_same_tables(rebuilt, fresh, [description])


# ---- edits whose effect crosses modules -----------------------------------------------------------------
# From a stress run of 530 incremental builds against fresh ones (session 30, no difference found): each
# scenario an edit (or two) whose rows in unchanged files depend on a file one to three imports away. A
# scenario is a first tree and patches ({path: new text, or None to delete the file}) applied in turn.

_PACKAGE = '"""p."""\n'
_REEXPORTS = {"pkg/__init__.py": _PACKAGE, "pkg/sub/__init__.py": "from .deep import f\n",
              "pkg/sub/deep/__init__.py": "from .x import f\n",
              "pkg/sub/deep/x.py": "def f():\n    return 1\n\n\ndef h():\n    return 2\n",
              "pkg/app.py": "from .sub import f\nfrom .sub.deep import x\n\nf()\nx.h()\n",
              "main.py": "import pkg.sub.deep.x\nimport pkg.sub.deep.x as xx\npkg.sub.deep.x.f()\nxx.h()\n"}
_DECORATED = {"pkg/__init__.py": _PACKAGE, "pkg/c.py": "def deco(fn):\n    return fn\n",
              "pkg/a.py": "from .c import deco\n\n\n@deco\ndef f():\n    return 1\n\n\nclass K:\n    @deco\n"
                          "    def m(self):\n        return 2\n",
              "pkg/b.py": "from .a import f, K\n\nf()\nK().m()\n"}
_HIERARCHY = {"pkg/__init__.py": _PACKAGE,
              "pkg/c.py": "class A:\n    def m(self):\n        return 1\n\n    def n(self):\n        return self.m()\n",
              "pkg/b.py": "from .c import A\n\n\nclass B(A):\n    pass\n",
              "pkg/a.py": "from .b import B\n\n\nclass C(B):\n    def k(self):\n        return self.m() + super().m()"
                          " + self.n()\n\n\nC().k()\n"}
_FLOWS = {"pkg/__init__.py": _PACKAGE,
          "pkg/c.py": "def f(x):\n    return x\n\n\ndef make():\n    return f\n\n\nTABLE = {'k': f}\n",
          "pkg/b.py": "from .c import make, TABLE\n\nh = make()\nt = TABLE['k']\n",
          "pkg/a.py": "from .b import h, t\n\n\ndef run(cb=h):\n    return cb(1) + t(2)\n\n\nrun()\n"}
_RELATIVE = "from .core import f\nfrom . import core\n\nf()\ncore.f()\n"
CROSS_MODULE: dict[str, tuple[dict[str, str], list[dict[str, str | None]]]] = {
    "__all__ in the middle of a star-import chain": (
        {"pkg/__init__.py": _PACKAGE, "pkg/a.py": "from .b import *\n", "pkg/b.py": "from .c import *\n",
         "pkg/c.py": "def f(x):\n    return x\n\n\ndef g(x):\n    return f(x)\n",
         "pkg/use.py": "from .a import f, g\n\nf(1)\ng(2)\n"},
        [{"pkg/b.py": 'from .c import *\n__all__ = ["g"]\n'}, {"pkg/b.py": "from .c import *\n"}]),
    "a re-exported function moved to a new module": (
        _REEXPORTS, [{"pkg/sub/deep/x.py": "def h():\n    return 2\n", "pkg/sub/deep/y.py": "def f():\n    return 1\n",
                      "pkg/sub/deep/__init__.py": "from .y import f\n"}]),
    "a nested package's __init__ deleted, then restored": (
        _REEXPORTS, [{"pkg/sub/deep/__init__.py": None}, {"pkg/sub/deep/__init__.py": "from .x import f\n"}]),
    "a decorator made to return an inner function": (
        _DECORATED, [{"pkg/c.py": "def deco(fn):\n    def inner(*a):\n        return fn(*a)\n    return inner\n"}]),
    "a method moved down the hierarchy in another module": (
        _HIERARCHY, [{"pkg/c.py": "class A:\n    def n(self):\n        return self.m()\n",
                      "pkg/b.py": "from .c import A\n\n\nclass B(A):\n    def m(self):\n        return 3\n"}]),
    "a function a factory returns and a dict holds, moved to a new module": (
        _FLOWS, [{"pkg/c.py": _FLOWS["pkg/c.py"].replace("def f(x):\n    return x\n", "from .d import f\n"),
                  "pkg/d.py": "def f(x):\n    return x + 1\n"}]),
    "a module moved into a subpackage, where its relative imports name other modules": (
        {"pkg/__init__.py": _PACKAGE, "pkg/core.py": "def f():\n    return 1\n", "pkg/sub/__init__.py": "",
         "pkg/sub/core.py": "def f():\n    return 2\n", "pkg/m.py": _RELATIVE},
        [{"pkg/m.py": None, "pkg/sub/m.py": _RELATIVE}]),
}


@pytest.mark.parametrize("scenario", CROSS_MODULE)
def test_an_edit_whose_effect_crosses_modules_rebuilds_as_a_fresh_build(scenario: str, tmp_path: Path) -> None:
    tree, patches = CROSS_MODULE[scenario]
    source, rebuilt = tmp_path / "src", tmp_path / "rebuilt"
    sync_tree(source, tree)
    build(source, rebuilt)
    for step, patch in enumerate(patches, 1):
        before, tree = tree, {path: text for path, text in {**tree, **patch}.items() if text is not None}
        sync_tree(source, tree)
        summary = build(source, rebuilt)
        assert summary.status == "released" and summary.incremental, summary.message
        assert counts(summary) == expected_counts(before, tree)
        build(source, tmp_path / f"fresh{step}")
        assert_same_tables(rebuilt, tmp_path / f"fresh{step}", [f"{scenario}, step {step}"])
