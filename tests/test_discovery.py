"""File discovery: default excludes, suffixes, include/exclude globs, git-aware mode and its fallback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import build, query, run_cli, write_tree
from hypothesis import given
from hypothesis import strategies as st

from semantics.discovery import DiscoveryOptions, discover, matches

PY = "X = 1\n"


def _paths(root: Path, **options) -> list[str]:
    found = discover(root, DiscoveryOptions(**options))
    return sorted(f.path for f in found.files)


def _walk(root: Path, **options) -> list[str]:
    return _paths(root, use_git=False, **options)


# -- default excludes and suffixes ----------------------------------------------------------------------


EXCLUDED_TREE = {
    ".git/hooks/pre_commit.py": PY,
    "__pycache__/mod.py": PY,
    "pkg/__pycache__/mod.py": PY,
    ".venv/lib/site.py": PY,
    "myenv/pyvenv.cfg": "home = /usr/bin\n",
    "myenv/lib/python3.11/site-packages/dep.py": PY,
    "pkg/tools/env2/pyvenv.cfg": "home = /usr/bin\n",
    "pkg/tools/env2/bin/activate_this.py": PY,
    "build/lib/pkg/mod.py": PY,
    "dist/pkg/mod.py": PY,
    "node_modules/lib/x.py": PY,
    ".tox/py311/x.py": PY,
    ".nox/s/x.py": PY,
    ".mypy_cache/x.py": PY,
    ".pytest_cache/x.py": PY,
    ".ruff_cache/x.py": PY,
    ".hypothesis/x.py": PY,
    ".eggs/x.py": PY,
    ".hg/x.py": PY,
    ".svn/x.py": PY,
    ".ipynb_checkpoints/x.py": PY,
    "site-packages/x.py": PY,
    "pkg.egg-info/x.py": PY,
}

KEPT_TREE = {
    "main.py": PY,
    "stubs.pyi": PY,
    "pkg/__init__.py": "",
    "pkg/mod.py": PY,
    "pkg/build.py": PY,  # a *file* named like an excluded folder
    "venv/__init__.py": PY,  # the stdlib's venv package: no pyvenv.cfg, kept
    "venv/__main__.py": PY,
    "env/x.py": PY,
    "builder/x.py": PY,  # not an excluded name
    "pkg/distutils_like/x.py": PY,
}

OTHER_SUFFIXES = {
    "notes.txt": "x",
    "mod.pyc": b"\x00",
    "ext.pyx": PY,
    "backup.py.bak": PY,
    "script": PY,
    "UPPER.PY": PY,
    "data.pyw": PY,
    "pkg/mod.py~": PY,
    "pkg/README.md": "# pkg\n",
}


def test_walk_default_excludes_and_suffixes(make_tree):
    root = make_tree({**EXCLUDED_TREE, **KEPT_TREE, **OTHER_SUFFIXES})
    found = discover(root, DiscoveryOptions(use_git=False))
    assert found.git_aware is False
    assert found.skipped == ()
    assert sorted(f.path for f in found.files) == sorted(KEPT_TREE)
    assert {f.path: f.size for f in found.files}["pkg/__init__.py"] == 0
    assert found.root == str(root.resolve())


def test_a_non_git_folder_is_walked(make_tree):
    root = make_tree({**EXCLUDED_TREE, **KEPT_TREE})
    found = discover(root)  # use_git defaults to True, but tmp_path is not in a git work tree
    assert found.git_aware is False
    assert sorted(f.path for f in found.files) == sorted(KEPT_TREE)


def test_pyvenv_cfg_marks_a_virtualenv_whatever_its_name(make_tree):
    root = make_tree({"venv/pyvenv.cfg": "home = /x\n", "venv/lib/a.py": PY, "venv2/lib/b.py": PY})
    assert _walk(root) == ["venv2/lib/b.py"]


def test_root_that_is_itself_excluded_by_name_is_still_walked(make_tree):
    """The default excludes apply to folders *under* the root, not to the root the user named."""
    root = make_tree({"a.py": PY, "sub/b.py": PY}, name="build")
    assert _walk(root) == ["a.py", "sub/b.py"]


def test_empty_root(make_tree):
    root = make_tree({})
    found = discover(root)
    assert found.files == () and found.skipped == ()


def test_size_cap_and_symlinks(tmp_path, make_tree):
    root = make_tree({"small.py": "x = 1\n", "big.py": "#" * 101 + "\n", "exact.py": "#" * 99 + "\n"})
    outside = write_tree(tmp_path / "outside", {"o.py": PY, "dir/d.py": PY})
    (root / "out_link.py").symlink_to(outside / "o.py")
    (root / "in_link.py").symlink_to(root / "small.py")
    (root / "dangling.py").symlink_to(root / "missing.py")
    (root / "dir_link").symlink_to(outside / "dir")
    found = discover(root, DiscoveryOptions(max_file_bytes=100, use_git=False))
    assert sorted(f.path for f in found.files) == ["exact.py", "in_link.py", "small.py"]
    assert sorted((s.path, s.code) for s in found.skipped) == [
        ("big.py", "file_too_large"), ("dangling.py", "dangling_symlink"), ("out_link.py", "symlink_outside_root")]


def hostile_tree(root: Path) -> Path:
    """Files no build may fail on: a name that is not UTF-8, symlink loops, a dangling link, a FIFO."""
    write_tree(root, {"good.py": PY})
    (root / os.fsdecode(b"bad\xffname.py")).write_bytes(PY.encode())
    (root / "loop_a.py").symlink_to("loop_b.py")
    (root / "loop_b.py").symlink_to("loop_a.py")
    (root / "self_link.py").symlink_to("self_link.py")
    (root / "dangling.py").symlink_to("missing.py")
    os.mkfifo(root / "fifo.py")
    return root


HOSTILE_SKIPPED = [
    ("bad\\xffname.py", "undecodable_path"), ("dangling.py", "dangling_symlink"), ("fifo.py", "not_a_regular_file"),
    ("loop_a.py", "symlink_loop"), ("loop_b.py", "symlink_loop"), ("self_link.py", "symlink_loop"),
]


def test_hostile_files_are_reported_not_fatal(tmp_path):
    root = hostile_tree(tmp_path / "src")
    found = discover(root, DiscoveryOptions(use_git=False))
    assert [f.path for f in found.files] == ["good.py"]
    assert sorted((s.path, s.code) for s in found.skipped) == HOSTILE_SKIPPED


def test_hostile_files_in_git(tmp_path):
    root = hostile_tree(tmp_path / "src")
    (root / "fifo.py").unlink()  # git cannot add a FIFO
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    found = discover(root)
    assert found.git_aware
    assert [f.path for f in found.files] == ["good.py"]
    assert sorted((s.path, s.code) for s in found.skipped) == [item for item in HOSTILE_SKIPPED if item[0] != "fifo.py"]


def test_hostile_files_through_the_cli(tmp_path):
    root = hostile_tree(tmp_path / "src")
    done = run_cli("build", root, "--out", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    rows = query(tmp_path / "out", "SELECT path, code FROM cpg_diagnostics ORDER BY path")
    assert [(row["path"], row["code"]) for row in rows] == HOSTILE_SKIPPED
    modules = query(tmp_path / "out", "SELECT path FROM cpg_nodes WHERE kind = 'MODULE'")
    assert [row["path"] for row in modules] == ["good.py"]


# -- include / exclude globs --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "pattern", "expected"), [
    ("pkg/gen_a.py", "pkg/gen_*.py", True),  # the whole path
    ("pkg/gen_a.py", "gen_*.py", True),  # no slash: a single component
    ("pkg/sub/gen_a.py", "pkg/gen_*.py", False),
    ("a/tests/x.py", "tests", True),  # a component
    ("tests/x.py", "tests", True),
    ("a/tests_x/x.py", "tests", False),
    ("a/mytests/x.py", "tests", False),
    ("a/Tests/x.py", "tests", False),  # case-sensitive
    ("pkg/sub/mod.py", "pkg/sub", True),  # a parent folder
    ("pkg/sub/mod.py", "pkg/sub/", True),  # trailing slash
    ("pkg/sub/mod.py", "/pkg/sub", True),  # leading slash
    ("pkg/sub/mod.py", "pkg/su", False),
    ("pkg/sub/mod.py", "sub/mod.py", False),  # with a slash: anchored at the root
    ("x/migrations/0001.py", "*/migrations/*", True),
    ("migrations/0001.py", "*/migrations/*", False),
    ("a/b/c.py", "*/b", True),
    ("pkg/a.pyi", "*.pyi", True),
    ("pkg/a.py", "*.pyi", False),
    ("pkg/a.py", "pkg", True),
    ("pkgx/a.py", "pkg", False),
    ("a.py", "a.py", True),
    ("a.py", "?.py", True),
    ("ab.py", "?.py", False),
    ("a.py", "[ab].py", True),
])
def test_matches(path, pattern, expected):
    assert matches(path, (pattern,)) is expected


def test_matches_any_of_several_patterns():
    assert matches("a/b.py", ("zzz", "b.py"))
    assert not matches("a/b.py", ("zzz", "c.py"))
    assert not matches("a/b.py", ())


_component = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=8).filter(
    lambda c: c not in (".", ".."))
_paths_strategy = st.lists(_component, min_size=1, max_size=5).map("/".join)


@given(_paths_strategy)
def test_matches_properties(path):
    parts = path.split("/")
    assert matches(path, (path,))
    for part in parts:
        assert matches(path, (part,))
    for i in range(1, len(parts)):
        assert matches(path, ("/".join(parts[:i]),))
    assert not matches(path, (path + "/nothing",))
    other = "zz" + parts[-1] + "zz"
    assert matches(path, (other,)) is (other in parts)


def test_include_and_exclude(make_tree):
    root = make_tree({
        "pkg/__init__.py": PY, "pkg/gen_a.py": PY, "pkg/gen_b.py": PY, "pkg/core.py": PY,
        "pkg/sub/gen_c.py": PY, "tests/test_core.py": PY, "pkg/tests/test_x.py": PY, "stubs/pkg.pyi": PY,
    })
    assert _walk(root, exclude=("tests",)) == [
        "pkg/__init__.py", "pkg/core.py", "pkg/gen_a.py", "pkg/gen_b.py", "pkg/sub/gen_c.py", "stubs/pkg.pyi"]
    assert _walk(root, exclude=("pkg/gen_*.py",)) == [
        "pkg/__init__.py", "pkg/core.py", "pkg/sub/gen_c.py", "pkg/tests/test_x.py", "stubs/pkg.pyi",
        "tests/test_core.py"]
    assert _walk(root, include=("pkg",)) == [
        "pkg/__init__.py", "pkg/core.py", "pkg/gen_a.py", "pkg/gen_b.py", "pkg/sub/gen_c.py", "pkg/tests/test_x.py"]
    assert _walk(root, include=("pkg",), exclude=("tests", "gen_*")) == ["pkg/__init__.py", "pkg/core.py"]
    assert _walk(root, include=("*.pyi", "tests")) == ["pkg/tests/test_x.py", "stubs/pkg.pyi",
                                                       "tests/test_core.py"]
    assert _walk(root, include=("nothing",)) == []


def test_include_and_exclude_through_the_driver(make_tree, tmp_path):
    root = make_tree({"pkg/a.py": PY, "pkg/gen_b.py": PY, "tests/test_a.py": PY})
    summary = build(root, tmp_path / "out", exclude=["tests", "pkg/gen_*.py"])
    assert summary.files == 1
    assert query(tmp_path / "out", "SELECT path FROM cpg_nodes WHERE kind = 'MODULE'") == [{"path": "pkg/a.py"}]


# -- git-aware mode ------------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "cpgflow tests", "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "cpgflow tests", "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}
    done = subprocess.run(["git", "-c", "user.email=tests@example.invalid", "-c", "user.name=cpgflow tests",
                           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


GIT_TREE = {
    ".gitignore": "ignored_*.py\ngenerated/\n*.log\n",
    "tracked.py": PY,
    "pkg/__init__.py": "",
    "pkg/tracked_mod.py": PY,
    "with space.py": PY,
    "ünïcode.py": PY,
    "deleted_from_worktree.py": PY,
}


@pytest.fixture
def git_repo(make_tree):
    root = make_tree(GIT_TREE, name="repo")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "initial")
    write_tree(root, {
        "untracked.py": PY,  # untracked, not ignored: found
        "pkg/untracked_mod.pyi": PY,
        "ignored_one.py": PY,  # ignored: not found
        "pkg/ignored_two.py": PY,
        "generated/out.py": PY,
        "pkg/__pycache__/tracked_mod.py": PY,
        "notes.txt": "x",
    })
    (root / "deleted_from_worktree.py").unlink()
    return root


def test_git_aware_discovery(git_repo):
    found = discover(git_repo)
    assert found.git_aware is True
    assert sorted(f.path for f in found.files) == sorted([
        "tracked.py", "pkg/__init__.py", "pkg/tracked_mod.py", "with space.py", "ünïcode.py",
        "untracked.py", "pkg/untracked_mod.pyi",
    ])


def test_git_aware_discovery_of_a_subfolder(git_repo):
    """Root inside the work tree: paths are relative to the root, not to the top of the repository."""
    found = discover(git_repo / "pkg")
    assert found.git_aware is True
    assert sorted(f.path for f in found.files) == ["__init__.py", "tracked_mod.py", "untracked_mod.pyi"]


def test_git_can_be_turned_off(git_repo):
    found = discover(git_repo, DiscoveryOptions(use_git=False))
    assert found.git_aware is False
    assert "ignored_one.py" in {f.path for f in found.files}


def test_git_aware_respects_include_and_exclude(git_repo):
    assert _paths(git_repo, exclude=("pkg",)) == sorted(["tracked.py", "with space.py", "ünïcode.py", "untracked.py"])
    assert _paths(git_repo, include=("*.pyi",)) == ["pkg/untracked_mod.pyi"]


def test_git_ignored_root_falls_back_to_the_walk(make_tree):
    repo = make_tree({".gitignore": "vendored/\n", "top.py": PY}, name="repo")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    root = write_tree(repo / "vendored", {"lib/a.py": PY, "lib/__pycache__/a.py": PY, "b.py": PY})
    found = discover(root)
    assert found.git_aware is False
    assert sorted(f.path for f in found.files) == ["b.py", "lib/a.py"]


def test_git_repo_build_through_the_driver(git_repo, tmp_path):
    summary = build(git_repo, tmp_path / "out")
    assert summary.files == 7
    modules = {row["qualname"] for row in query(tmp_path / "out",
                                                "SELECT qualname FROM cpg_nodes WHERE kind = 'MODULE'")}
    assert modules == {"tracked", "pkg", "pkg.tracked_mod", "with space", "ünïcode", "untracked", "pkg.untracked_mod"}
