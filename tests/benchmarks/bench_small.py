"""Benchmark: what small code bases pay, as ratios to the bare import of our libraries.

Builds three corpora made from the running interpreter's standard library (no network): one 5-line
file, a requests-sized package (18 files, ~5,600 lines) and a flask-sized one (24 files, ~9,000
lines). For each, in one run, `cpgflow build` and then `cpgflow callgraph`, each in a fresh process
as a user runs them, and prints their wall time as a ratio to the wall time of a bare
``python -c "import hamilton.driver, datafusion, deltalake"`` measured in the same run (the floor:
what any tool built on these libraries pays), and each command's peak RSS. Then an editor's loop on
each corpus: a function appended to one module and `cpgflow build` again into the same folder,
``--edits`` times; the first and the last of these rebuilds are printed against the floor and against
the corpus's cold build (an edit must cost no more than a build, and the hundredth no more than the
first). The stdlib's own ratio to its `ast.parse` floor is bench_build.py's job.

    .venv/bin/python tests/benchmarks/bench_small.py [--repeat N] [--edits N]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

BARE_IMPORT = [sys.executable, "-c", "import hamilton.driver, datafusion, deltalake"]
CPGFLOW = [str(Path(sys.executable).with_name("cpgflow"))]  # the console script a user runs
REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("driver", "dataflows", "semantics", "relspec")
ONE_FILE = "def f(x):\n    return x + 1\n\n\nprint(f(2))\n"
# (name, files, lines): the sizes of requests and flask
SIZES = (("requests-sized", 18, 5_600), ("flask-sized", 24, 9_000))


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``command`` run to completion in a process of its own."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode() if process.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def corpus(target: Path, files: int, lines: int) -> Path:
    """``files`` modules of about ``lines`` lines in all: the standard library's top-level modules
    whose sizes are nearest ``lines / files``, copied under ``target`` as one package."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    package = target / "pkg"
    package.mkdir(parents=True)
    per_file = lines // files
    sizes = {path: len(path.read_bytes().splitlines()) for path in sorted(stdlib.glob("*.py"))
             if not path.name.startswith("_")}
    for path in sorted(sizes, key=lambda path: (abs(sizes[path] - per_file), path.name))[:files]:
        shutil.copy(path, package / path.name)
    (package / "__init__.py").write_text("")
    return target


def editor_loop(root: Path, out: Path, edits: int) -> list[float]:
    """Wall seconds of ``edits`` rebuilds into ``out``, each after appending a function to the same
    module of ``root`` (its largest: the edit a user makes most often is to the module they work in)."""
    module = max(root.rglob("*.py"), key=lambda path: (path.stat().st_size, path.name))
    seconds = []
    for edit in range(edits):
        with module.open("a") as source:
            source.write(f"\n\ndef edited_{edit}(value):\n    return value + {edit}\n")
        seconds.append(timed([*CPGFLOW, "build", str(root), "--out", str(out), "-q"])[0])
    return seconds


def _compile_bytecode() -> None:
    """Compile cpgflow's modules as installing a package does: the floor's libraries come with their
    bytecode, while an editable checkout run with PYTHONDONTWRITEBYTECODE set (as on our machines)
    would compile ~60 modules from source in every command (~0.15 s)."""
    for package in PACKAGES:
        compileall.compile_dir(str(REPO / package), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the best is reported")
    parser.add_argument("--edits", type=int, default=10, help="rebuilds after a one-function edit, per corpus")
    args = parser.parse_args()
    _compile_bytecode()
    work = Path(tempfile.mkdtemp(prefix="cpgflow-bench-small-"))
    try:
        one = work / "one"
        one.mkdir()
        (one / "main.py").write_text(ONE_FILE)
        corpora = [("one-file", one)] + [(name, corpus(work / name, files, lines)) for name, files, lines in SIZES]
        floor = min(timed(BARE_IMPORT)[0] for _ in range(args.repeat))
        print(f"bare import of hamilton.driver, datafusion, deltalake: {floor:.2f} s (the floor)")
        for name, root in corpora:
            sources = [path for path in root.rglob("*.py")]
            lines = sum(len(path.read_bytes().splitlines()) for path in sources)
            builds, graphs = [], []
            for attempt in range(args.repeat):
                out = work / f"{name}-out{attempt}"
                builds.append(timed([*CPGFLOW, "build", str(root), "--out", str(out), "-q"]))
                graphs.append(timed([*CPGFLOW, "callgraph", str(out)]))
            build, graph = min(builds), min(graphs)
            print(f"{name:15s} {len(sources):3d} files {lines:6,d} lines   build {build[0]:5.2f} s "
                  f"({build[0] / floor:4.2f}x, {build[1]:5.0f} MiB)   callgraph {graph[0]:5.2f} s "
                  f"({graph[1]:4.0f} MiB)   together {(build[0] + graph[0]) / floor:4.2f}x the floor", flush=True)
            if args.edits:
                edits = editor_loop(root, work / f"{name}-out0", args.edits)
                print(f"{'':15s} edit rebuilds: first {edits[0]:5.2f} s ({edits[0] / floor:4.2f}x the floor, "
                      f"{edits[0] / build[0]:4.2f}x the build), last of {len(edits)} {edits[-1]:5.2f} s "
                      f"({edits[-1] / floor:4.2f}x, {edits[-1] / build[0]:4.2f}x), median "
                      f"{sorted(edits)[len(edits) // 2]:5.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
