"""Benchmark: how the single-node build scales with the size of the code base (docs/scaling.md).

Builds synthetic corpora of K copies of a code base (by default the interpreter's standard library,
site-packages, __pycache__ and non-Python files left out), each copy under a top-level folder of its
own (``copy0/``, ``copy1/``...: every copy is a package of the same code base, so K copies hold K times
the files, rows and call sites, and resolve the same way), for each K of ``--scales``. For each build
it prints the wall time, the peak memory of the build's process tree (the build and its extraction
workers, sampled every 0.1 s from /proc) and, for the slowest nodes, their seconds and the peak of the
tree while they ran; and the ratios to the smallest scale measured in the same run.

    .venv/bin/python tests/benchmarks/bench_scaling.py --scales 1,4 [--root PATH] [--jobs N] [--max-rss-gib G]

``--max-rss-gib`` ends the run, saying which node was running, once the build's processes hold more:
how to find where one machine stops without letting the kernel's OOM killer choose a victim.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hamilton.lifecycle import NodeExecutionHook

from driver.factory import build_driver

SAMPLE_SECONDS = 0.1
SKIPPED_FOLDERS = ("site-packages", "__pycache__")


def process_tree(root_pid: int) -> set[int]:
    return _tree(root_pid)[0]


def process_tree_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and every process descended from it."""
    tree, resident = _tree(root_pid)
    return sum(resident.get(pid, 0) for pid in tree)


def _tree(root_pid: int) -> tuple[set[int], dict[int, int]]:
    """``root_pid`` and its descendants, and every process's resident bytes."""
    parents: dict[int, int] = {}
    resident: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields["PPid"])
        resident[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    tree = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree, resident


class MemoryByNode(NodeExecutionHook):
    """Each node's wall seconds and the process tree's peak memory while it ran (nodes that run at
    the same time share their samples)."""

    def __init__(self, scratch: str, limit: int | None = None) -> None:
        self.scratch, self.limit = scratch, limit
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        self.overall = 0
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(SAMPLE_SECONDS):
            rss = process_tree_rss(pid)
            with self._lock:
                self.overall = max(self.overall, rss)
                for name in self._running:
                    self.peak[name] = max(self.peak.get(name, 0), rss)
                if self.limit is not None and rss > self.limit:
                    self._give_up(rss)

    def _give_up(self, rss: int) -> None:
        """Past ``--max-rss-gib``: say where the build was, then end it (and its workers) at once."""
        running = ", ".join(self._running) or "no node"
        print(f"stopped: the build's processes held {mib(rss)} (over the limit) after "
              f"{time.perf_counter() - self.started:.0f} s, while {running} ran; finished before: "
              + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in sorted(self.seconds.items(),
                                                                                 key=lambda item: -item[1])[:8]),
              flush=True)
        for pid in process_tree(os.getpid()) - {os.getpid()}:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.scratch, ignore_errors=True)
        os._exit(3)

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()

    def run_before_node_execution(self, *, node_name: str, **kwargs: Any) -> None:
        with self._lock:
            self._running[node_name] = time.perf_counter()

    def run_after_node_execution(self, *, node_name: str, **kwargs: Any) -> None:
        with self._lock:
            self.seconds[node_name] = time.perf_counter() - self._running.pop(node_name)


def make_corpus(source: Path, copies: int, into: Path) -> Path:
    """``copies`` copies of the Python files under ``source``, each under ``into/copyK``."""
    for index in range(copies):
        target = into / f"copy{index}"
        for path in source.rglob("*.py"):
            relative = path.relative_to(source)
            if any(part in SKIPPED_FOLDERS for part in relative.parts) or not path.is_file():
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)
    return into


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--scales", default="1,4", help="copies of the root to build, comma-separated")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--top", type=int, default=10, help="nodes to show per build")
    parser.add_argument("--max-rss-gib", type=float, default=None,
                        help="end the run when the build's processes hold more than this (where one machine stops)")
    args = parser.parse_args()
    scales = [int(scale) for scale in args.scales.split(",")]
    rows = []
    for scale in scales:
        with tempfile.TemporaryDirectory(prefix="cpgflow-scaling-") as scratch:
            corpus = make_corpus(Path(args.root), scale, Path(scratch) / "corpus")
            monitor = MemoryByNode(scratch, int(args.max_rss_gib * 2**30) if args.max_rss_gib else None)
            started = time.perf_counter()
            dr = build_driver(corpus, Path(scratch) / "out", jobs=args.jobs, adapters=[monitor])
            summary = dr.execute(["build_summary"])["build_summary"]
            seconds = time.perf_counter() - started
            monitor.stop()
        rows.append((scale, summary, seconds, monitor.overall))
        print(f"\n{scale}x: {summary.files:,} files, {summary.lines:,} lines, {summary.nodes:,} nodes, "
              f"{summary.edges:,} edges: {seconds:.1f} s, peak {mib(monitor.overall)} (build and workers)")
        slowest = sorted(monitor.seconds.items(), key=lambda item: -item[1])[:args.top]
        for name, node_seconds in slowest:
            print(f"    {name:32s} {node_seconds:8.2f} s   peak while it ran {mib(monitor.peak.get(name, 0))}")
    base_scale, base, base_seconds, base_peak = rows[0]
    print(f"\nagainst {base_scale}x, measured in this run:")
    for scale, summary, seconds, peak in rows:
        print(f"  {scale:3d}x  lines x{summary.lines / base.lines:5.2f}  edges x{summary.edges / base.edges:5.2f}  "
              f"time x{seconds / base_seconds:5.2f}  peak x{peak / base_peak:5.2f}  "
              f"({seconds / summary.lines * 1e6:.0f} us a line, {peak / summary.lines:,.0f} bytes a line)")


if __name__ == "__main__":
    main()
