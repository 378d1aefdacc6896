"""Benchmark: what DataFusion's session settings cost the interactive questions people ask of a built output.

Opens a built output (``--output``, e.g. the standard library's) and times the questions `cpgflow`
answers — the call hops every caller/callee walk starts from, the unused functions, the import graph,
the subclass closure's input, a count by kind — under each combination of target partitions and batch
size, alternating the combinations round by round so that the machine's load falls on all of them
alike. Prints each combination's median seconds per question and its total as a ratio to the fastest.

Then what a memory limit buys: every edge sorted by its ends, each in a process of its own, with no
limit, under the interactive profile's and under smaller ones (``--limits``, MiB): seconds, peak RSS
and what the sort spilled to disk, or the error DataFusion gave up with.

    .venv/bin/python tests/benchmarks/bench_profiles.py --output DIR [--rounds 5] [--limits 1024,512,128]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import time

import msgspec

from driver.api import open_session
from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.questions import HOPS_SQL, IMPORTS_SQL, INHERITS_SQL, UNUSED_SQL
from relspec.catalog import DatasetCatalog
from relspec.plan_signals import PlanExecution
from relspec.profiles import compile_session_profile

QUESTIONS = {
    "hops": HOPS_SQL,
    "unused": UNUSED_SQL,
    "imports": IMPORTS_SQL.replace("$module", "''"),
    "inherits": INHERITS_SQL,
    "kinds": "SELECT kind, count(*) FROM cpg_nodes GROUP BY kind",
}


SORT_SQL = "SELECT src, dst, kind FROM cpg_edges ORDER BY dst, src"


def sort_under(output: str, limit_mib: int | None) -> None:
    """One sort of every edge under ``limit_mib`` (None: unbounded), in this process: prints seconds,
    peak RSS (MiB), spills and spilled bytes on one line."""
    limit = None if limit_mib is None else limit_mib * 2**20
    session = new_session(msgspec.structs.replace(compile_session_profile("interactive_query"), memory_limit=limit))
    DeltaTableStore(DatasetCatalog(os.path.abspath(output))).register(session, "cpg_edges")
    started = time.perf_counter()
    execution = PlanExecution(session, session.sql(SORT_SQL))
    try:
        execution.collect()
    except Exception as err:  # DataFusion gave up: say how
        print("failed " + str(err).split(": ", 2)[-1][:90])
        return
    seconds = time.perf_counter() - started
    signals = execution.signals()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{seconds:8.2f}  {peak:12,}  {signals.spill_count:6}  {signals.spilled_bytes / 2**20:11.0f}")


def memory_limits(output: str, limits: list[int]) -> None:
    interactive_mib = compile_session_profile("interactive_query").memory_limit // 2**20  # type: ignore[operator]
    print(f"\nevery edge sorted by its ends ({SORT_SQL!r}), a process each:")
    print("limit MiB                 seconds  peak RSS MiB  spills  spilled MiB")
    for label, limit in (("none", None), (f"{interactive_mib:,} (interactive)", interactive_mib),
                         *((f"{mib:,}", mib) for mib in limits)):
        command = [sys.executable, __file__, "--output", output, "--sort-under", str(limit or 0)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        print(f"{label:24} {done.stdout.strip()}")


def settings_grid(cores: int) -> list[tuple[int, int]]:
    partitions = sorted({1, cores})
    return list(itertools.product(partitions, (8192, 32768)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="a built output folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limits", default="1024,512,128", help="MiB, comma-separated: limits the sort runs under")
    parser.add_argument("--sort-under", type=int, help=argparse.SUPPRESS)  # one sort in this process (0: unbounded)
    args = parser.parse_args()
    if args.sort_under is not None:
        sort_under(args.output, args.sort_under or None)
        return
    session, _ = open_session(args.output)
    grid = settings_grid(len(os.sched_getaffinity(0)))
    times: dict[tuple[int, int], dict[str, list[float]]] = {key: {q: [] for q in QUESTIONS} for key in grid}
    for sql in QUESTIONS.values():  # warm the file cache and the Delta logs once
        session.sql(sql).to_arrow_table()
    for round_ in range(args.rounds):
        order = grid if round_ % 2 == 0 else list(reversed(grid))
        for partitions, batch in order:
            session.sql(f"SET datafusion.execution.target_partitions = {partitions}").collect()
            session.sql(f"SET datafusion.execution.batch_size = {batch}").collect()
            for question, sql in QUESTIONS.items():
                started = time.perf_counter()
                session.sql(sql).to_arrow_table()
                times[(partitions, batch)][question].append(time.perf_counter() - started)
    medians = {key: {q: statistics.median(v) for q, v in by_question.items()} for key, by_question in times.items()}
    fastest = min(sum(m.values()) for m in medians.values())
    print(f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds; median seconds per question")
    print("partitions batch  " + "  ".join(f"{q:>8}" for q in QUESTIONS) + "     total  ratio")
    for (partitions, batch), by_question in medians.items():
        total = sum(by_question.values())
        cells = "  ".join(f"{by_question[q]:8.3f}" for q in QUESTIONS)
        print(f"{partitions:>10} {batch:>5}  {cells}  {total:8.3f}  {total / fastest:5.2f}")
    memory_limits(args.output, [int(mib) for mib in args.limits.split(",")])


if __name__ == "__main__":
    main()
