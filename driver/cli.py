"""The `cpgflow` command line.

Every failure a user can cause (a missing path, an unwritable output, bad SQL) ends in one line on
stderr and a non-zero exit; set CPGFLOW_DEBUG=1 to see the traceback of an unexpected error. A reader
that stops reading the output (`| head`) changes no exit status (`_discard_stdout`).

A command imports what it uses when it runs, at the top of its function: `cpgflow --help` loads
neither the engines nor the pipeline, `query`, `runs`, `callgraph`, the questions (`callers`,
`callees`, `unused`, `imports`, `subclasses`, `points-to`), `why` and `export` read a built output with
DataFusion and deltalake alone, and only `build`, `plan`, `replay` and `dag` load Hamilton, the
extractor and the dataflows (tests/test_cli_imports.py checks it). Run as the process's command (the
console script), a command that only reads does not load pandas either, which DataFusion would
otherwise load without using it (`_WithoutPandas`).
"""

from __future__ import annotations

import atexit
import functools
import gc
import importlib.abc
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click
import msgspec

from semantics.discovery import DEFAULT_MAX_FILE_BYTES

if TYPE_CHECKING:
    import pyarrow as pa
    from datafusion import SessionContext
    from rich.console import Console

    from driver.delta_store import DeltaTableStore
    from relspec.profiles import SessionProfile
    from relspec.runs import ViewOutcome
    from relspec.summary import BuildSummary

# `cpgflow query` reads: DDL (CREATE, DROP), DML (INSERT, COPY ... TO) and statements (SET) are refused.
REFUSED_STATEMENT = re.compile(r"(DDL|DML|Statement) not supported: \w+")

EXIT_EXTRACTOR_CRASHED = 3
EXIT_QUARANTINED = 4
EXPORT_FORMATS = ("graphml", "neo4j-csv", "parquet")  # driver.exports.EXPORTERS, without importing it
# How the CLI names the Python API's build options in its error lines.
CLI_OPTION_NAMES = {"source_root": "PATH", "output_dir": "--out", "jobs": "--jobs", "include": "--include",
                    "exclude": "--exclude", "max_file_bytes": "--max-file-bytes", "cache_overrides": "--cache-policy",
                    "validation_mode": "--validation", "track": "--track", "project_id": "--project-id",
                    "api_url": "--track (HAMILTON_API_URL)", "username": "--track (user)", "executor": "--executor",
                    "scheduler": "--scheduler"}

_P = ParamSpec("_P")
_R = TypeVar("_R")


@functools.cache
def stdout() -> Console:
    """The Rich console for results, made on first use (help and JSON output need no Rich). A reader
    that stops reading (`cpgflow build | head`) takes no more of it: see `_discard_stdout`."""
    from rich.console import Console

    class ResultConsole(Console):
        def on_broken_pipe(self) -> None:  # Rich's own exits with status 1
            self.quiet = True
            _discard_stdout()

    return ResultConsole(soft_wrap=True)


def _discard_stdout() -> None:
    """Send what is left to print to /dev/null: the reader of our standard output went away. The
    command's exit status stays what its work makes it — a build has committed, a query has run, by the
    time they print — and the interpreter's last flush finds no broken pipe to complain about."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _write(text: str) -> None:
    """``text`` on standard output (see `_discard_stdout` for a reader that stopped reading)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()


def _print_json(value: object) -> None:
    """``value`` as indented JSON on standard output."""
    _write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


