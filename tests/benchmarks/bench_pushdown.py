"""Benchmark: Parquet filter pushdown on vs off, over local files and over an S3-compatible server.

Why the scan policy leaves DataFusion's ``pushdown_filters`` (and ``reorder_filters``) off where it
reads tables as Parquet scans (on object storage): measured here on the S3-compatible server, a
filter evaluated inside the scan costs more than one applied after it whenever the statistics cannot
prune by it, and the same when they can (they prune files and row groups either way); on local files
it depends on the filter.

Writes one table shaped like an extraction table (1M rows clustered by a file id, a kind, a node id
and a name, 4 files of 128K-row row groups) to a temporary folder and to a moto server started on
127.0.0.1, then times, per filter, the same query with pushdown on and off (the median of
``--repeat`` fresh sessions each, alternated) and prints on ÷ off, with the rows and row groups the
statistics pruned in each mode.

    .venv/bin/python tests/benchmarks/bench_pushdown.py [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import SessionConfig, SessionContext

from relspec.plan_signals import PlanExecution

ROWS = 1_000_000
FILES = 4
ROW_GROUP_ROWS = 128 * 1024
BUCKET = "pushdown-bench"
FILTERS = (  # (what it keeps, the condition)
    ("a quarter of the rows (one kind of four)", "kind = 'CALL'"),
    ("~20 rows (one name of 50,000)", "name = 'name_7'"),
    ("one file's rows (clustered: statistics prune)", "file_id = 'file:01000'"),
    ("every row", "node LIKE 'ref:%'"),
)


def extraction_like_table() -> pa.Table:
    rng = np.random.default_rng(1)
    files = np.sort(rng.integers(0, 2000, ROWS))
    return pa.table({
        "file_id": pa.array([f"file:{index:05d}" for index in files]),
        "kind": pa.array(rng.choice(["CALL", "NAME", "ATTR", "DEF"], ROWS)),
        "node": pa.array([f"ref:{value:032x}" for value in rng.integers(0, 2**62, ROWS)]),
        "name": pa.array([f"name_{value}" for value in rng.integers(0, 50_000, ROWS)]),
    })


def parquet_parts(table: pa.Table) -> list[bytes]:
    parts = []
    for index in range(FILES):
        sink = io.BytesIO()
        pq.write_table(table.slice(index * ROWS // FILES, ROWS // FILES), sink, row_group_size=ROW_GROUP_ROWS)
        parts.append(sink.getvalue())
    return parts


def timed(register: Callable[[SessionContext], None], pushdown: bool, condition: str) -> tuple[float, int, int]:
    """Seconds of the query in a fresh session, rows out, row groups its statistics pruned."""
    flag = "true" if pushdown else "false"
    session = SessionContext(SessionConfig().set("datafusion.execution.parquet.pushdown_filters", flag)
                             .set("datafusion.execution.parquet.reorder_filters", flag))
    register(session)
    started = time.perf_counter()
    run = PlanExecution(session, session.sql(f"SELECT file_id, node, name FROM t WHERE {condition}"))
    rows = run.collect()
    return time.perf_counter() - started, rows.num_rows, run.signals().row_groups_pruned


def compare(label: str, register: Callable[[SessionContext], None], repeat: int) -> None:
    print(label)
    for kept, condition in FILTERS:
        runs: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
        for attempt in range(repeat):
            for pushdown in ((True, False) if attempt % 2 == 0 else (False, True)):  # neither mode always first
                runs[pushdown].append(timed(register, pushdown, condition))
        assert {run[1] for run in runs[True] + runs[False]} == {runs[True][0][1]}, "the modes' rows differ"
        on, off = (statistics.median(run[0] for run in runs[mode]) for mode in (True, False))
        print(f"  {kept:48s} pushdown {on:.3f} s, after the scan {off:.3f} s: on/off {on / off:.2f}  "
              f"(rows {runs[True][0][1]:,}; row groups pruned on {runs[True][0][2]}, off {runs[False][0][2]})")


def moto_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return server, f"http://127.0.0.1:{port}"


def upload(endpoint: str, parts: list[bytes]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                          region_name="us-east-1")
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for index, body in enumerate(parts):
        client.put_object(Bucket=BUCKET, Key=f"t/part{index}.parquet", Body=body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh sessions per mode and filter (median)")
    args = parser.parse_args()
    parts = parquet_parts(extraction_like_table())
    with tempfile.TemporaryDirectory(prefix="cpgflow-pushdown-") as folder:
        for index, body in enumerate(parts):
            (Path(folder) / f"part{index}.parquet").write_bytes(body)
        compare(f"local Parquet files ({ROWS:,} rows in {FILES} files)",
                lambda session: session.register_parquet("t", folder), args.repeat)
    from datafusion.object_store import AmazonS3

    server, endpoint = moto_server()
    try:
        upload(endpoint, parts)
        store = AmazonS3(BUCKET, region="us-east-1", access_key_id="bench", secret_access_key="bench",
                         endpoint=endpoint, allow_http=True)

        def register(session: SessionContext) -> None:
            session.register_object_store("s3://", store, BUCKET)
            session.register_parquet("t", f"s3://{BUCKET}/t/")

        compare("the same files on an S3-compatible server (moto, 127.0.0.1)", register, args.repeat)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
