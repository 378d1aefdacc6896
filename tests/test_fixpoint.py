"""The semi-naive fixpoint engine (semantics/fixpoint.py) on small programs whose answers are derived
by hand: a transitive closure through a cycle, stages that carry a fact through two rules in one
round, and a cap that keeps the first values of a key in total order and tells the rules which keys
are full."""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from conftest import query, run_cli
from datafusion import DataFrame, SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from relspec.catalog import DatasetCatalog
from relspec.machine import available_cores
from semantics.entities import Column
from semantics.fixpoint import (
    Cap,
    Closure,
    FixpointProgram,
    Prepared,
    Probe,
    Relation,
    Rule,
    register_in_memory,
    run_fixpoint,
)
from semantics.types import SemanticType as S
from semantics.views.pointsto import SPECS as POINTS_TO_SPECS


def _text(name: str) -> Column:
    return Column(name, "string", S.TEXT)


def _session(**tables: dict[str, list[str]]) -> SessionContext:
    session = SessionContext()
    for name, columns in tables.items():
        register_in_memory(session, name, pa.table(columns))
    return session


def _rows(table: pa.Table) -> set[tuple[str, ...]]:
    return {tuple(row.values()) for row in table.to_pylist()}


REACH = Relation("reach", (_text("src"), _text("dst")))


def test_transitive_closure_through_a_cycle() -> None:
    # a -> b -> c -> d -> b (a cycle), x -> y: every node of the cycle reaches all three of b, c, d.
    session = _session(edge={"src": ["a", "b", "c", "d", "x"], "dst": ["b", "c", "d", "b", "y"]})
    program = FixpointProgram(
        relations=(REACH,), prepare=(),
        seeds=(Rule("edges", "reach", "SELECT src, dst FROM edge"),),
        rules=(Rule("step", "reach", "SELECT r.src, e.dst FROM delta_reach r JOIN edge e ON e.src = r.dst"),),
        result="SELECT src, dst FROM reach",
    )
    result, run = run_fixpoint(session, program)
    cycle = {(src, dst) for src in "abcd" for dst in "bcd"}
    assert _rows(result) == cycle | {("x", "y")}
    # seeds: 5 edges; a hop more: a-c, b-d, c-b, d-c; then a-d, b-b, c-c, d-d; then nothing new
    assert run.rounds == (5, 4, 4, 0) and run.converged and run.capped == 0
    assert not session.table_exist("reach") and not session.table_exist("delta_reach")  # released


def test_a_stage_sees_the_rows_of_the_stages_before_it_in_the_same_round() -> None:
    # mark(s); reach(n') <- mark(n), next(n, n') in stage 0; mark(n) <- reach(n) in stage 1.
    # s -> 1 -> 2 -> 3: each round takes one hop (reach then mark), so 3 rounds and a 4th that adds
    # nothing; evaluated all at once (one stage) each hop would take two rounds.
    session = _session(next={"src": ["s", "1", "2"], "dst": ["1", "2", "3"]})
    node = (_text("node"),)
    program = FixpointProgram(
        relations=(Relation("mark", node), Relation("reach", node)),
        prepare=(Prepared("hops", "SELECT src, dst FROM next"), Prepared("unused", "SELECT src FROM hops")),
        seeds=(Rule("start", "mark", "SELECT 's' AS node"),),
        rules=(Rule("hop", "reach", "SELECT h.dst AS node FROM delta_mark m JOIN hops h ON h.src = m.node", 0),
               Rule("marked", "mark", "SELECT node FROM delta_reach", 1)),
        result="SELECT 'mark' AS relation, node FROM mark UNION ALL SELECT 'reach', node FROM reach",
    )
    result, run = run_fixpoint(session, program)
    assert _rows(result) == {("mark", n) for n in "s123"} | {("reach", n) for n in "123"}
    assert run.rounds == (1, 2, 2, 2, 0)
    assert run.stages == ((1, 1), (1, 1), (1, 1), (0, 0))  # reach, then mark, each round
    assert run.stage_names == ("stage 0", "stage 1")  # the program names none
    assert [[rule.name for rule in stage] for stage in program.stages()] == [["hop"], ["marked"]]


