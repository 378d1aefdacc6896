"""Session profiles: the DataFusion settings each workload class runs its queries with.

A profile is compiled for the run's workload class (full build, incremental build, replay,
interactive query), applied when its session is made (`driver.engine.new_session`) and recorded in
the run's execution package, so that a replay runs under the profile of the run it replays.

What the classes differ in is the memory the session's operators may hold. Past it, sorts,
aggregations and joins that can spill write to the temporary folder instead of growing the process
(a join's build side cannot spill: it fails with DataFusion's "Resources exhausted" error, where an
unbounded session would have grown until the machine ran out). A build holds the extraction's Arrow
tables and its workers beside the session: the session gets half of memory. A query runs beside
whatever else its user runs (a notebook, an editor): it gets a quarter. The limits are generous on
purpose: they stop a runaway query, not routine work. DataFusion 55's external sort is fragile when
its limit is tight: sorting the standard library's 2.8M edges by their ends (1.5 GB peak unbounded)
ran under 1 GiB without spilling, and failed under 512 and 128 MiB while merging its spills
("Resources exhausted", apache/datafusion#16979); raising `sort_spill_reservation_bytes` rescued
that sort and broke a synthetic one, so it stays at DataFusion's default.

Partitions and batch size were measured on the interactive questions over the standard library's
output (tests/benchmarks/bench_profiles.py: one partition or two, batches of 8,192 or 32,768 rows,
all four within 2% of each other): every class keeps one partition per core (at most ``jobs``) and
DataFusion's batch size; a view's own scan options still narrow its partitions (relspec/policy.py).
"""

from __future__ import annotations

import msgspec

from relspec.calibration import WorkloadClass
from relspec.machine import physical_memory, session_partitions
from semantics.inference import InferenceConfidence

# The share of memory a session's operators may hold, by workload class (see the module's doc).
MEMORY_SHARE: dict[WorkloadClass, float] = {
    "full_build": 0.5, "incremental_build": 0.5, "replay": 0.5, "interactive_query": 0.25,
}
BATCH_SIZE = 8192  # DataFusion's default: larger batches measured no faster (see the module's doc)


class SessionProfile(msgspec.Struct, frozen=True):
    workload: WorkloadClass
    target_partitions: int
    batch_size: int
    repartition_joins: bool
    repartition_aggregations: bool
    memory_limit: int | None  # bytes the operators may hold before they spill; None: unbounded
    confidence: InferenceConfidence | None = None

    def settings(self) -> dict[str, str]:
        """The DataFusion configuration keys this profile sets (the memory limit is the runtime's)."""
        return {
            "datafusion.execution.target_partitions": str(self.target_partitions),
            "datafusion.execution.batch_size": str(self.batch_size),
            "datafusion.optimizer.repartition_joins": str(self.repartition_joins).lower(),
            "datafusion.optimizer.repartition_aggregations": str(self.repartition_aggregations).lower(),
        }


def compile_session_profile(workload: WorkloadClass, jobs: int = 0, memory: int | None = None,
                            recorded: SessionProfile | None = None) -> SessionProfile:
    """The profile ``workload`` runs under on this machine (``memory`` bytes, measured when None), at
    most ``jobs`` partitions (0: one per core). A replay of a run that ``recorded`` its profile takes
    that run's partitions, batch size and repartitioning, with this machine's memory budget."""
    memory = physical_memory() if memory is None else memory
    limit = int(memory * MEMORY_SHARE[workload])
    evidence = [f"{memory:,} bytes of memory, {MEMORY_SHARE[workload]:.0%} of it for the session of the "
                f"{workload} class ({limit:,} bytes): its operators spill to disk past it"]
    if recorded is not None:
        evidence.append(f"the replayed run's profile: {recorded.target_partitions} partitions, "
                        f"batches of {recorded.batch_size:,} rows")
        return SessionProfile(workload, recorded.target_partitions, recorded.batch_size, recorded.repartition_joins,
                              recorded.repartition_aggregations, limit,
                              InferenceConfidence("session_profile", workload, 1.0, tuple(evidence)))
    partitions = session_partitions(jobs)
    evidence.append(f"{partitions} partitions (one per core{', at most jobs' if jobs > 0 else ''}), batches of "
                    f"{BATCH_SIZE:,} rows: measured no slower than the alternatives")
    return SessionProfile(workload, partitions, BATCH_SIZE, True, True, limit,
                          InferenceConfidence("session_profile", workload, 0.8, tuple(evidence)))
