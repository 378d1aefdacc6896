"""Replay: re-execute a recorded run with every input pinned at the version it read, and check that
it produces the same output.

The run's extraction tables are read from the output folder at the versions its package recorded
(Delta time travel); every view is planned and executed again, staged and published into a scratch
folder, never into the output's tables. Each output table is then compared by content with the one
the run published, and each view's plan with the plan the run recorded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
from deltalake import DeltaTable

from driver.api import content_fingerprint
from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from driver.housekeeping import readable
from driver.storage import output_location
from relspec.catalog import RUNS_TABLE, DatasetCatalog
from relspec.releases import input_versions, run_versions
from relspec.runs import UNPLANNED_OUTCOMES, RunRecord, find_record


class ReplayError(LookupError):
    """The run cannot be replayed (unknown, never published, or its inputs were vacuumed)."""


class PinnedTableStore(DeltaTableStore):
    """A store whose tables ``pinned`` are read from ``source`` at their pinned versions and never
    written; every other table lives in this store's own (scratch) catalog."""

    def __init__(self, catalog: DatasetCatalog, source: DeltaTableStore, pinned: dict[str, int]) -> None:
        super().__init__(catalog, source.storage_options)
        self.source = source
        self.pinned = pinned

    def _table(self, name: str, version: int | None = None) -> DeltaTable | None:
        if name in self.pinned:
            return self.source._table(name, self.pinned[name] if version is None else version)
        return super()._table(name, version)

    def _metadata(self, name: str) -> DeltaTable | None:
        return self._table(name) if name in self.pinned else super()._metadata(name)


class ViewCheck(msgspec.Struct, frozen=True):
    name: str  # an output table or a view
    matches: bool
    recorded: str  # the run's content digest (a table) or plan fingerprint (a view)
    replayed: str


class ReplayReport(msgspec.Struct, frozen=True):
    run_id: str
    pinned: dict[str, int]  # extraction table -> the version read
    outputs: tuple[ViewCheck, ...]  # by content: what decides whether the replay reproduced the run
    plans: tuple[ViewCheck, ...]  # by DataFusion plan fingerprint: where a difference comes from
    unplanned: tuple[str, ...] = ()  # views the run did not plan (reused, or not needed): no plan to compare

    @property
    def reproduced(self) -> bool:
        return all(check.matches for check in self.outputs)


def _record(store: DeltaTableStore, run_id: str) -> RunRecord:
    record = find_record(store.read(RUNS_TABLE), run_id)
    if record is None:
        raise ReplayError(f"no run {run_id!r} in {store.catalog.root} (cpgflow runs lists them)")
    if record.package is None or not record.output_versions:
        raise ReplayError(f"run {run_id} published nothing ({record.status}): there is no output to replay")
    return record


def _check_readable(store: DeltaTableStore, record: RunRecord, versions: dict[str, int]) -> None:
    gone = sorted(name for name, version in versions.items() if not readable(store, name, version))
    if gone:
        raise ReplayError(f"the tables run {record.run_id} read or wrote were vacuumed ({', '.join(gone)}): "
                          "only the last releases stay readable")


def replay(output_dir: str | Path, run_id: str, storage_options: dict[str, str] | None = None) -> ReplayReport:
    """Re-execute run ``run_id`` of ``output_dir`` with its inputs pinned and compare the results."""
    from driver.factory import replay_driver

    store = DeltaTableStore(DatasetCatalog(output_location(output_dir)), storage_options)
    record = _record(store, run_id)
    versions = run_versions(store.releases(), record)
    pinned = input_versions(record)
    published = {name: versions[name] for name in record.output_versions}
    _check_readable(store, record, {**pinned, **published})
    with tempfile.TemporaryDirectory(prefix="cpgflow-replay-") as scratch:
        pinned_store = PinnedTableStore(DatasetCatalog(scratch), store, pinned)
        dr = replay_driver(pinned_store, scratch, record.package.cache_policies,  # type: ignore[union-attr,arg-type]
                           record.package.profile)  # type: ignore[union-attr]
        results = dr.execute(["published_cpg", "execution_authority"], overrides={"extraction_tables": pinned})
        outputs = _compare_outputs(store, published, DeltaTableStore(DatasetCatalog(scratch)),
                                   results["published_cpg"])
        replayed_plans = {outcome.view: outcome.plan_fingerprint
                          for outcome in results["execution_authority"].outcomes()}
    recorded_plans = record.package.plan_fingerprints  # type: ignore[union-attr]
    unplanned = {outcome.view for outcome in record.views if outcome.outcome in UNPLANNED_OUTCOMES}
    plans = tuple(ViewCheck(view, replayed_plans.get(view) == plan, plan, replayed_plans.get(view, ""))
                  for view, plan in sorted(recorded_plans.items()) if view not in unplanned)
    return ReplayReport(run_id, pinned, outputs, plans, tuple(sorted(unplanned & set(recorded_plans))))


def _compare_outputs(store: DeltaTableStore, published: dict[str, int], scratch: DeltaTableStore,
                     replayed: dict[str, int]) -> tuple[ViewCheck, ...]:
    session = new_session()
    checks = []
    for name, version in sorted(published.items()):
        store.register(session, name, version)
        recorded = content_fingerprint(session, name)
        scratch.register(session, name, replayed[name])
        again = content_fingerprint(session, name)
        checks.append(ViewCheck(name, again == recorded, recorded, again))
    return tuple(checks)
