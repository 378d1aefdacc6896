"""Outputs on object storage: builds into an S3-compatible server (moto, started here on 127.0.0.1),
read back with `cpgflow query` and with a second client that shares no code with delta-rs (boto3 and
pyarrow reading the Delta log and Parquet files by hand), rebuilt incrementally, killed part-way, and
built twice at once.

What the S3 output must hold is what a local build of the same code base holds: every check compares
content fingerprints (`cpgflow fingerprint`) with a local build's, and the call graph with edges
derived by hand from the fixture's source.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from relspec.policy import compile_maintenance
from tests.conftest import CPGFLOW, assert_one_line_error, cli_env, write_tree

BUCKET = "cpgflow-tests"
LEASE_SECONDS = "4"  # the builds' lease: a killed build's lease expires this long after its last renewal
BUILD_TIMEOUT = 300

# Hand-written: `run` calls `shout`, `shout` calls `hello` (its `.upper()` is a str method); nothing else
# of the code base is called.
SOURCE = {
    "pkg/__init__.py": "",
    "pkg/greet.py": ('def hello(name):\n    return "hello " + name\n\n\n'
                     "def shout(name):\n    return hello(name).upper()\n"),
    "pkg/main.py": 'from pkg.greet import shout\n\n\ndef run():\n    return shout("x")\n',
}
# The edit: one function appended to one file, calling `hello` too.
EDITED = {**SOURCE, "pkg/greet.py": SOURCE["pkg/greet.py"] + "\n\ndef whisper(name):\n    return hello(name).lower()\n"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An S3-compatible server on 127.0.0.1 with an empty bucket; yields the environment that reaches it."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
           "CPGFLOW_LEASE_SECONDS": LEASE_SECONDS,
           "CPGFLOW_CACHE_DIR": str(tmp_path_factory.mktemp("cpgflow-cache"))}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _client(env).create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _client(env: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])


def _cli(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CPGFLOW), *map(str, args)], capture_output=True, text=True,
                          env={**cli_env(), **env}, timeout=BUILD_TIMEOUT, check=False)


def _local_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CPGFLOW), *map(str, args)], capture_output=True, text=True, env=cli_env(),
                          timeout=BUILD_TIMEOUT, check=False)


def _build_command(source: Path, out: str, *extra: str) -> list[str]:
    return [str(CPGFLOW), "build", str(source), "--out", out, "-j", "1", "--quiet", *extra]


def _fingerprint(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _local_fingerprint(tmp_path: Path, files: dict[str, str], label: str) -> dict[str, str]:
    source = write_tree(tmp_path / f"{label}-src", files)
    out = tmp_path / f"{label}-out"
    done = _local_cli("build", source, "--out", out, "-j", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    return _fingerprint(_local_cli("fingerprint", out, "--json"))


def _releases(env: dict[str, str], out: str) -> list[dict]:
    done = _cli(env, "releases", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _callgraph(env: dict[str, str], out: str) -> dict[str, list[str]]:
    done = _cli(env, "callgraph", out)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _table_by_hand(env: dict[str, str], prefix: str, table: str, version: int) -> pa.Table:
    """``table`` at ``version`` read without delta-rs: its Delta log's commits 0..version replayed
    (add and remove actions) and the Parquet files they leave read with boto3 and pyarrow."""
    client = _client(env)
    log = f"{prefix}/{table}/_delta_log/"
    files: list[str] = []
    for number in range(version + 1):
        commit = client.get_object(Bucket=BUCKET, Key=f"{log}{number:020d}.json")["Body"].read().decode()
        for line in commit.splitlines():
            action = json.loads(line)
            if "add" in action:
                files.append(action["add"]["path"])
            elif "remove" in action:
                files.remove(action["remove"]["path"])
    parts = [pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=f"{prefix}/{table}/{path}")["Body"].read()))
             for path in files]
    return pa.concat_tables(parts)


def _by_flags(s3: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    """A command reaching the server by ``--storage-option`` alone: no AWS_* variable in its environment."""
    env = {key: value for key, value in {**cli_env(), **s3}.items() if not key.startswith("AWS_")}
    flags = [f"--storage-option={key}={value}" for key, value in s3.items() if key.startswith("AWS_")]
    return subprocess.run([str(CPGFLOW), *map(str, args), *flags], capture_output=True, text=True, env=env,
                          timeout=BUILD_TIMEOUT, check=False)


def test_build_query_and_read_back(s3: dict[str, str], tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", SOURCE)
    out = f"s3://{BUCKET}/first"
    done = _by_flags(s3, *_build_command(source, out)[1:])
    assert done.returncode == 0, done.stderr
    assert f"into {out}" in done.stdout

    assert _fingerprint(_by_flags(s3, "fingerprint", out, "--json")) == _local_fingerprint(tmp_path, SOURCE, "local")
    calls = json.loads(_by_flags(s3, "callgraph", out).stdout)
    assert calls["pkg.main.run"] == ["pkg.greet.shout"]
    assert "pkg.greet.hello" in calls["pkg.greet.shout"]

    counted = _by_flags(s3, "query", out, "SELECT count(*) AS n FROM cpg_nodes WHERE kind = 'FUNCTION'", "-f", "json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout) == [{"n": 3}]  # hello, shout, run

    # More builds (their tables now have history to maintain) until a small table's vacuum is due (each
    # full build writes the extraction tables again: a version each), a replay and a rollback, by flags alone.
    every = compile_maintenance(("ex_files",), {})["ex_files"].policy.vacuum_every_versions
    for _ in range(every):
        assert _by_flags(s3, *_build_command(source, out, "--full")[1:]).returncode == 0
        runs = json.loads(_by_flags(s3, "runs", out, "--json").stdout)
        if any(step["decision"]["vacuum"] for step in runs[-1]["maintenance"]):
            break
    assert {record["status"] for record in runs} == {"released"}
    assert all(step["error"] is None for record in runs for step in record["maintenance"]), runs[-1]["maintenance"]
    assert any(step["decision"]["vacuum"] and step["files_after"] >= 0 for step in runs[-1]["maintenance"])  # it ran
    replayed = _by_flags(s3, "replay", out, runs[-2]["run_id"])  # the release before: its versions are kept
    assert replayed.returncode == 0, replayed.stderr
    rolled = _by_flags(s3, "rollback", out, "--to", runs[-2]["run_id"])
    assert rolled.returncode == 0, rolled.stderr

    # A second client: the release's nodes and edges, read from the log and the Parquet files by hand.
    release = _releases(s3, out)[-1]
    nodes = _table_by_hand(s3, "first", "cpg_nodes", release["versions"]["cpg_nodes"])
    edges = _table_by_hand(s3, "first", "cpg_edges", release["versions"]["cpg_edges"])
    functions = {row["qualname"] for row in nodes.to_pylist() if row["kind"] == "FUNCTION"}
    assert functions == {"pkg.greet.hello", "pkg.greet.shout", "pkg.main.run"}
    node_ids = set(nodes.column("node_id").to_pylist())
    assert set(edges.column("src").to_pylist()) | set(edges.column("dst").to_pylist()) <= node_ids
    assert nodes.num_rows == release["rows"]["cpg_nodes"]


def test_incremental_rebuild_kill_and_recovery(s3: dict[str, str], tmp_path: Path) -> None:
    """Build; rebuild after a one-file edit (by file); kill a rebuild part-way: readers still read the
    last release, and the next build, once the dead build's lease expired, completes."""
    source = write_tree(tmp_path / "src", SOURCE)
    out = f"s3://{BUCKET}/incremental"
    assert _cli(s3, *_build_command(source, out)[1:]).returncode == 0
    write_tree(source, EDITED)
    rebuilt = _cli(s3, *_build_command(source, out)[1:])
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "changes: 1 changed, 0 added, 0 removed; 2 unchanged" in rebuilt.stdout
    edited_fingerprint = _local_fingerprint(tmp_path, EDITED, "edited")
    assert _fingerprint(_cli(s3, "fingerprint", out, "--json")) == edited_fingerprint
    assert "pkg.greet.hello" in _callgraph(s3, out)["pkg.greet.whisper"]

    # Kill a rebuild (back to SOURCE) once it has committed something past the release.
    write_tree(source, SOURCE)
    released = _releases(s3, out)
    client = _client(s3)
    before = {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix="incremental/").get("Contents", [])}
    build = subprocess.Popen(_build_command(source, out, "--full"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**cli_env(), **s3}, start_new_session=True)
    deadline = time.monotonic() + BUILD_TIMEOUT
    while True:
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix="incremental/").get("Contents", [])
        written = {item["Key"] for item in listed} - before
        if any("/_delta_log/" in key and not key.startswith("incremental/_releases") for key in written):
            break
        assert build.poll() is None, "the build finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(build.pid, signal.SIGKILL)
    build.wait()

    assert _releases(s3, out) == released
    assert _fingerprint(_cli(s3, "fingerprint", out, "--json")) == edited_fingerprint
    client.head_object(Bucket=BUCKET, Key="incremental/_build.lock")  # the dead build's lease is still there

    recovered = _cli(s3, *_build_command(source, out)[1:])
    assert recovered.returncode == 0, recovered.stderr
    assert "took over the expired build lease" in recovered.stderr  # the dead build's, once expired
    assert _fingerprint(_cli(s3, "fingerprint", out, "--json")) == _local_fingerprint(tmp_path, SOURCE, "source")
    assert len(_releases(s3, out)) == len(released) + 1


