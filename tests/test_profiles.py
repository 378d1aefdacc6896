"""Session profiles: each workload class's DataFusion settings, applied to the session it runs on.

The proofs read what DataFusion did or holds (its settings table, an executed plan's spill metrics),
never only the profile's fields."""

from __future__ import annotations

import json

import pytest
from conftest import build, run_cli, shown_limit, write_tree

from driver.api import build_driver, open_session
from driver.engine import new_session
from relspec.plan_signals import PlanExecution
from relspec.profiles import MEMORY_SHARE, SessionProfile, compile_session_profile

GIB = 2**30
SORT_ROWS = 1_000_000
# A million rows of (a number, its 32-character md5 digest), sorted by the digest: ~50 MB of sort input.
SORT_SQL = f"SELECT value, md5(CAST(value AS VARCHAR)) AS digest FROM range({SORT_ROWS}) ORDER BY digest"


def setting(session, name: str) -> str:
    rows = session.sql("SELECT value FROM information_schema.df_settings WHERE name = $name",
                       param_values={"name": name}).to_pylist()
    return rows[0]["value"]


def profile(memory_limit: int | None, partitions: int = 1) -> SessionProfile:
    return SessionProfile("full_build", partitions, 8192, True, True, memory_limit)


def test_each_workload_class_holds_its_share_of_memory():
    # 8 GiB: a build's session half of it, a query's a quarter; one partition when jobs is 1
    profiles = {workload: compile_session_profile(workload, jobs=1, memory=8 * GIB) for workload in MEMORY_SHARE}
    assert {workload: p.memory_limit for workload, p in profiles.items()} == {
        "full_build": 4 * GIB, "incremental_build": 4 * GIB, "replay": 4 * GIB, "interactive_query": 2 * GIB}
    assert {p.target_partitions for p in profiles.values()} == {1}
    assert all(p.workload == workload for workload, p in profiles.items())


def test_a_replay_takes_the_partitions_and_batches_of_the_run_it_replays():
    recorded = SessionProfile("full_build", 3, 4096, False, True, 12 * GIB)
    replayed = compile_session_profile("replay", memory=2 * GIB, recorded=recorded)
    assert (replayed.workload, replayed.target_partitions, replayed.batch_size) == ("replay", 3, 4096)
    assert (replayed.repartition_joins, replayed.repartition_aggregations) == (False, True)
    assert replayed.memory_limit == GIB  # this machine's budget, not the recorded one


def test_the_session_is_made_under_the_profile():
    session = new_session(SessionProfile("incremental_build", 3, 4096, False, True, 3 * GIB))
    assert setting(session, "datafusion.execution.target_partitions") == "3"
    assert setting(session, "datafusion.execution.batch_size") == "4096"
    assert setting(session, "datafusion.optimizer.repartition_joins") == "false"
    assert setting(session, "datafusion.optimizer.repartition_aggregations") == "true"
    assert setting(session, "datafusion.runtime.memory_limit") == "3G"
    assert setting(new_session(profile(None)), "datafusion.runtime.memory_limit") == "unlimited"


def test_a_sort_past_the_memory_limit_spills_to_disk_and_finishes():
    spilling = PlanExecution(session := new_session(profile(32 * 2**20)), session.sql(SORT_SQL))
    result = spilling.collect()
    digests = result.column("digest").to_pylist()
    assert result.num_rows == SORT_ROWS and digests == sorted(digests)
    signals = spilling.signals()
    assert signals.spill_count > 0 and signals.spilled_bytes > 0

    unbounded = PlanExecution(session := new_session(profile(None)), session.sql(SORT_SQL))
    assert unbounded.collect().column("digest").to_pylist() == digests
    assert (unbounded.signals().spill_count, unbounded.signals().spilled_bytes) == (0, 0)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """A two-file code base built, then built again after one file changed: (out, the second run's
    session settings)."""
    base = tmp_path_factory.mktemp("profiles")
    root = write_tree(base / "src", {"a.py": "def f():\n    return 1\n", "b.py": "from a import f\nf()\n"})
    out = base / "out"
    build(root, out)
    (root / "a.py").write_text("def f():\n    return 2\n")
    session = build_driver(root, out, jobs=1).execute(["build_summary", "session"])["session"]
    return out, session


def test_a_build_runs_under_its_workload_class_and_records_it(rebuilt):
    out, session = rebuilt
    records = json.loads(run_cli("runs", out, "--json").stdout)
    profiles = [record["package"]["profile"] for record in records]
    assert [p["workload"] for p in profiles] == ["full_build", "incremental_build"]
    expected = compile_session_profile("incremental_build", jobs=1)
    assert profiles[1]["memory_limit"] == expected.memory_limit
    assert setting(session, "datafusion.runtime.memory_limit") == shown_limit(expected.memory_limit)
    assert setting(session, "datafusion.execution.target_partitions") == "1"  # jobs 1

    shown = run_cli("runs", out).stdout
    assert "session profile full_build: " in shown and "session profile incremental_build: " in shown
    why = run_cli("why", out, "session").stdout
    assert "session profile incremental_build" in why


def test_a_query_runs_under_the_interactive_profile(rebuilt):
    out, _ = rebuilt
    interactive = compile_session_profile("interactive_query")
    result = run_cli("query", out, "SELECT value FROM information_schema.df_settings "
                     "WHERE name = 'datafusion.runtime.memory_limit'", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"value": shown_limit(interactive.memory_limit)}]
    session, _ = open_session(out)
    assert setting(session, "datafusion.runtime.memory_limit") == shown_limit(interactive.memory_limit)


def test_a_replay_runs_under_the_profile_its_run_recorded(rebuilt, tmp_path):
    from driver.delta_store import DeltaTableStore
    from driver.factory import replay_driver
    from driver.replay import PinnedTableStore
    from relspec.catalog import DatasetCatalog

    out, _ = rebuilt
    recorded = SessionProfile("full_build", 3, 4096, False, True, 8 * GIB)
    store = PinnedTableStore(DatasetCatalog(str(tmp_path)), DeltaTableStore(DatasetCatalog(str(out))), {})
    authority = replay_driver(store, tmp_path, {}, recorded).execute(["execution_authority"])["execution_authority"]
    assert authority.policy.profile.workload == "replay"
    assert setting(authority.session, "datafusion.execution.target_partitions") == "3"
    assert setting(authority.session, "datafusion.execution.batch_size") == "4096"
    assert setting(authority.session, "datafusion.optimizer.repartition_joins") == "false"


def test_plan_shows_the_profile_a_build_would_run_under(tmp_path):
    root = write_tree(tmp_path / "src", {"a.py": "def f():\n    return 1\n"})
    planned = run_cli("plan", root, "--json")
    assert planned.returncode == 0, planned.stderr
    profile = json.loads(planned.stdout)["policy"]["profile"]
    expected = compile_session_profile("full_build")
    assert (profile["workload"], profile["memory_limit"]) == ("full_build", expected.memory_limit)
    assert "session profile full_build: " in run_cli("plan", root).stdout
