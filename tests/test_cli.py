"""The `cpgflow` command line: build + query, output formats, and every user error as one stderr line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import CPGFLOW, assert_one_line_error, cli_env, query, run_cli, write_tree

from driver.cli import main

TINY = {"m.py": "def f(a, b=1):\n    return a\n"}
TINY_SQL = ("SELECT kind, name, qualname, line, col FROM cpg_nodes "
            "WHERE kind IN ('MODULE', 'FUNCTION', 'PARAMETER') ORDER BY bstart, kind")
TINY_CSV = (
    '"kind","name","qualname","line","col"\n'
    '"FUNCTION","f","m.f",1,0\n'
    '"MODULE","m","m",1,0\n'
    '"PARAMETER","a",,1,6\n'
    '"PARAMETER","b",,1,9\n'
)
TINY_JSON = [
    {"kind": "FUNCTION", "name": "f", "qualname": "m.f", "line": 1, "col": 0},
    {"kind": "MODULE", "name": "m", "qualname": "m", "line": 1, "col": 0},
    {"kind": "PARAMETER", "name": "a", "qualname": None, "line": 1, "col": 6},
    {"kind": "PARAMETER", "name": "b", "qualname": None, "line": 1, "col": 9},
]


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory):
    """The tiny code base built twice through the real console script; returns (root, out, runs)."""
    base = tmp_path_factory.mktemp("cli")
    root = write_tree(base / "tiny", TINY)
    out = base / "out"
    first = run_cli("build", root, "--out", out, "-j", "1")
    second = run_cli("build", root, "--out", out, "-j", "1", "--quiet")
    return root, out, (first, second)


# -- the happy path, through the real console script ----------------------------------------------------


def test_build_twice(tiny_built):
    root, out, (first, second) = tiny_built
    for run in (first, second):
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        assert f"Built the CPG of {root.resolve()} into {out.resolve()}" in run.stdout
        counts = re.search(r"files (\d+)  lines (\d+)  nodes (\d+)  edges (\d+)  diagnostics (\d+)", run.stdout)
        assert counts is not None, run.stdout
        files, lines, nodes, edges, diagnostics = map(int, counts.groups())
        assert (files, lines, diagnostics) == (1, 2, 0)
        assert nodes == _count(out, "cpg_nodes") and nodes >= 10
        assert edges == _count(out, "cpg_edges") and edges >= 8
    assert "extracted 1 file" in first.stdout
    assert "skipped" not in first.stdout
    # each view outcome in words: a tiny code base's staged views are held in memory
    outcomes = re.search(r"views: (.*) \(run ", first.stdout)
    assert outcomes is not None, first.stdout
    words = [re.fullmatch(r"\d+ (.*)", part).group(1) for part in outcomes.group(1).split(", ")]
    assert set(words) <= {"lazy", "computed and staged", "computed and held in memory", "reused", "published"}
    assert "computed and held in memory" in words and "published" in words
    assert "changes: 0 changed, 0 added, 0 removed; 1 unchanged (extraction skipped)" in second.stdout
    assert second.stderr == ""  # --quiet: no progress bar


def _count(out: Path, table: str) -> int:
    return query(out, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def test_query_csv(tiny_built):
    _, out, _ = tiny_built
    done = run_cli("query", out, TINY_SQL, "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == TINY_CSV
    assert done.stderr == ""


def test_query_json(tiny_built):
    _, out, _ = tiny_built
    done = run_cli("query", out, TINY_SQL, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == TINY_JSON
    assert done.stdout == json.dumps(TINY_JSON, separators=(",", ":")) + "\n"


def test_query_table(tiny_built):
    _, out, _ = tiny_built
    done = run_cli("query", out, TINY_SQL)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "kind" in line)
    assert [cell.strip() for cell in header.strip("│┃ ").replace("┃", "│").split("│")] == [
        "kind", "name", "qualname", "line", "col"]
    body = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in lines if line.startswith("│")]
    assert body == [["FUNCTION", "f", "m.f", "1", "0"], ["MODULE", "m", "m", "1", "0"],
                    ["PARAMETER", "a", "", "1", "6"], ["PARAMETER", "b", "", "1", "9"]]
    assert lines[-1] == "4 rows"


def test_query_the_documented_tables(tiny_built):
    _, out, _ = tiny_built
    sql = ("SELECT (SELECT count(*) FROM cpg_edges WHERE kind IN ('CONTAINS', 'DEFINES', 'PARAMETER_OF')) AS edges, "
           "(SELECT count(*) FROM cpg_props) > 0 AS props, "
           "(SELECT count(*) FROM cpg_diagnostics) AS diagnostics, (SELECT count(*) FROM ex_files) AS files")
    done = run_cli("query", out, sql, "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"edges": 8, "props": True, "diagnostics": 0, "files": 1}]


def test_query_empty_result(tiny_built):
    _, out, _ = tiny_built
    done = run_cli("query", out, "SELECT path FROM cpg_diagnostics", "--format", "json")
    assert (done.returncode, done.stdout) == (0, "[]\n")
    done = run_cli("query", out, "SELECT path, code FROM cpg_diagnostics", "--format", "csv")
    assert (done.returncode, done.stdout) == (0, '"path","code"\n')


# -- in-process: main() returns the exit code -----------------------------------------------------------


def test_main_build_and_query_in_process(tmp_path, capsys):
    root = write_tree(tmp_path / "tiny", TINY)
    out = tmp_path / "out"
    assert main(["build", str(root), "--out", str(out), "-j", "1", "--quiet"]) == 0
    assert "extracted 1 file" in capsys.readouterr().out
    assert main(["build", str(root), "--out", str(out), "-j", "1", "--quiet"]) == 0
    assert "0 changed, 0 added, 0 removed; 1 unchanged" in capsys.readouterr().out
    assert main(["query", str(out), TINY_SQL, "--format", "csv"]) == 0
    assert capsys.readouterr().out == TINY_CSV


def test_build_with_include_exclude_and_two_jobs(tmp_path):
    root = write_tree(tmp_path / "src", {"pkg/a.py": "A = 1\n", "pkg/gen_b.py": "B = 1\n", "tests/t.py": "T = 1\n",
                                         "pkg/c.py": "C = 1\n"})
    out = tmp_path / "out"
    done = run_cli("build", root, "--out", out, "--jobs", "2", "--exclude", "tests", "--exclude", "pkg/gen_*.py",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    listed = run_cli("query", out, "SELECT path FROM cpg_nodes WHERE kind = 'MODULE' ORDER BY path", "-f", "csv")
    assert listed.stdout == '"path"\n"pkg/a.py"\n"pkg/c.py"\n'
    done = run_cli("build", root, "--out", tmp_path / "out2", "--include", "tests", "-q", "-j", "1")
    assert done.returncode == 0, done.stderr
    listed = run_cli("query", tmp_path / "out2", "SELECT path FROM cpg_nodes WHERE kind = 'MODULE'", "-f", "csv")
    assert listed.stdout == '"path"\n"tests/t.py"\n'


# -- user errors: one line on stderr, non-zero exit, no traceback ----------------------------------------


def _bad_cases(tmp: Path, built: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, a fragment the one error line must contain)."""
    root = write_tree(tmp / "src", TINY)
    a_file = tmp / "regular_file.txt"
    a_file.write_text("not a folder\n")
    empty = tmp / "empty_dir"
    empty.mkdir()
    return {
        "missing PATH": (["build", "--out", str(tmp / "o1")], "PATH"),
        "missing --out": (["build", str(root)], "--out"),
        "PATH does not exist": (["build", str(tmp / "nope"), "--out", str(tmp / "o2")], "does not exist"),
        "PATH is a file": (["build", str(a_file), "--out", str(tmp / "o3")], "not a directory"),
        "DIR under a regular file": (["build", str(root), "--out", str(a_file / "out")], str(a_file / "out")),
        "DIR is a regular file": (["build", str(root), "--out", str(a_file)], str(a_file)),
        "DIR under /proc": (["build", str(root), "--out", "/proc/cpgflow-test-out"], "/proc/cpgflow-test-out"),
        "--jobs -1": (["build", str(root), "--out", str(tmp / "o4"), "--jobs", "-1"], "--jobs"),
        "--jobs not a number": (["build", str(root), "--out", str(tmp / "o5"), "--jobs", "many"], "--jobs"),
        "--max-file-bytes 0": (["build", str(root), "--out", str(tmp / "o6"), "--max-file-bytes", "0"],
                               "--max-file-bytes"),
        "unknown option": (["build", str(root), "--out", str(tmp / "o7"), "--bogus"], "--bogus"),
        "unknown command": (["frobnicate"], "frobnicate"),
        "query DIR does not exist": (["query", str(tmp / "nope"), "SELECT 1"], str(tmp / "nope")),
        "query DIR with no tables": (["query", str(empty), "SELECT 1"], "no cpgflow tables"),
        "query DIR is a file": (["query", str(a_file), "SELECT 1"], str(a_file)),
        "query missing SQL": (["query", str(built)], "SQL"),
        "bad SQL syntax": (["query", str(built), "SELEC kind FROM cpg_nodes"], "query failed"),
        "unknown table": (["query", str(built), "SELECT * FROM no_such_table"], "no_such_table"),
        "unknown column": (["query", str(built), "SELECT no_such_column FROM cpg_nodes"], "no_such_column"),
        "execution-time error": (["query", str(built), "SELECT CAST('x' AS INT) AS n"], "query failed"),
        "bad --format": (["query", str(built), "SELECT 1", "--format", "xml"], "xml"),
        "--out empty": (["build", str(root), "--out", ""], "--out"),
        "--jobs too many": (["build", str(root), "--out", str(tmp / "o8"), "--jobs", "99999999999999999999"],
                            "--jobs"),
        "--cache-policy unknown view": (["build", str(root), "--out", str(tmp / "o9"), "--cache-policy",
                                         "nosuchview=none"], "no view is named 'nosuchview'"),
        "--cache-policy output not published": (["build", str(root), "--out", str(tmp / "o10"), "--cache-policy",
                                                 "cpg_nodes=none"], "published output"),
        "--cache-policy intermediate published": (["build", str(root), "--out", str(tmp / "o11"),
                                                   "--cache-policy", "call_edges=delta_output"], "only the outputs"),
        "--cache-policy unknown policy": (["build", str(root), "--out", str(tmp / "o12"), "--cache-policy",
                                           "call_edges=memory"], "--cache-policy"),
        "plan --cache-policy unknown view": (["plan", str(root), "--cache-policy", "nosuchview=none"],
                                             "no view is named"),
        "query COPY TO a file": (["query", str(built), f"COPY (SELECT 1 AS n) TO '{tmp / 'copied.csv'}'"],
                                 "read-only (DML not supported: COPY)"),
        "query CREATE": (["query", str(built), "CREATE TABLE t AS SELECT 1 AS n"], "read-only (DDL"),
        "query DROP": (["query", str(built), "DROP TABLE cpg_nodes"], "read-only (DDL"),
        "query SET": (["query", str(built), "SET datafusion.execution.batch_size = 1"], "read-only (Statement"),
    }


