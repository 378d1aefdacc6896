"""Benchmark: staged views held in memory against staging tables, by the size of the code base.

The policy holds staged views in memory for the run while the code base's largest extraction table
holds fewer than `relspec.policy.MEMORY_STAGING_MAX_ROWS` rows, and writes staging tables past it.
This prints, for code bases made of the running interpreter's standard library (its packages and
top-level modules, tests left out, then its tests, in a fixed order, until the source reaches each
size asked for): the cold build and an edit's build (a function appended to the largest module) in
each mode, `--staging memory` and `--staging delta`, then a rebuild with nothing changed, each build
in a fresh process as a user runs it, with its peak RSS, the largest extraction table's rows, and
each mode's time as a ratio to the other's (the unchanged rebuild's as a share of the cold build).

    .venv/bin/python tests/benchmarks/bench_staging.py [--megabytes 4 11 19]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from bench_small import CPGFLOW, _compile_bytecode, timed

from driver.delta_store import DeltaTableStore
from relspec.catalog import EXTRACT_TABLES, DatasetCatalog
from relspec.policy import MEMORY_STAGING_MAX_ROWS

MODES = ("memory", "delta")


def _sources(stdlib: Path) -> list[Path]:
    """The standard library's modules, tests last, in a fixed order (site-packages and caches left out)."""
    found = [path for path in sorted(stdlib.rglob("*.py"))
             if "site-packages" not in path.parts and "__pycache__" not in path.parts]
    tests = [path for path in found if {"test", "tests", "idle_test"} & set(path.relative_to(stdlib).parts[:-1])]
    return [path for path in found if path not in set(tests)] + tests


def corpus(target: Path, megabytes: float) -> Path:
    """The standard library's modules, in `_sources` order, copied under ``target`` until ``megabytes``
    of source (the folders kept, so that imports resolve as they do in the standard library)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    size = 0
    for path in _sources(stdlib):
        if size >= megabytes * 1e6:
            break
        copy = target / path.relative_to(stdlib)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, copy)
        size += path.stat().st_size
    return target


def largest_table(out: Path) -> int:
    store = DeltaTableStore(DatasetCatalog(str(out)))
    return max((stats[0] for name in EXTRACT_TABLES if (stats := store.statistics(name)) is not None), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, nargs="+", default=[4.0, 11.0, 19.0],
                        help="sizes of the code bases to build, in MB of source")
    args = parser.parse_args()
    _compile_bytecode()
    print(f"staged views held in memory below {MEMORY_STAGING_MAX_ROWS:,} rows of the largest extraction table")
    work = Path(tempfile.mkdtemp(prefix="cpgflow-bench-staging-"))
    try:
        for megabytes in args.megabytes:
            built = corpus(work / f"src{megabytes:g}", megabytes)
            files = list(built.rglob("*.py"))
            lines = sum(len(path.read_bytes().splitlines()) for path in files)
            results: dict[str, tuple[tuple[float, float], ...]] = {}
            for mode in MODES:  # each on a copy of its own, which its edit changes
                root = shutil.copytree(built, work / f"src{megabytes:g}-{mode}")
                module = max(root.rglob("*.py"), key=lambda path: (path.stat().st_size, str(path)))
                out = work / f"out{megabytes:g}-{mode}"
                command = [*CPGFLOW, "build", str(root), "--out", str(out), "-q", "--staging", mode]
                cold = timed(command)
                with module.open("a") as source:
                    source.write(f"\n\ndef edited_{mode}(value):\n    return value\n")
                edit = timed(command)
                results[mode] = (cold, edit, timed(command))
                rows = largest_table(out)
            print(f"{len(files):5,d} files {lines:9,d} lines, largest table {rows:9,d} rows:", flush=True)
            for mode, ((cold, cold_rss), (edit, edit_rss), (unchanged, _)) in results.items():
                other = results[MODES[1 - MODES.index(mode)]]
                print(f"    {mode:6s}  cold {cold:6.2f} s ({cold / other[0][0]:4.2f}x, {cold_rss:5.0f} MiB)   "
                      f"edit {edit:6.2f} s ({edit / other[1][0]:4.2f}x, {edit_rss:5.0f} MiB)   "
                      f"unchanged {unchanged:5.2f} s ({unchanged / cold:6.1%} of cold)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
