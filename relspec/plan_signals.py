"""What a DataFusion plan says about a view before it runs, and what its metrics say after.

`plan_signals` reads a frame's optimized logical plan and its physical plan without executing
anything: which tables and columns it reads (lineage, and the share of each table's columns it
needs), its joins, repartitions, output ordering, operators and a fingerprint of its logical plan.
These are the inputs a policy can weigh before it decides how to run or cache a view.

`PlanExecution` runs one physical plan and keeps it: DataFusion records metrics on the operators of
the plan that executed, and ``DataFrame.execute_stream``, ``to_arrow_table`` and the frame's Arrow C
stream each build a fresh plan of their own that the caller never sees, so their metrics are lost.
Here every partition of the kept plan is executed by ``SessionContext.execute`` on a pump thread of
ours and the batches reach the consumer (``write_deltalake``, ``read_all``) through a bounded queue,
so the result streams and, once drained, `ExecutedSignals` reads the metrics of the plan that ran:
rows and bytes out, compute time, what each scan pruned, and what each filter let through.

The consumer never pulls DataFusion itself: the Delta writer pulls its input on a thread of its own
runtime, and pulling a DataFusion stream there (directly, or through a Python generator calling
DataFusion) can stall for good when the plan scans a Delta table (see ``driver/delta_store.py`` and
``tests/test_delta_store.py``). Its thread here only waits on a queue.

What DataFusion 55's Python API exposes, measured (a Delta table registered with
``register_table(name, DeltaTable(path))``):

- ``ExecutionPlan`` has ``children()``, ``display()``, ``partition_count``, ``output_partitioning``
  and ``metrics()``; it has no statistics (row or byte estimates: only ``EXPLAIN`` text with
  ``datafusion.explain.show_statistics`` prints them) and no output ordering (read here from the
  sort operator at the root of the plan).
- A Delta scan is ``FFI_ExecutionPlan: DeltaScanExec`` over ``FFI_ExecutionPlan: DataSourceExec``;
  across the FFI boundary neither displays its files, projection or predicate, but both report
  metrics. No filter reaches the Delta provider (its logical ``TableScan`` carries none, even on a
  partition column): every file of the table is opened and the filter runs in a ``FilterExec``
  above the scan.
- Count metrics (``output_rows``, ``bytes_scanned``, ``files_opened``, ``pushdown_rows_pruned``)
  have integer values. Pruning metrics (``files_ranges_pruned_statistics``,
  ``row_groups_pruned_statistics``, ``row_groups_pruned_bloom_filter``, ``page_index_pages_pruned``,
  ``page_index_rows_pruned``, ``limit_pruned_row_groups``) have no value in Python, only their text
  ``"<total> total → <matched> matched"``, whose counts are rounded to three digits from 1,000 up
  ("4.00 K"): `Pruning.approximate` says when.
- The parquet scan reports its metrics per file (a ``filename`` label), two sets per file.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from types import TracebackType

import msgspec
import pyarrow as pa
from datafusion import DataFrame, SessionContext
from datafusion.plan import ExecutionPlan, LogicalPlan, MetricsSet

from relspec.digests import digest

QUEUE_BATCHES = 4  # batches between the pumps and the consumer: bounds the memory in flight
PUT_POLL_SECONDS = 0.1  # how often a pump blocked on a full queue checks whether to stop

_FFI_WRAPPER = "FFI_ExecutionPlan"
_JOIN_TYPE = re.compile(r"join_type=(\w+)")
_PRUNING = re.compile(r"^\s*([\d.]+)\s*([KMBT]?)\s*total\s*→\s*([\d.]+)\s*([KMBT]?)\s*matched")
_SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_SORT_EXPR = re.compile(r"expr=\[(.*?)\]")
# Operators at the root that pass their input's order through: the order is read below them.
_ORDER_PRESERVING = frozenset({"CoalesceBatchesExec", "CooperativeExec", "GlobalLimitExec", "LocalLimitExec"})
_SCAN_LEAF = "DataSourceExec"
_PRUNING_METRICS = ("files_ranges_pruned_statistics", "row_groups_pruned_statistics",
                    "row_groups_pruned_bloom_filter", "limit_pruned_row_groups", "page_index_pages_pruned",
                    "page_index_rows_pruned")


# ---------------------------------------------------------------------------------------------------
# Before execution


class PlanSignals(msgspec.Struct, frozen=True):
    """A frame's plan, read before it runs.

    ``columns_read`` and ``projection_ratio`` count per scan, so a table scanned twice counts twice:
    it is the share of the columns the plan could have read that it does read. ``pushed_filters``
    counts the logical scans a provider accepted a filter for (what ``TableScan`` says; the physical
    display of an FFI scan shows no predicate). ``sort_keys`` are the keys of the sort operator at the
    physical root, as DataFusion displays them (``k@0 DESC``), () when the output has no known order.
    ``fingerprint`` hashes the optimized logical plan's text: equal plans over equally named tables
    hash equal across sessions and processes.
    """

    tables_read: tuple[str, ...]
    columns_read: dict[str, tuple[str, ...]]
    projection_ratio: float | None
    join_kinds: tuple[str, ...]
    repartitions: int
    sort_keys: tuple[str, ...]
    pushed_filters: int
    partitions: int
    operators: dict[str, int]
    fingerprint: str


def operator_name(plan: ExecutionPlan) -> str:
    """The operator's type name (``HashJoinExec``), seen through the FFI wrapper of a foreign plan
    (``FFI_ExecutionPlan: DeltaScanExec, ...`` -> ``DeltaScanExec``)."""
    text = plan.display().strip()
    name = re.split(r"[:,\s]", text, maxsplit=1)[0]
    if name == _FFI_WRAPPER and ":" in text:
        name = re.split(r"[,\s]", text.split(":", 1)[1].strip(), maxsplit=1)[0]
    return name


def _walk(plan: ExecutionPlan) -> Iterator[ExecutionPlan]:
    yield plan
    for child in plan.children():
        yield from _walk(child)


def _logical_scans(plan: LogicalPlan) -> Iterator[object]:
    variant = plan.to_variant()
    if type(variant).__name__ == "TableScan":
        yield variant
    for child in plan.inputs():
        yield from _logical_scans(child)


def _join_kind(plan: ExecutionPlan, name: str) -> str:
    found = _JOIN_TYPE.search(plan.display())
    return f"{name}({found.group(1)})" if found else name


def _sort_keys(plan: ExecutionPlan) -> tuple[str, ...]:
    """The keys of the sort at the root. DataFusion's Python API does not expose a plan's output
    ordering (``ExecutionPlan.properties()`` is not bound), so the keys are read from the display of
    a ``SortExec`` (``expr=[...]``) or ``SortPreservingMergeExec`` (``[...]``) at the root, looking
    through operators that keep their input's order. An ordering a scan declares (a file sort order)
    is not visible, and a Delta scan displays none."""
    node = plan
    while True:
        name = operator_name(node)
        text = node.display().strip()
        if name == "SortExec":
            found = _SORT_EXPR.search(text)
            return _split_keys(found.group(1)) if found else ()
        if name == "SortPreservingMergeExec":
            body = text.split(":", 1)[1].strip() if ":" in text else ""
            return _split_keys(body[1:body.index("]")]) if body.startswith("[") and "]" in body else ()
        children = node.children()
        if name not in _ORDER_PRESERVING or len(children) != 1:
            return ()
        node = children[0]


def _split_keys(text: str) -> tuple[str, ...]:
    """Sort keys split on the commas between them (a key's expression may hold commas in
    parentheses: ``coalesce(a@0, b@1) ASC``)."""
    keys, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            keys.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        keys.append("".join(current).strip())
    return tuple(keys)


def _width(session: SessionContext, table: str) -> int | None:
    """Columns of ``table`` in ``session``; None when the session has no such table."""
    try:
        return len(session.table(table).schema())
    except KeyError:
        return None


def plan_signals(session: SessionContext, frame: DataFrame, plan: ExecutionPlan | None = None) -> PlanSignals:
    """The signals of ``frame``'s plan, read without executing it.

    Pass the physical ``plan`` that will run (``PlanExecution.plan``) to read that one instead of
    planning again. ``session`` gives each scanned table's full column list (the denominator of
    ``projection_ratio``): a logical scan names only the columns it reads.
    """
    logical = frame.optimized_logical_plan()
    physical = plan if plan is not None else frame.execution_plan()
    tables: list[str] = []
    columns: dict[str, tuple[str, ...]] = {}
    read = available = pushed = 0
    for scan in _logical_scans(logical):
        table = str(scan.table_name())  # type: ignore[attr-defined]
        width = _width(session, table)
        if width is None:  # a recursive query's work table: not a table of the session
            continue
        projected = tuple(name for _, name in scan.projection())  # type: ignore[attr-defined]
        tables.append(table)
        columns[table] = tuple(dict.fromkeys(columns.get(table, ()) + projected))
        read += len(projected)
        available += width
        pushed += bool(scan.filters())  # type: ignore[attr-defined]
    nodes = list(_walk(physical))
    names = [operator_name(node) for node in nodes]
    joins = tuple(_join_kind(node, name) for node, name in zip(nodes, names, strict=True) if "Join" in name)
    return PlanSignals(
        tables_read=tuple(dict.fromkeys(tables)),
        columns_read=columns,
        projection_ratio=read / available if available else None,
        join_kinds=joins,
        repartitions=names.count("RepartitionExec"),
        sort_keys=_sort_keys(physical),
        pushed_filters=pushed,
        partitions=physical.partition_count,
        operators=dict(sorted(Counter(names).items())),
        fingerprint=digest(logical.display_indent()),  # as the run record's plan fingerprints
    )


class PlanEstimate(msgspec.Struct, frozen=True):
    """What DataFusion's statistics say a plan outputs, before it runs: rows and bytes (None:
    absent), each exact or an estimate. DataFusion 55's Python API binds no plan statistics; its
    ``EXPLAIN`` prints them with ``datafusion.explain.show_statistics``, read here from the root
    operator's line. A scan of a Delta table knows its rows exactly (from the log); a filter or a
    join above it estimates."""

    rows: int | None
    rows_exact: bool
    bytes: int | None
    bytes_exact: bool


_STATISTICS = re.compile(r"statistics=\[Rows=(\w+)(?:\((\d+)\))?, Bytes=(\w+)(?:\((\d+)\))?")


def _own_statistics(line: str) -> str:
    """The operator's ``statistics=[...]`` on its display line: the one outside every bracket (its
    expressions and its columns' statistics may show a literal's text)."""
    depth = 0
    for index, char in enumerate(line):
        if depth == 0 and line.startswith("statistics=[", index):
            return line[index:]
        depth += (char in "[(") - (char in "])")
    return ""


def plan_estimate(session: SessionContext, sql: str) -> PlanEstimate:
    """The estimate of ``sql``'s output (see `PlanEstimate`); the session must show statistics in
    ``EXPLAIN`` (``SET datafusion.explain.show_statistics = true``)."""
    explained = session.sql(f"EXPLAIN {sql}").to_pydict()
    physical = [text for kind, text in zip(explained["plan_type"], explained["plan"], strict=True)
                if kind == "physical_plan"]
    found = _STATISTICS.match(_own_statistics(physical[0].splitlines()[0] if physical else ""))
    if found is None:
        return PlanEstimate(None, False, None, False)
    rows_kind, rows, bytes_kind, size = found.groups()
    return PlanEstimate(rows=int(rows) if rows else None, rows_exact=rows_kind == "Exact",
                        bytes=int(size) if size else None, bytes_exact=bytes_kind == "Exact")


# ---------------------------------------------------------------------------------------------------
# After execution


class Pruning(msgspec.Struct, frozen=True):
    """One pruning stage of a scan: how many units (file ranges, row groups, pages, rows) it
    considered and how many it kept. ``approximate``: a count was displayed rounded ("4.00 K")."""

    total: int
    matched: int
    approximate: bool = False

    @property
    def pruned(self) -> int:
        return self.total - self.matched


class ScanPruning(msgspec.Struct, frozen=True):
    """What one parquet scan (a ``DataSourceExec`` leaf, inside a ``DeltaScanExec`` for a Delta
    table) read and skipped, from its metrics, summed over its partitions and files.

    ``location`` is the directory the scanned files share (from the metrics' ``filename`` labels);
    ``table`` the name `executed_signals` was told that location has. A stage DataFusion did not
    report is None. ``rows_out`` are the rows the scan produced (after any pushed-down filter).
    """

    operator: str
    table: str | None
    location: str | None
    files_opened: int | None
    file_ranges: Pruning | None
    row_groups_statistics: Pruning | None
    row_groups_bloom_filter: Pruning | None
    row_groups_dynamic_filter: int | None
    limit_row_groups: Pruning | None
    page_index_pages: Pruning | None
    page_index_rows: Pruning | None
    pushdown_rows_pruned: int | None
    pushdown_rows_matched: int | None
    bytes_scanned: int | None
    rows_out: int | None

    @property
    def files_pruned(self) -> int:
        return self.file_ranges.pruned if self.file_ranges else 0

    @property
    def row_groups_pruned(self) -> int:
        stages = (self.row_groups_statistics, self.row_groups_bloom_filter, self.limit_row_groups)
        return sum(stage.pruned for stage in stages if stage) + (self.row_groups_dynamic_filter or 0)


class FilterSelectivity(msgspec.Struct, frozen=True):
    """One ``FilterExec``: rows in (its input's output rows), rows out, and out ÷ in."""

    predicate: str
    rows_in: int
    rows_out: int
    selectivity: float | None


class ExecutedSignals(msgspec.Struct, frozen=True):
    """The metrics of a plan that ran.

    ``output_rows`` and ``output_bytes`` are the root operator's, summed over partitions;
    ``output_bytes`` is DataFusion's size of the batches in memory (buffer capacity), not of the data
    written. ``elapsed_compute_ns`` sums every operator's compute time (threads add up: it can exceed
    wall time). ``selectivity`` is all filters' rows out ÷ their rows in. ``complete``: every
    partition was drained, so the metrics cover the whole result. ``spill_count`` and
    ``spilled_bytes`` sum every operator's spills to disk (past the session profile's memory limit).
    """

    output_rows: int | None
    output_bytes: int | None
    elapsed_compute_ns: int
    scans: tuple[ScanPruning, ...]
    filters: tuple[FilterSelectivity, ...]
    selectivity: float | None
    complete: bool
    spill_count: int = 0
    spilled_bytes: int = 0

    @property
    def rows_scanned(self) -> int:
        """Rows the scans read: what they produced plus what a pushed-down filter dropped in them."""
        return sum((scan.rows_out or 0) + (scan.pushdown_rows_pruned or 0) for scan in self.scans)

    @property
    def files_opened(self) -> int:
        return sum(scan.files_opened or 0 for scan in self.scans)

    @property
    def files_pruned(self) -> int:
        return sum(scan.files_pruned for scan in self.scans)

    @property
    def row_groups_pruned(self) -> int:
        return sum(scan.row_groups_pruned for scan in self.scans)


def _parse_count(number: str, suffix: str) -> tuple[int, bool]:
    if not suffix:
        return int(float(number)), False
    return round(float(number) * _SCALE[suffix]), True


def _pruning(metrics: MetricsSet, name: str) -> Pruning | None:
    """The sum of a pruning metric over its partitions and files, parsed from its display: Python
    gets no value for this metric type."""
    total = matched = 0
    approximate = seen = False
    for metric in metrics.metrics():
        if metric.name != name:
            continue
        found = _PRUNING.match(repr(metric))
        if not found:
            continue
        seen = True
        count, rounded = _parse_count(found.group(1), found.group(2))
        kept, kept_rounded = _parse_count(found.group(3), found.group(4))
        total += count
        matched += kept
        approximate = approximate or rounded or kept_rounded
    return Pruning(total, matched, approximate) if seen else None


def _location(metrics: MetricsSet) -> str | None:
    folders = {filename.rsplit("/", 1)[0] for metric in metrics.metrics()
               if (filename := metric.labels().get("filename"))}
    if not folders:
        return None
    common = folders.pop()
    for folder in folders:
        while common and not (folder == common or folder.startswith(common + "/")):
            common = common.rsplit("/", 1)[0] if "/" in common else ""
    return common or None


def _normalised(location: str) -> str:
    return location.removeprefix("file://").strip("/")


def _table_at(location: str | None, locations: Mapping[str, str]) -> str | None:
    if location is None:
        return None
    paths = {table: _normalised(path) for table, path in locations.items()}
    matches = [(len(path), table) for table, path in paths.items()
               if location == path or location.startswith(path + "/")]
    return max(matches)[1] if matches else None


def _scan(operator: str, metrics: MetricsSet, locations: Mapping[str, str]) -> ScanPruning:
    location = _location(metrics)
    return ScanPruning(
        operator=operator,
        table=_table_at(location, locations),
        location=location,
        files_opened=metrics.sum_by_name("files_opened"),
        file_ranges=_pruning(metrics, "files_ranges_pruned_statistics"),
        row_groups_statistics=_pruning(metrics, "row_groups_pruned_statistics"),
        row_groups_bloom_filter=_pruning(metrics, "row_groups_pruned_bloom_filter"),
        row_groups_dynamic_filter=metrics.sum_by_name("row_groups_pruned_dynamic_filter"),
        limit_row_groups=_pruning(metrics, "limit_pruned_row_groups"),
        page_index_pages=_pruning(metrics, "page_index_pages_pruned"),
        page_index_rows=_pruning(metrics, "page_index_rows_pruned"),
        pushdown_rows_pruned=metrics.sum_by_name("pushdown_rows_pruned"),
        pushdown_rows_matched=metrics.sum_by_name("pushdown_rows_matched"),
        bytes_scanned=metrics.sum_by_name("bytes_scanned"),
        rows_out=metrics.output_rows,
    )


def _is_file_scan(metrics: MetricsSet) -> bool:
    return any(metric.name in ("files_opened", *_PRUNING_METRICS) for metric in metrics.metrics())


def executed_signals(plan: ExecutionPlan, *, locations: Mapping[str, str] | None = None,
                     complete: bool = True) -> ExecutedSignals:
    """The signals of ``plan``'s metrics: meaningful once the plan itself ran (`PlanExecution`), not
    a plan that only describes a frame another execution planned anew.

    ``locations`` ({table: path or URI}) names each scan by the directory its files are in: the
    physical plan of a Delta scan shows no table name.
    """
    locations = locations or {}
    scans: list[ScanPruning] = []
    filters: list[FilterSelectivity] = []
    elapsed = spills = spilled = 0

    def visit(node: ExecutionPlan, wrappers: tuple[str, ...]) -> None:
        nonlocal elapsed, spills, spilled
        name = operator_name(node)
        metrics = node.metrics()
        if metrics is not None:
            elapsed += metrics.elapsed_compute or 0
            spills += metrics.spill_count or 0
            spilled += metrics.spilled_bytes or 0
            if name == _SCAN_LEAF and _is_file_scan(metrics):
                scans.append(_scan(">".join((*wrappers, name)), metrics, locations))
        children = node.children()
        if name == "FilterExec" and metrics is not None and len(children) == 1:
            below = children[0].metrics()
            rows_in, rows_out = (below.output_rows if below else None), metrics.output_rows
            if rows_in is not None and rows_out is not None:
                predicate = node.display().split(":", 1)[-1].strip()
                filters.append(FilterSelectivity(predicate, rows_in, rows_out, rows_out / rows_in if rows_in else None))
        kept = (*wrappers, name) if name.startswith("DeltaScan") else wrappers
        for child in children:
            visit(child, kept)

    visit(plan, ())
    root = plan.metrics()
    rows_in = sum(item.rows_in for item in filters)
    return ExecutedSignals(
        output_rows=root.output_rows if root else None,
        output_bytes=root.sum_by_name("output_bytes") if root else None,
        elapsed_compute_ns=elapsed,
        scans=tuple(scans),
        filters=tuple(filters),
        selectivity=sum(item.rows_out for item in filters) / rows_in if rows_in else None,
        complete=complete,
        spill_count=spills,
        spilled_bytes=spilled,
    )


# ---------------------------------------------------------------------------------------------------
# Executing a plan that keeps its metrics


class _Done(msgspec.Struct, frozen=True):
    """A pump's last item: its partition is drained."""


_Item = pa.RecordBatch | BaseException | _Done


class PlanExecution:
    """One physical plan of ``frame``, executed partition by partition and streamed to one consumer.

    ::

        with PlanExecution(session, frame) as run:
            write_deltalake(path, run.reader())
        signals = run.signals()

    Each partition runs on a pump thread of its own (``SessionContext.execute``), all at once, as
    DataFusion's own coalescing would: partitions fed by one ``RepartitionExec`` must be drained
    together. The pumps put batches on one bounded queue, so at most ``queue_batches`` batches wait
    between DataFusion and the consumer; the consumer's thread only waits on that queue. Batches are
    cast to ``schema`` when given (a null in a non-null column then fails the consumer before it
    commits). Rows arrive in no defined order across partitions, as with the frame itself.
    """

    def __init__(self, session: SessionContext, frame: DataFrame, *, schema: pa.Schema | None = None,
                 queue_batches: int = QUEUE_BATCHES, ordered_by: str | None = None) -> None:
        self.session = session
        self.plan = frame.execution_plan()
        self.ordered_by = ordered_by  # a column ``frame`` sorts its rows by (the caller's sort on top of it)
        self.schema = schema if schema is not None else frame.schema()
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_batches)
        self._stop = threading.Event()
        self._pumps: list[threading.Thread] = []
        self._started = False
        self._drained = 0

    @property
    def complete(self) -> bool:
        """Every partition has been drained: the plan's metrics cover the whole result."""
        return self._started and self._drained == self.plan.partition_count

    def in_order_of(self, column: str) -> bool:
        """Whether the rows come in ``column``'s order: the frame is sorted by it and its plan has one
        partition (one pump, so the batches arrive in the order the sort emits them)."""
        return self.ordered_by == column and self.plan.partition_count == 1

    def reader(self, schema: pa.Schema | None = None) -> pa.RecordBatchReader:
        """The result as an Arrow stream (hand it to ``write_deltalake`` or call ``read_all``), its
        batches cast to ``schema`` when given. The plan starts when the first batch is pulled; there
        is one reader per execution."""
        if self._started:
            raise RuntimeError("a PlanExecution is read once: its plan's metrics describe one run")
        self._started = True
        if schema is not None:
            self.schema = schema
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def collect(self, schema: pa.Schema | None = None) -> pa.Table:
        """The whole result as one table (the ``to_arrow_table`` path); its metrics stay readable."""
        with self:
            return self.reader(schema).read_all()

    def signals(self, locations: Mapping[str, str] | None = None) -> ExecutedSignals:
        return executed_signals(self.plan, locations=locations, complete=self.complete)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        partitions = self.plan.partition_count
        self._pumps = [threading.Thread(target=self._pump, args=(partition,), daemon=True,
                                        name=f"cpgflow-plan-pump-{partition}") for partition in range(partitions)]
        for pump in self._pumps:
            pump.start()
        while self._drained < partitions:
            item = self._queue.get()
            if isinstance(item, _Done):
                self._drained += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def _pump(self, partition: int) -> None:
        try:
            for batch in self.session.execute(self.plan, partition):
                table_batch = batch.to_pyarrow()
                if table_batch.schema != self.schema:
                    table_batch = table_batch.cast(self.schema)
                if not self._put(table_batch):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)
            return
        self._put(_Done())

    def _put(self, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=PUT_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the pumps (a consumer that gave up leaves them blocked on a full queue) and wait for
        them: a pump inside DataFusion returns at its next batch."""
        self._stop.set()
        for pump in self._pumps:
            pump.join()

    def __enter__(self) -> PlanExecution:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()