def test_two_builds_at_once(s3: dict[str, str], tmp_path: Path) -> None:
    """Two builds started together into one prefix: one waits for the other's lease; both exit 0,
    one after the other, and the output is exactly one code base's."""
    source = write_tree(tmp_path / "src", SOURCE)
    out = f"s3://{BUCKET}/concurrent"
    lease = {"CPGFLOW_LEASE_SECONDS": "20"}  # renewed every 7 s: a loaded machine cannot make it look expired
    builds = [subprocess.Popen(_build_command(source, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**cli_env(), **s3, **lease}) for _ in range(2)]
    results = [build.communicate(timeout=BUILD_TIMEOUT) for build in builds]
    assert [build.returncode for build in builds] == [0, 0], results
    assert sum("waiting for another build" in stderr for _, stderr in results) == 1
    assert [release["sequence"] for release in _releases(s3, out)] == [1, 2]
    runs = json.loads(_cli(s3, "runs", out, "--json").stdout)
    first, second = sorted((run["started_at"], run["finished_at"]) for run in runs)
    assert first[1] <= second[0]  # one after the other
    assert _fingerprint(_cli(s3, "fingerprint", out, "--json")) == _local_fingerprint(tmp_path, SOURCE, "local")

    held = subprocess.Popen([sys.executable, "-c", _HOLD_LEASE.format(out=out)], stdout=subprocess.PIPE, text=True,
                            env={**cli_env(), **s3})
    try:
        assert held.stdout is not None and held.stdout.readline().strip() == "held"
        refused = _cli(s3, *_build_command(source, out, "--no-wait")[1:])
        assert refused.returncode != 0
        assert_one_line_error(refused.stderr)
        assert "another build (pid" in refused.stderr and out in refused.stderr
    finally:
        held.kill()
        held.wait()


