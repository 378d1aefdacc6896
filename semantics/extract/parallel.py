"""Extraction of many files in worker processes, spooled to Arrow files.

Levers measured on the standard library (see STACK.md): tasks grouped by bytes with the largest
files first; results returned as Arrow IPC buffers (not pickled lists); the garbage collector off in
workers (ASTs and row tuples hold no cycles).

Workers are plain subprocesses running ``semantics.extract.worker`` in isolated mode with an import
path from which the current directory and the analysed tree are removed: nothing of the code base
being analysed is ever imported (a file named ``selectors.py`` there must not shadow the standard
library). A worker that dies (a crash in C on hostile input) does not sink the run: the files of its
batch are retried one by one, and a file that kills its worker again becomes a diagnostic row.
"""

from __future__ import annotations

import abc
import contextlib
import gc
import os
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import warnings
from collections import deque
from pathlib import Path

import msgspec
import pyarrow as pa

from semantics.entities import ENTITIES_BY_NAME, DataFile
from semantics.extract.files import EXTRACTOR_CRASHED, FileTask, extract_file, failure_rows
from semantics.extract.worker import encode_batch, read_frame, write_frame

BATCH_BYTES = 256 * 1024
# Runs in a fresh `python -I`: argv[1] is the parent's pid, argv[2:] the import path to use.
WORKER_BOOTSTRAP = ("import sys; sys.path[:] = sys.argv[2:]; "
                    "from semantics.extract.worker import serve; serve(int(sys.argv[1]))")
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
WORKER_STOP_SECONDS = 5.0


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
    return group_by_bytes(ordered, max(1, min(BATCH_BYTES, total // max(1, jobs * 8))))


def group_by_bytes(ordered: list[FileTask], target: int) -> list[list[FileTask]]:
    """``ordered`` cut, in its order, into groups of at least ``target`` bytes of source (the last
    one may be smaller)."""
    groups: list[list[FileTask]] = []
    current: list[FileTask] = []
    size = 0
    for task in ordered:
        current.append(task)
        size += len(task.raw)
        if size >= target:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


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
    """``rows`` (tuples in the entity's column order) as a table of its schema: converted by Arrow as
    one struct array, which spares transposing them into columns in Python (~30% of the conversion)."""
    schema = ENTITIES_BY_NAME[entity_name].arrow_schema()
    if not rows:
        return schema.empty_table()
    return pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.array(rows, type=pa.struct(schema)))])


def _merge(into: dict[str, list[tuple]], rows: dict[str, list[tuple]]) -> None:
    for name, entity_rows in rows.items():
        into.setdefault(name, []).extend(entity_rows)


def extract_batch(batch: list[FileTask]) -> dict[str, bytes]:
    """Rows of every file of the batch, as one IPC stream per entity (a worker's unit of work)."""
    merged: dict[str, list[tuple]] = {}
    for task in batch:
        _merge(merged, extract_file(task))
    return _rows_to_ipc(merged)