def test_a_cap_keeps_the_first_values_in_order_and_full_keys_take_no_more() -> None:
    # n is seeded with v1, v2, v3 and holds 2: v1 and v2 (the order is total: by node, then value);
    # m copies n and m2 copies m, each then holding v1, v2; p is full of its own w1, w2 before the
    # copy from n reaches it, so it keeps them.
    session = _session(
        seed={"node": ["n", "n", "n", "p", "p"], "val": ["v3", "v1", "v2", "w2", "w1"]},
        edge={"src": ["n", "m", "n"], "dst": ["m", "m2", "p"]},
    )
    program = FixpointProgram(
        relations=(Relation("pts", (_text("node"), _text("val"))),), prepare=(),
        seeds=(Rule("seed", "pts", "SELECT node, val FROM seed"),),
        rules=(Rule("copy", "pts", "SELECT e.dst AS node, p.val FROM delta_pts p JOIN edge e ON e.src = p.node "
                                   "LEFT ANTI JOIN full_pts f ON f.node = e.dst"),),
        result="SELECT node, val FROM pts",
        caps=(Cap("pts", "node", 2),),
    )
    result, run = run_fixpoint(session, program)
    assert _rows(result) == {("n", "v1"), ("n", "v2"), ("p", "w1"), ("p", "w2"), ("m", "v1"), ("m", "v2"),
                             ("m2", "v1"), ("m2", "v2")}
    assert run.capped == 1  # n's v3; p was full, so n's values were never offered to it
    assert run.rounds == (4, 2, 2, 0)


def _hops(probe_keys: tuple[tuple[str, str], ...], prefix: str = "") -> FixpointProgram:
    node = (_text("node"),)
    return FixpointProgram(
        relations=(Relation("reach", node),),
        prepare=(Prepared("hops", "SELECT src, dst FROM next"),
                 Prepared("starts", "SELECT src FROM next WHERE src = 's'")),
        seeds=(Rule("start", "reach", "SELECT 's' AS node"),),
        rules=(Rule("hop", "reach", "SELECT h.dst AS node FROM delta_reach r JOIN hops h ON h.src = r.node",
                    probe=Probe("reach", "node", probe_keys, prefix)),),
        result="SELECT node FROM reach",
    )


def test_a_probe_runs_a_rule_only_when_its_new_rows_meet_its_keys() -> None:
    # s -> 1 -> 2, and 2 hops nowhere. The probe (a new node is a hop's source) lets the rule run in the
    # first two rounds (new s, then new 1) and not in the third (new 2): nothing is lost.
    session = _session(next={"src": ["s", "1"], "dst": ["1", "2"]})
    result, run = run_fixpoint(session, _hops((("hops", "src"),)))
    assert _rows(result) == {("s",), ("1",), ("2",)} and run.rounds == (1, 1, 1, 0)
    # A probe on keys that leave out 1 (only s starts a hop) stops the rule once the new row is 1: so
    # the probe is obeyed, and a rule's probe must name every key its rows join on.
    result, run = run_fixpoint(session, _hops((("starts", "src"),)))
    assert _rows(result) == {("s",), ("1",)} and run.rounds == (1, 1, 0)
    # A prefix alone: the rule runs for new s (it starts with "s"), not for new 1.
    result, run = run_fixpoint(session, _hops((), prefix="s"))
    assert _rows(result) == {("s",), ("1",)} and run.rounds == (1, 1, 0)