@functools.cache
def stderr() -> Console:
    """The Rich console for the progress bar and warnings, made on first use."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """A failure reported in one line; exit status 1 unless said otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _option_errors(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """A wrong build option (`driver.options.BuildOptionError`, raised by the checks and by the
    driver factory) as one error line naming the CLI's flag where the Python API names its parameter."""

    @functools.wraps(command)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from driver.options import BuildOptionError

        try:
            return command(*args, **kwargs)
        except BuildOptionError as err:
            raise CliError(f"{CLI_OPTION_NAMES.get(err.option, err.option)}: {err.problem}") from None

    return checked


_STORAGE_OPTIONS = "cpgflow.storage_options"


def _remember_storage_options(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    from driver.storage import StorageError, parse_storage_options

    try:
        ctx.meta[_STORAGE_OPTIONS] = parse_storage_options(value)
    except StorageError as err:
        raise click.BadParameter(str(err)) from None


def _storage_option(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """``--storage-option KEY=VALUE`` (repeatable): how to reach an output on object storage; read
    back with `_storage_options`."""
    return click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
                        expose_value=False, callback=_remember_storage_options,
                        help="A storage option of an s3:// output, e.g. AWS_ENDPOINT_URL=http://host:9000 "
                        "(repeatable; the AWS_* environment otherwise).")(command)


def _output_dir(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """The DIR argument of a command that reads an output: a folder, or s3://BUCKET/PREFIX."""
    return click.argument("out", metavar="DIR")(_storage_option(command))


def _storage_options() -> dict[str, str] | None:
    return click.get_current_context().meta.get(_STORAGE_OPTIONS) or None


def _location(out: str) -> str:
    """DIR as a run names it (see `driver.storage.output_location`), or a one-line error."""
    from driver.storage import StorageError, output_location

    try:
        return output_location(out)
    except StorageError as err:
        raise CliError(str(err)) from None


def _writable_output(out: str) -> str:
    from driver.storage import is_object_store

    if is_object_store(out):
        return _location(out)  # reached (and its access checked) by the build's lease
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cpgflow-write-probe-"):
            pass
    except FileExistsError:
        raise CliError(f"DIR '{out}' exists and is not a directory") from None
    except OSError as err:
        raise CliError(f"DIR '{out}' is not writable: {err.strerror or err}") from None
    return str(folder.resolve())


# The commands that run the pipeline: Hamilton imports pandas, and they load it as they must.
PIPELINE_COMMANDS = frozenset({"build", "plan", "replay", "dag"})
_WHOLE_PROCESS = "cpgflow.whole_process"  # the command is the process's own (see `_WithoutPandas`)


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Refuses to import pandas, for a command that only reads an output and never uses it. Importing
    DataFusion loads it otherwise (~0.2 s of a ~0.5 s command): DataFusion's module makes a pyarrow
    scalar, and pyarrow imports pandas to ask whether the value is a pandas object; a refusal is to
    pyarrow what an interpreter without pandas is, and pyarrow remembers it for the process. So it is
    made only when the command is the process's own (`main` reading ``sys.argv``, as the console
    script does), for that command."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] == "pandas":
            raise ModuleNotFoundError("cpgflow does not load pandas for a command that only reads an output",
                                      name=fullname)
        return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Build a Code Property Graph of a Python code base as Delta Lake tables, and query it."""
    whole_process = bool(ctx.obj and ctx.obj.get(_WHOLE_PROCESS))
    if whole_process and ctx.invoked_subcommand not in PIPELINE_COMMANDS and "pandas" not in sys.modules:
        finder = _WithoutPandas()
        sys.meta_path.insert(0, finder)
        ctx.call_on_close(lambda: sys.meta_path.remove(finder))


_CALIBRATION_HELP = ("What the run's measurements do: observe records them and the thresholds they would move to; "
                     "apply also moves the thresholds the next build compiles with; off records nothing "
                     "(cpgflow calibration DIR shows them).")
_STAGING_HELP = ("Where staged views go: auto holds them in memory on a code base of up to ~16 MB of "
                 "source and writes staging tables past it; delta or memory always there.")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "-o", "out", required=True, metavar="DIR",
              help="Folder for the Delta tables, or s3://BUCKET/PREFIX.")
@_storage_option
@click.option("--jobs", "-j", default=0, show_default=True, help="Extraction processes (0: one per core).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Where files are extracted: this machine's processes, or a Dask cluster (docs/scaling.md).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
              help="The Dask scheduler of --executor dask (default: a local cluster of --jobs processes).")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching this glob (repeatable).")
@click.option("--max-file-bytes", default=DEFAULT_MAX_FILE_BYTES, show_default=True,
              help="Files over this size get a diagnostic instead of extraction.")
@click.option("--cache-policy", "cache_policy", multiple=True, metavar="VIEW=POLICY",
              help="Override a view's compiled cache policy: none, delta_staging or delta_output (repeatable).")
@click.option("--validation", type=click.Choice(["warn", "error"]), default="warn", show_default=True,
              help="error: a run that fails validation stops before writing anything.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--track", is_flag=True,
              help="Send the run to a Hamilton UI (HAMILTON_API_URL, default http://localhost:8241; docs/ui.md).")
@click.option("--project-id", "project_id", default=1, show_default=True, metavar="N",
              help="The Hamilton UI project a tracked run goes to.")
@click.option("--no-wait", is_flag=True, help="Fail at once when another build is writing DIR "
              "(by default, wait for it to finish).")
@click.option("--full", is_flag=True, help="Extract every file and recompute every view whole (by default, "
              "a rebuild extracts the changed files and updates the file-local views by file).")
@click.option("--staging", type=click.Choice(["auto", "delta", "memory"]), default="auto", show_default=True,
              help=_STAGING_HELP)
@click.option("--calibration", type=click.Choice(["off", "observe", "apply"]), default="observe", show_default=True,
              help=_CALIBRATION_HELP)
@_option_errors
def build(path: Path, out: str, jobs: int, executor: str, scheduler: str | None, include: tuple[str, ...],
          exclude: tuple[str, ...], max_file_bytes: int, cache_policy: tuple[str, ...], validation: str, quiet: bool,
          track: bool, project_id: int, no_wait: bool, full: bool, staging: str, calibration: str) -> None:
    """Build the CPG of the code base at PATH into DIR."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from driver.allocators import without_huge_pages
    from driver.dask_cluster import SchedulerUnavailable, check_scheduler
    from driver.factory import build_driver
    from driver.lock import BuildLock, FolderLocked
    from driver.options import check_build_options
    from driver.progress import ExtractionBar, StepBar, pipeline_steps
    from driver.storage import StorageError
    from relspec.policy import parse_overrides
    from relspec.validation import ValidationFailed

    try:
        overrides = parse_overrides(cache_policy)
    except ValueError as err:
        raise CliError(str(err)) from None
    options = {"jobs": jobs, "include": list(include), "exclude": list(exclude), "max_file_bytes": max_file_bytes,
               "cache_overrides": overrides, "validation_mode": validation, "staging": staging,
               "calibration": calibration, "executor": executor, "scheduler": scheduler}
    root = check_build_options(path, out, **options)  # type: ignore[arg-type]
    if scheduler:
        try:
            check_scheduler(scheduler)
        except SchedulerUnavailable as err:
            raise CliError(str(err)) from None
    output = _writable_output(out)
    storage_options = _storage_options()
    without_huge_pages()  # (see driver/allocators.py)
    started = time.perf_counter()
    adapters = []
    if track:
        from driver.tracking import build_tracker

        adapters.append(build_tracker(root, output, project_id=project_id))
    try:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=stderr(), transient=True, disable=quiet)
        steps = StepBar(bar)
        with BuildLock(output, timeout=0 if no_wait else None, storage_options=storage_options):  # the whole build
            dr = build_driver(root, output, adapters=[*adapters, steps], full=full, storage_options=storage_options,
                              **options)  # type: ignore[arg-type]
            steps.start(pipeline_steps(dr, ["build_summary"], ["progress"]))
            with bar:
                summary: BuildSummary = dr.execute(["build_summary"], inputs={"progress": ExtractionBar(bar)})[
                    "build_summary"
                ]
    except FolderLocked as err:
        raise CliError(f"{err} (without --no-wait, the build waits for it)") from None
    except (StorageError, SchedulerUnavailable, ValidationFailed) as err:
        raise CliError(str(err)) from None
    _print_summary(root, summary, time.perf_counter() - started)
    if summary.status == "quarantined":
        raise CliError(f"run {summary.run_id} {summary.message}; readers still read the previous release "
                       f"(cpgflow quarantine {summary.output_dir})", exit_code=EXIT_QUARANTINED)
    _report_failures(root, summary)


def _report_failures(root: Path, summary: BuildSummary) -> None:
    """An empty build is a warning; files the extractor crashed on are our failure, not the input's:
    the build is published but exits with EXIT_EXTRACTOR_CRASHED."""
    from semantics.extract.files import EXTRACTOR_CRASHED

    if summary.files == 0:
        stderr().print(f"warning: no Python file matched under {root} (check PATH, --include and --exclude)",
                     markup=False, highlight=False)
    crashed = summary.diagnostics_by_code.get(EXTRACTOR_CRASHED, 0)
    if crashed:
        raise CliError(f"the extractor crashed on {crashed:,} file{'s' if crashed > 1 else ''}: an internal error, "
                       f"please report it (rows with code {EXTRACTOR_CRASHED} in cpg_diagnostics say which)",
                       exit_code=EXIT_EXTRACTOR_CRASHED)


def _print_summary(root: Path, summary: BuildSummary, seconds: float) -> None:
    from rich.table import Table

    stdout().print(f"[bold]Built the CPG of[/bold] {root} [bold]into[/bold] {summary.output_dir} "
                 f"in {seconds:.1f} s")
    stdout().print(f"  files {summary.files:,}  lines {summary.lines:,}  nodes {summary.nodes:,}  "
                 f"edges {summary.edges:,}  diagnostics {summary.diagnostics:,}")
    if summary.incremental:
        stdout().print(f"  changes: {summary.files_changed:,} changed, {summary.files_added:,} added, "
                       f"{summary.files_removed:,} removed; {summary.files_reused:,} unchanged (extraction "
                       f"skipped); {summary.views_by_file} views updated by file", markup=False)
    else:
        stdout().print(f"  extracted {summary.files_extracted:,} files")
    stdout().print(f"  views: {_outcomes_text(summary.view_outcomes)} (run {summary.run_id}: "
                 f"cpgflow runs {summary.output_dir})")
    if summary.restored:
        stdout().print(f"  restored {len(summary.restored)} table(s) left past the current release by a build "
                     "that did not finish", markup=False)
    if summary.release:
        stdout().print(f"  released as release {summary.release}", markup=False)
    if summary.calibration:
        stdout().print(f"  calibration: {summary.calibration}", markup=False)
    counts = Table(show_edge=False, box=None, pad_edge=False)
    for header in ("node kind", "count", "edge kind", "count"):
        counts.add_column(header, justify="right" if header == "count" else "left")
    nodes, edges = list(summary.nodes_by_kind.items()), list(summary.edges_by_kind.items())
    for index in range(max(len(nodes), len(edges))):
        node = nodes[index] if index < len(nodes) else ("", "")
        edge = edges[index] if index < len(edges) else ("", "")
        counts.add_row(node[0], f"{node[1]:,}" if node[1] != "" else "", edge[0],
                       f"{edge[1]:,}" if edge[1] != "" else "")
    stdout().print(counts)
    if summary.diagnostics:
        codes = ", ".join(f"{code} {count}" for code, count in summary.diagnostics_by_code.items())
        stdout().print(f"  diagnostics: {codes} (see the cpg_diagnostics table)")


@cli.command()
@_output_dir
@click.argument("sql")
@click.option("--format", "-f", "output_format", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Read the tables this run wrote (a quarantined run's) "
              "instead of the current release.")
def query(out: str, sql: str, output_format: str, run_id: str | None) -> None:
    """Run a read-only SQL query over the tables of DIR's current release and print the result."""
    from datafusion import SQLOptions

    from driver.api import prepare_query

    read_only = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
    session = _built_session(out, run_id)
    try:
        prepare_query(session, sql)
        result = session.sql_with_options(sql, read_only).to_arrow_table()
    except Exception as err:  # DataFusion raises plain Exception subclasses for SQL errors
        refused = REFUSED_STATEMENT.search(str(err))
        if refused:
            raise CliError(f"query refused: queries are read-only ({refused.group(0)})") from None
        raise CliError(f"query failed: {_first_line(str(err))}") from None
    _print_table(result, output_format)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "-o", "out", metavar="DIR",
              help="A build folder (or s3://BUCKET/PREFIX) whose table statistics the policy should weigh "
              "(default: none).")
@_storage_option
@click.option("--cache-policy", "cache_policy", multiple=True, metavar="VIEW=POLICY",
              help="Override a view's compiled cache policy (repeatable).")
@click.option("--staging", type=click.Choice(["auto", "delta", "memory"]), default="auto", show_default=True,
              help=_STAGING_HELP)
@click.option("--calibration", type=click.Choice(["off", "observe", "apply"]), default="observe", show_default=True,
              help=_CALIBRATION_HELP)
@click.option("--full", is_flag=True, help="Plan the build `cpgflow build --full` would run (every file extracted "
              "again, every view recomputed whole).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_option_errors
def plan(path: Path, out: str | None, cache_policy: tuple[str, ...], staging: str, calibration: str, full: bool,
         as_json: bool) -> None:
    """Show the compiled plan for PATH without running it: views, joins, policy, validation."""
    from rich.table import Table

    from driver.factory import plan_driver
    from driver.options import check_source_root
    from driver.reports import plan_report
    from relspec.policy import parse_overrides

    try:
        overrides = parse_overrides(cache_policy)
    except ValueError as err:
        raise CliError(str(err)) from None
    root = check_source_root(path)
    with tempfile.TemporaryDirectory(prefix="cpgflow-plan-") as scratch:
        statistics_from = _location(out) if out is not None else scratch
        results = plan_driver(root, statistics_from, cache_overrides=overrides, staging=staging, full=full,  # type: ignore[arg-type]
                              calibration=calibration, storage_options=_storage_options()).execute(  # type: ignore[arg-type]
            ["optimized_ir", "discovery", "compiled_policy", "validation", "view_graph", "semantic_plan"])
    report = plan_report(results["optimized_ir"], results["discovery"], results["compiled_policy"],
                         results["validation"], results["view_graph"])
    if as_json:
        from driver.delta_store import DeltaTableStore
        from driver.plan_preview import preview_views
        from relspec.catalog import DatasetCatalog

        store = DeltaTableStore(DatasetCatalog(_location(out)), _storage_options()) if out is not None else None
        previews = preview_views(results["semantic_plan"], results["compiled_policy"], store)
        for view in report["views"]:  # type: ignore[union-attr]
            view["preview"] = msgspec.to_builtins(previews[view["name"]])  # type: ignore[index]
        _print_json(report)
        return
    source = report["source"]
    stdout().print(f"[bold]Plan for[/bold] {source['root']}: {source['files']:,} files; "  # type: ignore[index]
                 f"{len(report['views']):,} views; policy {report['policy']['fingerprint'][:12]}")  # type: ignore[arg-type,index]
    table = Table("view", "kind", "wave", "order", "predicted s", "slack s", "cache policy", "maintained", "join")
    for view in sorted(report["views"], key=_schedule_position):  # type: ignore[arg-type]
        join, fixpoint, maintenance, schedule = view["join"], view["fixpoint"], view["maintenance"], view["schedule"]
        joined = f"{join['strategy']} ({join['keys_confidence']['decision_value']})" if join else ""
        kind = f"{view['kind']} (fixpoint: {len(fixpoint['rules'])} rules)" if fixpoint else view["kind"]
        maintained = maintenance["mode"] if maintenance else "-"
        order = f"{schedule['position'] + 1}{' *' if schedule['critical'] else ''}"
        predicted = f"{schedule['cost']['seconds']:.2f} ({schedule['cost']['basis']})"
        table.add_row(view["name"], kind, str(view["wave"]), order, predicted, f"{schedule['slack']:.2f}",
                      view["policy"]["cache"], maintained, joined)
    stdout().print(table)
    schedule = report["policy"]["schedule"]  # type: ignore[index]
    stdout().print(f"schedule: {schedule['lanes']} lane(s); * on the critical path "  # type: ignore[index]
                   f"({'; '.join(schedule['confidence']['evidence'])})", markup=False)  # type: ignore[index]
    stdout().print(_profile_text(results["compiled_policy"].profile), markup=False)
    for view in report["views"]:  # type: ignore[union-attr]
        if view["policy"]["for_readers"]:
            stdout().print(f"{view['name']}: {view['policy']['for_readers']}", markup=False)
        maintenance = view["maintenance"]
        if maintenance and maintenance["mode"] == "by_file":
            evidence = "; ".join(maintenance["confidence"]["evidence"])
            stdout().print(f"{view['name']} is maintained by file: {evidence}", markup=False)
        elif maintenance and maintenance["changes_by"]:
            stdout().print(f"{view['name']}, when recomputed, is compared by {maintenance['changes_by']} with the "
                           "current release's rows: its by-file readers also recompute the files whose rows changed",
                           markup=False)
    ordered = sorted(f"{view['name']} by {view['write_order']}" for view in report["views"]  # type: ignore[union-attr]
                     if view["write_order"])
    if ordered:
        stdout().print("sorted in their plans when written whole (not by file), so that each data file holds a "
                       f"narrow range of files: {', '.join(ordered)}", markup=False)
    for issue in report["validation"]:  # type: ignore[union-attr]
        stdout().print(f"{issue['severity']}: {issue['code']} ({issue['subject']}): {issue['message']}", markup=False)


def _signals_cells(outcome: ViewOutcome) -> tuple[str, str, str, str, str]:
    """What a computed view's plan read and pruned, how selective its filters were, its repartitions
    and what it spilled to disk."""
    executed, planned = outcome.executed, outcome.planned
    if executed is None or planned is None:
        return "", "", "", "", ""
    scanned = f"{executed.rows_scanned:,} rows, {executed.files_opened} files"
    pruned = f"{executed.files_pruned} files, {executed.row_groups_pruned} row groups"
    selectivity = "" if executed.selectivity is None else f"{executed.selectivity:.3f}"
    spilled = f"{executed.spilled_bytes:,} bytes ({executed.spill_count} spills)" if executed.spill_count else ""
    return scanned, pruned, selectivity, str(planned.repartitions), spilled


def _profile_text(profile: SessionProfile | None) -> str:
    """The session profile a run ran under, in one line."""
    if profile is None:
        return "session profile: not recorded (a run of an earlier cpgflow)"
    memory = "unbounded" if profile.memory_limit is None else f"{profile.memory_limit / 2**30:.1f} GiB, spilled past"
    return (f"session profile {profile.workload}: {profile.target_partitions} partitions, batches of "
            f"{profile.batch_size:,} rows, memory {memory}")


def _schedule_position(view: dict[str, object]) -> int:
    return view["schedule"]["position"]  # type: ignore[index,return-value]


@cli.command()
@_output_dir
def callgraph(out: str) -> None:
    """Print the call graph of a built DIR as JSON: {caller: [callees]} by qualified name."""
    from driver.api import hold_small_tables
    from driver.reports import CALL_GRAPH_SQL, call_graph

    session = _built_session(out, reading=CALL_GRAPH_SQL)
    hold_small_tables(session, CALL_GRAPH_SQL)
    _print_json(call_graph(session))


def _format_option(command: Callable[_P, _R]) -> Callable[_P, _R]:
    return click.option("--format", "-f", "output_format", type=click.Choice(["table", "csv", "json"]),
                        default="table", show_default=True, help="Output format.")(command)


def _depth_option(command: Callable[_P, _R]) -> Callable[_P, _R]:
    return click.option("--depth", "-d", default=1, show_default=True, type=click.IntRange(min=1),
                        help="How many calls away (1: direct).")(command)


def _answer(out: str, output_format: str, question: Callable[[SessionContext], pa.Table]) -> None:
    """Print the answer of one of driver.questions over DIR; a name it does not know is one error line."""
    from driver.questions import GRAPH_TABLES

    session = _built_session(out, reading=" ".join(GRAPH_TABLES))
    try:
        result = question(session)
    except ValueError as err:
        raise CliError(str(err)) from None
    _print_table(result, output_format)


@cli.command()
@_output_dir
@click.argument("qualname")
@_depth_option
@_format_option
def callers(out: str, qualname: str, depth: int, output_format: str) -> None:
    """List what calls the function (or class, or external name) QUALNAME, to --depth calls away."""
    from driver.questions import callers_of

    _answer(out, output_format, lambda session: callers_of(session, qualname, depth))


@cli.command()
@_output_dir
@click.argument("qualname")
@_depth_option
@_format_option
def callees(out: str, qualname: str, depth: int, output_format: str) -> None:
    """List what the function (or module or class code) QUALNAME calls, to --depth calls away."""
    from driver.questions import callees_of

    _answer(out, output_format, lambda session: callees_of(session, qualname, depth))


@cli.command()
@_output_dir
@_format_option
def unused(out: str, output_format: str) -> None:
    """List the functions nothing calls, imports or refers to (candidates: see docs/queries.md)."""
    from driver.questions import unused_functions

    _answer(out, output_format, unused_functions)


@cli.command()
@_output_dir
@click.argument("module", required=False)
@_format_option
def imports(out: str, module: str | None, output_format: str) -> None:
    """List which module imports which, for every module or for MODULE and the modules under it."""
    from driver.questions import import_graph

    _answer(out, output_format, lambda session: import_graph(session, module))


@cli.command()
@_output_dir
@click.argument("qualname")
@_format_option
def subclasses(out: str, qualname: str, output_format: str) -> None:
    """List the classes that inherit from the class QUALNAME, directly or not."""
    from driver.questions import subclasses_of

    _answer(out, output_format, lambda session: subclasses_of(session, qualname))


@cli.command("points-to")
@_output_dir
@click.argument("variable")
@_format_option
def points_to(out: str, variable: str, output_format: str) -> None:
    """List what the variable VARIABLE (its scope's qualified name, a dot, its name) can hold."""
    from driver.questions import points_to as points_to_of

    _answer(out, output_format, lambda session: points_to_of(session, variable))


@cli.command("export")
@_output_dir
@click.argument("destination", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--format", "-f", "export_format", required=True, type=click.Choice(EXPORT_FORMATS),
              help="graphml: OUT is the file; neo4j-csv, parquet: OUT is a folder (made if missing).")
def export_graph(out: str, destination: Path, export_format: str) -> None:
    """Export the graph of DIR to OUT as GraphML, Neo4j import CSV or Parquet files."""
    from driver.exports import ExportError, export

    session = _built_session(out)
    try:
        written = export(session, export_format, destination)
    except ExportError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"cannot write '{destination}': {err.strerror or err}") from None
    for file in written:
        stdout().print(f"wrote {file}", markup=False, highlight=False)


@cli.command()
@_output_dir
@click.option("--json", "as_json", is_flag=True, help="Print the run records as JSON.")
def runs(out: str, as_json: bool) -> None:
    """List the runs recorded in DIR (the newest 200, and the runs of the last two releases): time,
    fingerprints, per-view outcomes, validation issues."""
    from rich.table import Table

    from relspec.catalog import RUNS_TABLE
    from relspec.runs import overlap_seconds, read_records

    table = _output_store(out).read(RUNS_TABLE)
    if table is None:
        raise CliError(f"DIR '{out}' has no run records")
    records = read_records(table)
    if as_json:
        _print_json(records)
        return
    for record in records:
        package = record.package
        stdout().print(f"[bold]run {record.run_id}[/bold] {record.started_at}  {record.status}  "
                     f"package {package.fingerprint[:12] if package else '-'}  "
                     f"policy {package.policy_fingerprint[:12] if package else '-'}")
        if record.message:
            stdout().print(f"  {record.message}", markup=False)
        stdout().print(f"  views: {_outcomes_text(record.outcome_counts())}")
        if package is not None:
            stdout().print(f"  {_profile_text(package.profile)}", markup=False)
        table = Table("view", "policy", "outcome", "maintained", "rows", "rows changed", "seconds", "ran from",
                      box=None, show_edge=False)
        signals = Table("view", "scanned", "pruned", "selectivity", "repartitions", "spilled", box=None,
                        show_edge=False)
        written = sorted((outcome for outcome in record.views if outcome.outcome != "lazy"),
                         key=lambda outcome: outcome.started)
        for outcome in written:  # in the order they ran
            table.add_row(outcome.view, outcome.policy, outcome.outcome, outcome.maintained,
                          "" if outcome.rows is None else f"{outcome.rows:,}",
                          "" if outcome.rows_changed is None else f"{outcome.rows_changed:,}",
                          f"{outcome.seconds:.2f}", f"{outcome.started:.2f}-{outcome.finished:.2f}")
            if outcome.executed is not None:
                signals.add_row(outcome.view, *_signals_cells(outcome))
        stdout().print(table)
        if signals.row_count:
            stdout().print("  what each computed view's plan read (from its executed metrics):", markup=False)
            stdout().print(signals)
        stdout().print(f"  overlap: {overlap_seconds(written):.2f} s of views running at once", markup=False)
        compared = ", ".join(f"{outcome.view} {outcome.compared_seconds:.2f} s" for outcome in written
                             if outcome.compared_seconds)
        if compared:
            stdout().print(f"  compared with the current release's rows, to find the files whose rows changed: "
                           f"{compared}", markup=False)
        for outcome in record.views:
            if outcome.rounds and not outcome.stage_rows and outcome.stage_names:  # one pass, in memory
                stdout().print(f"  fixpoint {outcome.view}: {outcome.stage_names[0]} ({outcome.rounds[0]:,} rows)",
                               markup=False)
            elif outcome.rounds:
                at_once = f"; queries run at once {outcome.overlapped:,} times" if outcome.overlapped else ""
                stdout().print(f"  fixpoint {outcome.view}: {len(outcome.rounds) - 1} rounds after the seeds "
                             f"({outcome.rounds[0]:,} rows); dropped by caps: {outcome.capped:,}{at_once}",
                             markup=False)
                for number, added in enumerate(outcome.stage_rows, start=1):
                    stages = ", ".join(f"{name} {rows:,}" for name, rows in zip(outcome.stage_names, added,
                                                                                  strict=True))
                    stdout().print(f"    round {number}: {stages}", markup=False)
        for issue in record.validation:
            stdout().print(f"  {issue.severity}: {issue.code} ({issue.subject}): {issue.message}", markup=False)


@cli.command()
@_output_dir
@click.option("--json", "as_json", is_flag=True, help="Print the calibration records as JSON.")
def calibration(out: str, as_json: bool) -> None:
    """Show DIR's calibrated thresholds by workload class, their history and why they moved."""
    from relspec.calibration import (
        DEFAULT_INLINE_MAX_ROWS,
        DEFAULT_SMALL_INPUT_ROWS,
        current_thresholds,
        read_calibrations,
    )
    from relspec.catalog import CALIBRATION_TABLE

    records = read_calibrations(_output_store(out).read(CALIBRATION_TABLE))
    if as_json:
        _print_json(records)
        return
    if not records:
        raise CliError(f"DIR '{out}' has no calibration records (a build with --calibration off records none)")
    stdout().print(f"default inline_max_rows {DEFAULT_INLINE_MAX_ROWS:,}, small_input_rows "
                   f"{DEFAULT_SMALL_INPUT_ROWS:,}", markup=False)
    for workload in sorted({record.workload for record in records}):
        current = current_thresholds(records, workload, "apply")
        stdout().print(f"[bold]{workload}[/bold]: a build with --calibration apply compiles with "
                       f"inline_max_rows {current.inline_max_rows:,}, small_input_rows {current.small_input_rows:,}")
        for record in (record for record in records if record.workload == workload):
            fit = (f"fit {record.fit.fixed_seconds:.4f} s + {record.fit.seconds_per_row * 1e6:.3f} s/M rows "
                   f"over {record.fit.points} views" if record.fit else "no fit")
            stdout().print(f"  run {record.run_id} {record.recorded_at}  {record.mode:7}  "
                           f"{record.before.inline_max_rows:,} -> {record.proposed.inline_max_rows:,}  {fit}; "
                           f"views predicted {record.error.predicted_seconds:.2f} s, measured "
                           f"{record.error.actual_seconds:.2f} s (median |log error| "
                           f"{record.error.median_log_error:.2f})", markup=False)
            stdout().print(f"    why: {'; '.join(record.confidence.evidence)}", markup=False)
            if record.partitions_confidence is not None:
                stdout().print(f"    small_input_rows {record.before.small_input_rows:,} -> "
                               f"{record.proposed.small_input_rows:,}: "
                               f"{'; '.join(record.partitions_confidence.evidence)}", markup=False)


@cli.command()
@_output_dir
@click.option("--json", "as_json", is_flag=True, help="Print the releases as JSON.")
def releases(out: str, as_json: bool) -> None:
    """List DIR's releases, oldest first; the last one is what readers read."""
    store = _output_store(out)
    made = store.releases()
    if not made:
        raise CliError(f"DIR '{out}' holds no release (cpgflow runs lists its runs)")
    if as_json:
        _print_json(made)
        return
    for release in made:
        current = "  (current)" if release is made[-1] else ""
        what = "build of run" if release.kind == "build" else "rollback to run"
        stdout().print(f"release {release.sequence}  {release.released_at}  {what} {release.run_id}  "
                       f"nodes {release.rows.get('cpg_nodes', 0):,}  edges {release.rows.get('cpg_edges', 0):,}"
                       f"{current}", markup=False)


@cli.command()
@_output_dir
@click.option("--to", "run_id", required=True, metavar="RUN_ID", help="The run whose release becomes current.")
def rollback(out: str, run_id: str) -> None:
    """Make the release of an earlier run current again (a later build starts from it)."""
    from driver.housekeeping import roll_back

    store = _output_store(out)
    try:
        made = roll_back(store, run_id)
    except LookupError as err:
        raise CliError(str(err)) from None
    stdout().print(f"release {made.sequence}: the tables of run {made.run_id} are current again", markup=False)


@cli.command()
@_output_dir
@click.option("--drop", is_flag=True, help="Remove the quarantined runs' tables.")
def quarantine(out: str, drop: bool) -> None:
    """List the quarantined runs of DIR whose tables are kept, and why; --drop removes their tables."""
    from driver.housekeeping import drop_quarantined, kept_quarantined

    store = _output_store(out)
    kept = kept_quarantined(store)
    for record in kept:
        stdout().print(f"run {record.run_id} {record.started_at}  {record.message}", markup=False)
    if not kept:
        stdout().print("no quarantined run with tables kept", markup=False)
    if drop and kept:
        removed = drop_quarantined(store)
        stdout().print(f"dropped: {len(kept)} run(s), {removed:,} file(s) removed", markup=False)


@cli.command()
@_output_dir
@click.argument("run_id", metavar="RUN_ID")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def replay(out: str, run_id: str, as_json: bool) -> None:
    """Re-execute run RUN_ID with its inputs pinned at the versions it read, write nothing to DIR's
    tables, and check the outputs are the ones it published (exit 1 on a difference)."""
    from driver.replay import ReplayError
    from driver.replay import replay as replay_run

    _existing_output(out)
    started = time.perf_counter()
    try:
        report = replay_run(_location(out), run_id, _storage_options())
    except ReplayError as err:
        raise CliError(str(err)) from None
    if as_json:
        _print_json(report)
    else:
        pinned = ", ".join(f"{name}@{version}" for name, version in sorted(report.pinned.items())[:3])
        stdout().print(f"replayed run {run_id} in {time.perf_counter() - started:.1f} s, inputs pinned "
                       f"({len(report.pinned)} tables: {pinned}, ...)", markup=False)
        for check in report.outputs:
            verdict = ("same rows" if check.matches
                       else f"DIFFERENT rows ({check.recorded[:12]} -> {check.replayed[:12]})")
            stdout().print(f"  {check.name}: {verdict}", markup=False)
        changed = [check.name for check in report.plans if not check.matches]
        stdout().print(f"  plans: {len(report.plans) - len(changed)} of {len(report.plans)} views planned as recorded"
                       + (f"; different: {', '.join(changed)}" if changed else "")
                       + (f" ({len(report.unplanned)} more the run did not plan: reused or not needed)"
                          if report.unplanned else ""), markup=False)
    if not report.reproduced:
        different = ", ".join(check.name for check in report.outputs if not check.matches)
        raise CliError(f"replay of run {run_id} differs from what it published: {different}")


@cli.command()
@_output_dir
@click.option("--json", "as_json", is_flag=True, help="Print {table: digest} as JSON.")
def fingerprint(out: str, as_json: bool) -> None:
    """A content digest of every table of DIR's current release (order and storage do not matter)."""
    from driver.api import content_fingerprint
    from relspec.catalog import LOG_TABLES

    session = _built_session(out)
    names = sorted(name for name in session.catalog().schema().names() if name not in LOG_TABLES)
    digests = {name: content_fingerprint(session, name) for name in names}
    if as_json:
        _print_json(digests)
        return
    for name, digest in digests.items():
        stdout().print(f"{digest}  {name}", markup=False)


@cli.command()
@_output_dir
@click.argument("name")
@click.option("--run", "run_id", metavar="RUN_ID", help="The run to explain (default: the latest one).")
@click.option("--json", "as_json", is_flag=True, help="Print the decisions and their evidence as JSON.")
def why(out: str, name: str, run_id: str | None, as_json: bool) -> None:
    """Explain why a run decided what it did about NAME (a view, a published table, session, extraction
    or run): every decision, in plain words, with the evidence it cites."""
    from driver.questions import decisions_about
    from relspec.provenance import describe, explained_decisions

    session = _log_session(out)
    try:
        rows = decisions_about(session, name, run_id)
    except ValueError as err:
        raise CliError(str(err)) from None
    explained = explained_decisions(_plain_types(rows).to_pylist())
    if as_json:
        _print_json(explained)
        return
    stdout().print(f"run {explained[0].run_id}", style="bold", markup=False, highlight=False)
    for item in explained:
        for line in describe(item.decision, item.evidence):
            stdout().print(line, markup=False, highlight=False)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
@click.option("--png", "png", type=click.Path(path_type=Path), help="Render the graph to this PNG file (graphviz).")
@_option_errors
def dag(path: Path, as_json: bool, png: Path | None) -> None:
    """Show the Hamilton graph the driver factory builds, each node tagged with its role."""
    from driver.factory import pipeline_driver
    from driver.options import check_source_root
    from driver.reports import dag_report

    root = check_source_root(path)
    with tempfile.TemporaryDirectory(prefix="cpgflow-dag-") as scratch:  # the policy of a first build
        dr = pipeline_driver(root, scratch)
        graph = dag_report(dr)
        if png is not None:
            if shutil.which("dot") is None:
                raise CliError("rendering a PNG needs graphviz's `dot` (apt-get install graphviz)")
            dr.display_all_functions(str(png.with_suffix("")), render_kwargs={"format": "png", "view": False},
                                     show_legend=False)
            stdout().print(f"wrote {png}")
    if as_json or png is None:
        _print_json(graph)


def _built_session(out: str, run_id: str | None = None, reading: str | None = None) -> SessionContext:
    """A session over DIR's current release (or over what run ``run_id`` wrote): every table, or
    those the SQL ``reading`` names."""
    from driver.api import NotReleased, open_session
    from relspec.catalog import RUNS_TABLE

    _existing_output(out)
    try:
        session, registered = open_session(_location(out), run_id=run_id, storage_options=_storage_options(),
                                           reading=reading)
    except NotReleased as err:
        if _output_store(out).version(RUNS_TABLE) is None:
            registered = []
        else:
            raise CliError(str(err)) from None
    if not registered:
        raise CliError(f"DIR '{out}' holds no cpgflow tables (run `cpgflow build PATH --out {out}` first)")
    return session


def _log_session(out: str) -> SessionContext:
    """A session over DIR's logs (runs, releases, provenance) as they are now: they record every run,
    released or not."""
    from driver.engine import new_session
    from relspec.catalog import LOG_TABLES

    store = _output_store(out)
    session = new_session()
    for name in LOG_TABLES:
        if store.version(name) is not None:
            store.register(session, name)
    return session


def _existing_output(out: str) -> None:
    """DIR names an output: an existing folder, or a URI (whose tables the store then looks for)."""
    from driver.storage import is_object_store

    if not is_object_store(out) and not Path(out).is_dir():
        raise CliError(f"DIR '{out}' is not a directory")


def _output_store(out: str) -> DeltaTableStore:
    """The store of an existing output folder (its logs are read without a release)."""
    from driver.delta_store import DeltaTableStore
    from relspec.catalog import DatasetCatalog

    _existing_output(out)
    return DeltaTableStore(DatasetCatalog(_location(out)), _storage_options())


# How a build's summary words each view outcome (relspec.runs.Outcome).
_OUTCOME_WORDS = {"lazy": "lazy", "computed_staged": "computed and staged",
                  "computed_in_memory": "computed and held in memory", "reused": "reused", "published": "published",
                  "unneeded": "not needed"}


def _outcomes_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {_OUTCOME_WORDS.get(outcome, outcome.replace('_', ' '))}"
                     for outcome, count in counts.items())


