"""Benchmark: does adaptive execution (calibration, the cost-aware schedule) make a build faster?

Copies a corpus (by default the interpreter's standard library, site-packages and __pycache__ left
out, as bench_incremental.py does) to a temporary folder and times, in one run, every build with
``staging="delta"`` (a stdlib-sized build stages in Delta anyway) and ``full=True`` past the cold ones:

1. calibration: a cold build with ``calibration="off"`` in folder A (the reference); then in folder B
   three ``calibration="apply"`` builds, each with the inline threshold it compiled with and the one it
   proposed (read back from ``cpg_calibration``); then ``--repeats`` pairs of one more ``apply`` build
   and one ``off`` build in the same state, alternately ordered (apply/off, off/apply, ...);
2. schedule vs plain order: in folder B, ``--repeats`` builds each with the compiled schedule
   (`driver.scheduling.ScheduledGraphExecutor`, what `build_driver` sets) and with Hamilton's plain
   depth-first order (`hamilton.driver.DefaultGraphExecutor`), alternately, with ``calibration="off"``
   so both compile the same policy; and whether the executed order of the computed views (their
   ``started`` offsets in the run record) differed between the two, and from the schedule.

Each row gives wall seconds (planning included, as a user waits for it) and the load average
(1, 5, 15 minutes) when the build finished; ratios are of means measured in the same run.

    .venv/bin/python tests/benchmarks/bench_adaptive.py [--corpus PATH] [--packages a,b,c] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path

from hamilton import driver as hamilton_driver

from driver.delta_store import DeltaTableStore
from driver.factory import build_driver
from driver.scheduling import ScheduledGraphExecutor
from relspec.calibration import COMPUTED, Calibration, CalibrationMode, read_calibrations
from relspec.catalog import CALIBRATION_TABLE, RUNS_TABLE, DatasetCatalog
from relspec.runs import RunRecord, read_records
from relspec.summary import BuildSummary

EXCLUDE = ("site-packages",)
SAVER_SUFFIXES = ("__staged", "__published")


def load() -> str:
    return "load " + " ".join(f"{value:4.2f}" for value in os.getloadavg())


def copy_corpus(source: Path, target: Path, packages: list[str]) -> Path:
    """``source`` copied to ``target`` (site-packages and __pycache__ left out); with ``packages`` only
    those top-level packages or modules (``name/`` or ``name.py``)."""
    ignore = shutil.ignore_patterns(*EXCLUDE, "__pycache__")
    if not packages:
        return Path(shutil.copytree(source, target, symlinks=True, ignore=ignore))
    target.mkdir(parents=True)
    for name in packages:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, symlinks=True, ignore=ignore)
        elif (source / f"{name}.py").is_file():
            shutil.copy(source / f"{name}.py", target / f"{name}.py")
        else:
            raise SystemExit(f"no package or module {name} in {source}")
    return target


class Build:
    """One timed build of ``root`` into ``out`` and what its output records say about it."""

    def __init__(self, root: Path, out: Path, jobs: int, *, calibration: CalibrationMode, full: bool,
                 scheduled: bool = True) -> None:
        started = time.perf_counter()
        dr = build_driver(root, out, jobs=jobs, exclude=EXCLUDE, full=full, staging="delta",
                          calibration=calibration)
        executor = dr.graph_executor
        self.schedule = (tuple(_view_of(saver) for saver in executor.savers)
                         if isinstance(executor, ScheduledGraphExecutor) else ())
        if not scheduled:
            dr.graph_executor = hamilton_driver.DefaultGraphExecutor(executor.adapter)
        self.summary: BuildSummary = dr.execute(["build_summary"])["build_summary"]
        self.seconds = time.perf_counter() - started
        self.load = load()
        store = DeltaTableStore(DatasetCatalog(str(out)))
        self.record: RunRecord = read_records(store.read(RUNS_TABLE))[-1]
        calibrations = read_calibrations(store.read(CALIBRATION_TABLE))
        self.calibration: Calibration | None = next(
            (record for record in calibrations if record.run_id == self.record.run_id), None)

    @property
    def executed(self) -> tuple[str, ...]:
        """The computed views, in the order they started."""
        computed = [outcome for outcome in self.record.views if outcome.outcome in COMPUTED]
        return tuple(outcome.view for outcome in sorted(computed, key=lambda outcome: outcome.started))

    def thresholds(self) -> str:
        if self.calibration is None:
            return "inline_max_rows: no calibration record"
        before, proposed = self.calibration.before.inline_max_rows, self.calibration.proposed.inline_max_rows
        fit = self.calibration.fit
        fitted = (f"fit {fit.fixed_seconds:.3f} s + {fit.seconds_per_row * 1e6:.2f} s/M rows over {fit.points}"
                  if fit else "no fit")
        return f"inline_max_rows compiled {before:>9,} proposed {proposed:>9,}  ({fitted})"


def _view_of(saver: str) -> str:
    for suffix in SAVER_SUFFIXES:
        if saver.endswith(suffix):
            return saver[:-len(suffix)]
    return saver


def row(label: str, build: Build, extra: str = "") -> None:
    outcomes = " ".join(f"{name} {count}" for name, count in sorted(build.summary.view_outcomes.items()))
    print(f"{label:34s} {build.seconds:8.2f} s   {build.load}   {outcomes}{'   ' + extra if extra else ''}",
          flush=True)


def ratio_line(label: str, numerator: list[Build], denominator: list[Build]) -> None:
    top = [build.seconds for build in numerator]
    bottom = [build.seconds for build in denominator]
    spread = (f"   spread within each: {max(top) - min(top):.2f} s / {max(bottom) - min(bottom):.2f} s"
              if len(top) > 1 and len(bottom) > 1 else "")
    print(f"{label:34s} {statistics.mean(top) / statistics.mean(bottom):8.3f}     means {statistics.mean(top):.2f} s / "
          f"{statistics.mean(bottom):.2f} s{spread}", flush=True)


def order_differences(first: tuple[str, ...], second: tuple[str, ...]) -> str:
    if first == second:
        return "same order"
    if sorted(first) != sorted(second):
        return f"different views computed ({len(first)} vs {len(second)})"
    moved = sum(1 for a, b in zip(first, second, strict=True) if a != b)
    return f"differs: {moved} of {len(first)} positions"


def calibration_part(root: Path, work: Path, jobs: int, repeats: int) -> Path:
    print("\n1. calibration (apply vs off)", flush=True)
    cold = Build(root, work / "A", jobs, calibration="off", full=False)
    summary = cold.summary
    print(f"files {summary.files:,}  lines {summary.lines:,}  nodes {summary.nodes:,}  edges {summary.edges:,}")
    row("A: cold build, calibration off", cold)
    out = work / "B"
    for attempt in range(3):
        build = Build(root, out, jobs, calibration="apply", full=True)
        row(f"B: apply #{attempt + 1}{' (cold)' if attempt == 0 else ''}", build, build.thresholds())
    applied: list[Build] = []
    plain: list[Build] = []
    for attempt in range(repeats):
        for mode in (("apply", "off") if attempt % 2 == 0 else ("off", "apply")):
            build = Build(root, out, jobs, calibration=mode, full=True)  # type: ignore[arg-type]
            (applied if mode == "apply" else plain).append(build)
            row(f"B: full, calibration {mode}", build, build.thresholds() if mode == "apply" else "")
    ratio_line("ratio apply / off", applied, plain)
    return out


def schedule_part(root: Path, out: Path, jobs: int, repeats: int) -> None:
    print("\n2. schedule vs Hamilton's plain order (calibration off)", flush=True)
    scheduled: list[Build] = []
    plain: list[Build] = []
    for attempt in range(repeats):
        for obey in ((True, False) if attempt % 2 == 0 else (False, True)):
            build = Build(root, out, jobs, calibration="off", full=True, scheduled=obey)
            (scheduled if obey else plain).append(build)
            executed = build.executed
            against = order_differences(build.schedule, executed) if build.schedule else "no schedule compiled"
            row(f"B: full, {'schedule' if obey else 'plain order'}", build,
                f"{len(executed)} views computed; executed vs schedule: {against}")
    ratio_line("ratio schedule / plain", scheduled, plain)
    for first, second in zip(scheduled, plain, strict=True):
        print(f"{'executed order, schedule vs plain':34s} {order_differences(first.executed, second.executed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="folder to build (default: the standard library)")
    parser.add_argument("--packages", default="", help="only these top-level packages or modules, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="builds of each side of a comparison")
    parser.add_argument("--jobs", type=int, default=0, help="extraction processes (0: one per core)")
    args = parser.parse_args()
    source = args.corpus.resolve() if args.corpus else Path(sysconfig.get_paths()["stdlib"])
    packages = [name.strip() for name in args.packages.split(",") if name.strip()]
    work = Path(tempfile.mkdtemp(prefix="cpgflow-bench-adaptive-"))
    try:
        root = copy_corpus(source, work / "corpus", packages)
        print(f"source  copy of {source}{' (' + ', '.join(packages) + ')' if packages else ''} at {root}")
        print(f"every build: staging=delta (a stdlib-sized build stages in Delta anyway), "
              f"jobs={args.jobs or 'all cores'}, {os.cpu_count()} cores; {load()} at the start")
        out = calibration_part(root, work, args.jobs, args.repeats)
        schedule_part(root, out, args.jobs, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
