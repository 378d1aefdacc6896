"""Benchmark: what DataFusion's session settings cost the interactive questions people ask of a built output.

Opens a built output (``--output``, e.g. the standard library's) and times the questions `cpgflow`
answers — the call hops every caller/callee walk starts from, the unused functions, the import graph,
the subclass closure's input, a count by kind — under each combination of target partitions and batch
size, alternating the combinations round by round so that the machine's load falls on all of them
alike. Prints each combination's median seconds per question and its total as a ratio to the fastest.

    .venv/bin/python tests/benchmarks/bench_profiles.py --output DIR [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

from driver.api import open_session
from driver.questions import HOPS_SQL, IMPORTS_SQL, INHERITS_SQL, UNUSED_SQL

QUESTIONS = {
    "hops": HOPS_SQL,
    "unused": UNUSED_SQL,
    "imports": IMPORTS_SQL.replace("$module", "''"),
    "inherits": INHERITS_SQL,
    "kinds": "SELECT kind, count(*) FROM cpg_nodes GROUP BY kind",
}


def settings_grid(cores: int) -> list[tuple[int, int]]:
    partitions = sorted({1, cores})
    return list(itertools.product(partitions, (8192, 32768)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="a built output folder")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
