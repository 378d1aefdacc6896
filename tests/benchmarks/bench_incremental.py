"""Benchmark: what a rebuild of the standard library costs after a small edit, as a share of a cold build.

Copies the interpreter's standard library (site-packages and __pycache__ left out, as `make demo`
leaves site-packages out) to a temporary folder and times, in one run and one output folder:

1. the cold build (the floor every other line is a share of);
2. a rebuild with nothing changed;
3. a rebuild after appending one function to a leaf module — one that no file imports, found from
   the built graph's IMPORTS edges (``--leaf`` names one; it is checked);
4. the same again, a second function: an editor's loop, where what the first edit's build staged for
   its readers' update by file (`relspec/relative_staging.py`) now pays;
5. a rebuild after a one-line edit near the top of a widely imported module (every byte offset of
   the file after the line moves) — by default the module the most files import (``--hub``).

Each line gives wall seconds, the share of the cold build, and the summary's extracted / reused /
removed file counts, then the five slowest pipeline nodes. ``--verify`` also builds the final tree
fresh and compares every table's content fingerprint with the rebuilt output (one more cold build).
``--diff`` also says, for each edit, how many rows of each staged view and output really changed
(distinct rows removed and added, by a 64-bit hash of each row) against how many the build rewrote:
what an incremental evaluation would have to touch.

    .venv/bin/python tests/benchmarks/bench_incremental.py [--jobs N] [--leaf PATH] [--hub PATH] [--verify] [--diff]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_build import NodeTimer
from datafusion import SessionContext
from deltalake import DeltaTable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests folder: the fixtures' helpers
from incremental_fixture import line_after_docstring

from driver.api import content_fingerprint, open_session
from driver.factory import build_driver
from relspec.catalog import LOG_TABLES
from relspec.summary import BuildSummary
from semantics.numbering import row_hashes

EXCLUDE = ("site-packages",)


def timed_build(root: Path, out: Path, jobs: int) -> tuple[BuildSummary, float, NodeTimer]:
    timer = NodeTimer()
    started = time.perf_counter()
    summary = build_driver(root, out, jobs=jobs, exclude=EXCLUDE, adapters=[timer]).execute(
        ["build_summary"])["build_summary"]
    return summary, time.perf_counter() - started, timer


def importer_counts(out: Path) -> dict[str, int]:
    """{module path: how many other files hold an import resolved into it} (IMPORTS edges whose target
    node lies in that file), for every module of the build, zero included."""
    session, _ = open_session(out)
    rows = session.sql("""
        SELECT m.path, count(DISTINCT s.path) AS importers
        FROM cpg_nodes m
        LEFT JOIN cpg_nodes d ON d.path = m.path
        LEFT JOIN cpg_edges e ON e.kind = 'IMPORTS' AND e.dst = d.node_id
        LEFT JOIN cpg_nodes s ON s.node_id = e.src AND s.path <> m.path
        WHERE m.kind = 'MODULE'
        GROUP BY m.path""").to_pylist()
    return {row["path"]: row["importers"] for row in rows}


def pick_leaf(importers: dict[str, int], wanted: str | None) -> str:
    if wanted:
        if importers.get(wanted, 0):
            raise SystemExit(f"{wanted} is imported by {importers[wanted]} files: not a leaf")
        return wanted
    if importers.get("colorsys.py", 1) == 0:
        return "colorsys.py"
    # a plain module outside the tests that nothing imports; the first in path order
    return min(path for path, count in importers.items() if count == 0 and "/" not in path
               and not path.startswith("_") and not path.endswith("__main__.py"))


def append_function(path: Path) -> None:
    path.write_bytes(path.read_bytes().rstrip(b"\n") + b"\n\n\ndef _cpgflow_bench_added(value):\n"
                     b"    return value + 1\n")


def insert_line_near_top(path: Path) -> int:
    """Insert one module-level assignment right after the module's docstring (or at the first line):
    everything after it moves by one line. Returns the 1-based line inserted."""
    source = path.read_bytes()
    at = line_after_docstring(source)
    lines = source.splitlines(keepends=True)
    lines.insert(at, b"_cpgflow_bench_edit = 1\n")
    path.write_bytes(b"".join(lines))
    return at + 1


def fingerprints(out: Path) -> dict[str, str]:
    session, tables = open_session(out)
    return {table: content_fingerprint(session, table) for table in tables if table not in LOG_TABLES}


def distinct_row_hashes(location: Path) -> np.ndarray:
    """The distinct 64-bit hashes of a Delta table's rows (`semantics.numbering.row_hashes`)."""
    session = SessionContext()
    session.register_table("t", DeltaTable(str(location)))
    return np.unique(row_hashes(session.table("t").to_arrow_table()))


