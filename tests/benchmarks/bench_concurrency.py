"""Benchmark: do two independent views finish sooner run concurrently (two threads, one session)?

Each view is computed over the staged inputs of a kept build (extraction tables and staging
tables registered as the build registers them) and written to a Delta table of its own. For each
pair of independent views (neither reads the other, directly or transitively) it times, median of
``--repeats``: A alone, B alone, A then B, A and B on two threads of the same session, and A then B
and A and B on two threads in a session with ``target_partitions = 1``. It prints wall seconds, the CPU
seconds the process used over that wall time (cores busy), the load average, and the ratio
concurrent / sequential. ``--gil`` first checks whether a running query leaves the GIL to other
threads (a thread counting in Python while another computes a view).

    .venv/bin/python tests/benchmarks/bench_build.py --keep /tmp/cpg      # or let this script build
    .venv/bin/python tests/benchmarks/bench_concurrency.py --out /tmp/cpg --gil
    .venv/bin/python tests/benchmarks/bench_concurrency.py --out /tmp/cpg --pair reference_edges:value_flows
"""

from __future__ import annotations

import argparse
import os
import shutil
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from datafusion import SessionContext
from deltalake import write_deltalake

from driver.delta_store import DeltaTableStore, _pumped
from driver.engine import new_session
from driver.factory import build_driver, plan_driver
from relspec.catalog import EXTRACT_TABLES, DatasetCatalog
from relspec.profiles import compile_session_profile
from semantics.entities import BUILTIN_NAMES, builtin_names_table
from semantics.fixpoint import register_in_memory, run_fixpoint
from semantics.ir import EmittedView, SemanticPlan, typed

# Pairs of independent views of at least ~1 s each on the standard library (`cpgflow runs` seconds):
# long single queries, a heavy one with a lighter one, and the points-to fixpoint (many small
# queries and numpy work) with an output that reads none of it.
DEFAULT_PAIRS = (
    ("reference_edges", "cpg_props"),  # two long single queries (~3.5 s each)
    ("reference_edges", "value_flows"),  # heavy with light (~3.5 s and ~1.4 s)
    ("call_edges", "cpg_props"),  # heavy with heavy (~5.7 s and ~3.5 s)
    ("value_flow_fixpoint", "cpg_props"),  # fixpoint (~30 s) with an independent output
)
SINKS = ("arrow", "pump", "stream")
SPIN_SECONDS_FLOOR = 0.5


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # CPU seconds of the whole process over the wall time (every thread, Rust's too)

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


@dataclass
class Bench:
    """A session over a kept build's tables, the semantic plan, and where the views are written."""

    out: Path
    plan: SemanticPlan
    staged: frozenset[str]
    sink: str
    scratch: Path

    def session(self, partitions: int = 0) -> SessionContext:
        """A session as the build makes it (one partition per core unless ``partitions``), with every
        extraction table and staged view registered, and every other view a lazy view of its SQL."""
        session = new_session(compile_session_profile("full_build", partitions))
        store = DeltaTableStore(DatasetCatalog(str(self.out)))
        for name in EXTRACT_TABLES:
            if Path(store.catalog.location(name)).exists():
                store.register(session, name)
        session.register_record_batches(BUILTIN_NAMES.table, [builtin_names_table().to_batches()])
        for view in self.plan.views:  # dependency order: a lazy view's inputs are registered before it
            if view.name in self.staged:
                store.register_staged(session, view.name, "delta")
            elif view.fixpoint is None:
                session.register_view(view.name, session.sql(view.sql))
        return session

    def run(self, session: SessionContext, name: str, tag: str) -> int:
        """Compute view ``name`` (a fixpoint evaluated by `run_fixpoint`) and write it to its own Delta
        table; returns its rows."""
        view = self.plan.view(name)
        source = view.sql
        if view.fixpoint is not None:
            result, _ = run_fixpoint(session, view.fixpoint)
            held = f"{name}__{tag}__result"  # a name of its own: another thread may run the same view
            register_in_memory(session, held, result)
            source = f"SELECT * FROM {held}"
        frame = session.sql(_conformed_sql(view, source))
        path = self.scratch / f"{name}__{tag}"
        if self.sink == "arrow":
            table = frame.to_arrow_table()
            write_deltalake(str(path), table, mode="overwrite")
            rows = table.num_rows
        elif self.sink == "pump":  # as the build stages a view: a thread of ours feeds the writer
            with _pumped(frame, frame.schema()) as batches:
                write_deltalake(str(path), batches, mode="overwrite")
            rows = -1
        else:  # the writer pulls DataFusion's stream itself (Arrow C stream): stalls for good on
            # reference_edges here (0% CPU), see `driver.delta_store._pumped`
            write_deltalake(str(path), frame, mode="overwrite")
            rows = -1
        if view.fixpoint is not None:
            session.deregister_table(f"{name}__{tag}__result")
        return rows


