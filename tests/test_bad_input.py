"""A code base full of hostile files: every bad file becomes a diagnostic row, the build goes on.

One tree, built once in-process (jobs=1) and once through the real CLI with two worker processes;
each expectation below was worked out by hand from what CPython does with the file.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import CPG_TABLE_NAMES, build, query, row_set, run_cli, table_rows, write_tree

MAX_FILE_BYTES = 30_000

GOOD = '''\
"""A good module."""
import os


class Good:
    """Good things."""

    def method(self, x, *, y=1):
        return os.path.join(x, "y", sep=y)


def helper(a, *args, **kw):
    return [a for _ in args]
'''

# Latin-1 with a PEP 263 cookie: non-ASCII bytes in a comment, in strings, and *before* nodes on the
# same line, so that UTF-8 columns (what `ast` reports) and latin-1 byte offsets differ.
LATIN1 = (
    "# -*- coding: latin-1 -*-\n"
    "# caf\xe9, cr\xe8me br\xfbl\xe9e, na\xefve \xa7 \xb1 \xbd\n"
    '"""Module \xe0 la latin-1."""\n'
    "\n"
    "\n"
    "class Menu:\n"
    '    """Cr\xe8me br\xfbl\xe9e."""\n'
    "\n"
    "    def price(self, dish='g\xe2teau'):\n"
    "        label = ('\xe9\xe9\xe9', describe(dish, sep='\xb7'))\n"
    "        return label\n"
    "\n"
    "\n"
    "def describe(dish, sep):\n"
    "    return dish + sep + '\xfc'  # \xfc\xfc\n"
).encode("latin-1")

BINARY = b"\x00\x00\x00\x00" + bytes(range(256)) + random.Random(20240501).randbytes(512)

FILES: dict[str, bytes | str] = {
    "good.py": GOOD,
    "syntax_error.py": "x = 1\ndef broken(:\n    pass\n",
    "latin1.py": LATIN1,
    "undecodable.py": b"x = 1\ny = 2\nz = '\xff\xfe'\n",
    "undecodable_first_line.py": b"z = '\xff\xfe'\n",
    "bad_cookie.py": b"# -*- coding: no-such-codec -*-\nx = 1\n",
    "bom_and_latin1_cookie.py": b"\xef\xbb\xbf# -*- coding: latin-1 -*-\nx = 1\n",
    "ascii_cookie.py": b"# coding: ascii\nx = '\xe9'\n",
    "bom.py": b"\xef\xbb\xbfdef f():\n    return '\xc3\xa9'\n",
    "binary.py": BINARY,
    "binary_png.py": b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(300),
    "nul_bytes.py": b"x = 1\n\x00\x00\ny = 2\n",
    "empty.py": b"",
    "deep_unary.py": "x = " + "-" * 10_000 + "1\n",
    "deep_parens.py": "x = " + "(" * 10_000 + "1" + ")" * 10_000 + "\n",
    "deep_sum.py": "x = " + "+".join(["1"] * 5_000) + "\n",
    "deep_but_fine.py": "x = " + "+".join(["1"] * 1_000) + "\n",
    "too_big.py": "# filler line\n" * 3_000,  # 42,000 bytes > MAX_FILE_BYTES
}
SYMLINK_OUT = "symlink_out.py"
SYMLINK_IN = "alias_of_good.py"

# (path, stage, code, line or ... when not asserted) -- hand-checked:
EXPECTED_DIAGNOSTICS = [
    ("syntax_error.py", "parse", "syntax_error", 2),
    ("undecodable.py", "decode", "undecodable", 3),
    # no cookie, invalid UTF-8: undecodable, whichever line the bad byte is on
    ("undecodable_first_line.py", "decode", "undecodable", 1),
    ("bad_cookie.py", "decode", "bad_encoding_declaration", ...),
    # a UTF-8 BOM contradicting a latin-1 cookie
    ("bom_and_latin1_cookie.py", "decode", "bad_encoding_declaration", ...),
    ("ascii_cookie.py", "decode", "undecodable", 2),
    ("binary.py", "decode", "undecodable", ...),
    ("binary_png.py", "decode", "undecodable", 1),
    # decodes fine, but the parser refuses NUL: invalid_source, not a syntax error
    ("nul_bytes.py", "parse", "invalid_source", ...),
    # CPython's parser runs out of stack (MemoryError) / recursion (RecursionError): too complex
    ("deep_unary.py", "parse", "too_complex", ...),
    ("deep_sum.py", "parse", "too_complex", ...),
    # CPython's tokenizer rejects more than 200 nested parentheses as a SyntaxError
    ("deep_parens.py", "parse", "syntax_error", 1),
    (SYMLINK_OUT, "discover", "symlink_outside_root", None),
    ("too_big.py", "discover", "file_too_large", None),
]

NO_DIAGNOSTIC = ["good.py", "latin1.py", "bom.py", "empty.py", "deep_but_fine.py", SYMLINK_IN]
DISCOVERED = sorted(set(FILES) | {SYMLINK_IN})  # every .py but the symlink out of the root
UNEXTRACTED = sorted(path for path, *_ in EXPECTED_DIAGNOSTICS if path != SYMLINK_OUT)


def _write_code_base(base: Path) -> Path:
    root = write_tree(base / "src", FILES)
    outside = write_tree(base / "outside", {"target.py": "def outside():\n    return 1\n"})
    (root / SYMLINK_OUT).symlink_to(outside / "target.py")
    (root / SYMLINK_IN).symlink_to("good.py")
    return root


@pytest.fixture(scope="module")
def bad_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    root = _write_code_base(base)
    out = base / "out"
    summary = build(root, out, jobs=1, max_file_bytes=MAX_FILE_BYTES)
    return root, out, summary


@pytest.fixture(scope="module")
def good_alone(tmp_path_factory):
    base = tmp_path_factory.mktemp("good_alone")
    root = write_tree(base / "src", {"good.py": GOOD})
    out = base / "out"
    build(root, out, jobs=1)
    return out


def _diagnostics(out: Path) -> dict[str, list[dict]]:
    by_path: dict[str, list[dict]] = {}
    for row in table_rows(out, "cpg_diagnostics"):
        by_path.setdefault(row["path"], []).append(row)
    return by_path


def test_build_succeeds_and_summary(bad_build):
    _, _, summary = bad_build
    assert summary.files_removed == 0
    assert summary.nodes_by_kind["MODULE"] == len(DISCOVERED)
    assert summary.files_extracted + summary.files_reused == len(DISCOVERED) - 1  # too_big.py is not extracted
    assert summary.files == len(DISCOVERED) + 1  # every path accounted for, the symlink out included


def test_summary_diagnostic_counts(bad_build):
    _, _, summary = bad_build
    expected: dict[str, int] = {}
    for _, _, code, _ in EXPECTED_DIAGNOSTICS:
        expected[code] = expected.get(code, 0) + 1
    assert summary.diagnostics_by_code == expected


def test_exactly_the_bad_files_have_diagnostics(bad_build):
    _, out, _ = bad_build
    by_path = _diagnostics(out)
    assert sorted(by_path) == sorted(path for path, *_ in EXPECTED_DIAGNOSTICS)
    assert all(len(rows) == 1 for rows in by_path.values()), by_path


@pytest.mark.parametrize(("path", "stage", "code", "line"), EXPECTED_DIAGNOSTICS,
                         ids=[d[0] for d in EXPECTED_DIAGNOSTICS])
def test_diagnostic_of_each_bad_file(bad_build, path, stage, code, line):
    _, out, _ = bad_build
    rows = _diagnostics(out).get(path, [])
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["stage"], row["code"]) == (stage, code), row
    assert row["message"], row
    assert row["file_id"], row
    if line is not ...:
        assert row["line"] == line, row


@pytest.mark.parametrize("path", NO_DIAGNOSTIC)
def test_no_diagnostic_for_good_files(bad_build, path):
    _, out, _ = bad_build
    assert path not in _diagnostics(out)


def test_one_module_per_discovered_file(bad_build):
    _, out, _ = bad_build
    modules = query(out, "SELECT path, qualname FROM cpg_nodes WHERE kind = 'MODULE'")
    assert sorted(row["path"] for row in modules) == DISCOVERED
    assert SYMLINK_OUT not in {row["path"] for row in modules}
    assert {row["path"]: row["qualname"] for row in modules}["deep_but_fine.py"] == "deep_but_fine"
    # the file that is not read is not in cpg_nodes at all
    assert query(out, f"SELECT count(*) AS n FROM cpg_nodes WHERE path = '{SYMLINK_OUT}'") == [{"n": 0}]


@pytest.mark.parametrize("path", UNEXTRACTED)
def test_unextracted_file_is_just_its_module(bad_build, path):
    """A file that could not be decoded/parsed/read has its MODULE (spanning the whole file) and nothing else."""
    root, out, _ = bad_build
    nodes = query(out, f"SELECT kind, bstart, bend, line, col FROM cpg_nodes WHERE path = '{path}'")
    size = (root / path).stat().st_size
    assert nodes == [{"kind": "MODULE", "bstart": 0, "bend": size, "line": 1, "col": 0}]
    edges = query(out, "SELECT count(*) AS n FROM cpg_edges e JOIN cpg_nodes n ON e.src = n.node_id "
                       f"WHERE n.path = '{path}'")
    assert edges == [{"n": 0}]


def test_empty_file(bad_build):
    _, out, _ = bad_build
    module = query(out, "SELECT name, qualname, bstart, bend, line, col, end_line, end_col FROM cpg_nodes "
                        "WHERE path = 'empty.py' AND kind = 'MODULE'")
    assert module == [{"name": "empty", "qualname": "empty", "bstart": 0, "bend": 0, "line": 1, "col": 0,
                       "end_line": 1, "end_col": 0}]
    files = query(out, "SELECT size_bytes, line_count, parsed FROM ex_files WHERE path = 'empty.py'")
    assert files == [{"size_bytes": 0, "line_count": 0, "parsed": True}]


def test_good_module_nodes_all_present(bad_build, good_alone):
    """good.py's nodes, edges and props are exactly those of a build of good.py alone."""
    _, out, _ = bad_build
    for table, where in (("cpg_nodes", "path = 'good.py'"),
                         ("cpg_edges", "file_id IN (SELECT file_id FROM ex_files WHERE path = 'good.py')"),
                         ("cpg_props", "file_id IN (SELECT file_id FROM ex_files WHERE path = 'good.py')")):
        in_bad = row_set(query(out, f"SELECT * FROM {table} WHERE {where}"))
        alone = row_set(query(good_alone, f"SELECT * FROM {table} WHERE {where}"))
        assert in_bad == alone, table
        assert in_bad
    qualnames = {row["qualname"] for row in query(out, "SELECT qualname FROM cpg_nodes WHERE path = 'good.py'")}
    assert {"good", "good.Good", "good.Good.method", "good.helper", "os"} <= qualnames