def _plain_types(table: pa.Table) -> pa.Table:
    """DataFusion scans strings as view types, which CSV and JSON writers do not take."""
    import pyarrow as pa

    views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    schema = pa.schema([field.with_type(views.get(field.type, field.type)) for field in table.schema])
    return table.cast(schema)


def _python_values(table: pa.Table) -> pa.Table:
    """Nanosecond times as Arrow's text of them: a Python datetime holds microseconds, and without
    pandas (a read command does not load it) pyarrow refuses to drop the rest (``now()`` has them)."""
    import pyarrow as pa

    def nanoseconds(kind: pa.DataType) -> bool:
        temporal = pa.types.is_timestamp(kind) or pa.types.is_duration(kind) or pa.types.is_time64(kind)
        return temporal and kind.unit == "ns"

    return table.cast(pa.schema([field.with_type(pa.string()) if nanoseconds(field.type) else field
                                 for field in table.schema]))


def _nested_as_json(table: pa.Table) -> pa.Table:
    """CSV has no lists, structs or maps: such a column's values are written as JSON text."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [None if value is None else msgspec.json.encode(value).decode()
                    for value in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(text, type=pa.string()))
    return table


def _print_table(result: pa.Table, output_format: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    from rich.table import Table

    result = _plain_types(result)
    if output_format == "csv":
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(_nested_as_json(result), sink)
        _write(sink.getvalue().to_pybytes().decode())
    elif output_format == "json":
        _write(msgspec.json.encode(_python_values(result).to_pylist()).decode() + "\n")
    else:
        table = Table(*result.column_names, show_lines=False)
        for row in _python_values(result).to_pylist():
            table.add_row(*("" if value is None else str(value) for value in row.values()))
        stdout().print(table)
        stdout().print(f"{result.num_rows:,} rows", style="dim")


def _first_line(text: str) -> str:
    """One line for an error: its first line, and its root cause when that is a later line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    cause = lines[-1]
    return lines[0] if len(lines) == 1 or cause in lines[0] else f"{lines[0]}: {cause}"