BAD_CASE_NAMES = [  # the keys of _bad_cases, for test ids
    "missing PATH", "missing --out", "PATH does not exist", "PATH is a file", "DIR under a regular file",
    "DIR is a regular file", "DIR under /proc", "--jobs -1", "--jobs not a number", "--max-file-bytes 0",
    "unknown option", "unknown command", "query DIR does not exist", "query DIR with no tables",
    "query DIR is a file", "query missing SQL", "bad SQL syntax", "unknown table", "unknown column",
    "execution-time error", "bad --format", "--out empty", "--jobs too many", "--cache-policy unknown view",
    "--cache-policy output not published", "--cache-policy intermediate published", "--cache-policy unknown policy",
    "plan --cache-policy unknown view", "query COPY TO a file", "query CREATE", "query DROP", "query SET",
]


def test_bad_case_list_is_complete(tmp_path, tiny_built):
    assert sorted(_bad_cases(tmp_path, tiny_built[1])) == sorted(BAD_CASE_NAMES)


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_arguments_console_script(case, tmp_path, tiny_built):
    argv, fragment = _bad_cases(tmp_path, tiny_built[1])[case]
    done = run_cli(*argv, cwd=tmp_path)  # a relative or empty DIR wrongly accepted lands in tmp_path
    assert done.returncode != 0, done
    assert_one_line_error(done.stderr)
    assert fragment in done.stderr, done.stderr
    assert done.stdout == ""
    assert "CPGFLOW_DEBUG" not in done.stderr, "a user error reported as an unexpected one"


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_arguments_in_process(case, tmp_path, tiny_built, capsys, monkeypatch):
    argv, fragment = _bad_cases(tmp_path, tiny_built[1])[case]
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 0
    assert_one_line_error(captured.err)
    assert fragment in captured.err, captured.err
    assert captured.out == ""


