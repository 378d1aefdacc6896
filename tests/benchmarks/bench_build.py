"""Benchmark: build the CPG of the standard library (as `make demo` does) against plain `ast.parse`.

Prints, from one run: files, lines, the build's wall time, the wall time of plain `ast.parse` over
the same files in one fresh process (no pyarrow or datafusion imported, garbage collector as
default: the honest floor), their ratio, wall time per pipeline node, and peak memory.

    .venv/bin/python tests/benchmarks/bench_build.py [--root PATH] [--jobs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from hamilton.lifecycle import NodeExecutionHook

from driver.allocators import without_huge_pages
from driver.api import open_session
from driver.factory import build_driver
from relspec.catalog import RUNS_TABLE
from relspec.runs import read_records
from semantics.discovery import DiscoveryOptions, discover

FLOOR_SCRIPT = """
import ast, sys, time
paths = sys.stdin.read().split("\\0")
sources = [open(p, "rb").read() for p in paths if p]
start = time.perf_counter()
for source in sources:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
print(time.perf_counter() - start)
"""


class NodeTimer(NodeExecutionHook):
    """Each node's seconds, the page faults the driver took in it (each a fresh page an allocator
    maps: the kernel zeroes it), and the driver's peak RSS each node raised it to (ru_maxrss only
    grows: a node that raised it is where the high-water mark was set)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.faults: dict[str, int] = {}
        self.raised_peak: dict[str, float] = {}
        self._started: dict[str, tuple[float, int]] = {}

    def run_before_node_execution(self, *, node_name: str, **kwargs: Any) -> None:
        self._started[node_name] = (time.perf_counter(), page_faults())
        self._peak_before = peak_rss_mib()

    def run_after_node_execution(self, *, node_name: str, **kwargs: Any) -> None:
        started, faults = self._started.pop(node_name)
        self.seconds[node_name] = time.perf_counter() - started
        self.faults[node_name] = page_faults() - faults
        if (peak := peak_rss_mib()) > self._peak_before:
            self.raised_peak[node_name] = peak


def page_faults() -> int:
    """Minor page faults of this (the driver) process so far, all its threads."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def parse_floor(root: Path, paths: list[str]) -> float:
    listing = "\0".join(str(root / path) for path in paths)
    result = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT], input=listing, capture_output=True,
                            text=True, check=True)
    return float(result.stdout)


def peak_rss_mib() -> float:
    """Peak RSS of this (the driver) process. Workers are spawned (fork + exec), and a child's
    ru_maxrss keeps the parent's pre-exec high-water mark, so theirs is not reported."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


COVERAGE_SQL = {
    "call sites with >= 1 CALLS edge": """
        SELECT count(DISTINCT e.src) AS hit, (SELECT count(*) FROM cpg_nodes WHERE kind = 'CALL') AS total
        FROM cpg_edges e WHERE e.kind = 'CALLS'""",
    "call sites resolved inside the code base": """
        SELECT count(DISTINCT e.src) AS hit, (SELECT count(*) FROM cpg_nodes WHERE kind = 'CALL') AS total
        FROM cpg_edges e JOIN cpg_nodes d ON d.node_id = e.dst
        WHERE e.kind = 'CALLS' AND d.kind <> 'EXTERNAL_SYMBOL'""",
    "name uses with a REFERENCES edge": """
        SELECT count(DISTINCT e.src) AS hit,
            (SELECT count(*) FROM ex_references WHERE ref_kind = 'name') AS total
        FROM cpg_edges e WHERE e.kind = 'REFERENCES'""",
    "imports with an IMPORTS edge": """
        SELECT count(DISTINCT e.src) AS hit, (SELECT count(*) FROM cpg_nodes WHERE kind = 'IMPORT') AS total
        FROM cpg_edges e WHERE e.kind = 'IMPORTS'""",
}


def print_fixpoints(out: Path, build_seconds: float) -> None:
    """Each fixpoint view of the last run: its share of the build, its rounds, what its caps dropped."""
    session, _ = open_session(out)
    record = read_records(session.table(RUNS_TABLE).to_arrow_table())[-1]
    for outcome in record.views:
        if outcome.rounds:
            print(f"fixpoint        {outcome.view}: {outcome.seconds:.2f} s = {outcome.seconds / build_seconds:.0%} "
                  f"of the build, {len(outcome.rounds) - 1} rounds after the seeds, {outcome.capped:,} values "
                  "dropped by caps")


def print_resolution_coverage(out: Path) -> None:
    session, _ = open_session(out)
    for label, sql in COVERAGE_SQL.items():
        row = session.sql(sql).to_arrow_table().to_pylist()[0]
        share = row["hit"] / row["total"] if row["total"] else 0.0
        print(f"{label:42s} {share:6.1%}  ({row['hit']:,} of {row['total']:,})")
    top = session.sql("""
        SELECT kind, resolver, count(*) AS n FROM cpg_edges WHERE resolver <> 'syntax'
        GROUP BY kind, resolver ORDER BY n DESC LIMIT 12""").to_arrow_table().to_pylist()
    print("top resolvers:  " + ", ".join(f"{r['resolver']} {r['n']:,}" for r in top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--keep", help="build into this folder (kept) instead of a temporary one")
    parser.add_argument("--rebuild", action="store_true", help="also time a second, unchanged build")
    args = parser.parse_args()
    root = Path(args.root)
    options = DiscoveryOptions(exclude=("site-packages",))
    files = [found.path for found in discover(root, options).files]
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cpgflow-bench-"))
    if out.exists():
        shutil.rmtree(out)
    timer = NodeTimer()
    without_huge_pages()  # as `cpgflow build` (make demo) runs
    started = time.perf_counter()
    dr = build_driver(root, out, jobs=args.jobs, exclude=["site-packages"], adapters=[timer])
    summary = dr.execute(["build_summary"])["build_summary"]
    build_seconds = time.perf_counter() - started
    floor = parse_floor(root, files)
    peak = peak_rss_mib()
    print(f"root            {root}")
    print(f"files           {summary.files:,}  lines {summary.lines:,}  nodes {summary.nodes:,}  "
          f"edges {summary.edges:,}")
    print(f"build wall      {build_seconds:7.2f} s  (jobs={args.jobs or 'all cores'})")
    print(f"ast.parse wall  {floor:7.2f} s  (one process, same files)")
    print(f"ratio           {build_seconds / floor:7.2f}  (target <= 6)")
    print(f"peak RSS        {peak:7.0f} MiB in the driver process")
    if timer.seconds:
        print("per node (s):   " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in
                                              sorted(timer.seconds.items(), key=lambda item: -item[1])
                                              if seconds >= 0.05))
        faults = sorted(timer.faults.items(), key=lambda item: -item[1])
        print(f"page faults     {sum(timer.faults.values()):,} in the driver's nodes: " + ", ".join(
            f"{name} {count / 1000:,.0f}k" for name, count in faults[:8]))
    highest = sorted(timer.raised_peak.items(), key=lambda item: -item[1])[:6]
    print("peak raised by: " + ", ".join(f"{name} to {mib:,.0f} MiB" for name, mib in highest))
    print_fixpoints(out, build_seconds)
    print_resolution_coverage(out)
    if args.rebuild:
        started = time.perf_counter()
        again = build_driver(root, out, jobs=args.jobs, exclude=["site-packages"]).execute(["build_summary"])
        rebuild_seconds = time.perf_counter() - started
        reused = again["build_summary"].files_reused
        print(f"unchanged rebuild {rebuild_seconds:5.2f} s  ({reused:,} files reused), "
              f"ratio {rebuild_seconds / floor:.2f}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
