"""Benchmark: build the CPG of one large generated module against plain `ast.parse` of it.

Prints the file's size, the build's wall time and peak RSS (extraction runs in this process:
``jobs=1``), the wall time and peak RSS of `ast.parse` of the same file in a fresh process, their
ratios, and the wall time per pipeline node. Per-file work should be linear in the file's size and
its peak a small multiple of the parse's: compare two sizes.

    .venv/bin/python tests/benchmarks/bench_large_file.py [--mb 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_build import NodeTimer

from driver.factory import build_driver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from large_file import CALLS_EDGES_PER_UNIT, FUNCTIONS_PER_UNIT, large_module, units_for_bytes

# VmHWM, not ru_maxrss: a spawned child's ru_maxrss keeps its parent's pre-exec high-water mark.
FLOOR_SCRIPT = """
import ast, sys, time
def kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
source = open(sys.argv[1], "rb").read()
before = kib("VmRSS:")
start = time.perf_counter()
tree = ast.parse(source)
print(time.perf_counter() - start, kib("VmHWM:") - before)
"""


def parse_floor(path: Path) -> tuple[float, float]:
    """Seconds and MiB of peak RSS growth of `ast.parse` of ``path`` in a fresh process (Linux)."""
    result = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, str(path)], capture_output=True, text=True,
                            check=True)
    seconds, kib = result.stdout.split()
    return float(seconds), float(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="size of the generated module in MiB")
    parser.add_argument("--keep", help="build into this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cpgflow-bench-large-"))
    units = units_for_bytes(int(args.mb * 2**20))
    source = work / "src" / "big.py"
    source.parent.mkdir()
    source.write_text(large_module(units))
    out = Path(args.keep) if args.keep else work / "out"
    if out.exists():
        shutil.rmtree(out)
    timer = NodeTimer()
    started = time.perf_counter()
    dr = build_driver(source.parent, out, jobs=1, max_file_bytes=10**10, adapters=[timer])
    summary = dr.execute(["build_summary"])["build_summary"]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor_seconds, floor_mib = parse_floor(source)
    print(f"file            {source.stat().st_size / 2**20:7.1f} MiB, {summary.lines:,} lines, {units:,} units")
    print(f"graph           {summary.nodes_by_kind.get('FUNCTION', 0):,} functions "
          f"(expected {units * FUNCTIONS_PER_UNIT:,}), {summary.edges_by_kind.get('CALLS', 0):,} CALLS edges "
          f"(expected {units * CALLS_EDGES_PER_UNIT:,})")
    print(f"build wall      {seconds:7.2f} s   ast.parse {floor_seconds:6.2f} s   ratio {seconds / floor_seconds:6.1f}")
    print(f"peak RSS        {peak:7.0f} MiB ast.parse {floor_mib:6.0f} MiB ratio {peak / floor_mib:6.1f}")
    print("per node (s):   " + ", ".join(f"{name} {node_seconds:.2f}" for name, node_seconds in
                                          sorted(timer.seconds.items(), key=lambda item: -item[1])
                                          if node_seconds >= 0.1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
