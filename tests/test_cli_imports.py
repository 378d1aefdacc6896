"""The CLI imports only what a command uses, and a successful command exits 0 every time.

Each command runs the real ``cpgflow`` console script in a fresh interpreter, under a wrapper that
writes ``sorted(sys.modules)`` to a file when the interpreter exits: what the command imported, all
of it, whether at module load or while it ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CPGFLOW, cli_env, query, run_cli, shown_limit, write_tree

from semantics.discovery import DEFAULT_MAX_FILE_BYTES

TINY = {"m.py": "def f(a, b=1):\n    return a\n", "n.py": "from m import f\n\nf(1)\n"}
COUNT_SQL = "SELECT count(*) AS n FROM cpg_nodes"

# The extractor, Hamilton and the pipeline: what building needs and reading never does.
PIPELINE = ("hamilton", "semantics.extract", "dataflows", "driver.factory", "driver.authority", "driver.engines",
            "driver.materializers")
# The engines: what reading a built output needs and printing help never does.
ENGINES = ("datafusion", "deltalake", "pyarrow", "pandas")
# What a command that reads a built output never loads: the pipeline, nor pandas, which DataFusion
# would load without using it (driver/cli.py, `_WithoutPandas`).
NOT_READ = (*PIPELINE, "pandas")

# Runs the console script as `python cpgflow ARGS...` would, after registering (first, so it runs
# last) an exit hook that records every module the process imported.
RECORD_MODULES = """
import atexit, runpy, sys
record, script = sys.argv[1], sys.argv[2]
def _record():
    with open(record, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
atexit.register(_record)
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


def run_recording(tmp_path: Path, *args: str | Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``cpgflow ARGS`` in a fresh interpreter; returns the run and the modules it imported."""
    record = tmp_path / "modules.txt"
    record.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c", RECORD_MODULES, str(record), str(CPGFLOW), *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=120, check=False)
    assert record.exists(), f"the exit hook did not run: {done.stderr}"
    return done, set(record.read_text().split())


def imported(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` (a package and everything under it) among ``modules``."""
    return sorted(name for name in modules if any(name == top or name.startswith(top + ".") for top in packages))


@pytest.fixture(scope="module")
def small_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small code base built with the CLI."""
    base = tmp_path_factory.mktemp("imports")
    root = write_tree(base / "src", TINY)
    out = base / "out"
    done = run_cli("build", root, "--out", out, "-j", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    return out


HELP_ARGS = [["--help"], ["build", "--help"], ["query", "--help"], ["plan", "--help"], ["callgraph", "--help"],
             ["runs", "--help"], ["dag", "--help"], ["callers", "--help"], ["export", "--help"], ["why", "--help"]]


@pytest.mark.parametrize("args", HELP_ARGS, ids=" ".join)
def test_help_imports_neither_the_pipeline_nor_the_engines(args, tmp_path):
    done, modules = run_recording(tmp_path, *args)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == run_cli(*args).stdout  # the wrapper changes nothing the user sees
    assert imported(modules, PIPELINE) == []
    assert imported(modules, ENGINES) == []


def test_help_lists_every_command(tmp_path):
    done, _ = run_recording(tmp_path, "--help")
    for command, summary in [("build", "Build the CPG of the code base at PATH into DIR."),
                             ("query", "Run a read-only SQL query over the tables of DIR and print the"),
                             ("plan", "Show the compiled plan for PATH without running it"),
                             ("callgraph", "Print the call graph of a built DIR as JSON"),
                             ("runs", "List the runs recorded in DIR"),
                             ("dag", "Show the Hamilton graph the driver factory builds"),
                             ("callers", "List what calls the function (or class, or external name)"),
                             ("callees", "List what the function (or module or class code) QUALNAME"),
                             ("unused", "List the functions nothing calls, imports or refers to"),
                             ("imports", "List which module imports which"),
                             ("subclasses", "List the classes that inherit from the class QUALNAME"),
                             ("points-to", "List what the variable VARIABLE"),
                             ("export", "Export the graph of DIR to OUT as GraphML"),
                             ("why", "Explain why a run decided what it did about NAME")]:
        assert any(line.split()[:1] == [command] and summary[:40] in " ".join(line.split())
                   for line in done.stdout.splitlines()), (command, done.stdout)
    build_help = run_cli("build", "--help").stdout
    assert "--max-file-bytes" in build_help and f"[default: {DEFAULT_MAX_FILE_BYTES}]" in " ".join(build_help.split())


@pytest.mark.parametrize("output_format", ["table", "csv", "json"])
def test_query_imports_no_pipeline(output_format, small_out, tmp_path):
    done, modules = run_recording(tmp_path, "query", small_out, COUNT_SQL, "--format", output_format)
    assert (done.returncode, done.stderr) == (0, "")
    assert imported(modules, NOT_READ) == []
    assert done.stdout == run_cli("query", small_out, COUNT_SQL, "--format", output_format).stdout
    if output_format == "json":
        assert json.loads(done.stdout) == query(small_out, COUNT_SQL)


def test_query_errors_import_no_pipeline(small_out, tmp_path):
    for args, message in [(["query", small_out, "DROP TABLE cpg_nodes"], "query refused: queries are read-only"),
                          (["query", small_out, "SELEC 1"], "query failed"),
                          (["query", tmp_path / "nope", "SELECT 1"], "is not a directory")]:
        done, modules = run_recording(tmp_path, *args)
        assert done.returncode == 1 and done.stderr.startswith("error: ") and message in done.stderr, done
        assert imported(modules, NOT_READ) == []


def test_runs_imports_no_pipeline(small_out, tmp_path):
    done, modules = run_recording(tmp_path, "runs", small_out, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert [record["status"] for record in json.loads(done.stdout)] == ["released"]
    assert imported(modules, NOT_READ) == []


@pytest.mark.parametrize("args", [["run"], ["cpg_nodes", "--json"], ["nope"]], ids=" ".join)
def test_why_imports_no_pipeline(args, small_out, tmp_path):
    done, modules = run_recording(tmp_path, "why", small_out, *args)
    assert done.returncode == (1 if "nope" in args else 0), done.stderr
    assert imported(modules, NOT_READ) == []


def test_callgraph_imports_no_pipeline(small_out, tmp_path):
    done, modules = run_recording(tmp_path, "callgraph", small_out)
    assert (done.returncode, done.stderr) == (0, "")
    assert isinstance(json.loads(done.stdout), dict)
    assert imported(modules, NOT_READ) == []


@pytest.mark.parametrize("args", [["callers", "{out}", "m.f", "--depth", "2"], ["unused", "{out}"],
                                  ["callers", "{out}", "m.nope"],
                                  ["export", "{out}", "{tmp}/g.graphml", "-f", "graphml"],
                                  ["export", "{out}", "{tmp}/neo4j", "-f", "neo4j-csv"]], ids=" ".join)
def test_questions_and_exports_import_no_pipeline(args, small_out, tmp_path):
    done, modules = run_recording(tmp_path, *(arg.format(out=small_out, tmp=tmp_path) for arg in args))
    assert done.returncode == (1 if "m.nope" in args else 0), done.stderr
    assert imported(modules, NOT_READ) == []


def test_query_exits_zero_every_time(small_out):
    """No abort at interpreter exit from a native thread pool (pyarrow's dataset scanner does, now
    and then): ten queries in a row, every one exits 0 with nothing on stderr."""
    runs = [run_cli("query", small_out, COUNT_SQL, "--format", "csv") for _ in range(10)]
    assert [done.returncode for done in runs] == [0] * 10, [done.stderr for done in runs]
    assert {done.stderr for done in runs} == {""}
    assert {done.stdout for done in runs} == {f'"n"\n{query(small_out, COUNT_SQL)[0]["n"]}\n'}


def test_reading_session_is_configured_as_the_build_session(small_out):
    """`open_session` makes its session without `driver.engines` (which carries Hamilton nodes), from
    `driver.engine` as the build does: every setting is the build session's, so a query sees the types
    the views were built with — but for the memory its operators may hold, which is the interactive
    query profile's (a quarter of memory, where a build's holds half)."""
    from driver.api import open_session
    from driver.engines import session
    from relspec.profiles import compile_session_profile

    settings = "SELECT name, value FROM information_schema.df_settings ORDER BY name"
    reading, _ = open_session(small_out)
    read = {row["name"]: row["value"] for row in reading.sql(settings).to_arrow_table().to_pylist()}
    built = {row["name"]: row["value"] for row in
             session(compile_session_profile("full_build")).sql(settings).to_arrow_table().to_pylist()}
    limit = "datafusion.runtime.memory_limit"
    assert {name: value for name, value in read.items() if name != limit} == \
        {name: value for name, value in built.items() if name != limit}
    interactive, build = (compile_session_profile(workload).memory_limit for workload in ("interactive_query",
                                                                                          "full_build"))
    assert (read[limit], built[limit]) == (shown_limit(interactive), shown_limit(build))


IN_PROCESS_READ = """
import sys
import pyarrow as pa
from driver.cli import main
status = main(["callgraph", sys.argv[1]])
assert status == 0, status
import pandas
frame = pandas.DataFrame({"a": [1]})
print(pa.record_batch(frame).num_rows, pa.array([1], pa.timestamp("ns")).to_pylist()[0].nanosecond)
"""


def test_a_read_command_run_in_process_keeps_pandas(small_out):
    """A script that runs a read command in its own process (``main(argv)``) keeps pyarrow's pandas
    integration, which refusing pandas would turn off for the process: only the console script's
    command (``main()`` reading ``sys.argv``) goes without it."""
    done = subprocess.run([sys.executable, "-c", IN_PROCESS_READ, str(small_out)], capture_output=True, text=True,
                          env=cli_env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1 1"


NANOSECONDS_SQL = ("SELECT to_timestamp('2026-12-03T04:05:06.123456789Z') AS t, "
                   "arrow_cast(1, 'Duration(Nanosecond)') AS d")


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_query_prints_nanosecond_times_without_pandas(output_format, small_out, tmp_path):
    """A Python datetime holds microseconds: without pandas the nanoseconds are printed as Arrow's text."""
    done, modules = run_recording(tmp_path, "query", small_out, NANOSECONDS_SQL, "--format", output_format)
    assert (done.returncode, done.stderr) == (0, "")
    assert imported(modules, ("pandas",)) == []
    if output_format == "json":
        assert json.loads(done.stdout) == [{"t": "2026-12-03 04:05:06.123456789", "d": "1"}]
    else:
        assert "2026-12-03 04:05:06.123456789" in done.stdout


def test_build_imports_no_plotting_or_dataframe_plugins(tmp_path):
    """Hamilton would import a plugin for every data library it finds installed (matplotlib alone
    took ~1 s); the pipeline uses none of them, so a build loads none."""
    root = write_tree(tmp_path / "src", TINY)
    done, modules = run_recording(tmp_path, "build", root, "--out", tmp_path / "out", "-j", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "hamilton.driver" in modules
    assert imported(modules, ("matplotlib", "plotly", "polars", "hamilton.plugins.pandas_extensions")) == []


def test_a_session_opened_for_a_query_registers_the_tables_it_names(small_out):
    """`open_session(reading=SQL)` registers what the SQL names and nothing else (`cpgflow callgraph`
    opens its two tables, not the output's ~30); names are matched whole and case-blind."""
    from driver.api import open_session
    from driver.reports import CALL_GRAPH_SQL

    _, everything = open_session(small_out)
    session, registered = open_session(small_out, reading="select count(*) from CPG_NODES join cpg_nodes_x")
    assert registered == ["cpg_nodes"] and len(everything) > 10
    assert session.sql("SELECT count(*) AS n FROM cpg_nodes").to_arrow_table().column("n")[0].as_py() > 0
    with pytest.raises(Exception, match="cpg_edges"):
        session.sql("SELECT * FROM cpg_edges")
    assert sorted(open_session(small_out, reading=CALL_GRAPH_SQL)[1]) == ["cpg_edges", "cpg_nodes"]
