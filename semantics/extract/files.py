"""Extraction of one file: decode, parse, walk; any failure becomes a diagnostic row."""

from __future__ import annotations

import ast
import gc
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from semantics.extract.source import DecodeFailure, SourceText, decode_source, undecoded_source
from semantics.extract.walker import FileWalker
from semantics.ids import file_id_for
from semantics.qualnames import is_package_path, module_name_for


def _extractor_version() -> str:
    """A hash of the extractor's own source: any change to it re-extracts every file."""
    here = Path(__file__).parent
    sources = [*sorted(here.glob("*.py")), here.parent / "entities.py", here.parent / "ids.py",
               here.parent / "qualnames.py"]
    digest = hashlib.md5(usedforsecurity=False)
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


EXTRACTOR_VERSION = _extractor_version()

# The diagnostic code of a file whose extraction killed its worker process: our failure, not the input's.
EXTRACTOR_CRASHED = "extractor_crashed"

# The walker recurses a few frames per AST level; `ast` itself refuses trees deeper than the
# default limit allows, so this bound only lets the walker follow every tree `ast` accepts.
WALK_RECURSION_LIMIT = 20_000


class FileTask(msgspec.Struct, frozen=True):
    path: str  # repo-relative POSIX path
    raw: bytes
    content_hash: str


class Diagnostic(msgspec.Struct, frozen=True):
    stage: str
    code: str
    message: str
    line: int | None = None


def content_hash(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def extract_file(task: FileTask, extractor_version: str = EXTRACTOR_VERSION) -> dict[str, list[tuple]]:
    """Rows of every entity for one file, including its `file` row and any diagnostics."""
    path = task.path
    file_id = file_id_for(path)
    module = module_name_for(path)
    is_package = is_package_path(path)
    diagnostics: list[Diagnostic] = []
    encoding: str | None = None
    try:
        source = decode_source(task.raw)
        encoding = source.encoding
    except DecodeFailure as failure:
        source = undecoded_source(task.raw)
        diagnostics.append(Diagnostic("decode", failure.code, str(failure), failure.line))
    walker = FileWalker(path, file_id, module, is_package, source)
    parsed = False
    if not diagnostics:
        with _collector_paused():
            tree, diagnostic = _parse(source, path)
            if diagnostic is not None:
                diagnostics.append(diagnostic)
            else:
                parsed = _walk(walker, tree, diagnostics)
                del tree
    if not parsed:
        walker = FileWalker(path, file_id, module, is_package, source)  # drop partial rows
        walker.add_module()
    rows = walker.rows
    rows["file"] = [(file_id, path, module, task.content_hash, len(task.raw), source.line_count, encoding,
                     extractor_version, parsed)]
    rows["diagnostic"] = [(file_id, path, d.stage, d.code, d.message, d.line) for d in diagnostics]
    return rows


def failure_rows(task: FileTask, stage: str, code: str, message: str, *, with_module: bool = True,
                 extractor_version: str = EXTRACTOR_VERSION) -> dict[str, list[tuple]]:
    """Rows for a file that was not extracted: a crashed worker, a file over the size cap, a
    symlink out of the root. Its `file` row records it; a MODULE row stands for it when the file
    is a module of the code base; a diagnostic row says why."""
    path = task.path
    file_id = file_id_for(path)
    module = module_name_for(path)
    source = undecoded_source(task.raw)
    walker = FileWalker(path, file_id, module, is_package_path(path), source)
    if with_module:
        walker.add_module()
    rows = walker.rows
    rows["file"] = [(file_id, path, module, task.content_hash, len(task.raw), source.line_count, None,
                     extractor_version, False)]
    rows["diagnostic"] = [(file_id, path, stage, code, message, None)]
    return rows


@contextmanager
def _collector_paused() -> Iterator[None]:
    """ASTs and row tuples hold no reference cycles, so parsing and walking need no cycle collector;
    left on (an extraction in the driver's own process), each full collection re-walks the whole
    tree and every row made so far: +15% extraction time at 2 MB, +40% at 8 MB."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse(source: SourceText, path: str) -> tuple[ast.Module | None, Diagnostic | None]:
    try:
        return ast.parse(source.text, filename=path), None
    except SyntaxError as err:
        if "null bytes" in str(err.msg):  # 3.11 raises SyntaxError, 3.12 ValueError
            return None, Diagnostic("parse", "invalid_source", str(err.msg), err.lineno)
        return None, Diagnostic("parse", "syntax_error", f"{err.msg}", err.lineno)
    except ValueError as err:  # e.g. "source code string cannot contain null bytes"
        return None, Diagnostic("parse", "invalid_source", str(err))
    except (RecursionError, MemoryError) as err:
        return None, Diagnostic("parse", "too_complex", f"{type(err).__name__}: {err}".rstrip(": "))


def _walk(walker: FileWalker, tree: ast.Module, diagnostics: list[Diagnostic]) -> bool:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, WALK_RECURSION_LIMIT))
    try:
        walker.walk_module(tree)
        return True
    except RecursionError as err:
        diagnostics.append(Diagnostic("extract", "too_complex", f"RecursionError: {err}"))
        return False
    finally:
        sys.setrecursionlimit(limit)