_HOLD_LEASE = """
import time
from driver.lock import BuildLock
with BuildLock("{out}"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_lost_lease_refuses_the_release(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A build whose lease another build took over (it stalled past the lease) commits no release."""
    import obstore

    from driver.delta_store import DeltaTableStore
    from driver.lock import LOCK_FILE, BuildLock, LeaseLost, check_lease
    from driver.storage import object_store
    from relspec.catalog import RELEASES_TABLE, DatasetCatalog
    from relspec.releases import RELEASE_SCHEMA

    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CPGFLOW_LEASE_SECONDS", "0.6")  # renewed every 0.2 s
    out = f"s3://{BUCKET}/stalled"
    store = DeltaTableStore(DatasetCatalog(out))
    with BuildLock(out, timeout=5):
        check_lease(out)  # held
        obstore.put(object_store(out, None), LOCK_FILE, b'{"holder": "another build", "expires": 0}')
        deadline = time.monotonic() + 10
        with pytest.raises(LeaseLost):
            while time.monotonic() < deadline:  # the next renewal finds the lease taken
                check_lease(out)
                time.sleep(0.05)
        with pytest.raises(LeaseLost):
            store.append(RELEASES_TABLE, RELEASE_SCHEMA.empty_table())
    assert store.version(RELEASES_TABLE) is None