def _conformed_sql(view: EmittedView, source: str) -> str:
    """As the build stages a view: its SQL cast onto the declared column types."""
    return f"SELECT {', '.join(typed(column.name, column) for column in view.columns)} FROM ({source}) v"


def _timed(work: Callable[[], object]) -> Timing:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def _concurrently(*jobs: Callable[[], object]) -> None:
    """Run ``jobs`` on threads of their own, started together; re-raise the first failure."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def start(job: Callable[[], object]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _median(timings: list[Timing]) -> Timing:
    """The timing of median wall time (its CPU seconds with it)."""
    return sorted(timings, key=lambda timing: timing.wall)[len(timings) // 2]


def measure_pair(bench: Bench, first: str, second: str, repeats: int) -> dict[str, Timing]:
    session = bench.session()
    single = bench.session(1)
    cases: dict[str, Callable[[], object]] = {
        "A alone": lambda: bench.run(session, first, "a"),
        "B alone": lambda: bench.run(session, second, "b"),
        "A then B": lambda: (bench.run(session, first, "a"), bench.run(session, second, "b")),
        "A || B": lambda: _concurrently(lambda: bench.run(session, first, "a"),
                                        lambda: bench.run(session, second, "b")),
        "A then B, 1 partition": lambda: (bench.run(single, first, "a"), bench.run(single, second, "b")),
        "A || B, 1 partition": lambda: _concurrently(lambda: bench.run(single, first, "a"),
                                                     lambda: bench.run(single, second, "b")),
    }
    bench.run(session, first, "a")  # warm the page cache and the Delta logs once
    bench.run(session, second, "b")
    shutil.rmtree(bench.scratch, ignore_errors=True)
    results: dict[str, list[Timing]] = {case: [] for case in cases}
    for _ in range(repeats):  # interleaved, so a change in the machine's load touches every case
        for case, work in cases.items():
            results[case].append(_timed(work))
            shutil.rmtree(bench.scratch, ignore_errors=True)  # each write starts a new table, untimed
    return {case: _median(timings) for case, timings in results.items()}


def gil_check(bench: Bench, name: str) -> tuple[float, float, float, float]:
    """Python counting speed alone, then while view ``name``'s query is collected on another thread
    (no write: only the query); the query's seconds, and the counter's longest stall while it ran. A
    binding that held the GIL while executing would stall the counter for the whole query."""
    session = bench.session()
    query = session.sql(_conformed_sql(bench.plan.view(name), bench.plan.view(name).sql))
    query.collect()
    seconds = _timed(query.collect).wall
    span = max(seconds, SPIN_SECONDS_FLOOR)

    def spin(counts: list[float]) -> None:
        count, stall, last = 0, 0.0, time.perf_counter()
        end = last + span
        while (now := time.perf_counter()) < end:
            stall, last = max(stall, now - last), now
            count += 1
        counts.extend((count, stall))

    alone: list[float] = []
    spin(alone)
    during: list[float] = []
    spinner = threading.Thread(target=spin, args=(during,))
    spinner.start()
    query.collect()
    spinner.join()
    return alone[0] / span, during[0] / span, seconds, during[1]


def build_stdlib(folder: Path) -> Path:
    """A copy of the standard library built into ``folder``/out with staging tables on disk."""
    source = folder / "stdlib"
    shutil.copytree(sysconfig.get_paths()["stdlib"], source, ignore=shutil.ignore_patterns("site-packages"))
    out = folder / "out"
    build_driver(source, out, staging="delta").execute(["build_summary"])
    return out


def staged_views(out: Path) -> frozenset[str]:
    staging = Path(DatasetCatalog(str(out)).staging_location(""))
    return frozenset(entry.name for entry in staging.iterdir() if entry.is_dir())


def _rows(results: dict[str, Timing]) -> Iterator[str]:
    for case, timing in results.items():
        yield f"  {case:22s} {timing.wall:8.2f} s   cpu {timing.cpu:7.2f} s   cores {timing.cores:4.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output folder of a build kept with --staging delta (else: build the "
                                      "standard library into a temporary folder)")
    parser.add_argument("--pair", action="append", metavar="A:B",
                        help="views to pair (repeatable); default: " + ", ".join(map(":".join, DEFAULT_PAIRS)))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sink", choices=SINKS, default="arrow",
                        help="arrow: to_arrow_table() then write_deltalake; pump: the build's writer (a thread "
                             "pumping batches to write_deltalake); stream: write_deltalake(path, frame), which can "
                             "stall for good")
    parser.add_argument("--gil", action="store_true", help="check first whether a query releases the GIL")
    args = parser.parse_args()

    temporary = Path(tempfile.mkdtemp(prefix="cpgflow-concurrency-"))
    try:
        out = Path(args.out).resolve() if args.out else build_stdlib(temporary)
        plan: SemanticPlan = plan_driver(out).execute(["semantic_plan"])["semantic_plan"]
        bench = Bench(out, plan, staged_views(out), args.sink, temporary / "views")
        pairs = [tuple(pair.split(":", 1)) for pair in args.pair] if args.pair else DEFAULT_PAIRS
        print(f"{os.cpu_count()} cores; sink {args.sink}; median of {args.repeats}; load {_load()}")
        if args.gil:
            alone, during, seconds, stall = gil_check(bench, pairs[0][0])
            print(f"GIL: Python counting {alone / 1e6:.2f} M/s alone, {during / 1e6:.2f} M/s while the query "
                  f"of {pairs[0][0]} runs ({seconds:.2f} s) on another thread ({during / alone:.0%} of alone; "
                  f"longest stall {stall * 1000:.1f} ms)")
        summary = []
        for first, second in pairs:
            load = _load()
            results = measure_pair(bench, first, second, args.repeats)
            print(f"\nA = {first}, B = {second}   (load before {load}, after {_load()})")
            print("\n".join(_rows(results)))
            sequential = results["A then B"].wall
            ratios = (results["A || B"].wall / sequential, results["A || B, 1 partition"].wall / sequential)
            summary.append((first, second, results, ratios))
            print(f"  concurrent / sequential: {ratios[0]:.2f} (same session), {ratios[1]:.2f} (1 partition)")
        print("\n" + _summary_table(summary))
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _summary_table(summary: list[tuple[str, str, dict[str, Timing], tuple[float, float]]]) -> str:
    header = ("A", "B", "A", "B", "A then B", "A || B", "A then B 1p", "A || B 1p", "|| / seq", "|| 1p / seq")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for first, second, results, (same, single) in summary:
        walls = [f"{results[case].wall:.2f}" for case in ("A alone", "B alone", "A then B", "A || B",
                                                            "A then B, 1 partition", "A || B, 1 partition")]
        lines.append(" | ".join([first, second, *walls, f"{same:.2f}", f"{single:.2f}"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
