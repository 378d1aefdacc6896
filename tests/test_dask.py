"""Extraction on a Dask cluster (`cpgflow build --executor dask`): a cluster of two worker processes
on 127.0.0.1, started here, extracts through Hamilton's Dask executor; its workers write the rows
beside the tables and the build commits them. What readers get is what a local build gives: the
same content fingerprint, for a full build and for an incremental rebuild; a file that kills its
extractor costs a diagnostic row, not the cluster's worker; bad options are one line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest
from conftest import REPO, assert_one_line_error, query, run_cli, write_tree
from deltalake import DeltaTable

MAX_FILE_BYTES = 100_000  # the oversized file below becomes a skipped file's rows, written by the build itself


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A Dask cluster of two single-threaded worker processes on 127.0.0.1."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def code_base(tmp_path: Path) -> Path:
    """A real package (ours) plus a file that does not parse and one over the size cap."""
    root = tmp_path / "code"
    shutil.copytree(REPO / "semantics", root / "semantics", ignore=shutil.ignore_patterns("__pycache__"))
    return write_tree(root, {"broken.py": "def broken(:\n    pass\n",
                             "generated.py": "VALUES = [\n" + "    1,\n" * 20_000 + "]\n"})


def build(root: Path, out: Path, *options: str) -> None:
    done = run_cli("build", root, "--out", out, "--max-file-bytes", MAX_FILE_BYTES, "-q", *options)
    assert done.returncode == 0, done.stderr


def fingerprint(out: Path) -> dict[str, str]:
    done = run_cli("fingerprint", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def compute_seconds(address: str) -> float:
    """Seconds the cluster's workers have spent running tasks of Hamilton's executor."""
    def seconds(dask_scheduler) -> float:
        prefix = dask_scheduler.task_prefixes.get("base_execute_task")
        return 0.0 if prefix is None else prefix.all_durations.get("compute", 0.0)

    with distributed.Client(address) as client:
        return client.run_on_scheduler(seconds)


def test_a_build_on_a_dask_cluster_equals_the_local_build(scheduler, code_base, tmp_path):
    before = compute_seconds(scheduler)
    build(code_base, tmp_path / "dask", "--executor", "dask", "--scheduler", scheduler)
    assert compute_seconds(scheduler) > before  # the shards ran on the cluster
    build(code_base, tmp_path / "local")
    assert fingerprint(tmp_path / "dask") == fingerprint(tmp_path / "local")
    codes = {row["path"]: row["code"] for row in query(tmp_path / "dask", "SELECT path, code FROM cpg_diagnostics")}
    assert codes == {"broken.py": "syntax_error", "generated.py": "file_too_large"}


def test_an_incremental_rebuild_on_dask_equals_a_local_build_of_the_edited_tree(scheduler, code_base, tmp_path):
    build(code_base, tmp_path / "dask", "--executor", "dask", "--scheduler", scheduler)
    ids = code_base / "semantics" / "ids.py"
    ids.write_text(ids.read_text() + "\n\ndef added_by_the_edit(value):\n    return file_id_for(value)\n")
    (code_base / "semantics" / "c3.py").unlink()
    (code_base / "broken.py").write_text("def mended():\n    pass\n")
    build(code_base, tmp_path / "dask", "--executor", "dask", "--scheduler", scheduler)
    build(code_base, tmp_path / "local")
    assert fingerprint(tmp_path / "dask") == fingerprint(tmp_path / "local")
    assert query(tmp_path / "dask", "SELECT name FROM cpg_nodes WHERE kind = 'FUNCTION' AND name = "
                 "'added_by_the_edit'") == [{"name": "added_by_the_edit"}]
    # the edited files' rows were replaced alone: deleted, then the workers' files committed
    history = DeltaTable(tmp_path / "dask" / "extract" / "ex_functions").history()
    operations = [commit["operation"] for commit in reversed(history)]
    assert ["DELETE", "WRITE"] in [operations[index:index + 2] for index in range(len(operations))], operations


def first_operation(out: Path, table: str = "ex_files") -> str:
    """The first commit of an extraction table: a local build writes it in one WRITE; a distributed
    one creates it, then commits the files its workers wrote."""
    return DeltaTable(out / "extract" / table).history()[-1]["operation"]


def test_without_a_scheduler_the_build_starts_a_local_cluster(code_base, tmp_path):
    build(code_base, tmp_path / "dask", "--executor", "dask", "--jobs", "2")
    build(code_base, tmp_path / "local")
    assert fingerprint(tmp_path / "dask") == fingerprint(tmp_path / "local")
    assert (first_operation(tmp_path / "dask"), first_operation(tmp_path / "local")) == ("CREATE TABLE", "WRITE")


def test_data_files_no_commit_names_are_vacuumed(scheduler, code_base, tmp_path):
    """Files a failed distributed build's workers left in a table's folder are invisible to readers
    and deleted by the table's next vacuum."""
    from driver.delta_store import write_data_file
    from relspec.policy import compile_maintenance
    from semantics.extract.parallel import rows_to_table

    out = tmp_path / "dask"
    build(code_base, out, "--executor", "dask", "--scheduler", scheduler)
    before = fingerprint(out)
    table = out / "extract" / "ex_files"
    row = ("file:" + "0" * 32, "stray.py", "stray", "0" * 32, 1, 1, "utf-8", "0", True)
    stray = write_data_file(str(table), "ex_files", rows_to_table("file", [row]), {})
    assert stray is not None and (table / stray.path).exists()
    assert fingerprint(out) == before  # not committed: no reader sees it
    every = compile_maintenance(("ex_files",), {})["ex_files"].policy.vacuum_every_versions  # a small table's
    for _ in range(every):  # each build writes a version: the table's vacuum comes within as many builds
        build(code_base, out, "--executor", "dask", "--scheduler", scheduler, "--full")
        if not (table / stray.path).exists():
            break
    assert not (table / stray.path).exists()
    assert fingerprint(out) == before