def interpreter_folders() -> set[Path]:
    """Folders the interpreter's own modules come from: each folder this process imported a
    standard-library module from (the standard library, lib-dynload) and the site-packages folders."""
    folders = {Path(path).resolve() for path in site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        folders.add(Path(site.getusersitepackages()).resolve())
    for name in sys.stdlib_module_names:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            folder = Path(location).resolve().parent
            folders.add(folder.parent if hasattr(module, "__path__") else folder)
    return folders


def worker_import_path(source_root: str | Path) -> list[str]:
    """The parent's import path without what could let the analysed code base shadow a module: the
    current directory and any folder inside the analysed tree. The interpreter's own folders and the
    one this package is imported from stay (the analysed tree may be the standard library itself, or
    hold the virtualenv cpgflow runs in)."""
    root = Path(source_root).resolve()
    cwd = Path.cwd().resolve()
    trusted = interpreter_folders() | {PACKAGE_PARENT}
    kept = []
    for entry in sys.path:
        resolved = Path(entry or ".").resolve()
        if resolved in trusted or not (resolved == cwd or resolved.is_relative_to(root)):
            kept.append(str(resolved))
    return kept


def worker_command(source_root: str | Path) -> list[str]:
    return [sys.executable, "-I", "-c", WORKER_BOOTSTRAP, str(os.getpid()), *worker_import_path(source_root)]


class _Worker:
    """One worker process and the batch it is working on."""

    def __init__(self, command: list[str]) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker; closed by stop()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                        close_fds=True)
        self.batch: list[FileTask] = []

    def send(self, batch: list[FileTask]) -> bool:
        """Hand the worker a batch; False when it is already dead."""
        self.batch = batch
        try:
            write_frame(self.process.stdin, encode_batch(batch))  # type: ignore[arg-type]
        except (BrokenPipeError, OSError):
            return False
        return True

    def receive(self) -> dict[str, bytes] | None:
        """The batch's rows, or None when the worker died working on it."""
        frame = read_frame(self.process.stdout)  # type: ignore[arg-type]
        return None if frame is None else msgspec.msgpack.decode(frame, type=dict[str, bytes])

    def death(self) -> str:
        """Why the worker died: its exit status and the last line it wrote to stderr."""
        try:
            status = self.process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        cause = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
        self.stderr.seek(0)
        lines = [line.strip() for line in self.stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return f"{cause}: {lines[-1]}" if lines else cause

    def stop(self) -> None:
        """Close the worker's input (it exits when it sees the end), killing it if it lingers."""
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


class ExtractedRows(abc.ABC):
    """A build's extraction rows between extraction and the tables, by entity: spooled on this
    machine (`ExtractionSpool`) or already written beside the tables by distributed workers
    (``driver.dask_extraction``). ``table(name)`` is what `TableStore.replace_files` takes."""

    @abc.abstractmethod
    def table(self, name: str) -> pa.Table | list[DataFile]:
        """The rows of entity ``name``: a table, or the data files that hold them."""

    @abc.abstractmethod
    def remove(self) -> None:
        """Release what is held on this machine once the tables are written (or the build failed)."""

    @abc.abstractmethod
    def held_bytes(self, name: str) -> int:
        """The bytes of entity ``name``'s rows that writing its table holds in this process."""


class ExtractionSpool(ExtractedRows):
    """Extraction results on disk, one Arrow IPC file per entity, filled as workers hand batches back:
    the driver never holds a whole code base's rows (the standard library's are ~1 GB). Each table is
    read back memory-mapped when it is written to Delta, then `remove` deletes the folder. Whatever
    ``folder`` held (the spool of a build that died) is cleared first."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self._writers: dict[str, pa.ipc.RecordBatchFileWriter] = {}

    def add(self, payload: dict[str, bytes]) -> None:
        """A worker's batch: one IPC stream per entity."""
        for name, buffer in payload.items():
            self.add_table(name, pa.ipc.open_stream(buffer).read_all())

    def add_table(self, name: str, table: pa.Table) -> None:
        writer = self._writers.get(name)
        if writer is None:
            writer = pa.ipc.new_file(self._path(name), ENTITIES_BY_NAME[name].arrow_schema())
            self._writers[name] = writer
        writer.write_table(table)

    def finish(self) -> ExtractionSpool:
        """Close every file: what is spooled can be read from now on."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return self

    def table(self, name: str) -> pa.Table:
        """Every row spooled for entity ``name`` (memory-mapped: pages are read as they are used)."""
        path = self._path(name)
        if not path.exists():
            return ENTITIES_BY_NAME[name].arrow_schema().empty_table()
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()

    def held_bytes(self, name: str) -> int:
        """The size of the entity's spool file: its rows, as Arrow holds them once read."""
        path = self._path(name)
        return path.stat().st_size if path.exists() else 0

    def remove(self) -> None:
        """Delete the spool, and the scratch folder holding it once nothing else is there."""
        self.finish()
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty: another spool is still in use there
            self.folder.parent.rmdir()

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.arrow"


def _crash_rows(task: FileTask, cause: str) -> dict[str, bytes]:
    return _rows_to_ipc(failure_rows(task, "extract", EXTRACTOR_CRASHED,
                                     f"the extractor process died on this file ({cause})"))


def _extract_in_workers(batches: list[list[FileTask]], workers: int, command: list[str], output: ExtractionSpool,
                        report: Progress) -> None:
    """Hand batches to up to ``workers`` processes as they free up. A batch whose worker died is
    retried one file at a time; a single file that kills its worker becomes a diagnostic row."""
    queue = deque(batches)
    idle: list[_Worker] = []
    started: list[_Worker] = []
    selector = selectors.DefaultSelector()
    busy = 0
    try:
        while queue or busy:
            while queue and busy < workers:
                if idle:
                    worker = idle.pop()
                else:
                    worker = _Worker(command)
                    started.append(worker)
                worker.send(queue.popleft())  # a dead worker shows as an ended stream below
                selector.register(worker.process.stdout, selectors.EVENT_READ, worker)  # type: ignore[arg-type]
                busy += 1
            for key, _ in selector.select():
                worker = key.data
                selector.unregister(key.fileobj)
                busy -= 1
                payload = worker.receive()
                if payload is not None:
                    output.add(payload)
                    report.advance(len(worker.batch))
                    idle.append(worker)
                    continue
                cause = worker.death()
                started.remove(worker)
                worker.stop()
                if len(worker.batch) > 1:
                    queue.extend([task] for task in worker.batch)
                else:
                    output.add(_crash_rows(worker.batch[0], cause))
                    report.advance(1)
    finally:
        selector.close()
        for worker in started:
            worker.stop()


def _extract_here(batches: list[list[FileTask]], output: ExtractionSpool, report: Progress) -> None:
    collecting = gc.isenabled()
    gc.disable()  # the extractor makes no reference cycles; a collection would walk the whole heap
    try:
        with warnings.catch_warnings():  # what the analysed code would warn of (`"\d"`) is not ours to print
            warnings.simplefilter("ignore")
            for batch in batches:
                output.add(extract_batch(batch))
                report.advance(len(batch))
    finally:
        if collecting:
            gc.enable()


def run_isolated_extraction(tasks: list[FileTask], source_root: str | Path, output: ExtractionSpool) -> None:
    """Extract every task into ``output`` in one worker process of its own, whatever their size: how
    a task of a distributed extraction runs, so a file that crashes the extractor costs a diagnostic
    row, not the host's worker."""
    _extract_in_workers(plan_batches(tasks, 1), 1, worker_command(source_root), output, NO_PROGRESS)


def run_extraction(tasks: list[FileTask], workers: int, source_root: str | Path, output: ExtractionSpool,
                   progress: Progress | None = None) -> None:
    """Extract every task into ``output`` with up to ``workers`` processes (1: in this process; the
    policy decides how many: `relspec.policy.compile_extraction`); no more are started than there are
    batches."""
    report = progress or NO_PROGRESS
    report.start(len(tasks))
    batches = plan_batches(tasks, workers)
    if workers == 1 or len(batches) == 1:
        _extract_here(batches, output, report)
    else:
        _extract_in_workers(batches, min(workers, len(batches)), worker_command(source_root), output, report)
