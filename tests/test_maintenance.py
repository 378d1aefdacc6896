"""Outcome-based Delta maintenance on real Delta tables: measure, decide, execute, record."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake
from hypothesis import given
from hypothesis import strategies as st

from driver.maintenance import UNMEASURED_REASON, maintain, run_maintenance, write_outcome
from relspec.catalog import RUNS_TABLE
from relspec.maintenance import (
    CLUSTER_FILE_BYTES,
    SKIP_REASON,
    MaintenanceDecision,
    MaintenancePolicy,
    WriteOutcome,
    decide_maintenance,
)
from relspec.policy import compile_maintenance

POLICY = MaintenancePolicy()
ONLY_COMPACT = MaintenancePolicy(checkpoint_every_versions=0, vacuum_every_versions=0)
NOTHING = MaintenancePolicy(compact_min_small_files=0, checkpoint_every_versions=0, vacuum_every_versions=0)


def outcome(small_files: int = 0, since_checkpoint: int = 0, since_vacuum: int = 0) -> WriteOutcome:
    return WriteOutcome(dataset="cpg_nodes", version=40, files_added=1, files_total=small_files + 1,
                        small_files=small_files, bytes_total=1000, versions_since_checkpoint=since_checkpoint,
                        versions_since_vacuum=since_vacuum)


def decision(compact: bool = False, checkpoint: bool = False, vacuum: bool = False) -> MaintenanceDecision:
    return MaintenanceDecision("t", compact=compact, checkpoint=checkpoint, vacuum=vacuum, reasons=("test",))


def append_rows(location: Path | str, count: int) -> None:
    """``count`` one-row appends: ``count`` commits (versions 0..count-1), ``count`` small files."""
    for index in range(count):
        write_deltalake(str(location), pa.table({"id": [index], "name": [f"row{index}"]}), mode="append")


def sorted_rows(location: Path) -> list[dict[str, object]]:
    session = SessionContext()
    session.register_table("t", DeltaTable(str(location)))
    return session.sql("SELECT * FROM t ORDER BY id").to_arrow_table().to_pylist()


def parquet_on_disk(location: Path) -> int:
    return len(list(location.glob("*.parquet")))


# -- the decision ------------------------------------------------------------------------------

@pytest.mark.parametrize(("given_outcome", "expected"), [
    (outcome(), (False, False, False, (SKIP_REASON,))),
    (outcome(small_files=7), (False, False, False, (SKIP_REASON,))),
    (outcome(small_files=8), (True, False, False, ("compact.small_files>=8",))),
    (outcome(since_checkpoint=9), (False, False, False, (SKIP_REASON,))),
    (outcome(since_checkpoint=10), (False, True, False, ("checkpoint.versions_since_checkpoint>=10",))),
    (outcome(since_vacuum=19), (False, False, False, (SKIP_REASON,))),
    (outcome(since_vacuum=20), (False, False, True, ("vacuum.versions_since_vacuum>=20",))),
    (outcome(small_files=7, since_checkpoint=9, since_vacuum=19), (False, False, False, (SKIP_REASON,))),
    (outcome(small_files=8, since_checkpoint=10, since_vacuum=20),
     (True, True, True, ("checkpoint.versions_since_checkpoint>=10", "compact.small_files>=8",
                         "vacuum.versions_since_vacuum>=20"))),
])
def test_decision_at_threshold_edges(given_outcome: WriteOutcome, expected: tuple[object, ...]) -> None:
    made = decide_maintenance(given_outcome, POLICY)
    assert (made.compact, made.checkpoint, made.vacuum, made.reasons) == expected
    assert made.dataset == "cpg_nodes"


def test_reason_codes_spell_the_policy_thresholds() -> None:
    policy = MaintenancePolicy(compact_min_small_files=3, checkpoint_every_versions=4, vacuum_every_versions=5)
    made = decide_maintenance(outcome(small_files=3, since_checkpoint=4, since_vacuum=5), policy)
    assert made.reasons == ("checkpoint.versions_since_checkpoint>=4", "compact.small_files>=3",
                            "vacuum.versions_since_vacuum>=5")


def test_a_threshold_of_zero_disables_its_action() -> None:
    made = decide_maintenance(outcome(small_files=10**6, since_checkpoint=10**6, since_vacuum=10**6), NOTHING)
    assert (made.compact, made.checkpoint, made.vacuum, made.reasons) == (False, False, False, (SKIP_REASON,))


counts = st.integers(min_value=-5, max_value=200)


@given(small=counts, since_checkpoint=counts, since_vacuum=counts, min_small=counts, every_checkpoint=counts,
       every_vacuum=counts)
def test_decision_is_deterministic_with_sorted_nonempty_reasons(
        small: int, since_checkpoint: int, since_vacuum: int, min_small: int, every_checkpoint: int,
        every_vacuum: int) -> None:
    policy = MaintenancePolicy(compact_min_small_files=min_small, checkpoint_every_versions=every_checkpoint,
                               vacuum_every_versions=every_vacuum)
    given_outcome = outcome(small, since_checkpoint, since_vacuum)
    made = decide_maintenance(given_outcome, policy)
    # same input, also after a serialization round trip -> same output, byte for byte
    again = decide_maintenance(msgspec.json.decode(msgspec.json.encode(given_outcome), type=WriteOutcome), policy)
    assert msgspec.json.encode(made) == msgspec.json.encode(again)
    assert made.reasons and list(made.reasons) == sorted(made.reasons)
    for action in ("compact", "checkpoint", "vacuum"):
        assert getattr(made, action) == any(reason.startswith(f"{action}.") for reason in made.reasons)
    assert (made.reasons == (SKIP_REASON,)) == (not (made.compact or made.checkpoint or made.vacuum))


# -- measuring a table -------------------------------------------------------------------------

def test_write_outcome_counts_files_sizes_and_versions(tmp_path: Path) -> None:
    table = tmp_path / "cpg_edges"
    append_rows(table, 3)
    write_deltalake(str(table), pa.table({"id": [10, 11], "name": ["a", "b"]}), mode="append")
    measured = write_outcome(table.as_uri(), POLICY)
    on_disk = sum(path.stat().st_size for path in table.glob("*.parquet"))
    assert measured == WriteOutcome(dataset="cpg_edges", version=3, files_added=1, files_total=4, small_files=4,
                                    bytes_total=on_disk, versions_since_checkpoint=4, versions_since_vacuum=4)
    assert write_outcome(str(table), MaintenancePolicy(small_file_bytes=1)).small_files == 0


# -- executing decisions -----------------------------------------------------------------------

def test_many_small_appends_get_compacted_with_data_unchanged(tmp_path: Path) -> None:
    table = tmp_path / "cpg_nodes"
    append_rows(table, 12)
    rows = sorted_rows(table)
    record = maintain(table.as_uri(), ONLY_COMPACT)
    assert record.error is None
    assert record.decision.reasons == ("compact.small_files>=8",)
    assert (record.version_before, record.version_after) == (11, 12)
    assert record.files_before == 12 and record.files_after < record.files_before
    assert sorted_rows(table) == rows
    assert DeltaTable(str(table)).history(1)[0]["operation"] == "OPTIMIZE"


def test_checkpoint_after_n_versions(tmp_path: Path) -> None:
    table = tmp_path / "cpg_props"
    policy = MaintenancePolicy(compact_min_small_files=0, checkpoint_every_versions=5, vacuum_every_versions=0)
    append_rows(table, 4)
    below = maintain(str(table), policy)
    assert below.decision.reasons == (SKIP_REASON,)
    assert not list((table / "_delta_log").glob("*.checkpoint.parquet"))
    append_rows(table, 1)
    at = maintain(str(table), policy)
    assert at.error is None and at.decision.reasons == ("checkpoint.versions_since_checkpoint>=5",)
    assert (table / "_delta_log" / "00000000000000000004.checkpoint.parquet").exists()
    assert write_outcome(str(table), policy).versions_since_checkpoint == 0
    append_rows(table, 1)
    assert write_outcome(str(table), policy).versions_since_checkpoint == 1


def test_vacuum_with_zero_retention_removes_compacted_away_files(tmp_path: Path) -> None:
    table = tmp_path / "cpg_nodes"
    append_rows(table, 10)
    rows = sorted_rows(table)
    policy = MaintenancePolicy(vacuum_retention_hours=0)
    compacted = run_maintenance(str(table), decision(compact=True), policy)
    assert compacted.error is None and compacted.files_after == 1
    assert parquet_on_disk(table) == 11  # compaction only tombstones the small files
    vacuumed = run_maintenance(table.as_uri(), decision(vacuum=True), policy)
    assert vacuumed.error is None
    assert parquet_on_disk(table) == 1
    assert vacuumed.version_after == vacuumed.version_before + 2  # VACUUM START and VACUUM END commits
    assert sorted_rows(table) == rows
    assert write_outcome(str(table), policy).versions_since_vacuum == 0



def test_a_vacuum_is_due_once_its_threshold_of_commits_follows_the_last(tmp_path: Path) -> None:
    """With a vacuum every 3 versions, the last vacuum counts while fewer than 3 commits followed it;
    from the third on, one is due. The outcome reads back only as many commits as the threshold, so a
    vacuum 3 commits back counts as none: since version 8 + 1 commits."""
    table = tmp_path / "cpg_nodes"
    append_rows(table, 3)
    policy = MaintenancePolicy(compact_min_small_files=0, checkpoint_every_versions=0, vacuum_every_versions=3,
                               vacuum_retention_hours=0)
    assert run_maintenance(str(table), decision(compact=True), policy).error is None  # files to vacuum
    assert run_maintenance(str(table), decision(vacuum=True), policy).error is None  # versions 4 and 5
    due = []
    for _ in range(4):
        outcome = write_outcome(str(table), policy)
        due.append((outcome.versions_since_vacuum, decide_maintenance(outcome, policy).vacuum))
        append_rows(table, 1)
    assert due == [(0, False), (1, False), (2, False), (9, True)]

def test_a_vacuum_that_deleted_nothing_counts_when_the_run_records_say_it_ran(tmp_path: Path) -> None:
    """A vacuum with nothing to delete leaves no commit, so the log alone would call one due at every
    build from then on; the version recorded as vacuumed (`vacuumed_at`, from the run records) counts
    like a vacuum commit, and a recorded version past the table's (a table since made again) does not."""
    table = tmp_path / "cpg_nodes"
    append_rows(table, 4)  # versions 0-3, nothing removed: a vacuum finds nothing
    policy = MaintenancePolicy(compact_min_small_files=0, checkpoint_every_versions=0, vacuum_every_versions=3,
                               vacuum_retention_hours=0)
    ran = maintain(str(table), policy)
    assert ran.decision.vacuum and ran.error is None
    assert ran.version_after == ran.version_before == 3  # it committed nothing
    assert maintain(str(table), policy).decision.vacuum  # the log alone: due again
    remembered = maintain(str(table), policy, vacuumed_at=ran.version_after)
    assert not remembered.decision.vacuum and remembered.decision.reasons == (SKIP_REASON,)
    assert write_outcome(str(table), policy, vacuumed_at=3).versions_since_vacuum == 0
    assert write_outcome(str(table), policy, vacuumed_at=9).versions_since_vacuum == 4  # 9 > version 3: ignored
    append_rows(table, 3)
    assert maintain(str(table), policy, vacuumed_at=3).decision.vacuum  # three commits since: due