@functools.cache
def _skip_collection_at_exit() -> None:
    """At interpreter exit, freeze the heap so the collector's last passes skip it: they walk every
    object the engines loaded (pandas, numpy, pyarrow) and took ~0.25 s of a 1.3 s query. Memory goes
    back to the OS with the process; Python never promises `__del__` at exit, and nothing here needs it."""
    atexit.register(gc.freeze)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    _skip_collection_at_exit()
    # Hamilton imports a plugin for every data library it finds installed (matplotlib, pandas, numpy
    # ...: ~1.2 s); the pipeline uses none of them. Before Hamilton is imported; a user's setting wins.
    os.environ.setdefault("HAMILTON_AUTOLOAD_EXTENSIONS", "0")
    logging.getLogger("hamilton").setLevel(logging.CRITICAL)
    try:
        cli.main(args=argv, prog_name="cpgflow", standalone_mode=False, obj={_WHOLE_PROCESS: argv is None})
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.NoArgsIsHelpError as err:
        click.echo(err.ctx.get_help() if err.ctx else str(err), err=True)
        return err.exit_code
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except CliError as err:
        click.echo(f"error: {err}", err=True)
        return err.exit_code
    except Exception as err:
        if os.environ.get("CPGFLOW_DEBUG"):
            raise
        click.echo(f"error: {type(err).__name__}: {_first_line(str(err))} (CPGFLOW_DEBUG=1 for the traceback)",
                   err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
