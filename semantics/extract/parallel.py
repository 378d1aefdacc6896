"""Extraction of many files in worker processes, returned as Arrow tables.

Levers measured on the standard library (see STACK.md): tasks grouped by bytes with the largest
files first; results returned as Arrow IPC buffers (not pickled lists); the garbage collector off in
workers (ASTs and row tuples hold no cycles). A worker that dies (a crash in C on hostile input) does
not sink the run: the files of its unfinished batches are retried one per process, and a file that
kills its process again becomes a diagnostic row.
"""

from __future__ import annotations

import gc
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from semantics.entities import ENTITIES_BY_NAME, EXTRACTION_ENTITIES
from semantics.extract.files import FileTask, extract_file, failure_rows

BATCH_BYTES = 256 * 1024



class Progress:
    """Where extraction reports how far it is. Subclass it for a terminal bar, a notebook widget
    or a log (a base class rather than a Protocol: Hamilton checks input types nominally)."""

    def start(self, total: int) -> None:
        """Extraction of ``total`` files begins."""

    def advance(self, done: int) -> None:
        """``done`` more files are finished."""


NO_PROGRESS = Progress()


def plan_batches(tasks: list[FileTask], jobs: int) -> list[list[FileTask]]:
    """Group tasks by bytes, largest files first, so workers finish together."""
    ordered = sorted(tasks, key=lambda task: len(task.raw), reverse=True)
    total = sum(len(task.raw) for task in ordered)
    target = max(1, min(BATCH_BYTES, total // max(1, jobs * 8)))
    batches: list[list[FileTask]] = []
    current: list[FileTask] = []
    size = 0
    for task in ordered:
        current.append(task)
        size += len(task.raw)
        if size >= target:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


def _rows_to_ipc(rows: dict[str, list[tuple]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, entity_rows in rows.items():
        if not entity_rows:
            continue
        table = rows_to_table(name, entity_rows)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        out[name] = sink.getvalue().to_pybytes()
    return out


def rows_to_table(entity_name: str, rows: list[tuple]) -> pa.Table:
    schema = ENTITIES_BY_NAME[entity_name].arrow_schema()
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _merge(into: dict[str, list[tuple]], rows: dict[str, list[tuple]]) -> None:
    for name, entity_rows in rows.items():
        into.setdefault(name, []).extend(entity_rows)


def extract_batch(batch: list[FileTask]) -> dict[str, bytes]:
    """Worker entry point: rows of every file of the batch, as one IPC stream per entity."""
    merged: dict[str, list[tuple]] = {}
    for task in batch:
        _merge(merged, extract_file(task))
    payload = _rows_to_ipc(merged)
    del merged
    gc.collect()
    return payload


def _worker_init() -> None:
    gc.collect()
    gc.freeze()
    gc.disable()


def _isolated(task: FileTask) -> dict[str, bytes]:
    """Extract one file in a process of its own; a crash costs only that file."""
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(extract_batch, [task]).result()
    except BrokenProcessPool:
        return _rows_to_ipc(failure_rows(task, "extract", "extractor_crashed",
                                         "the extractor process died on this file"))


class ExtractionOutput:
    """Arrow IPC buffers per entity, gathered from workers and assembled once at the end."""

    def __init__(self) -> None:
        self._buffers: dict[str, list[bytes]] = {}

    def add(self, payload: dict[str, bytes]) -> None:
        for name, buffer in payload.items():
            self._buffers.setdefault(name, []).append(buffer)

    def tables(self) -> dict[str, pa.Table]:
        result: dict[str, pa.Table] = {}
        for entity in EXTRACTION_ENTITIES:
            schema = entity.arrow_schema()
            parts = [pa.ipc.open_stream(buffer).read_all() for buffer in self._buffers.get(entity.name, [])]
            result[entity.name] = pa.concat_tables(parts) if parts else schema.empty_table()
        return result


def run_extraction(tasks: list[FileTask], jobs: int, progress: Progress | None = None) -> dict[str, pa.Table]:
    """Extract every task; returns one Arrow table per extraction entity (by entity name)."""
    report = progress or NO_PROGRESS
    report.start(len(tasks))
    output = ExtractionOutput()
    batches = plan_batches(tasks, jobs)
    if jobs <= 1 or len(batches) <= 1:
        for batch in batches:
            output.add(extract_batch(batch))
            report.advance(len(batch))
        return output.tables()
    failed: list[FileTask] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init) as pool:
        pending = {pool.submit(extract_batch, batch): batch for batch in batches}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                batch = pending.pop(future)
                try:
                    output.add(future.result())
                    report.advance(len(batch))
                except BrokenProcessPool:
                    failed.extend(batch)
    for task in failed:
        output.add(_isolated(task))
        report.advance(1)
    return output.tables()