def content_hashes(out: Path) -> dict[str, np.ndarray]:
    """Row hashes of every staged view and published output of ``out``."""
    tables = [path for path in sorted((out / "_staging").iterdir()) if (path / "_delta_log").is_dir()]
    tables += [out / name for name in ("cpg_nodes", "cpg_edges", "cpg_points_to", "cpg_props") if (out / name).is_dir()]
    return {path.name: distinct_row_hashes(path) for path in tables}


def report_diff(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> None:
    changed = []
    for name in sorted(set(before) & set(after)):
        removed = len(np.setdiff1d(before[name], after[name], assume_unique=True))
        added = len(np.setdiff1d(after[name], before[name], assume_unique=True))
        if removed or added:
            changed.append(f"{name} -{removed:,}/+{added:,} of {len(after[name]):,}")
    print(f"{'':34s} rows really changed: {len(changed)} of {len(set(before) & set(after))} tables: "
          + ("; ".join(changed) or "none"), flush=True)


def report(label: str, summary: BuildSummary, seconds: float, cold: float, timer: NodeTimer) -> None:
    print(f"{label:34s} {seconds:8.2f} s  {seconds / cold:6.1%} of cold   extracted {summary.files_extracted:,}  "
          f"reused {summary.files_reused:,}  removed {summary.files_removed:,}", flush=True)
    slowest = sorted(timer.seconds.items(), key=lambda item: -item[1])[:5]
    print(f"{'':34s} slowest nodes: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in slowest), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=0, help="extraction processes (0: one per core)")
    parser.add_argument("--leaf", help="repo-relative path of the module to append a function to")
    parser.add_argument("--hub", help="repo-relative path of the widely imported module to edit")
    parser.add_argument("--verify", action="store_true", help="build the final tree fresh and compare")
    parser.add_argument("--diff", action="store_true", help="count the rows each edit really changed")
    args = parser.parse_args()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    work = Path(tempfile.mkdtemp(prefix="cpgflow-bench-incr-"))
    try:
        root = Path(shutil.copytree(stdlib, work / "stdlib", symlinks=True,
                                    ignore=shutil.ignore_patterns(*EXCLUDE, "__pycache__")))
        out = work / "out"
        print(f"source          copy of {stdlib} at {root} (jobs={args.jobs or 'all cores'})")
        summary, cold, timer = timed_build(root, out, args.jobs)
        print(f"files           {summary.files:,}  lines {summary.lines:,}  nodes {summary.nodes:,}  "
              f"edges {summary.edges:,}")
        report("cold build", summary, cold, cold, timer)

        summary, seconds, timer = timed_build(root, out, args.jobs)
        report("unchanged rebuild", summary, seconds, cold, timer)

        importers = importer_counts(out)
        leaf = pick_leaf(importers, args.leaf)
        hub = args.hub or max(sorted(importers), key=lambda path: importers[path])
        print(f"leaf module     {leaf} (imported by {importers[leaf]} files)")
        print(f"hub module      {hub} (imported by {importers[hub]:,} files)")

        before = content_hashes(out) if args.diff else {}
        append_function(root / leaf)
        summary, seconds, timer = timed_build(root, out, args.jobs)
        report(f"one function appended to {leaf}", summary, seconds, cold, timer)
        if args.diff:
            after = content_hashes(out)
            report_diff(before, after)
            before = after

        append_function(root / leaf)
        summary, seconds, timer = timed_build(root, out, args.jobs)
        report(f"a second function appended to {leaf}", summary, seconds, cold, timer)
        if args.diff:
            after = content_hashes(out)
            report_diff(before, after)
            before = after

        line = insert_line_near_top(root / hub)
        summary, seconds, timer = timed_build(root, out, args.jobs)
        report(f"one line inserted in {hub}:{line}", summary, seconds, cold, timer)
        if args.diff:
            report_diff(before, content_hashes(out))

        if args.verify:
            fresh = work / "fresh"
            _, seconds, _ = timed_build(root, fresh, args.jobs)
            ours, theirs = fingerprints(out), fingerprints(fresh)
            differing = sorted(table for table in ours.keys() | theirs.keys() if ours.get(table) != theirs.get(table))
            print(f"fresh build of the edited tree {seconds:.2f} s; tables differing from the rebuild: "
                  f"{differing or 'none'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