def test_full_maintenance_in_one_pass(tmp_path: Path) -> None:
    table = tmp_path / "cpg_nodes"
    append_rows(table, 20)
    rows = sorted_rows(table)
    record = maintain(str(table), MaintenancePolicy(vacuum_retention_hours=0))
    assert record.error is None
    assert (record.decision.compact, record.decision.checkpoint, record.decision.vacuum) == (True, True, True)
    assert parquet_on_disk(table) == 1 and sorted_rows(table) == rows
    after = write_outcome(str(table), MaintenancePolicy())
    assert (after.files_total, after.versions_since_checkpoint, after.versions_since_vacuum) == (1, 0, 0)
    assert decide_maintenance(after, MaintenancePolicy()).reasons == (SKIP_REASON,)


# -- failures are recorded, never raised -------------------------------------------------------

def test_a_vanished_table_yields_an_error_record(tmp_path: Path) -> None:
    table = tmp_path / "cpg_nodes"
    append_rows(table, 9)
    made = decide_maintenance(write_outcome(str(table), POLICY), POLICY)
    shutil.rmtree(table)
    record = run_maintenance(str(table), made, POLICY)
    assert record.error is not None and "\x1b" not in record.error
    assert (record.version_before, record.version_after, record.files_before, record.files_after) == (-1, -1, -1, -1)
    unmeasured = maintain(str(table), POLICY)
    assert unmeasured.error is not None
    assert unmeasured.decision.reasons == (UNMEASURED_REASON,)
    assert unmeasured.dataset == "cpg_nodes"