@pytest.mark.parametrize(("options", "message"), [
    (("--scheduler", "tcp://127.0.0.1:8786"), "--scheduler: goes with the dask executor"),
    (("--executor", "dask", "--scheduler", "127.0.0.1:8786"), "give the Dask scheduler as tcp://HOST:PORT"),
    (("--executor", "ray"), "'ray' is not one of 'local', 'dask'"),
    (("--executor", "dask", "--scheduler", "tls://127.0.0.1:8786"), "give the Dask scheduler as tcp://HOST:PORT"),
    (("--executor", "dask", "--scheduler", "tcp://10.1.2.3:8786"), "cannot write to this machine's folder"),
])
def test_wrong_executor_options_are_one_line(options, message, code_base, tmp_path):
    done = run_cli("build", code_base, "--out", tmp_path / "out", *options)
    assert done.returncode != 0
    assert_one_line_error(done.stderr)
    assert message in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_scheduler_without_workers_is_one_line(code_base, tmp_path):
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.ERROR) as cluster:
        done = run_cli("build", code_base, "--out", tmp_path / "out", "--executor", "dask", "--scheduler",
                       cluster.scheduler_address)
    assert done.returncode == 1
    assert_one_line_error(done.stderr)
    assert "the Dask scheduler has no worker" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_scheduler_that_does_not_answer_is_one_line(code_base, tmp_path):
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.ERROR) as cluster:
        address = cluster.scheduler_address  # a port that was a scheduler's, closed once the cluster stops
    done = run_cli("build", code_base, "--out", tmp_path / "out", "--executor", "dask", "--scheduler", address)
    assert done.returncode == 1
    assert_one_line_error(done.stderr)
    assert f"{address}: no Dask scheduler answers" in done.stderr


def test_a_file_that_kills_its_extractor_costs_a_row_not_the_clusters_worker(scheduler, tmp_path):
    """Every extractor process the cluster's workers start is killed as it appears: each file becomes
    an `extractor_crashed` row, the build still publishes (exit status 3), and the Dask workers that
    ran the shards are the ones that were there before."""
    from test_workers import filler_module

    root = write_tree(tmp_path / "fillers", {f"filler_{index}.py": filler_module(index) for index in range(8)})
    with distributed.Client(scheduler) as client:
        workers = set(client.run(os.getpid).values())
        killer = ExtractorKiller(workers)
        killer.start()
        try:
            done = run_cli("build", root, "--out", tmp_path / "out", "-q", "--executor", "dask", "--scheduler",
                           scheduler)
        finally:
            killer.stop()
        assert set(client.run(os.getpid).values()) == workers
    assert killer.killed
    assert done.returncode == 3, done.stderr
    assert_one_line_error(done.stderr)
    rows = query(tmp_path / "out", "SELECT path, code FROM cpg_diagnostics ORDER BY path")
    assert rows == [{"path": f"filler_{index}.py", "code": "extractor_crashed"} for index in range(8)]


class ExtractorKiller(threading.Thread):
    """Kills every extraction process whose parent is one of ``parents`` (the cluster's workers)."""

    def __init__(self, parents: set[int]) -> None:
        super().__init__(daemon=True)
        self.parents, self.killed, self.stopped = parents, [], threading.Event()

    def run(self) -> None:
        from test_workers import worker_pids

        while not self.stopped.is_set():
            for parent in self.parents:
                for pid in worker_pids(parent) - set(self.killed):
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopped.set()
        self.join()
