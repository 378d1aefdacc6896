"""The points-to analysis end to end: a program whose calls go through values, its call graph
worked out by hand; renaming every identifier consistently changes no edge; the fixpoint is
recorded (rounds, rows per round) and the points-to table answers for a variable."""

from __future__ import annotations

import ast
import io
import json
import tokenize
from pathlib import Path

from conftest import query, run_cli, write_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROGRAM = '''import os


def f(x=len):
    return x


def g():
    pass


a = b = f
a()
handlers_list = [f, g]
for item in handlers_list:
    item()


class Holder:
    def __init__(self, callback):
        self.callback = callback

    def run(self):
        return self.callback()


holder = Holder(f)
holder.run()
table = {}
table["key"] = g
table["key"]()


def make():
    def inner():
        pass
    return inner


make()()
os.path.join("a", "b")
", ".join([])
list(map(g, []))
'''

# By Python's semantics: `a` holds f; the loop calls f and g; Holder(f) runs __init__ with
# callback = f, so run() calls f; table["key"] holds g; make() returns inner; map calls g.
EXPECTED = {
    "m": ["<**PyStr**>.join", "<builtin>.list", "<builtin>.map", "m.Holder.__init__", "m.Holder.run", "m.f",
          "m.g", "m.make", "m.make.inner", "os.path.join"],
    "m.Holder.__init__": [],
    "m.Holder.run": ["m.f"],
    "m.f": [],
    "m.g": [],
    "m.make": [],
    "m.make.inner": [],
}