def test_a_prepared_table_is_dropped_once_the_last_step_reading_it_is_computed() -> None:
    # raw -> pairs -> (seen_raw, seen_pairs, reach's seed). raw only serves to prepare pairs, so it is gone
    # before the step after pairs runs; pairs is read by the seed, so it stays until the program ends.
    session = new_session()
    register_in_memory(session, "next", pa.table({"src": ["a"], "dst": ["b"]}))
    # (the name spelled in pieces: a step that names a table is taken to read it)
    present = "SELECT CAST(count(*) AS VARCHAR) AS src, concat('{0}', '{1}') AS dst FROM information_schema.tables " \
              "WHERE table_name = concat('{0}', '{1}')"
    program = FixpointProgram(
        relations=(REACH,),
        prepare=(Prepared("raw", "SELECT src, dst FROM next"), Prepared("pairs", "SELECT src, dst FROM raw"),
                 Prepared("seen_raw", present.format("r", "aw")),
                 Prepared("seen_pairs", present.format("pa", "irs"))),
        seeds=(Rule("seed", "reach", "SELECT src, dst FROM pairs UNION ALL SELECT src, dst FROM seen_raw "
                                     "UNION ALL SELECT src, dst FROM seen_pairs"),),
        rules=(), result="SELECT src, dst FROM reach",
    )
    result, _ = run_fixpoint(session, program)
    assert _rows(result) == {("a", "b"), ("0", "raw"), ("1", "pairs")}
    assert not any(session.table_exist(name) for name in ("raw", "pairs", "seen_raw", "seen_pairs"))


def test_what_only_the_seeds_read_is_dropped_before_the_rounds_and_what_the_result_does_not_read_before_it() -> None:
    # pairs is read by the seeds alone, so the rounds run without it; the relation hops is read by no
    # rule after the seeds nor by the result, so the result runs without it (each holds hundreds of MB
    # on the standard library). The rule and the result count them in the session's tables.
    session = new_session()
    register_in_memory(session, "next", pa.table({"src": ["a"], "dst": ["b"]}))
    count = "SELECT CAST(count(*) AS VARCHAR) AS src, '{2}' AS dst FROM information_schema.tables " \
            "WHERE table_name = concat('{0}', '{1}')"
    program = FixpointProgram(
        relations=(REACH, Relation("hops", (_text("src"), _text("dst")))),
        prepare=(Prepared("pairs", "SELECT src, dst FROM next"),),
        seeds=(Rule("seed", "reach", "SELECT src, dst FROM pairs"),
               Rule("hops", "hops", "SELECT src, dst FROM pairs")),
        rules=(Rule("look", "reach", count.format("pa", "irs", "the seeds table in a round")
                    + " AND (SELECT count(*) FROM delta_reach) > 0"),),
        result="SELECT src, dst FROM reach UNION ALL " + count.format("ho", "ps", "the other relation at the result"),
    )
    result, run = run_fixpoint(session, program)
    assert _rows(result) == {("a", "b"), ("0", "the seeds table in a round"), ("0", "the other relation at the result")}
    assert run.rounds == (2, 1, 0)


