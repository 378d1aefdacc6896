"""Benchmark: the points-to fixpoint alone, on the staged inputs a kept build left behind.

Times `run_fixpoint(POINTS_TO_PROGRAM)` (its rounds, each stage of each round, and each rule's
seconds), and can save its result, or compare it with a saved one row for row, so a change to the
engine or to the rules can be checked for an identical answer without a whole build.

    .venv/bin/python tests/benchmarks/bench_build.py --keep /tmp/cpg
    .venv/bin/python tests/benchmarks/bench_fixpoint.py /tmp/cpg --save /tmp/before.parquet
    .venv/bin/python tests/benchmarks/bench_fixpoint.py /tmp/cpg --compare /tmp/before.parquet
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.factory import plan_driver
from relspec.catalog import EXTRACT_TABLES, DatasetCatalog
from semantics import fixpoint
from semantics.views.pointsto import SPECS

FIXPOINT_VIEW = "value_flow_fixpoint"
RULE_SECONDS: dict[str, float] = defaultdict(float)


def _timed_derive() -> None:
    """Count the seconds of each query of rules run together (derive), of each closure (propagate),
    and of the dedup and cap of each relation (novel)."""
    query, novel, propagate = fixpoint._State.query, fixpoint._State.novel, fixpoint._State.propagate

    def timed(rule: fixpoint.Rule, call: object, *args: object) -> pa.Table:
        started = time.perf_counter()
        result = call(*args)  # type: ignore[operator]
        RULE_SECONDS[rule] += time.perf_counter() - started  # type: ignore[index]
        return result

    fixpoint._State.query = lambda self, target, rules: timed(  # type: ignore[method-assign]
        " + ".join(rule.name for rule in rules), query, self, target, rules)
    fixpoint._State.novel = lambda self, name, c: timed(f"novel {name}", novel, self, name, c)  # type: ignore[method-assign]
    fixpoint._State.propagate = lambda self, rule, closure, sole=False: timed(  # type: ignore[method-assign]
        rule.name, propagate, self, rule, closure, sole)


def _register_inputs(session: SessionContext, store: DeltaTableStore, names: tuple[str, ...],
                     planned: dict[str, Any] | None = None) -> None:
    """Each of ``names`` as the build registers it: a staged view's table, an extraction table, and a
    view passing its inputs' rows on that the policy inlined (value_flows passes on the rows of
    ex_flows) as its SQL over its own inputs, registered so in turn. Any other view must be staged:
    a build whose staged views were held in memory left none to time the fixpoint on."""
    for name in names:
        if store.staged_result(name) is not None:
            store.register_staged(session, name, "delta")
        elif name in EXTRACT_TABLES:
            store.register(session, name)
        else:
            planned = planned or plan_driver(Path.cwd()).execute(["semantic_plan", "pass_through_views"])
            if name not in planned["pass_through_views"]:
                raise SystemExit(f"{name} has no staging table in this build: keep a build with staging tables "
                                 "(bench_build.py --keep, or cpgflow build --staging delta)")
            view = planned["semantic_plan"].view(name)
            _register_inputs(session, store, view.inputs, planned)
            session.register_view(name, session.sql(view.sql))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a build kept with bench_build.py --keep")
    parser.add_argument("--save", help="write the fixpoint's result (sorted) to this Parquet file")
    parser.add_argument("--compare", help="compare the result with this Parquet file")
    parser.add_argument("--rules", action="store_true", help="print the seconds of each query")
    parser.add_argument("--sql", action="store_true", help="evaluate every rule by its SQL (no in-memory closure)")
    args = parser.parse_args()
    (spec,) = [spec for spec in SPECS if spec.name == FIXPOINT_VIEW]
    store = DeltaTableStore(DatasetCatalog(str(Path(args.out).resolve())))
    session = new_session()
    _register_inputs(session, store, spec.inputs)
    if args.rules:
        _timed_derive()
    started, cpu = time.perf_counter(), time.process_time()
    result, run = fixpoint.run_fixpoint(session, spec.fixpoint, in_memory=not args.sql)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"fixpoint {seconds:.2f} s (cpu {cpu:.2f} s), {result.num_rows:,} rows, {len(run.rounds) - 1} rounds, "
          f"{run.capped:,} capped, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"rounds {run.rounds}")
    for index, rows in enumerate(run.stages, start=1):
        print(f"  round {index}: " + ", ".join(f"{n} {r:,}" for n, r in zip(run.stage_names, rows, strict=True)))
    for rule, rule_seconds in sorted(RULE_SECONDS.items(), key=lambda item: -item[1]):
        if rule_seconds >= 0.05:
            print(f"  {rule:32s} {rule_seconds:7.2f} s")
    result = _sorted(result.cast(pa.schema([pa.field(f.name, pa.string()) for f in result.schema])))
    if args.save:
        pq.write_table(result, args.save)
    if args.compare:
        before = pq.read_table(args.compare)
        same = before.num_rows == result.num_rows and before.equals(result)
        print(f"compared with {args.compare}: {'identical' if same else 'DIFFERENT'} "
              f"({before.num_rows:,} rows before, {result.num_rows:,} now)")


if __name__ == "__main__":
    main()
