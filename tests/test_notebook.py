"""docs/notebooks/explore.ipynb, executed from top to bottom by a Jupyter kernel of this virtualenv, as
`jupyter execute` runs it: its build of the standard library's json package writes into a temporary
folder, and each answer it shows is checked against the json package's source, read here by hand."""

from __future__ import annotations

import sys
import sysconfig
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

NOTEBOOK = REPO / "docs" / "notebooks" / "explore.ipynb"
JSON_PACKAGE = Path(sysconfig.get_paths()["stdlib"]) / "json"
CELL_SECONDS = 300
MAX_NOTEBOOK_BYTES = 300_000  # the outputs kept in the repository stay modest


class _TableRows(HTMLParser):
    """The body rows of a pandas frame's HTML, as lists of cell texts (the index left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


def line_of(relative: str, text: str) -> str:
    """The (only) line number of the json package's file ``relative`` that holds ``text``."""
    lines = (JSON_PACKAGE / relative).read_text().splitlines()
    (number,) = [number for number, line in enumerate(lines, start=1) if text in line]
    return str(number)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The notebook's code cells by tag, run in a fresh kernel from docs/notebooks with OUT set to a
    temporary folder by a cell injected after its parameters (the file itself is not changed)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    out = tmp_path_factory.mktemp("explore") / "json"
    (parameters,) = [index for index, cell in enumerate(notebook.cells)
                     if "parameters" in cell.metadata.get("tags", [])]
    notebook.cells.insert(parameters + 1, nbformat.v4.new_code_cell(
        f"OUT = Path({str(out)!r})", metadata={"tags": ["injected-parameters"]}))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    # the kernel named in the notebook, found in this virtualenv first: ipykernel's spec runs this Python
    jupyter_path = Path(sys.prefix) / "share" / "jupyter"
    assert (jupyter_path / "kernels" / notebook.metadata.kernelspec.name / "kernel.json").is_file()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter_path))
        NotebookClient(notebook, timeout=CELL_SECONDS, resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    assert (out / "pipeline.svg").is_file()  # the whole DAG, drawn into the output folder
    cells = {}
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            cells[tag] = cell
    return cells


def text(cell: nbformat.NotebookNode) -> str:
    """Everything a cell printed, then its plain-text results."""
    parts = [output.text for output in cell.outputs if output.output_type == "stream" and output.name == "stdout"]
    parts += [output.data.get("text/plain", "") for output in cell.outputs if "data" in output]
    return "".join(parts)


def rows(cell: nbformat.NotebookNode) -> list[list[str]]:
    """The rows of the frame a cell shows."""
    (html,) = [output.data["text/html"] for output in cell.outputs if "text/html" in output.get("data", {})]
    parser = _TableRows()
    parser.feed(html)
    return parser.rows


def images(cell: nbformat.NotebookNode, mime: str) -> list[str]:
    return [output.data[mime] for output in cell.outputs if mime in output.get("data", {})]


def test_the_checked_in_notebook_is_modest_and_names_a_python_kernel() -> None:
    assert NOTEBOOK.stat().st_size < MAX_NOTEBOOK_BYTES
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert not [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
                if output.output_type == "error"]


def test_no_cell_fails(executed: dict[str, nbformat.NotebookNode]) -> None:
    for tag, cell in executed.items():
        assert "error" not in {output.output_type for output in cell.outputs}, tag
        stderr = "".join(output.text for output in cell.outputs if output.get("name") == "stderr")
        assert "Traceback" not in stderr, (tag, stderr)


def test_build(executed: dict[str, nbformat.NotebookNode]) -> None:
    files = sorted(JSON_PACKAGE.glob("*.py"))
    assert [path.name for path in files] == ["__init__.py", "decoder.py", "encoder.py", "scanner.py", "tool.py"]
    lines = sum(len(path.read_text().splitlines()) for path in files)
    first, kinds = text(executed["build"]).splitlines()
    assert first.startswith(f"5 files, {lines:,} lines: ")
    assert "CLASS 3, " in kinds and "MODULE 5, " in kinds  # JSONDecodeError, JSONDecoder, JSONEncoder


def test_dag(executed: dict[str, nbformat.NotebookNode]) -> None:
    assert text(executed["dag"]).rstrip().endswith("drawn in json/pipeline.svg")
    (svg,) = images(executed["dag-path"], "image/svg+xml")
    for node in ("call_edges__query", "call_edges__staged", "resolved_edges", "all_edges", "cpg_edges"):
        assert f">{node}<" in svg, node
    assert ">materializer<" in svg and ">output<" in svg


def test_sql_questions(executed: dict[str, nbformat.NotebookNode]) -> None:
    assert text(executed["session"]).split(", ")[:3] == ["cpg_calibration", "cpg_diagnostics", "cpg_edges"]
    # json.load returns loads(fp.read(), ...); json.tool.main reads JSON lines with json.loads
    assert rows(executed["who-calls"]) == [
        ["json.load", "json/__init__.py", line_of("__init__.py", "return loads(fp.read(),"), "1.0"],
        ["json.tool.main", "json/tool.py", line_of("tool.py", "json.loads(line)"), "1.0"],
    ]
    # _default_decoder = JSONDecoder(...), _default_encoder = JSONEncoder(...)
    assert rows(executed["points-to"]) == [["_default_decoder", "INSTANCE", "json.decoder.JSONDecoder"],
                                           ["_default_encoder", "INSTANCE", "json.encoder.JSONEncoder"]]
    # json.tool calls dump, load and loads; nothing in the package calls dumps
    assert rows(executed["unused-functions"]) == [["json.dumps"]]
    imports = rows(executed["import-graph"])
    assert ["json", "json.decoder"] in imports
    assert ["json.decoder", "json.scanner"] in imports  # from json import scanner: a module of the package
    assert ["json.tool", "pathlib.Path"] in imports and ["json.scanner", "_json.make_scanner"] in imports
    # JSONEncoder: __init__, default, encode, iterencode; JSONDecoder: __init__, decode, raw_decode;
    # JSONDecodeError: __init__, __reduce__
    assert rows(executed["largest-classes"]) == [["json.encoder.JSONEncoder", "4"], ["json.decoder.JSONDecoder", "3"],
                                                 ["json.decoder.JSONDecodeError", "2"]]


def test_ready_made_questions(executed: dict[str, nbformat.NotebookNode]) -> None:
    callers = [row[:4] for row in rows(executed["callers"])]
    assert callers == [["1", "json.load", "json.loads", "FUNCTION"], ["1", "json.tool.main", "json.loads", "FUNCTION"],
                       ["2", "json.tool", "json.tool.main", "MODULE"]]  # main() under `if __name__ == '__main__'`
    callees = {row[2] for row in rows(executed["callees"])}
    # detect_encoding(s) for bytes, _default_decoder.decode(s), cls(**kw).decode(s) with cls = JSONDecoder
    assert {"json.detect_encoding", "json.decoder.JSONDecoder", "json.decoder.JSONDecoder.decode"} <= callees
    assert rows(executed["subclasses"]) == [["json.decoder.JSONDecodeError", "1", "json/decoder.py",
                                             line_of("decoder.py", "class JSONDecodeError(ValueError):")]]
    assert rows(executed["points-to-helper"]) == [["json/__init__.py", line_of("__init__.py", "_default_decoder = "),
                                                   "INSTANCE", "json.decoder.JSONDecoder", "1.0"]]
    assert [row[0] for row in rows(executed["unused"])] == ["json.decoder.JSONDecodeError.__reduce__", "json.dumps"]
    assert rows(executed["imports"]) == [
        ["json", "codecs", "False"], ["json", "json.decoder", "True"], ["json", "json.encoder", "True"],
        ["json.decoder", "_json", "False"], ["json.decoder", "json.scanner", "True"], ["json.decoder", "re", "False"],
        ["json.encoder", "_json", "False"], ["json.encoder", "re", "False"],
        ["json.scanner", "_json", "False"], ["json.scanner", "re", "False"],
        ["json.tool", "argparse", "False"], ["json.tool", "json", "True"], ["json.tool", "pathlib", "False"],
        ["json.tool", "sys", "False"],
    ]


def test_pictures(executed: dict[str, nbformat.NotebookNode]) -> None:
    module_calls = text(executed["module-call-graph"])
    # dumps/dump call JSONEncoder methods, loads calls JSONDecoder.decode, json.tool.main calls load/dump/loads
    for edge in ("json -> json.encoder: ", "json -> json.decoder: ", "json.tool -> json: "):
        assert edge in module_calls, edge
    assert len(images(executed["module-call-graph"], "image/png")) == 1
    (svg,) = images(executed["neighbourhood"], "image/svg+xml")
    for name in ("json.loads", "json.load", "json.tool.main", "json.detect_encoding", "&lt;builtin&gt;.isinstance"):
        assert f">{name}<" in svg, name
    assert len(images(executed["largest-classes-plot"], "image/png")) == 1
