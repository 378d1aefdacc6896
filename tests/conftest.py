"""Shared builders for the test suite: source trees on disk, builds, queries and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ui_helpers import UiServer

REPO = Path(__file__).resolve().parents[1]
CPGFLOW = Path(sys.executable).parent / "cpgflow"
if not CPGFLOW.exists():  # pragma: no cover - a non-venv interpreter
    CPGFLOW = REPO / ".venv" / "bin" / "cpgflow"

CPG_TABLE_NAMES = ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_diagnostics", "cpg_points_to")
# The running interpreter's standard library; its site-packages is excluded wherever it is built.
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def write_tree(root: Path, files: Mapping[str, bytes | str]) -> Path:
    """Write ``{relative posix path: content}`` under ``root`` (str content as UTF-8); return root."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """``make_tree({"pkg/a.py": b"..."}, name="src")`` writes the files under ``tmp_path/name``."""

    def make(files: Mapping[str, bytes | str], name: str = "src") -> Path:
        return write_tree(tmp_path / name, files)

    return make


def build(root: Path | str, out: Path | str, **options):
    """Build and publish every table in-process; returns the BuildSummary."""
    from driver.api import build_driver

    options.setdefault("jobs", 1)
    dr = build_driver(root, out, **options)
    return dr.execute(["build_summary"])["build_summary"]


def query(out: Path | str, sql: str) -> list[dict]:
    """Rows of ``sql`` over the tables of a built output, as Python dicts."""
    from driver.api import open_session

    session, _ = open_session(out)
    return session.sql(sql).to_arrow_table().to_pylist()


def table_rows(out: Path | str, table: str) -> list[dict]:
    return query(out, f"SELECT * FROM {table}")


def snapshot(out: Path | str) -> dict[str, set[tuple]]:
    """Every fact table of a built output, as order-free row sets (one session). The run table and
    the decision provenance are left out: they record runs, and gain rows with each one."""
    from driver.api import open_session
    from relspec.catalog import LOG_TABLES

    session, tables = open_session(out)
    return {table: row_set(session.sql(f"SELECT * FROM {table}").to_arrow_table().to_pylist())
            for table in tables if table not in LOG_TABLES}


def row_set(rows: list[dict]) -> set[tuple]:
    """Rows as a set of tuples (column order is the table's), for order-free comparison."""
    return {tuple(row.values()) for row in rows}


def shown_limit(limit: int) -> str:
    """DataFusion's display of a memory limit (`information_schema.df_settings`): whole GiB, else whole
    MiB, rounded down."""
    return f"{limit >> 30}G" if limit >= 2**30 else f"{limit >> 20}M"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CPGFLOW_DEBUG", None)
    env["COLUMNS"] = "200"  # Rich tables: wide enough not to wrap values
    env["NO_COLOR"] = "1"
    env["PYTHONUTF8"] = "1"
    return env


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real ``cpgflow`` console script; stdout and stderr captured as text."""
    return subprocess.run([str(CPGFLOW), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=cli_env(), timeout=timeout, check=False)


def assert_one_line_error(stderr: str) -> None:
    """A user-caused failure: exactly one line on stderr, starting with 'error:', and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr!r}"
    assert lines[0].startswith("error:"), stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop fixture code base (tests/shop_fixture.py), built once per test module."""
    from shop_fixture import FIXTURE

    from driver.api import build_driver

    root = tmp_path_factory.mktemp("shop_src")
    for relative, text in FIXTURE.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    out = tmp_path_factory.mktemp("shop_out")
    build_driver(root, out, jobs=1).execute(["build_summary"])
    return out


@pytest.fixture(scope="session")
def stdlib_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard library built once per session, at its real path, with two extraction processes."""
    out = tmp_path_factory.mktemp("stdlib_out")
    build(STDLIB, out, jobs=2, exclude=("site-packages",))
    return out


@pytest.fixture(scope="module")
def app_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app fixture program (tests/app_fixture.py), built once per test module with the CLI."""
    from app_fixture import FIXTURE

    base = tmp_path_factory.mktemp("app")
    root = write_tree(base / "src", FIXTURE)
    out = base / "out"
    done = run_cli("build", root, "--out", out, "-j", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """A Hamilton UI server on 127.0.0.1 (tests/ui_helpers.py), one per test module, its database in a
    temporary folder."""
    from ui_helpers import running_ui_server

    with running_ui_server(tmp_path_factory.mktemp("hamilton_ui")) as server:
        yield server
