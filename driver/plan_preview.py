"""What each view's DataFusion plan says before a build runs it: `cpgflow plan --json`'s signals.

Each view's SQL is planned, in plan order, under the compiled session profile and the view's own
scan options, over what the next build would read: the extraction tables at the versions the
current release names, each staged view's staging table as the last released build left it, and
each lazy view inlined into its readers as the build inlines it. Each is planned as a whole build
plans it: a file-local view written to a table is sorted by its file column (a rebuild that
replaces some files' rows neither filters nor sorts here). Its plan signals (lineage,
columns read, joins, repartitions, sort keys, fingerprint) come from those plans, and its estimated
rows and bytes from DataFusion's statistics. A view that reads a table the folder does not hold
(nothing built yet, a view the last build held in memory or a run that was not released wrote) is
planned over an empty table of the declared columns: its signals hold, its estimate is unknown and
says why. A view that cannot be planned (a table an older version wrote) says so, and the preview
goes on.
"""

from __future__ import annotations

import msgspec
import pyarrow as pa
from datafusion import SessionContext

from driver.delta_store import DeltaTableStore
from driver.engine import new_session, set_options, sorted_by
from relspec.catalog import EXTRACT_TABLES
from relspec.plan_signals import PlanEstimate, PlanSignals, plan_estimate, plan_signals
from relspec.policy import CompiledExecutionPolicy
from relspec.releases import Release, current_release
from semantics.entities import BUILTIN_NAMES, Column, builtin_names_table
from semantics.fixpoint import register_in_memory
from semantics.ir import SOURCE_COLUMNS, SemanticPlan
from semantics.scans import empty_batch


class ViewPreview(msgspec.Struct, frozen=True):
    signals: PlanSignals | None  # None: a fixpoint program (planned rule by rule as its rounds run), or unplannable
    estimate: PlanEstimate | None
    unknown: str | None = None  # why there is no signal or no estimate


def preview_views(plan: SemanticPlan, policy: CompiledExecutionPolicy,
                  store: DeltaTableStore | None) -> dict[str, ViewPreview]:
    """Every view's plan signals and estimate (see the module's doc); ``store``: the output folder
    (None: nothing built)."""
    session = new_session(policy.profile)
    set_options(session, {"datafusion.explain.show_statistics": "true"})
    releases = store.releases() if store is not None else []
    released = {release.run_id for release in releases}
    missing = _register_sources(session, store, releases)  # tables planned over empty stand-ins
    previews = {}
    for view in plan.views:
        absent = sorted(name for name in view.inputs if name in missing)
        if view.fixpoint is not None:
            previews[view.name] = ViewPreview(None, None, "a fixpoint program: its rules are planned as its rounds run")
        else:
            set_options(session, policy.scan.views[view.name].options)
            try:
                frame = session.sql(view.sql)
                order = policy.write_order(view.name)  # a whole write sorts by it, as the build plans it
                signals = plan_signals(session, frame if order is None else sorted_by(frame, order))
                estimate = None if absent else plan_estimate(session, view.sql)
            except Exception as err:  # a table an older version of cpgflow wrote, with other columns
                previews[view.name] = ViewPreview(None, None, f"cannot be planned: {str(err).splitlines()[0]}")
                _stand_in(session, view.name, view.columns, missing)
                continue
            unknown = f"reads {', '.join(absent)}, of which the folder holds no table" if absent else None
            previews[view.name] = ViewPreview(signals, estimate, unknown)
            if policy.cache[view.name].cache != "delta_staging":  # inlined into its readers, as the build does
                session.register_view(view.name, frame)
                if absent:
                    missing.add(view.name)
                continue
        written = store.staged_result(view.name) if store is not None else None
        if written is not None and written[1] in released:
            store.register_staged(session, view.name, "delta")  # type: ignore[union-attr]
        else:
            _stand_in(session, view.name, view.columns, missing)
    return previews


def _stand_in(session: SessionContext, name: str, columns: tuple[Column, ...], missing: set[str]) -> None:
    """An empty table of ``columns`` under ``name``, counted as missing."""
    register_in_memory(session, name, pa.Table.from_batches([empty_batch(columns)]))
    missing.add(name)


def _register_sources(session: SessionContext, store: DeltaTableStore | None, releases: list[Release]) -> set[str]:
    """The extraction tables at the current release's versions (an empty stand-in for each one it
    does not name) and the builtin names; returns the names of the stand-ins."""
    release = current_release(releases)
    versions = release.versions if release is not None else {}
    missing: set[str] = set()
    for name in EXTRACT_TABLES:
        if name in versions:
            store.register(session, name, versions[name])  # type: ignore[union-attr]
        else:
            _stand_in(session, name, SOURCE_COLUMNS[name], missing)
    register_in_memory(session, BUILTIN_NAMES.table, builtin_names_table())
    return missing