def test_symlink_inside_root_is_followed(bad_build):
    _, out, _ = bad_build
    qualnames = {row["qualname"] for row in query(
        out, f"SELECT qualname FROM cpg_nodes WHERE path = '{SYMLINK_IN}' AND kind IN ('CLASS', 'FUNCTION')")}
    assert qualnames == {"alias_of_good.Good", "alias_of_good.Good.method", "alias_of_good.helper"}


def test_deep_but_parseable_file_is_fully_extracted(bad_build):
    _, out, _ = bad_build
    kinds = query(out, "SELECT kind, count(*) AS n FROM cpg_nodes WHERE path = 'deep_but_fine.py' "
                       "GROUP BY kind ORDER BY kind")
    assert kinds == [{"kind": "BINDING", "n": 1}, {"kind": "MODULE", "n": 1}, {"kind": "SCOPE", "n": 1}]
    assert query(out, "SELECT parsed FROM ex_files WHERE path = 'deep_but_fine.py'") == [{"parsed": True}]


def test_utf8_bom_file(bad_build):
    """The BOM is not part of any node but the MODULE; offsets count it, `ast` columns do not."""
    _, out, _ = bad_build
    nodes = query(out, "SELECT kind, bstart, bend, line, col FROM cpg_nodes WHERE path = 'bom.py' "
                       "AND kind IN ('MODULE', 'FUNCTION')")
    assert sorted(nodes, key=lambda n: n["kind"]) == [
        {"kind": "FUNCTION", "bstart": 3, "bend": 27, "line": 1, "col": 0},
        {"kind": "MODULE", "bstart": 0, "bend": 28, "line": 1, "col": 0},
    ]


