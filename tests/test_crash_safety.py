"""Crash safety of releases, judged from what a reader sees and what Delta's logs hold.

- A build killed with SIGKILL (its whole process group) at points chosen from the run's own progress
  (planning, extraction, staging, between two output writes, before and around the release commit)
  and at seeded random moments leaves the current release intact and readable (`cpgflow fingerprint`
  and `cpgflow query`); the builds after it start over what it left (Delta's logs say which tables are
  past the release), and every third kill the next build runs to completion, restores exactly those
  tables, and ends with the output a clean build of its code base gives.
- Two builds into one folder: the second waits for the first, or with ``--no-wait`` fails with one line.
- Queries that run while a build publishes never see the nodes of one build with the edges of another.

Measured on the 2-core machine: 15 kill points (10 from the run's progress, 5 seeded random) all hit
a running build; the kill test took 149-196 s over three runs (5 builds let finish, 10 started over the
leftovers of a killed one), the whole module 274-285 s (a 5-file build takes 5-10 s here, half of it off the CPU).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CPGFLOW, assert_one_line_error, cli_env, run_cli, write_tree
from deltalake import DeltaTable
from shop_fixture import FIXTURE

from driver.api import open_session
from driver.delta_store import DeltaTableStore
from relspec.catalog import DatasetCatalog
from relspec.releases import Release

SEED = 20250611
POLL_SECONDS = 0.01
RANDOM_KILLS = 5
COMPLETE_EVERY = 3  # kills in a row before a build is let finish
BUILD_TIMEOUT = 120.0
# The changed code base: one module edited, one added, so a build of either after the other writes new
# versions of the extraction tables and of the outputs.
CHANGED = {
    **FIXTURE,
    "shop/money.py": FIXTURE["shop/money.py"] + "\n\ndef to_euros(cents):\n    return to_cents(cents) / RATE\n",
    "shop/view.py": "from shop.money import to_euros\n\n\ndef show(x):\n    return to_euros(x)\n",
}
COUNTS_SQL = """SELECT (SELECT count(*) FROM cpg_nodes) AS nodes,
    (SELECT count(*) FROM cpg_edges e
      WHERE NOT EXISTS (SELECT 1 FROM cpg_nodes n WHERE n.node_id = e.src)
         OR NOT EXISTS (SELECT 1 FROM cpg_nodes n WHERE n.node_id = e.dst)) AS dangling"""
OUTPUTS_WATCHED = ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_points_to")


@dataclass(frozen=True)
class CodeBase:
    """A code base on disk and what a clean build of it gives a reader."""

    label: str
    source: Path
    fingerprint: dict[str, str]
    nodes: int


# ---------------------------------------------------------------------------------------------------------
# Builds and readers


def _build_command(source: Path, out: Path, *extra: str) -> list[str]:
    """With staging tables (these code bases are small enough to be staged in memory by default): the
    kill points include the staging commits."""
    return [str(CPGFLOW), "build", str(source), "--out", str(out), "-j", "1", "--quiet", "--staging", "delta",
            *extra]


def _start_build(source: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    """A build in a process group of its own, so a kill reaches every process it started."""
    return subprocess.Popen(_build_command(source, out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(), start_new_session=True)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=BUILD_TIMEOUT)
    return process.returncode, stdout, stderr


def _build_ok(source: Path, out: Path) -> str:
    done = run_cli(*_build_command(source, out)[1:], timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _fingerprint(out: Path) -> dict[str, str]:
    done = run_cli("fingerprint", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _cli_counts(out: Path) -> dict[str, int]:
    """Nodes, and edge endpoints that are no node, as `cpgflow query` shows them."""
    done = run_cli("query", out, COUNTS_SQL, "-f", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 1, rows
    return rows[0]


def _session_counts(out: Path) -> dict[str, int]:
    """The same counts through `open_session`, in this process."""
    session, _ = open_session(out)
    return session.sql(COUNTS_SQL).to_arrow_table().to_pylist()[0]


def _store(out: Path) -> DeltaTableStore:
    return DeltaTableStore(DatasetCatalog(str(out.resolve())))


def _releases(out: Path) -> list[Release]:
    return _store(out).releases()


def _past_release(out: Path) -> list[str]:
    """Tables whose rows are not those of the version the current release names (left by a dead build),
    read from each table's Delta history."""
    store = _store(out)
    release = store.releases()[-1]
    return sorted(name for name, version in release.versions.items()
                  if _rows_version(store.catalog.location(name), version) != version)