@pytest.mark.parametrize("options", [
    ["--jobs", "99999999999999999999"], ["--jobs", "1025"], ["--cache-policy", "nosuchview=none"],
    ["--cache-policy", "cpg_edges=delta_staging"], ["--max-file-bytes", "0"],
], ids=" ".join)
def test_refused_options_touch_nothing(options, tmp_path):
    """A wrong option is refused before the output folder is created."""
    root = write_tree(tmp_path / "src", TINY)
    out = tmp_path / "out"
    done = run_cli("build", root, "--out", out, *options)
    assert done.returncode == 1
    assert_one_line_error(done.stderr)
    assert not out.exists()


def test_failed_build_creates_no_output(tmp_path):
    out = tmp_path / "out"
    done = run_cli("build", tmp_path / "missing", "--out", out)
    assert done.returncode != 0
    assert not out.exists()


def test_empty_out_writes_nothing_into_the_current_directory(tmp_path):
    root = write_tree(tmp_path / "src", TINY)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_cli("build", root, "--out", "", cwd=cwd)
    assert done.returncode == 1
    assert_one_line_error(done.stderr)
    assert list(cwd.iterdir()) == []


def test_query_writes_nothing(tmp_path, tiny_built):
    target = tmp_path / "copied.csv"
    listing = sorted(path.relative_to(tiny_built[1]) for path in tiny_built[1].rglob("*"))
    assert run_cli("query", tiny_built[1], f"COPY (SELECT 1 AS n) TO '{target}'").returncode == 1
    assert run_cli("query", tiny_built[1], "DROP TABLE cpg_nodes").returncode == 1
    assert run_cli("query", tiny_built[1], "INSERT INTO cpg_nodes SELECT * FROM cpg_nodes").returncode == 1
    assert not target.exists()
    assert sorted(path.relative_to(tiny_built[1]) for path in tiny_built[1].rglob("*")) == listing