# -- the latin-1 file -------------------------------------------------------------------------------


def _segment_from_positions(text: str, line: int, col: int, end_line: int, end_col: int) -> str:
    """The text between two `ast` positions (1-based lines, UTF-8 byte columns) of decoded text."""
    lines = text.splitlines(keepends=True) or [""]
    if line == end_line:
        return lines[line - 1].encode("utf-8")[col:end_col].decode("utf-8")
    first = lines[line - 1].encode("utf-8")[col:].decode("utf-8")
    middle = "".join(lines[line:end_line - 1])
    last = lines[end_line - 1].encode("utf-8")[:end_col].decode("utf-8") if end_line - 1 < len(lines) else ""
    return first + middle + last


def test_latin1_file_parses(bad_build):
    _, out, _ = bad_build
    assert query(out, "SELECT encoding, parsed FROM ex_files WHERE path = 'latin1.py'") == [
        {"encoding": "iso-8859-1", "parsed": True}]
    named = query(out, "SELECT kind, qualname FROM cpg_nodes WHERE path = 'latin1.py' "
                       "AND kind IN ('CLASS', 'FUNCTION') ORDER BY bstart")
    assert named == [{"kind": "CLASS", "qualname": "latin1.Menu"},
                     {"kind": "FUNCTION", "qualname": "latin1.Menu.price"},
                     {"kind": "FUNCTION", "qualname": "latin1.describe"}]
    docs = query(out, "SELECT p.value_str FROM cpg_props p JOIN cpg_nodes n ON n.node_id = p.node_id "
                      "WHERE n.path = 'latin1.py' AND p.kind = 'DOCSTRING' AND p.key = 'text' ORDER BY n.bstart")
    assert [row["value_str"] for row in docs] == ["Module \xe0 la latin-1.", "Cr\xe8me br\xfbl\xe9e."]
    default = query(out, "SELECT p.value_bool FROM cpg_props p JOIN cpg_nodes n ON n.node_id = p.node_id "
                         "WHERE n.path = 'latin1.py' AND n.kind = 'PARAMETER' AND n.name = 'dish' "
                         "AND p.key = 'has_default' ORDER BY n.bstart")
    assert [row["value_bool"] for row in default] == [True, False]