def _rows_version(location: str, released: int) -> int:
    """The version whose rows a table holds, replaying its commits after ``released``: a RESTORE brings
    back the rows of the version it names, OPTIMIZE and VACUUM keep the rows, any other commit makes new
    ones. (A killed build may have restored a table to the release and died before writing it again.)"""
    commits = sorted(DeltaTable(location).history(), key=lambda commit: int(commit["version"]))
    rows = released
    for commit in commits:
        if int(commit["version"]) <= released:
            continue
        operation = commit.get("operation")
        if operation == "RESTORE":
            rows = int(commit["operationParameters"]["version"])
        elif operation not in ("OPTIMIZE", "VACUUM START", "VACUUM END"):
            rows = int(commit["version"])
    return rows


def _run_id(stdout: str) -> str:
    marker = "(run "
    start = stdout.index(marker) + len(marker)
    return stdout[start:stdout.index(":", start)]


def _clean_build(label: str, source: Path, out: Path) -> CodeBase:
    _build_ok(source, out)
    counts = _cli_counts(out)
    assert counts["dangling"] == 0, counts
    return CodeBase(label, source, _fingerprint(out), counts["nodes"])


@pytest.fixture(scope="module")
def code_bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CodeBase]:
    """The shop fixture (``old``) and a changed version of it (``new``), each built cleanly in a folder of its own."""
    base = tmp_path_factory.mktemp("crash_refs")
    old = _clean_build("old", write_tree(base / "old", FIXTURE), base / "old_out")
    new = _clean_build("new", write_tree(base / "new", CHANGED), base / "new_out")
    assert old.fingerprint != new.fingerprint and old.nodes != new.nodes
    return {"old": old, "new": new}


# ---------------------------------------------------------------------------------------------------------
# Where a build is, from what it has written so far


def _latest_commit(table: Path) -> int:
    """The newest commit number in a Delta table's log (-1: none)."""
    try:
        names = [entry.name for entry in os.scandir(table / "_delta_log")]
    except FileNotFoundError:
        return -1
    return max((int(name[:20]) for name in names if name.endswith(".json") and name[:20].isdigit()), default=-1)


def _newest_operation(table: Path) -> str | None:
    """The operation of a Delta table's newest commit."""
    commit = table / "_delta_log" / f"{_latest_commit(table):020d}.json"
    for line in commit.read_text().splitlines():
        action = json.loads(line)
        if "commitInfo" in action:
            return action["commitInfo"].get("operation")
    return None


def _written_since(folder: Path, since_ns: int) -> bool:
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                if os.stat(os.path.join(directory, name)).st_mtime_ns >= since_ns:
                    return True
            except FileNotFoundError:
                continue
    return False