def test_stalled_build_commits_nothing(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder that stalled (no renewal ran) while another build took its lease over finds out at its
    next commit, confirmed with the store, not at its next renewal; a nested acquire finds out too."""
    import obstore

    from driver.delta_store import DeltaTableStore
    from driver.lock import LOCK_FILE, BuildLock, LeaseLost
    from driver.storage import object_store
    from relspec.catalog import RUNS_TABLE, DatasetCatalog
    from relspec.runs import RUN_SCHEMA

    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CPGFLOW_LEASE_SECONDS", "600")  # its renewal would run in 200 s
    out = f"s3://{BUCKET}/stalled-holder"
    store = DeltaTableStore(DatasetCatalog(out))
    with BuildLock(out, timeout=5):
        store.append(RUNS_TABLE, RUN_SCHEMA.empty_table())  # still ours: committed
        obstore.put(object_store(out, None), LOCK_FILE, b'{"holder": "another build", "lease_seconds": 600}')
        with pytest.raises(LeaseLost):
            store.append(RUNS_TABLE, RUN_SCHEMA.empty_table())
        with pytest.raises(LeaseLost), BuildLock(out, timeout=0):
            pass
    assert store.version(RUNS_TABLE) == 0


def test_writer_threads_confirming_at_once_keep_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extraction tables are written two at a time, and each commit confirms the lease: two puts
    conditional on one ETag would take each other for a takeover (the build would lose its lease).
    On obstore's in-memory store, which honours conditional puts (the moto server here does not)."""
    import threading

    from obstore.store import MemoryStore

    from driver import lock

    monkeypatch.setattr(lock, "object_store", lambda location, options: MemoryStore())
    lease = lock._Lease(f"s3://{BUCKET}/writer-threads", {})
    assert lease.try_acquire() is None
    errors: list[Exception] = []

    def confirm() -> None:
        try:
            for _ in range(200):
                lease.confirm()
        except Exception as error:
            errors.append(error)

    writers = [threading.Thread(target=confirm) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    lease.release()
    assert errors == [] and not lease.lost


def test_unreadable_lease_is_taken_over(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ``_build.lock`` (a local output's lock file, synced to the bucket) is no lease."""
    import obstore

    from driver.lock import LOCK_FILE, BuildLock
    from driver.storage import object_store

    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    out = f"s3://{BUCKET}/synced"
    obstore.put(object_store(out, None), LOCK_FILE, b"")
    with BuildLock(out, timeout=0):
        lease = json.loads(bytes(obstore.get(object_store(out, None), LOCK_FILE).bytes()))
        assert lease["holder"].startswith(f"pid {os.getpid()} ") and lease["released"] is False
    assert json.loads(bytes(obstore.get(object_store(out, None), LOCK_FILE).bytes()))["released"] is True


def test_delta_commits_are_conditional(s3: dict[str, str]) -> None:
    """delta-rs commits to S3 with a put-if-absent of the next log entry (no locking provider): two
    writers appending at once to one table lose no commit, each retrying past the other's."""
    from concurrent.futures import ThreadPoolExecutor

    from deltalake import DeltaTable, write_deltalake

    options = {key: value for key, value in s3.items() if key.startswith("AWS_")}
    table = f"s3://{BUCKET}/commits/log"
    write_deltalake(table, pa.table({"writer": pa.array([], pa.int64())}), storage_options=options)

    def append(writer: int) -> None:
        for _ in range(8):
            write_deltalake(table, pa.table({"writer": [writer]}), mode="append", storage_options=options)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(append, (1, 2)))
    written = DeltaTable(table, storage_options=options)
    assert written.version() == 16
    assert len(written.file_uris()) == 16


def test_bad_locations_get_one_line(s3: dict[str, str], tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", SOURCE)
    missing = _cli(s3, "build", source, "--out", "s3://no-such-bucket/cpg", "-q")
    assert missing.returncode != 0
    assert_one_line_error(missing.stderr)
    assert "s3://no-such-bucket/cpg: no such bucket" in missing.stderr
    unsupported = _cli(s3, "query", "gs://bucket/cpg", "SELECT 1")
    assert unsupported.returncode != 0
    assert_one_line_error(unsupported.stderr)
    assert "gs:// is not supported" in unsupported.stderr
    malformed = _cli(s3, "runs", f"s3://{BUCKET}/first", "--storage-option", "AWS_REGION")
    assert malformed.returncode == 2
    assert_one_line_error(malformed.stderr)
    assert "'AWS_REGION' is not KEY=VALUE" in malformed.stderr


def test_dask_workers_write_the_extraction_to_object_storage(s3: dict[str, str], tmp_path: Path) -> None:
    """`--executor dask` into s3://: the workers of the local cluster the build starts write the
    extraction rows to the bucket themselves (storage options by flag reach them); the release reads
    as the local build's, and a second client reads the workers' files by hand."""
    source = write_tree(tmp_path / "src", EDITED)
    out = f"s3://{BUCKET}/dask"
    done = _by_flags(s3, *_build_command(source, out)[1:], "--executor", "dask", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert _fingerprint(_by_flags(s3, "fingerprint", out, "--json")) == _local_fingerprint(tmp_path, EDITED, "local")
    release = _releases(s3, out)[-1]
    functions = _table_by_hand(s3, "dask/extract", "ex_functions", release["versions"]["ex_functions"])
    assert sorted(functions.column("name").to_pylist()) == ["hello", "run", "shout", "whisper"]


def test_a_table_is_read_by_its_files_statistics_on_object_storage(s3: dict[str, str]) -> None:
    """Three data files whose file_id ranges are a..c, d..f and x..z: a read by statistics of 'e'
    registers only the second one, read from the bucket."""
    from datafusion import SessionContext
    from deltalake import write_deltalake

    from driver.delta_store import DeltaTableStore
    from relspec.catalog import DatasetCatalog

    options = {key: value for key, value in s3.items() if key.startswith("AWS_")}
    location = f"s3://{BUCKET}/statistics/t"
    for ids in (["a", "c"], ["d", "f"], ["x", "z"]):
        write_deltalake(location, pa.table({"file_id": ids, "n": [1, 2]}), mode="append", storage_options=options)
    store = DeltaTableStore(DatasetCatalog(f"s3://{BUCKET}/statistics"), options)
    session = SessionContext()
    assert store.register_files_holding(session, "t", location, "file_id", ["e"]) == 1
    assert sorted(session.sql("SELECT file_id FROM t").to_arrow_table().column(0).to_pylist()) == ["d", "f"]
