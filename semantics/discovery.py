"""Finding the Python files of a code base.

Git-aware when the root is inside a git work tree (tracked plus untracked-not-ignored files);
otherwise a walk that skips the usual non-source folders. Symlinks are never followed out of the
root, and files over the size cap are reported rather than read.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import subprocess
from pathlib import Path

import msgspec

SOURCE_SUFFIXES = (".py", ".pyi")
DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024

# Folder names never descended into by the plain walk. A folder holding `pyvenv.cfg` is a
# virtualenv whatever its name; plain names such as `venv` or `env` are not excluded by name,
# since the standard library itself has a `venv` package.
DEFAULT_EXCLUDED_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".venv", "build", "dist", "node_modules", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".eggs", ".ipynb_checkpoints",
    "site-packages",
})


class DiscoveredFile(msgspec.Struct, frozen=True):
    path: str  # repo-relative POSIX path
    size: int


class SkippedFile(msgspec.Struct, frozen=True):
    path: str  # repo-relative POSIX path; bytes that are not UTF-8 shown as \xNN escapes
    code: str  # symlink_outside_root | symlink_loop | dangling_symlink | not_a_regular_file | undecodable_path
    #            | file_too_large | unreadable
    message: str


class Discovery(msgspec.Struct, frozen=True):
    root: str
    files: tuple[DiscoveredFile, ...]
    skipped: tuple[SkippedFile, ...]
    git_aware: bool


class DiscoveryOptions(msgspec.Struct, frozen=True):
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    use_git: bool = True


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    """A glob matches a path if it matches the whole path, any parent folder, or (without a
    slash) any single component: `tests`, `*/migrations/*`, `pkg/gen_*.py` all do what they say."""
    parts = path.split("/")
    for pattern in patterns:
        pattern = pattern.strip("/")
        if fnmatch.fnmatchcase(path, pattern):
            return True
        if "/" in pattern:
            if any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts))):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


def _git_files(root: Path) -> list[str] | None:
    """Repo-relative paths under root from git: tracked plus untracked-not-ignored files.

    None when root is not in a git work tree, or when git tracks nothing under it (a folder that
    the enclosing repository ignores, such as an interpreter inside a git-managed tool folder).
    """
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return None
        tracked = _git(root, "ls-files", "-z", "--cached", "--full-name", "--", ".")
        untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard", "--full-name", "--", ".")
    except OSError:
        return None
    if tracked.returncode != 0 or untracked.returncode != 0 or not tracked.stdout.strip(b"\0"):
        return None
    top_path = Path(top.stdout.decode().strip()).resolve()
    prefix = root.resolve().relative_to(top_path).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    paths = set()
    for entry in (tracked.stdout + b"\0" + untracked.stdout).decode("utf-8", "surrogateescape").split("\0"):
        if entry.startswith(prefix) and len(entry) > len(prefix):
            paths.add(entry[len(prefix):])
    return sorted(paths)


def _walk_files(root: Path) -> list[str]:
    paths: list[str] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(directory)
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in DEFAULT_EXCLUDED_DIRS
            and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists()
        )
        rel = here.relative_to(root).as_posix()
        for name in filenames:
            paths.append(name if rel == "." else f"{rel}/{name}")
    return sorted(paths)


def readable_path(rel: str) -> str:
    """A path as text that can be stored and hashed: bytes of the file name that are not UTF-8
    (decoded by the OS layer as surrogate escapes) become ``\\xNN``."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def discover(root: str | Path, options: DiscoveryOptions | None = None) -> Discovery:
    options = options or DiscoveryOptions()
    root_path = Path(root).resolve()
    listed = _git_files(root_path) if options.use_git else None
    git_aware = listed is not None
    candidates = listed if listed is not None else _walk_files(root_path)
    files: list[DiscoveredFile] = []
    skipped: list[SkippedFile] = []
    for rel in candidates:
        if not rel.endswith(SOURCE_SUFFIXES):
            continue
        if options.include and not matches(rel, options.include):
            continue
        if options.exclude and matches(rel, options.exclude):
            continue
        if git_aware and any(part in (".git", "__pycache__") for part in rel.split("/")):
            continue
        verdict = _check(root_path, rel, options.max_file_bytes)
        if isinstance(verdict, SkippedFile):
            skipped.append(verdict)
        elif verdict is not None:
            files.append(verdict)
    return Discovery(root=str(root_path), files=tuple(files), skipped=tuple(skipped), git_aware=git_aware)


def _check(root: Path, rel: str, max_bytes: int) -> DiscoveredFile | SkippedFile | None:
    """The file to extract, why it is skipped, or None when it is not there (git lists a tracked
    file deleted from the work tree)."""
    shown = readable_path(rel)
    if shown != rel:
        return SkippedFile(shown, "undecodable_path", "the file name is not valid UTF-8; not extracted")
    path = root / rel
    try:
        if path.is_symlink():
            skipped = _check_link(root, rel, path)
            if skipped is not None:
                return skipped
        if not path.exists():
            return None
        if not path.is_file():
            return SkippedFile(rel, "not_a_regular_file", "a folder, FIFO, socket or device, not a file; not read")
        size = path.stat().st_size
    except OSError as err:
        return SkippedFile(rel, "unreadable", f"cannot stat: {err.strerror or err}")
    if size > max_bytes:
        return SkippedFile(rel, "file_too_large", f"{size} bytes is over the {max_bytes}-byte cap")
    return DiscoveredFile(rel, size)


def _check_link(root: Path, rel: str, path: Path) -> SkippedFile | None:
    """Why a symlink is not followed, or None when it leads to a file inside the root."""
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop as RuntimeError, later versions as OSError
        return SkippedFile(rel, "symlink_loop", "symlink loop; not followed")
    except FileNotFoundError:
        missing = readable_path(os.readlink(path))
        return SkippedFile(rel, "dangling_symlink", f"symlink to {missing}, which does not exist")
    except OSError as err:
        if err.errno == errno.ELOOP:
            return SkippedFile(rel, "symlink_loop", "symlink loop; not followed")
        raise
    if not target.is_relative_to(root):
        return SkippedFile(rel, "symlink_outside_root",
                           f"symlink to {readable_path(str(target))} points outside the root; not followed")
    return None
