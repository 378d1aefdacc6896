"""Outcome-based Delta maintenance: the decision, kept pure.

A write leaves a table in some state (how many small files, how many commits since the last
checkpoint and the last vacuum); `decide_maintenance` turns that outcome and a policy into what to
do, with one reason code per threshold reached. The driver measures the outcome and executes the
decision (`driver.maintenance`); nothing here touches storage.

Reason codes spell the threshold they crossed (``compact.small_files>=8``), so a recorded decision
says why without the policy beside it. The same outcome and policy always give the same decision.
"""

from __future__ import annotations

import msgspec

SKIP_REASON = "skip.no_threshold_reached"


class WriteOutcome(msgspec.Struct, frozen=True):
    """A table's state after a write.

    ``versions_since_checkpoint`` counts the commits a reader replays from JSON (``version`` minus
    the last checkpoint's version, ``version + 1`` with no checkpoint); ``versions_since_vacuum``
    counts likewise from the last VACUUM commit, looked for among as many recent commits as the
    policy's vacuum threshold (one further back counts as none: either way the threshold is reached).
    """

    dataset: str
    version: int
    files_added: int
    files_total: int
    small_files: int
    bytes_total: int
    versions_since_checkpoint: int
    versions_since_vacuum: int


# A table whose rows belong to source files is written sorted by its file column, in data files of
# about this size: replacing one file's rows then rewrites the data file that holds them, not the
# table (Delta prunes the replace by each data file's min/max of that column).
CLUSTER_FILE_BYTES = 4 * 1024 * 1024


class MaintenancePolicy(msgspec.Struct, frozen=True):
    """Thresholds of the maintenance decision; a threshold of 0 or less disables its action.
    ``cluster_by``: the table is clustered by that column (see `CLUSTER_FILE_BYTES`), and compaction
    keeps it so (it sorts by the column) instead of packing files in any order."""

    small_file_bytes: int = CLUSTER_FILE_BYTES // 4
    compact_min_small_files: int = 8
    checkpoint_every_versions: int = 10
    vacuum_every_versions: int = 20
    vacuum_retention_hours: int = 168
    cluster_by: str | None = None
    # compaction packs only files under this size (None: Delta's target, 100 MB): an append-only log
    # compacted to one file rewrites its whole history at every compaction
    compact_target_bytes: int | None = None


class MaintenanceDecision(msgspec.Struct, frozen=True):
    dataset: str
    compact: bool
    checkpoint: bool
    vacuum: bool
    reasons: tuple[str, ...]


class MaintenanceRecord(msgspec.Struct, frozen=True):
    """What maintenance did to one table. Versions and file counts are -1 where the table could not
    be read or was not measured (skipped as unchanged); ``error`` holds the failure, which never fails
    the build."""

    dataset: str
    decision: MaintenanceDecision
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    seconds: float
    error: str | None = None


def _reached(value: int, threshold: int) -> bool:
    return threshold > 0 and value >= threshold


def decide_maintenance(outcome: WriteOutcome, policy: MaintenancePolicy) -> MaintenanceDecision:
    compact = _reached(outcome.small_files, policy.compact_min_small_files)
    checkpoint = _reached(outcome.versions_since_checkpoint, policy.checkpoint_every_versions)
    vacuum = _reached(outcome.versions_since_vacuum, policy.vacuum_every_versions)
    reasons = []
    if compact:
        reasons.append(f"compact.small_files>={policy.compact_min_small_files}")
    if checkpoint:
        reasons.append(f"checkpoint.versions_since_checkpoint>={policy.checkpoint_every_versions}")
    if vacuum:
        reasons.append(f"vacuum.versions_since_vacuum>={policy.vacuum_every_versions}")
    return MaintenanceDecision(
        dataset=outcome.dataset,
        compact=compact,
        checkpoint=checkpoint,
        vacuum=vacuum,
        reasons=tuple(sorted(reasons)) or (SKIP_REASON,),
    )