def build_call_graph(tmp: Path, source: str) -> dict[str, list[str]]:
    root = write_tree(tmp / "src", {"m.py": source})
    out = tmp / "out"
    done = run_cli("build", root, "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    graph = run_cli("callgraph", out)
    assert graph.returncode == 0, graph.stderr
    return json.loads(graph.stdout)


def test_calls_through_values(tmp_path):
    assert build_call_graph(tmp_path, PROGRAM) == EXPECTED


def test_points_to_answers_for_a_variable_and_the_fixpoint_is_recorded(tmp_path):
    build_call_graph(tmp_path, PROGRAM)
    rows = query(tmp_path / "out", """
        SELECT b.name, p.value_kind, coalesce(v.qualname, p.qualname) AS value, p.confidence
        FROM cpg_nodes b JOIN cpg_points_to p ON p.node = b.node_id LEFT JOIN cpg_nodes v ON v.node_id = p.value_id
        WHERE b.kind = 'BINDING' AND b.name IN ('a', 'item', 'holder') ORDER BY b.name, value""")
    assert rows == [
        {"name": "a", "value_kind": "FUNCTION", "value": "m.f", "confidence": 1.0},
        {"name": "holder", "value_kind": "INSTANCE", "value": "m.Holder", "confidence": 1.0},
        {"name": "item", "value_kind": "FUNCTION", "value": "m.f", "confidence": 0.5},
        {"name": "item", "value_kind": "FUNCTION", "value": "m.g", "confidence": 0.5},
    ]
    runs = json.loads(run_cli("runs", tmp_path / "out", "--json").stdout)
    (fixpoint,) = [view for view in runs[-1]["views"] if view["view"] == "value_flow_fixpoint"]
    assert fixpoint["rounds"][-1] == 0 and all(rows > 0 for rows in fixpoint["rounds"][:-1])
    assert fixpoint["capped"] == 0


def defined_names(source: str) -> list[str]:
    """Identifiers the program itself defines: functions, classes, parameters, variables, attributes it stores."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return sorted(name for name in names if not (name.startswith("__") and name.endswith("__")))


def rename(source: str, mapping: dict[str, str]) -> str:
    tokens = [(token.type, mapping.get(token.string, token.string) if token.type == tokenize.NAME else token.string)
              for token in tokenize.generate_tokens(io.StringIO(source).readline)]
    return tokenize.untokenize(tokens)


IDENTIFIER = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)  # prefixed with r_: never a keyword or builtin


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_renaming_every_identifier_changes_no_edge(tmp_path_factory, data):
    originals = defined_names(PROGRAM)
    fresh = data.draw(st.lists(IDENTIFIER, min_size=len(originals), max_size=len(originals), unique=True))
    mapping = dict(zip(originals, (f"r_{name}" for name in fresh), strict=True))
    back = {new: old for old, new in mapping.items()}
    renamed = build_call_graph(tmp_path_factory.mktemp("renamed"), rename(PROGRAM, mapping))

    def restore(qualname: str) -> str:
        return ".".join(back.get(part, part) for part in qualname.split("."))

    assert {restore(caller): sorted(map(restore, callees)) for caller, callees in renamed.items()} == EXPECTED


STAR_PROGRAM = '''def f():
    pass


def g():
    pass


def h():
    pass


def first(*fns):
    return fns[0]()


def named(**cbs):
    return cbs["ok"]()


def pair(a, b):
    return b()


def two(x, y):
    return y()


def forward(*args, **kwargs):
    return pair(*args, **kwargs)


first(f, g)
named(ok=h, other=f)
pair(*[g, h])
forward(f, b=g)
two(*[f], g)
'''

# By Python's semantics: fns = (f, g), fns[0] is f; cbs = {"ok": h, "other": f}; pair(*[g, h]) binds
# b = h; forward(f, b=g) has args = (f,), kwargs = {"b": g}, so pair gets b = g; two(*[f], g) binds
# x = f (the star's element 0) and y = g (the positional argument after the star).
STAR_EXPECTED = {
    "m": ["m.first", "m.forward", "m.named", "m.pair", "m.two"],
    "m.f": [],
    "m.first": ["m.f"],
    "m.forward": ["m.pair"],
    "m.g": [],
    "m.h": [],
    "m.named": ["m.h"],
    "m.pair": ["m.g", "m.h"],
    "m.two": ["m.g"],
}


def test_star_arguments_pack_and_unpack(tmp_path):
    assert build_call_graph(tmp_path, STAR_PROGRAM) == STAR_EXPECTED


BUILTIN_FLOWS_PROGRAM = '''def f():
    pass


def g():
    pass


def h():
    pass


class Box:
    def open(self):
        pass


def run():
    fns = []
    fns.append(f)
    table = {"a": g}
    table.update({"b": h})
    table.get("a")()
    for fn in table.values():
        fn()
    first, *rest = [f, g, h]
    for fn in rest:
        fn()
    [f, g][-1]()
    getattr(Box(), "open")()
    list(fns)[0]()
    "x".upper().lower()
    (lambda: h())()


run()
'''

# By Python's semantics: table.get("a") is g; table.values() are g and h; rest is [g, h];
# [f, g][-1] is g; getattr(Box(), "open") is Box.open; list(fns) holds f (appended); "x".upper() is
# a str, so .lower() is a str method; the lambda calls h.
BUILTIN_FLOWS_EXPECTED = {
    "m": ["m.run"],
    "m.Box.open": [],
    "m.f": [],
    "m.g": [],
    "m.h": [],
    "m.run": ["<**PyDict**>.get", "<**PyDict**>.update", "<**PyDict**>.values", "<**PyList**>.append",
              "<**PyStr**>.lower", "<**PyStr**>.upper", "<builtin>.getattr", "<builtin>.list", "m.Box.open",
              "m.f", "m.g", "m.h", "m.run.<lambda1>"],
    "m.run.<lambda1>": ["m.h"],
}


def test_container_methods_builtins_and_lambdas(tmp_path):
    assert build_call_graph(tmp_path, BUILTIN_FLOWS_PROGRAM) == BUILTIN_FLOWS_EXPECTED


PROTOCOL_PROGRAM = '''def f():
    pass


def g():
    pass


def h():
    pass


class Opened:
    def __init__(self, action):
        self.action = action

    def __enter__(self):
        return self.action

    def __exit__(self, *exc_info):
        return False


class Steps:
    def __init__(self, *steps):
        self.steps = list(steps)

    def __iter__(self):
        return self

    def __next__(self):
        if not self.steps:
            raise StopIteration
        return self.steps.pop()


def run():
    with Opened(f) as fn:
        fn()
    for step in Steps(g):
        step()
    for late in [f, g, h][1:]:
        late()
    [f, g, h][:2][1]()


run()
'''

# By Python's semantics: `as` binds what __enter__ returns (f); the loop calls Steps.__iter__ and
# __next__, which returns g (an element of the list `list(steps)`, so `.pop` is a list method);
# [f, g, h][1:] is [g, h]; [f, g, h][:2][1] is g. The `with` and `for` statements' own calls
# (__enter__, __exit__, __iter__, __next__) are run's too.
PROTOCOL_TRUTH = {"m.Opened.__init__",
                  "m.Opened.__enter__", "m.Opened.__exit__", "m.Steps.__init__", "m.Steps.__iter__",
                  "m.Steps.__next__", "m.f", "m.g", "m.h"}


def test_slices_with_targets_and_iterators(tmp_path):
    graph = build_call_graph(tmp_path, PROTOCOL_PROGRAM)
    assert set(graph["m.run"]) == PROTOCOL_TRUTH
    assert graph["m.Steps.__init__"] == ["<builtin>.list"]
    assert graph["m.Steps.__next__"] == ["<**PyList**>.pop"]  # `raise StopIteration` calls nothing here


DECORATOR_PROGRAM = '''def keep(fn):
    return fn


def swap(fn):
    fn = replacement
    return fn


def replacement():
    pass


@keep
def a():
    pass


@keep
def b():
    pass


@swap
def c():
    pass


a()
c()
'''


def test_a_decorator_returning_its_parameter_keeps_each_function(tmp_path):
    """`keep` returns its parameter: `a` stays a (b, which keep also decorates, does not reach it).
    `swap` rebinds its parameter before returning it: `c` is what swap returns (replacement), not c."""
    callees = set(build_call_graph(tmp_path, DECORATOR_PROGRAM)["m"])
    assert {"m.keep", "m.swap", "m.a", "m.replacement"} <= callees
    assert "m.b" not in callees