def test_latin1_spans_slice_the_raw_bytes(bad_build):
    root, out, _ = bad_build
    raw = (root / "latin1.py").read_bytes()
    text = raw.decode("latin-1")
    nodes = query(out, "SELECT kind, name, bstart, bend, line, col, end_line, end_col FROM cpg_nodes "
                       "WHERE path = 'latin1.py'")
    assert len(nodes) > 20
    for node in nodes:
        sliced = raw[node["bstart"]:node["bend"]].decode("latin-1")
        expected = _segment_from_positions(text, node["line"], node["col"], node["end_line"], node["end_col"])
        assert sliced == expected, node
    calls = [raw[n["bstart"]:n["bend"]].decode("latin-1") for n in nodes if n["kind"] == "CALL"]
    assert calls == ["describe(dish, sep='\xb7')"]
    arguments = sorted(raw[n["bstart"]:n["bend"]].decode("latin-1") for n in nodes if n["kind"] == "ARGUMENT")
    assert arguments == ["dish", "sep='\xb7'"]
    module = next(n for n in nodes if n["kind"] == "MODULE")
    assert (module["bstart"], module["bend"]) == (0, len(raw))


# -- the same code base through the real CLI, two worker processes ------------------------------------


def test_cli_build_with_two_workers_matches(bad_build, tmp_path):
    root, out, _ = bad_build
    cli_out = tmp_path / "cli_out"
    done = run_cli("build", root, "--out", cli_out, "-j", "2", "--max-file-bytes", str(MAX_FILE_BYTES), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "diagnostics:" in done.stdout
    for table in CPG_TABLE_NAMES:
        assert row_set(table_rows(cli_out, table)) == row_set(table_rows(out, table)), table


def test_every_row_has_a_file_id(bad_build):
    _, out, _ = bad_build
    for table in CPG_TABLE_NAMES:
        assert query(out, f"SELECT count(*) AS n FROM {table} WHERE file_id IS NULL OR file_id = ''") == [{"n": 0}]