@dataclass(frozen=True)
class Progress:
    """A folder's state when a build started: what later writes are measured against."""

    out: Path
    started_ns: int
    started: float
    commits: dict[str, int]  # table folder (relative) -> its newest commit

    @classmethod
    def of(cls, out: Path) -> Progress:
        folders = [*OUTPUTS_WATCHED, "_releases", "_runs",
                   *(f"_staging/{view.name}" for view in sorted((out / "_staging").iterdir()))]
        return cls(out, time.time_ns(), time.perf_counter(), {name: _latest_commit(out / name) for name in folders})

    def committed(self, folder: str) -> bool:
        return _latest_commit(self.out / folder) > self.commits[folder]

    def appended(self, folder: str) -> bool:
        """A new commit in ``folder`` whose newest is an append (not maintenance's compaction)."""
        return self.committed(folder) and _newest_operation(self.out / folder) == "WRITE"

    def staged_share(self) -> float:
        staged = [name for name in self.commits if name.startswith("_staging/")]
        return sum(self.committed(name) for name in staged) / len(staged)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[Progress], bool]
    leaves_tables_past_release: bool = False  # a table the release names has a new commit when it is reached


def _lock_held(progress: Progress) -> bool:
    return (progress.out / "_build.lock").stat().st_size > 0


PROGRESS_POINTS = (
    KillPoint("planning: the build lock taken", _lock_held),
    KillPoint("extraction: first spool file", lambda p: _written_since(p.out / "_spool", p.started_ns)),
    KillPoint("extraction: first write under extract/", lambda p: _written_since(p.out / "extract", p.started_ns)),
    KillPoint("staging: first write under _staging/", lambda p: _written_since(p.out / "_staging", p.started_ns),
              leaves_tables_past_release=True),
    KillPoint("staging: half the staged views committed", lambda p: p.staged_share() >= 0.5,
              leaves_tables_past_release=True),
    KillPoint("outputs: one of them committed, another not yet (the schedule orders them)",
              lambda p: 0 < sum(p.committed(t) for t in OUTPUTS_WATCHED) < len(OUTPUTS_WATCHED),
              leaves_tables_past_release=True),
    KillPoint("outputs: all written, release not yet", lambda p: all(p.committed(t) for t in OUTPUTS_WATCHED),
              leaves_tables_past_release=True),
    KillPoint("release log: first write under _releases/ (maintenance or the release)",
              lambda p: _written_since(p.out / "_releases", p.started_ns)),
    KillPoint("release: the release appended to its log", lambda p: p.appended("_releases")),
    KillPoint("after the release: the run record appended", lambda p: p.appended("_runs")),
)


def _random_points(duration: float) -> tuple[KillPoint, ...]:
    rng = random.Random(SEED)
    moments = sorted(rng.uniform(0.03, 0.9) * duration for _ in range(RANDOM_KILLS))
    return tuple(KillPoint(f"random: {at:.2f} s", lambda p, at=at: p.elapsed() >= at) for at in moments)


def _kill_when(process: subprocess.Popen[str], progress: Progress, point: KillPoint) -> float | None:
    """SIGKILL the build's process group once ``point`` is reached; seconds since its start, or None
    when the build ended before."""
    while process.poll() is None:
        if point.reached(progress):
            at = progress.elapsed()
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=BUILD_TIMEOUT)
            return at
        time.sleep(POLL_SECONDS)
    return None


# ---------------------------------------------------------------------------------------------------------
# 1. SIGKILL at many points


@dataclass(frozen=True)
class KillOutcome:
    point: str
    at: float
    released: bool
    past_release: tuple[str, ...]
    completed_after: bool  # a build run to completion right after this kill


def _check_reader(out: Path, expected: CodeBase) -> None:
    """What a reader sees is exactly the expected code base's release, every edge between two nodes."""
    assert _fingerprint(out) == expected.fingerprint, f"the reader does not see the {expected.label} release"
    counts = _cli_counts(out)
    assert counts == {"nodes": expected.nodes, "dangling": 0}, counts


def _complete(out: Path, target: CodeBase) -> None:
    """The next build restores what dead ones left past the release and ends with a clean build's output."""
    left, releases_before = _past_release(out), len(_releases(out))
    stdout = _build_ok(target.source, out)
    if left:
        assert f"restored {len(left)} table(s) left past the current release" in stdout, stdout
    else:
        assert "restored" not in stdout, stdout
    assert len(_releases(out)) == releases_before + 1
    assert _past_release(out) == [], "a completed build left tables past its release"
    assert _fingerprint(out) == target.fingerprint