def test_a_failure_midway_keeps_the_table_and_records_the_error(tmp_path: Path) -> None:
    table = tmp_path / "cpg_nodes"
    append_rows(table, 9)
    for data_file in table.glob("*.parquet"):
        data_file.unlink()  # the log still references them: compaction cannot read its input
    record = run_maintenance(str(table), decision(compact=True), POLICY)
    assert record.error is not None
    assert (record.version_before, record.version_after, record.files_before, record.files_after) == (8, 8, 9, 9)


def test_a_log_is_compacted_without_rewriting_its_large_files(tmp_path: Path) -> None:
    """A log's compaction packs its files under the target and leaves a larger one alone: the history
    compacted before is not written again at every compaction."""
    table = tmp_path / "cpg_runs"
    noise = random.Random(7)  # (records that do not compress: the file stays over the target)
    big = pa.table({"run_id": [f"run-{index:06d}" for index in range(80_000)],
                    "record": [noise.randbytes(80).hex() for _ in range(80_000)]})
    write_deltalake(str(table), big)
    (history,) = DeltaTable(str(table)).file_uris()
    for index in range(8):  # a run each: eight small files
        write_deltalake(str(table), pa.table({"run_id": [f"new-{index}"], "record": ["{}"]}), mode="append")
    policy = MaintenancePolicy(checkpoint_every_versions=0, vacuum_every_versions=0, compact_target_bytes=4 * 2**20)
    assert Path(history.removeprefix("file://")).stat().st_size > 4 * 2**20
    record = maintain(table.as_uri(), policy)
    assert record.error is None and record.decision.reasons == ("compact.small_files>=8",)
    after = DeltaTable(str(table)).file_uris()
    assert history in after and record.files_before == 9 and record.files_after == len(after) == 2


def test_the_compiled_policy_compacts_logs_only_to_the_data_file_size() -> None:
    chosen = compile_maintenance((RUNS_TABLE, "cpg_nodes"), {})
    assert chosen[RUNS_TABLE].policy.compact_target_bytes == CLUSTER_FILE_BYTES == 4 * 2**20
    assert "compaction packs its files under 4 MiB, not its history" in chosen[RUNS_TABLE].confidence.evidence[-1]
    assert chosen["cpg_nodes"].policy.compact_target_bytes is None  # (an output: clustered, compacted by z-order)