def test_query_csv_encodes_nested_columns_as_json(tiny_built):
    done = run_cli("query", tiny_built[1], "SELECT make_array(1, 2) AS l, named_struct('a', 'x') AS s, "
                   "CAST(NULL AS INT[]) AS n, 3 AS i", "-f", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == '"l","s","n","i"\n"[1,2]","{""a"":""x""}",,3\n'


def test_empty_build_warns(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("build", empty, "--out", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"warning: no Python file matched under {empty} (check PATH, --include and "
                                        "--exclude)"]


def test_no_arguments_prints_help(capsys):
    code = main([])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "build" in captured.out + captured.err and "query" in captured.out + captured.err
    assert code in (0, 2)


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert main(["build", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--max-file-bytes" in text and "--include" in text


@pytest.mark.parametrize(("sql", "cause"), [
    ("SELECT CAST('x' AS INT) AS n", "Cannot cast string 'x'"),  # fails while optimizing (constant folding)
    ("SELECT CAST(kind AS INT) AS n FROM cpg_nodes", "Cannot cast string"),  # fails while executing
    ("SELECT 1/0 AS n", "Divide by zero"),
])
def test_query_error_line_names_the_cause(sql, cause, tiny_built, capsys):
    """DataFusion wraps errors ("Optimizer rule ... failed / caused by / <the cause>"): the one line
    must still say what is wrong with the query."""
    _, out, _ = tiny_built
    assert main(["query", str(out), sql]) != 0
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert cause in err, err


def _run_into_closed_pipe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the console script with its standard output a pipe nobody reads any more (`| head` done)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe fails (EPIPE) from the first byte on
    try:
        return subprocess.run([str(CPGFLOW), *map(str, args)], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              env=cli_env(), timeout=300, check=False)
    finally:
        os.close(write_end)


def test_build_into_a_closed_pipe_succeeds(tmp_path):
    """`cpgflow build ... | head -1` under `set -o pipefail`: the build commits and says so by its status."""
    root = write_tree(tmp_path / "tiny", TINY)
    done = _run_into_closed_pipe("build", root, "--out", tmp_path / "out", "-j", "1", "--quiet")
    assert (done.returncode, done.stderr) == (0, "")
    assert _count(tmp_path / "out", "cpg_nodes") >= 10  # released


@pytest.mark.parametrize("argv", [("query", "SELECT * FROM cpg_nodes"), ("query", "SELECT * FROM cpg_nodes", "--format",
                                  "csv"), ("query", "SELECT * FROM cpg_nodes", "--format", "json"), ("callgraph",),
                                  ("runs",)], ids=["table", "csv", "json", "callgraph", "runs"])
def test_reading_commands_into_a_closed_pipe_exit_zero(argv, tiny_built):
    _, out, _ = tiny_built
    done = _run_into_closed_pipe(argv[0], out, *argv[1:])
    assert (done.returncode, done.stderr) == (0, "")