@dataclass(frozen=True)
class Killed:
    at: float
    released: bool
    past_release: tuple[str, ...]


def _kill_build(out: Path, current: CodeBase, target: CodeBase, point: KillPoint) -> Killed | None:
    """Build ``target`` over ``current``'s release (and whatever killed builds left past it), kill it at
    ``point`` and check what a reader sees; None when the build ended (successfully) first."""
    before = len(_releases(out))
    progress = Progress.of(out)
    process = _start_build(target.source, out)
    at = _kill_when(process, progress, point)
    if at is None:
        code, _, stderr = _finish(process)
        assert code == 0, stderr
        return None
    assert process.returncode == -signal.SIGKILL
    releases = _releases(out)
    assert len(releases) in (before, before + 1)
    released = len(releases) == before + 1
    left = _past_release(out)
    if point.leaves_tables_past_release and not released:
        assert left, f"{point.name}: no table past the release; the kill point is not what it claims"
    _check_reader(out, target if released else current)
    return Killed(at, released, tuple(left))


def _report(outcomes: list[KillOutcome | None], points: tuple[KillPoint, ...], seconds: float) -> str:
    lines = [f"{sum(o is not None for o in outcomes)} of {len(points)} kill points hit a running build "
             f"in {seconds:.1f} s"]
    for point, outcome in zip(points, outcomes, strict=True):
        if outcome is None:
            lines.append(f"  {point.name}: the build ended first")
            continue
        state = "after the release commit" if outcome.released else f"{len(outcome.past_release)} table(s) past it"
        then = "; then a build completed" if outcome.completed_after else ""
        lines.append(f"  {point.name}: killed at {outcome.at:.2f} s, {state}{then}")
    return "\n".join(lines)


def test_sigkill_at_many_points_leaves_the_release_readable(tmp_path: Path, code_bases: dict[str, CodeBase]) -> None:
    """Builds alternate between the two code bases; after each kill the reader must see the release
    (the old one, or the killed build's when the kill came after its release commit). Kills come in
    runs of COMPLETE_EVERY: the builds in between start over what the dead ones left; the build after
    the last kill of each run goes to completion and must equal a clean build."""
    started = time.perf_counter()
    old, new = code_bases["old"], code_bases["new"]
    out = tmp_path / "out"
    _build_ok(old.source, out)
    _check_reader(out, old)
    clock = time.perf_counter()
    _complete(out, new)  # an uninterrupted change: its length scales the random schedule
    duration = time.perf_counter() - clock
    points = PROGRESS_POINTS + _random_points(duration)
    outcomes: list[KillOutcome | None] = []
    current = new
    for index, point in enumerate(points):
        target = old if current is new else new
        killed = _kill_build(out, current, target, point)
        current = target if killed is None or killed.released else current
        complete = (index + 1) % COMPLETE_EVERY == 0 or index == len(points) - 1
        if complete:
            target = old if current is new else new
            _complete(out, target)
            current = target
        outcomes.append(None if killed is None else
                        KillOutcome(point.name, killed.at, killed.released, killed.past_release, complete))
    report = _report(outcomes, points, time.perf_counter() - started)
    print(report)
    hit = [outcome for outcome in outcomes if outcome is not None]
    assert len(hit) >= 12, report
    assert all(outcome is not None for outcome in outcomes[:len(PROGRESS_POINTS) - 1]), report
    assert any(outcome.past_release and not outcome.released for outcome in hit), report
    assert any(outcome.released for outcome in hit), report


# ---------------------------------------------------------------------------------------------------------
# 2. Concurrent builds


