"""The `cpgflow` command line: build + query, output formats, and every user error as one stderr line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import assert_one_line_error, query, run_cli, write_tree

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
    assert "extraction skipped for 1 unchanged file" in second.stdout
    assert "0 extracted" in second.stdout
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
    assert "extraction skipped for 1 unchanged file" in capsys.readouterr().out
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
    }


BAD_CASE_NAMES = [  # the keys of _bad_cases, for test ids
    "missing PATH", "missing --out", "PATH does not exist", "PATH is a file", "DIR under a regular file",
    "DIR is a regular file", "DIR under /proc", "--jobs -1", "--jobs not a number", "--max-file-bytes 0",
    "unknown option", "unknown command", "query DIR does not exist", "query DIR with no tables",
    "query DIR is a file", "query missing SQL", "bad SQL syntax", "unknown table", "unknown column",
    "execution-time error", "bad --format",
]


def test_bad_case_list_is_complete(tmp_path, tiny_built):
    assert sorted(_bad_cases(tmp_path, tiny_built[1])) == sorted(BAD_CASE_NAMES)


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_arguments_console_script(case, tmp_path, tiny_built):
    argv, fragment = _bad_cases(tmp_path, tiny_built[1])[case]
    done = run_cli(*argv)
    assert done.returncode != 0, done
    assert_one_line_error(done.stderr)
    assert fragment in done.stderr, done.stderr
    assert done.stdout == ""
    assert "CPGFLOW_DEBUG" not in done.stderr, "a user error reported as an unexpected one"


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_arguments_in_process(case, tmp_path, tiny_built, capsys):
    argv, fragment = _bad_cases(tmp_path, tiny_built[1])[case]
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 0
    assert_one_line_error(captured.err)
    assert fragment in captured.err, captured.err
    assert captured.out == ""


def test_failed_build_creates_no_output(tmp_path):
    out = tmp_path / "out"
    done = run_cli("build", tmp_path / "missing", "--out", out)
    assert done.returncode != 0
    assert not out.exists()


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