class _CountingSession(SessionContext):
    """A session that keeps the SQL it is asked to run."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def sql(self, query: str, *args: object, **kwargs: object) -> DataFrame:  # type: ignore[override]
        self.queries.append(query)
        return super().sql(query, *args, **kwargs)  # type: ignore[arg-type]


def test_the_rules_of_a_stage_that_derive_one_relation_run_as_one_query() -> None:
    # Two seeds and two rules of pair(a, b), each pair's columns in its own order. Seeds: (a1, b1) and
    # (a2, b2); round 1: swap gives (b1, a1), (b2, a2), same gives nothing (no a is x); round 2: swap
    # gives the seeds again, nothing new. One query for the seeds, one a round, one for the result.
    pair = Relation("pair", (_text("a"), _text("b")))
    program = FixpointProgram(
        relations=(pair,), prepare=(),
        seeds=(Rule("ab", "pair", "SELECT 'a1' AS a, 'b1' AS b"), Rule("ba", "pair", "SELECT 'b2' AS b, 'a2' AS a")),
        rules=(Rule("swap", "pair", "SELECT a AS b, b AS a FROM delta_pair"),
               Rule("same", "pair", "SELECT b, a FROM delta_pair WHERE a = 'x'")),
        result="SELECT a, b FROM pair",
    )
    session = _CountingSession()
    result, run = run_fixpoint(session, program)
    assert _rows(result) == {("a1", "b1"), ("a2", "b2"), ("b1", "a1"), ("b2", "a2")}
    assert run.rounds == (2, 2, 0)
    assert len([query for query in session.queries if "fixpoint_candidates" not in query]) == 4  # (not the dedup)


def test_rules_run_together_keep_their_own_types_until_cast_to_the_relations() -> None:
    # 2**53 + 1 = 9007199254740993 has no float64 (it would round to ...992): cast to int64 alone, it
    # stays whole, and the other rule's 1.5 becomes 1 (a cast to an integer truncates). A union that
    # met the two types first would take both to float64.
    program = FixpointProgram(
        relations=(Relation("number", (Column("n", "int64", S.ORDINAL),)),), prepare=(),
        seeds=(Rule("big", "number", "SELECT CAST(9007199254740993 AS BIGINT) AS n"),
               Rule("half", "number", "SELECT CAST(1.5 AS DOUBLE) AS n;")),  # (a closing semicolon is fine)
        rules=(), result="SELECT n FROM number",
    )
    result, _ = run_fixpoint(SessionContext(), program)
    assert sorted(result.column("n").to_pylist()) == [1, 9007199254740993]


def test_a_probe_must_name_a_delta_its_rule_reads_and_prepared_keys() -> None:
    with pytest.raises(ValueError, match="delta_other, which it does not read"):
        Rule("hop", "reach", "SELECT node FROM delta_reach", probe=Probe("other", "node", (("hops", "src"),)))
    with pytest.raises(ValueError, match="its probe names neither keys nor a prefix"):
        _hops(())
    with pytest.raises(ValueError, match="its probe reads nowhere, no prepared table"):
        _hops((("nowhere", "src"),))
    with pytest.raises(ValueError, match=r"its probe names reach\.place, no relation's column"):
        FixpointProgram(relations=(REACH,), prepare=(Prepared("hops", "SELECT 1 AS src"),), seeds=(), result="",
                        rules=(Rule("r", "reach", "SELECT * FROM delta_reach",
                                    probe=Probe("reach", "place", (("hops", "src"),))),))
    # a probe gates one delta: a rule reading another would lose that one's rows with a skipped round
    with pytest.raises(ValueError, match="it reads delta_mark besides its probe's delta_reach"):
        FixpointProgram(relations=(REACH, Relation("mark", (_text("node"),))), seeds=(), result="",
                        prepare=(Prepared("hops", "SELECT 1 AS src"),),
                        rules=(Rule("r", "reach", "SELECT r.src, m.node FROM delta_reach r, delta_mark m",
                                    probe=Probe("reach", "src", (("hops", "src"),))),))


PTS = Relation("pts", (_text("node"), _text("kind"), _text("obj"), _text("recv")))
EDGES = Relation("edges", (_text("src"), _text("dst"), _text("recv")))
BIND = "CASE WHEN {v}.kind = 'FUNCTION' AND {v}.recv IS NULL THEN e.recv ELSE {v}.recv END"
PROPAGATE = f"""WITH RECURSIVE reach(node, kind, obj, recv) AS (
    SELECT * FROM (
        SELECT node, kind, obj, recv FROM delta_pts
        UNION ALL
        SELECT e.dst, p.kind, p.obj, {BIND.format(v="p")} FROM pts p JOIN delta_edges e ON e.src = p.node
        LEFT ANTI JOIN full_pts f ON f.node = e.dst
    ) fresh
    UNION
    SELECT e.dst, r.kind, r.obj, {BIND.format(v="r")} FROM reach r JOIN edges e ON e.src = r.node
    LEFT ANTI JOIN full_pts f ON f.node = e.dst
)
SELECT node, kind, obj, recv FROM reach"""


def test_a_closure_in_memory_adds_what_its_sql_adds() -> None:
    # a -> b -> c -> a (a cycle); b -> c binds plain functions to K; c -> d -> z, z full (cap 4) of its
    # own values, and the cycle's nodes fill up too; a class reaching d adds an edge a -> late:<class>
    # (an edge new in a later round carries what its source holds already); a class reaching late:<class>
    # makes an instance at n (a row a later stage adds), which flows n -> m, and n -> w, but w is full:
    # v -> w brought it exactly its 4 values, so the instance never reaches it (and is not counted).
    z = ["Z1", "Z2", "Z3", "Z4"]
    session = _session(
        seed={"node": ["a", "a", "a", "b", *["z"] * 4, "m", *["v"] * 4],
              "kind": ["FUNCTION", "FUNCTION", "CLASS", "FUNCTION", *["CLASS"] * 4, "FUNCTION", *["CLASS"] * 4],
              "obj": ["f", "g", "K", "h", *z, "mm", "V1", "V2", "V3", "V4"], "recv": [None] * 8 + ["R"] + [None] * 4},
        edge={"src": ["a", "b", "c", "c", "d", "m", "n", "v", "n"],
              "dst": ["b", "c", "a", "d", "z", "a", "m", "w", "w"],
              "recv": [None, "K", None, None, None, None, None, None, None]},
    )
    null = "CAST(NULL AS VARCHAR)"
    program = FixpointProgram(
        relations=(PTS, EDGES), prepare=(),
        seeds=(Rule("seed", "pts", "SELECT node, kind, obj, recv FROM seed"),
               Rule("edges", "edges", "SELECT src, dst, recv FROM edge")),
        rules=(Rule("propagate", "pts", PROPAGATE, 0, Closure("edges", "recv", "recv", "kind", ("FUNCTION",))),
               Rule("late", "edges", f"SELECT 'a' AS src, concat('late:', obj) AS dst, {null} AS recv "
                                     "FROM delta_pts WHERE node = 'd' AND kind = 'CLASS'", 1),
               Rule("made", "pts", f"SELECT 'n' AS node, 'INSTANCE' AS kind, concat('i', obj) AS obj, {null} AS recv "
                                   "FROM delta_pts WHERE node LIKE 'late:%' AND kind = 'CLASS'", 1)),
        result="SELECT node, kind, obj, recv FROM pts",
        caps=(Cap("pts", "node", 4),),
    )
    by_sql, sql_run = run_fixpoint(session, program, in_memory=False)
    in_memory, run = run_fixpoint(session, program)
    rows = _rows(in_memory)
    assert rows == _rows(by_sql)
    assert (run.rounds, run.stages, run.capped) == (sql_run.rounds, sql_run.stages, sql_run.capped)
    assert {("c", "FUNCTION", "f", "K"), ("late:K", "CLASS", "K", None), ("m", "INSTANCE", "iK", None),
            ("m", "FUNCTION", "mm", "R")} <= rows
    assert {row for row in rows if row[0] == "z"} == {("z", "CLASS", name, None) for name in z}
    assert {row[2] for row in rows if row[0] == "w"} == {"V1", "V2", "V3", "V4"}
    assert run.capped > 0 and len(run.rounds) > 3


def test_plan_shows_the_points_to_rules_by_stage(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def f():\n    return f\n")
    done = run_cli("plan", tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    (view,) = [view for view in json.loads(done.stdout)["views"] if view["name"] == "value_flow_fixpoint"]
    rules = view["fixpoint"]["rules"]
    assert rules[0] == "stage 0: propagate -> pts"
    assert "stage 1: callees -> callees, when a new pts.node is a key of pt_callee_flows.src" in rules
    stages = [int(rule.split(":")[0].removeprefix("stage ")) for rule in rules]
    assert stages == sorted(stages) and set(stages) == {0, 1, 2}


def test_runs_shows_each_round_of_the_fixpoint_by_stage(tmp_path: Path) -> None:
    # `f` flows into `g`'s parameter, which `g` calls: the analysis needs rounds to follow it.
    (tmp_path / "m.py").write_text("def f():\n    pass\n\ndef g(cb):\n    cb()\n\ng(f)\n")
    out = tmp_path / "out"
    assert run_cli("build", tmp_path, "--out", out, "-q").returncode == 0
    done = run_cli("runs", out)
    assert done.returncode == 0, done.stderr
    rounds = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("round ")]
    assert rounds and rounds[0].startswith("round 1: move ") and ", call " in rounds[0] and ", bind " in rounds[0]
    assert rounds[-1] == f"round {len(rounds)}: move 0, call 0, bind 0"


FIXTURES = Path(__file__).parent / "callgraph_fixtures"
STDLIB_MODULES = ("functools.py", "contextlib.py", "enum.py", "dataclasses.py", "argparse.py", "json")


def test_the_points_to_probes_lose_no_row(tmp_path: Path) -> None:
    # Every call-graph fixture program (each under a folder of its own) and a few standard-library
    # modules, built with the staged views as Delta tables (value_flows, which passes on the rows of
    # ex_flows, is staged by an override: the policy inlines it); then the points-to program runs on them
    # with its probes, with every probe taken off, and with a stage's independent queries (and the
    # prepared tables of one wave) run two at a time: all three give the same rows, rounds and caps.
    root = tmp_path / "src"
    for case in sorted(path.parent for path in FIXTURES.glob("*/*/callgraph.json")):
        shutil.copytree(case, root / f"{case.parent.name}_{case.name}", ignore=shutil.ignore_patterns("*.json"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in STDLIB_MODULES:
        copy = shutil.copytree if (stdlib / name).is_dir() else shutil.copy
        copy(stdlib / name, root / name)
    out = tmp_path / "out"
    done = run_cli("build", root, "--out", out, "--staging", "delta", "--cache-policy", "value_flows=delta_staging",
                   "-q")
    assert done.returncode == 0, done.stderr
    (spec,) = [spec for spec in POINTS_TO_SPECS if spec.name == "value_flow_fixpoint"]
    program = spec.fixpoint
    assert program is not None and sum(rule.probe is not None for rule in program.rules) >= 20
    unprobed = msgspec.structs.replace(
        program, rules=tuple(msgspec.structs.replace(rule, probe=None) for rule in program.rules))
    results = []
    for evaluated, threads in ((program, 1), (unprobed, 1), (program, 2)):
        session = new_session()
        store = DeltaTableStore(DatasetCatalog(str(out)))
        for name in spec.inputs:
            store.register_staged(session, name, "delta")
        result, run = run_fixpoint(session, evaluated, threads=threads)
        results.append((_rows(result), run.rounds, run.capped))
    assert results[0] == results[1] == results[2]
    rows, rounds, _ = results[0]
    assert len(rows) > 10_000 and len(rounds) > 5


def _fixpoint_outcome(out: Path) -> dict:
    record = json.loads(query(out, "SELECT record FROM cpg_runs ORDER BY started_at DESC LIMIT 1")[0]["record"])
    (outcome,) = [view for view in record["views"] if view["view"] == "value_flow_fixpoint"]
    return outcome


def test_a_small_build_runs_the_fixpoints_independent_queries_at_once(tmp_path: Path) -> None:
    """A small input's fixpoint runs a stage's independent queries (and a wave of prepared tables) on
    as many threads as the session has partitions, as its scan options say: the run record counts the
    times two or more ran at once. Built with ``-j 1`` (one partition), none does; the rows are the same."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("def f():\n    pass\n\ndef g(cb):\n    cb()\n\ng(f)\n")
    outcomes, rows = {}, {}
    for jobs in ("0", "1"):
        out = tmp_path / f"out{jobs}"
        done = run_cli("build", tmp_path / "src", "--out", out, "-q", "-j", jobs)
        assert done.returncode == 0, done.stderr
        outcomes[jobs] = _fixpoint_outcome(out)
        rows[jobs] = query(out, "SELECT node, value_kind, value_id FROM cpg_points_to ORDER BY 1, 2, 3")
    plan = run_cli("plan", tmp_path / "src", "--json", "-o", tmp_path / "out0")
    (view,) = [view for view in json.loads(plan.stdout)["views"] if view["name"] == "value_flow_fixpoint"]
    assert view["scan"]["queries_at_once"] == available_cores()
    assert outcomes["1"].get("overlapped", 0) == 0
    if available_cores() > 1:
        assert outcomes["0"]["overlapped"] > 0
        assert "queries run at once" in run_cli("runs", tmp_path / "out0").stdout
    assert rows["0"] == rows["1"] and rows["0"]
