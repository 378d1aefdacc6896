"""Extraction workers against a hostile code base and a hostile world: analysed code is never
imported, a killed worker costs only its files (and is reported as our failure), a killed build
leaves no worker behind, and no more workers start than the work needs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CPGFLOW, assert_one_line_error, cli_env, query, run_cli, write_tree

from relspec.policy import WORKER_MIN_BYTES, available_cores, worker_count
from semantics.extract.files import FileTask
from semantics.extract.parallel import worker_import_path

# Modules every extraction worker imports (directly or through multiprocessing-free start-up,
# pyarrow and msgspec): a planted file of the same name must never run.
SHADOWING_NAMES = ("selectors", "threading", "signal", "pickle", "subprocess", "struct", "ctypes", "gc", "msgspec",
                   "pyarrow", "semantics", "encodings")
FILLER_FILES = 24  # with FILLER_BYTES each: enough source for two workers (two WORKER_MIN_BYTES)
FILLER_BYTES = 3 * WORKER_MIN_BYTES // FILLER_FILES


def filler_module(index: int) -> str:
    """A valid module of about FILLER_BYTES: one function per few lines, each calling the previous."""
    lines = [f'"""Filler module {index}."""', ""]
    function = 0
    while sum(len(line) + 1 for line in lines) < FILLER_BYTES:
        lines += [f"def f{function}(value):", f"    return f{function - 1}(value) + {function}" if function
                  else "    return value", ""]
        function += 1
    return "\n".join(lines) + "\n"


def planted_tree(root: Path, marker_dir: Path) -> Path:
    """A code base whose files named like modules the workers import would each leave a marker."""
    files = {f"{name}.py": f"open({str(marker_dir / name)!r}, 'w').close()\n" for name in SHADOWING_NAMES}
    files["semantics/__init__.py"] = files.pop("semantics.py")
    files["encodings/__init__.py"] = files.pop("encodings.py")
    files.update({f"pkg/filler_{index}.py": filler_module(index) for index in range(FILLER_FILES)})
    return write_tree(root, files)


def tasks_of(root: Path) -> list[FileTask]:
    return [FileTask(path.relative_to(root).as_posix(), path.read_bytes(), "") for path in sorted(root.rglob("*.py"))]


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    markers = tmp_path / "markers"
    markers.mkdir()
    return planted_tree(tmp_path / "planted", markers), markers


def test_the_planted_tree_needs_two_workers(planted):
    root, _ = planted
    assert worker_count(tasks_of(root), 2) == min(2, available_cores())


@pytest.mark.parametrize("cwd_is_the_code_base", [True, False], ids=["cwd is the code base", "cwd is another"])
def test_build_imports_nothing_of_the_analysed_code(cwd_is_the_code_base, planted, tmp_path):
    root, markers = planted
    if cwd_is_the_code_base:
        done = run_cli("build", ".", "--out", tmp_path / "out", "--jobs", "2", "-q", cwd=root)
    else:  # the current directory is a planted tree too, but not the one analysed
        cwd = planted_tree(tmp_path / "elsewhere", markers)
        done = run_cli("build", root, "--out", tmp_path / "out", "--jobs", "2", "-q", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in markers.iterdir()) == []
    modules = query(tmp_path / "out", "SELECT count(*) AS n FROM cpg_nodes WHERE kind = 'MODULE'")[0]["n"]
    assert modules == len(SHADOWING_NAMES) + FILLER_FILES
    assert query(tmp_path / "out", "SELECT count(*) AS n FROM cpg_diagnostics")[0]["n"] == 0


def test_worker_import_path_leaves_out_the_tree_and_the_current_directory(tmp_path, monkeypatch):
    tree = write_tree(tmp_path / "tree", {"sub/x.py": ""})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", ".", str(tmp_path), str(tree), str(tree / "sub"), *sys.path])
    kept = worker_import_path(tree)
    assert not {"", ".", str(tmp_path), str(tree), str(tree / "sub")} & set(kept)
    assert sysconfig.get_paths()["stdlib"] in kept


def interpreter_entries() -> list[str]:
    """What a fresh isolated interpreter puts on its import path: the standard library, lib-dynload,
    site-packages (a worker cannot start without them)."""
    listing = subprocess.run([sys.executable, "-I", "-c", "import sys; print('\\n'.join(sys.path))"],
                             capture_output=True, text=True, check=True).stdout.split()
    return [str(Path(entry).resolve()) for entry in listing if Path(entry).exists()]


@pytest.mark.parametrize("analysed", ["stdlib", "prefix"], ids=["the standard library", "the virtualenv"])
def test_worker_import_path_keeps_the_interpreter_when_the_analysed_tree_holds_it(analysed):
    """Analysing the standard library, or a project that holds the virtualenv cpgflow runs in."""
    root = sysconfig.get_paths()["stdlib"] if analysed == "stdlib" else sys.prefix
    kept = worker_import_path(root)
    assert [entry for entry in interpreter_entries() if entry not in kept] == []


def test_no_more_workers_than_the_work_or_the_cores_need(planted):
    root, _ = planted
    small = [FileTask(f"m{index}.py", b"x = 1\n" * 100, "") for index in range(18)]
    assert worker_count(small, 64) == 1  # 18 small files: extracted in the building process
    assert worker_count(tasks_of(root), 64) == min(3, available_cores())
    assert worker_count(tasks_of(root), 1) == 1


# -- killed workers ------------------------------------------------------------------------------------------


def worker_pids(parent: int) -> set[int]:
    """Extraction workers whose parent is ``parent`` (their command line runs semantics.extract.worker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"semantics.extract.worker" in command:
            found.add(int(entry.name))
    return found


class WorkerKiller(threading.Thread):
    """Kills the extraction workers of a build as they appear: all of them, or only the first."""

    def __init__(self, build: subprocess.Popen[str], only_first: bool) -> None:
        super().__init__(daemon=True)
        self.build, self.only_first, self.killed = build, only_first, []

    def run(self) -> None:
        while self.build.poll() is None and not (self.only_first and self.killed):
            for pid in worker_pids(self.build.pid) - set(self.killed):
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
            time.sleep(0.005)


def build_with_killer(root: Path, out: Path, only_first: bool) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    build = subprocess.Popen([str(CPGFLOW), "build", str(root), "--out", str(out), "--jobs", "2", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    killer = WorkerKiller(build, only_first)
    killer.start()
    stdout, stderr = build.communicate(timeout=300)
    killer.join()
    return subprocess.CompletedProcess(build.args, build.returncode, stdout, stderr), killer.killed


@pytest.fixture
def fillers(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "fillers", {f"filler_{index}.py": filler_module(index)
                                             for index in range(FILLER_FILES)})


@pytest.mark.skipif(available_cores() < 2, reason="workers start only with two cores")
def test_a_killed_worker_costs_nothing_its_files_are_retried(fillers, tmp_path):
    done, killed = build_with_killer(fillers, tmp_path / "out", only_first=True)
    assert len(killed) == 1
    assert done.returncode == 0, done.stderr
    assert query(tmp_path / "out", "SELECT count(*) AS n FROM cpg_diagnostics")[0]["n"] == 0
    functions = query(tmp_path / "out", "SELECT count(*) AS n FROM cpg_nodes WHERE kind = 'FUNCTION'")[0]["n"]
    assert functions == sum(filler_module(index).count("\ndef ") for index in range(FILLER_FILES))


@pytest.mark.skipif(available_cores() < 2, reason="workers start only with two cores")
def test_files_that_kill_their_worker_are_reported_as_our_failure(fillers, tmp_path):
    done, killed = build_with_killer(fillers, tmp_path / "out", only_first=False)
    assert killed
    assert done.returncode == 3
    assert_one_line_error(done.stderr)
    assert f"the extractor crashed on {FILLER_FILES} files" in done.stderr
    rows = query(tmp_path / "out", "SELECT path, code, message FROM cpg_diagnostics ORDER BY path")
    assert [row["path"] for row in rows] == sorted(f"filler_{index}.py" for index in range(FILLER_FILES))
    assert {row["code"] for row in rows} == {"extractor_crashed"}
    assert all("killed by SIGKILL" in row["message"] for row in rows)


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@contextlib.contextmanager
def running_build(root: Path, out: Path) -> Iterator[subprocess.Popen[str]]:
    build = subprocess.Popen([str(CPGFLOW), "build", str(root), "--out", str(out), "--jobs", "2", "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    try:
        yield build
    finally:
        build.kill()
        build.wait()


@pytest.mark.skipif(available_cores() < 2, reason="workers start only with two cores")
def test_workers_die_with_a_killed_build(fillers, tmp_path):
    with running_build(fillers, tmp_path / "out") as build:
        assert wait_for(lambda: worker_pids(build.pid), timeout=60), "no worker started"
        workers = worker_pids(build.pid)
        build.send_signal(signal.SIGKILL)
        build.wait()
        assert wait_for(lambda: not any(process_alive(pid) for pid in workers), timeout=10), \
            f"workers outlived their build: {sorted(pid for pid in workers if process_alive(pid))}"
