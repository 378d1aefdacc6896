"""What each view's DataFusion plan says before a build runs it: `cpgflow plan --json`'s signals.

Each view's SQL is planned, in plan order, over what the next build would read: the extraction
tables at the versions the current release names, each staged view's staging table as the last
build left it, and each lazy view inlined into its readers as the build inlines it. Its plan
signals (lineage, columns read, joins, repartitions, sort keys, fingerprint) come from those plans,
and its estimated rows and bytes from DataFusion's statistics. A view that reads a table the folder
does not hold (nothing built yet, or a view the last build held in memory) is planned over an empty
table of the declared columns: its signals hold, its estimate is unknown and says why.
"""

from __future__ import annotations

import msgspec
from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session
from relspec.catalog import EXTRACT_TABLES
from relspec.plan_signals import PlanEstimate, PlanSignals, plan_estimate, plan_signals
from relspec.policy import CompiledExecutionPolicy
from relspec.releases import current_release
from semantics.entities import BUILTIN_NAMES, builtin_names_table
from semantics.ir import SOURCE_COLUMNS, SemanticPlan
from semantics.scans import empty_batch


class ViewPreview(msgspec.Struct, frozen=True):
    signals: PlanSignals | None  # None: a fixpoint program, planned rule by rule as its rounds run
    estimate: PlanEstimate | None
    unknown: str | None = None  # why there is no estimate


def preview_views(plan: SemanticPlan, policy: CompiledExecutionPolicy,
                  store: DeltaTableStore | None) -> dict[str, ViewPreview]:
    """Every view's plan signals and estimate (see the module's doc); ``store``: the output folder
    (None: nothing built)."""
    session = new_session()
    session.sql("SET datafusion.explain.show_statistics = true").collect()
    missing = _register_sources(session, store)  # tables planned over empty stand-ins
    previews = {}
    for view in plan.views:
        absent = sorted(name for name in view.inputs if name in missing)
        if view.fixpoint is not None:
            previews[view.name] = ViewPreview(None, None, "a fixpoint program: its rules are planned as its rounds run")
        else:
            frame = session.sql(view.sql)
            unknown = f"reads {', '.join(absent)}: no table of it in the folder yet" if absent else None
            previews[view.name] = ViewPreview(plan_signals(session, frame),
                                              None if absent else plan_estimate(session, view.sql), unknown)
            if policy.cache[view.name].cache != "delta_staging":  # inlined into its readers, as the build does
                session.register_view(view.name, frame)
                if absent:
                    missing.add(view.name)
                continue
        staged = store is not None and store.staged_result(view.name) is not None
        if staged:
            store.register_staged(session, view.name, "delta")  # type: ignore[union-attr]
        else:
            session.register_record_batches(view.name, [[empty_batch(view.columns)]])
            missing.add(view.name)
    return previews


def _register_sources(session: SessionContext, store: DeltaTableStore | None) -> set[str]:
    """The extraction tables at the current release's versions (an empty stand-in for each one it
    does not name) and the builtin names; returns the names of the stand-ins."""
    release = current_release(store.releases()) if store is not None else None
    versions = release.versions if release is not None else {}
    missing = set()
    for name in EXTRACT_TABLES:
        if name in versions:
            store.register(session, name, versions[name])  # type: ignore[union-attr]
        else:
            session.register_record_batches(name, [[empty_batch(SOURCE_COLUMNS[name])]])
            missing.add(name)
    session.register_record_batches(BUILTIN_NAMES.table, [builtin_names_table().to_batches()])
    return missing