@pytest.mark.parametrize("apart", [0.0, round(random.Random(SEED).uniform(1.0, 2.5), 2)])
def test_two_builds_into_one_folder_both_finish_one_after_the_other(
        tmp_path: Path, code_bases: dict[str, CodeBase], apart: float) -> None:
    """Started ``apart`` seconds apart (the first build takes longer than that): one waits for the other."""
    old, new = code_bases["old"], code_bases["new"]
    out = tmp_path / "out"
    processes = {old.label: _start_build(old.source, out)}
    time.sleep(apart)
    processes[new.label] = _start_build(new.source, out)
    finished = {label: _finish(process) for label, process in processes.items()}
    for label, (code, _, stderr) in finished.items():
        assert code == 0, f"{label}: {stderr}"
    waited = [label for label, (_, _, stderr) in finished.items() if "waiting for another build" in stderr]
    assert len(waited) == 1, finished
    runs = {_run_id(stdout): label for label, (_, stdout, _) in finished.items()}
    first = next(label for label in finished if label not in waited)
    assert [runs[release.run_id] for release in _releases(out)] == [first, waited[0]]
    later = code_bases[waited[0]]
    _check_reader(out, later)
    listed = run_cli("releases", out)
    assert listed.returncode == 0, listed.stderr
    assert len([line for line in listed.stdout.splitlines() if line.startswith("release ")]) == 2, listed.stdout


def test_no_wait_fails_with_one_line_while_another_build_holds_the_folder(
        tmp_path: Path, code_bases: dict[str, CodeBase]) -> None:
    old, new = code_bases["old"], code_bases["new"]
    out = tmp_path / "out"
    first = _start_build(old.source, out)
    deadline = time.monotonic() + BUILD_TIMEOUT
    while not ((out / "_build.lock").exists() and (out / "_build.lock").stat().st_size > 0):
        assert first.poll() is None and time.monotonic() < deadline, "the first build never took the lock"
        time.sleep(POLL_SECONDS)
    second = run_cli(*_build_command(new.source, out, "--no-wait")[1:], timeout=BUILD_TIMEOUT)
    assert first.poll() is None, "the first build ended before the second asked: the test proves nothing"
    assert second.returncode != 0
    assert_one_line_error(second.stderr)
    assert "another build" in second.stderr, second.stderr
    code, _, stderr = _finish(first)
    assert code == 0, stderr
    assert len(_releases(out)) == 1
    _check_reader(out, old)


# ---------------------------------------------------------------------------------------------------------
# 3. Queries while a build publishes


@dataclass(frozen=True)
class Observation:
    nodes: int
    dangling: int
    publishing: bool  # when the query started, cpg_nodes had a commit the release log did not name yet


def _observe(out: Path, progress: Progress) -> Observation:
    publishing = progress.committed("cpg_nodes") and not progress.committed("_releases")
    counts = _session_counts(out)
    return Observation(counts["nodes"], counts["dangling"], publishing)


def _observe_while(process: subprocess.Popen[str], out: Path, progress: Progress) -> Iterator[Observation]:
    while process.poll() is None:
        yield _observe(out, progress)
    yield _observe(out, progress)


def test_queries_while_a_build_publishes_see_one_release(tmp_path: Path, code_bases: dict[str, CodeBase]) -> None:
    old, new = code_bases["old"], code_bases["new"]
    out = tmp_path / "out"
    _build_ok(old.source, out)
    progress = Progress.of(out)
    process = _start_build(new.source, out)
    seen = list(_observe_while(process, out, progress))
    code, _, stderr = _finish(process)
    assert code == 0, stderr
    assert all(observation.dangling == 0 for observation in seen), [o for o in seen if o.dangling]
    assert {observation.nodes for observation in seen} <= {old.nodes, new.nodes}, seen
    assert seen[0].nodes == old.nodes and seen[-1].nodes == new.nodes
    assert any(observation.publishing for observation in seen), "no query ran while the build published"
    print(f"{len(seen)} queries, {sum(o.publishing for o in seen)} of them while the build published")
