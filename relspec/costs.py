"""What each view will cost to compute, predicted from what earlier runs of the same output measured.

In order of preference (the issue's and the seed's order): the seconds a released run spent
computing the view the way this run will (whole or by file), scaled by how much the rows of the
source tables it reads grew since; else the rows it produced then, at the seconds per row that run
measured over all the views it computed; else an estimate from the bytes of the source tables it
reads, at a rate measured once on the standard library, with a low confidence. A view nothing has
measured and whose sources are not built yet costs that estimate over zero bytes: nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import msgspec

from semantics.inference import InferenceConfidence

if TYPE_CHECKING:  # the policy holds the costs: its types are only annotations here
    from relspec.policy import TableStats, ViewMaintenance, ViewPolicy
    from relspec.runs import RunRecord, ViewOutcome
    from relspec.view_graph import ViewGraph

CostBasis = Literal["seconds", "rows", "bytes"]
# Outcomes whose seconds are the view's computation (reused: a lookup; lazy: planning only, the work
# is paid by its readers): what costs and calibration learn from.
COMPUTED_OUTCOMES = frozenset({"computed_staged", "computed_in_memory", "published"})
# Seconds per byte of source tables read (Parquet bytes of each view's transitive sources), with no
# history: the standard library's cold build computed its views in 59.4 s over 6.22 GB read so. A view's
# own rate ranges from 0.1 to 17 s a GB, hence the low confidence of an estimate.
ESTIMATED_SECONDS_PER_BYTE = 59.4 / 6.22e9


class ViewCost(msgspec.Struct, frozen=True):
    seconds: float
    basis: CostBasis
    confidence: InferenceConfidence


def predict_costs(graph: ViewGraph, history: list[RunRecord], stats: dict[str, TableStats],
                  policies: dict[str, ViewPolicy], maintenance: dict[str, ViewMaintenance],
                  held: frozenset[str]) -> dict[str, ViewCost]:
    """Every view's predicted seconds from ``history`` (run records, oldest first) and the source
    tables' statistics now. A lazy view (policy ``none``) costs its readers, not itself: 0 s. A view
    ``held`` in memory is computed whole whatever its maintenance mode (there is no table to update)."""
    released = [record for record in reversed(history) if record.status == "released"]
    now_rows = {name: stat.rows for name, stat in stats.items()}
    costs = {}
    rates: dict[str, float | None] = {}  # run -> its seconds per row, taken when first needed
    for view in graph.names():
        if policies[view].cache == "none":
            costs[view] = ViewCost(0.0, "seconds", InferenceConfidence(
                "view_cost", "0.000", 1.0, ("lazy: computed inside each reader's plan, which pays for it",)))
            continue
        sources = graph.transitive_sources(view)
        mode = maintenance[view].mode if view in maintenance and view not in held else "full"
        costs[view] = (_from_seconds(view, mode, sources, released, now_rows)
                       or _from_rows(view, sources, released, now_rows, rates)
                       or _from_bytes(sources, stats))
    return costs


def measured_cost(view: str, mode: str, graph: ViewGraph, history: list[RunRecord], stats: dict[str, TableStats],
                  where: Callable[[RunRecord], bool] = lambda record: True) -> ViewCost | None:
    """The seconds the latest released run (of those ``where`` admits) that computed ``view`` as
    ``mode`` ("full" or "by_file") took, scaled by how its sources grew since (None: no such run in
    ``history``, oldest first)."""
    released = [record for record in reversed(history) if record.status == "released" and where(record)]
    now_rows = {name: stat.rows for name, stat in stats.items()}
    return _from_seconds(view, mode, graph.transitive_sources(view), released, now_rows)


def input_rows(history: list[RunRecord], graph: ViewGraph) -> dict[str, tuple[str, int]]:
    """Each view's input rows the last time a released run computed it whole: what its plan's
    scans read (its executed metrics), plus the rows of each view it read from memory (a table held
    in memory reports no scan metrics; its rows are in the same record), and of each source table
    when it scanned no file at all (a small build holds its extraction tables in memory too). A view's
    rows are those of the last run that computed it whole (one that reused it, or replaced some files'
    rows of it, says nothing of them).
    A fixpoint view's input is its largest input: each of its queries reads a few of them, and their
    sum (155k rows on a 104-file code base whose largest input held 54k) took it for a large input
    from its second build on, which ran it 20-25% slower than on its first (1.44 s -> 1.75-1.79 s).
    view -> (run, rows)."""
    found: dict[str, tuple[str, int]] = {}
    rows: dict[str, int] = {}
    for record in history:  # oldest first: later runs overwrite
        if record.status != "released":
            continue
        rows |= {outcome.view: outcome.rows for outcome in record.views
                 if outcome.rows is not None and outcome.maintained == "full"}
        lazy = {outcome.view for outcome in record.views if outcome.outcome == "lazy"}
        for outcome in record.views:
            executed = outcome.executed
            if executed is None or outcome.maintained != "full" or outcome.view not in graph.index:
                continue
            sources, computed = _read_through(outcome.view, graph, lazy)
            if outcome.view in graph.fixpoints:
                sizes = [*(rows.get(name, 0) for name in computed),
                         *(record.source_rows.get(name, 0) for name in sources)]
                found[outcome.view] = (record.run_id, max(sizes, default=0))
                continue
            measured = {scan.table for scan in executed.scans}
            held = sum(rows.get(name, 0) for name in computed if name not in measured)
            if not executed.scans:
                held += sum(record.source_rows.get(name, 0) for name in sources)
            found[outcome.view] = (record.run_id, executed.rows_scanned + held)
    return found


def _read_through(view: str, graph: ViewGraph, lazy: set[str]) -> tuple[set[str], set[str]]:
    """The source tables and the computed (not ``lazy``) views ``view``'s plan reads: its own, and
    those of the lazy views it reads (their plans are part of its own)."""
    sources, computed = set(graph.sources[view]), set()
    for name in graph.inputs(view):
        if name in lazy:
            more_sources, more_computed = _read_through(name, graph, lazy)
            sources |= more_sources
            computed |= more_computed
        else:
            computed.add(name)
    return sources, computed


def _growth(sources: set[str], record: RunRecord, now_rows: dict[str, int]) -> tuple[float, str]:
    then = sum(record.source_rows.get(name, 0) for name in sources)
    now = sum(now_rows.get(name, 0) for name in sources)
    if then == 0 or now == 0:
        return 1.0, "source rows unknown then or now: not scaled"
    return now / then, f"its sources grew {then:,} -> {now:,} rows (x{now / then:.3f})"


def _computed(view: str, record: RunRecord) -> ViewOutcome | None:
    return next((outcome for outcome in record.views
                 if outcome.view == view and outcome.outcome in COMPUTED_OUTCOMES), None)


def _from_seconds(view: str, mode: str, sources: set[str], released: list[RunRecord],
                  now_rows: dict[str, int]) -> ViewCost | None:
    for record in released:  # latest first
        outcome = _computed(view, record)
        if outcome is None or (outcome.maintained or "full") != mode:
            continue
        growth, how = _growth(sources, record, now_rows)
        seconds = outcome.seconds * growth
        evidence = (f"run {record.run_id} computed it ({mode}) in {outcome.seconds:.3f} s", how)
        return ViewCost(seconds, "seconds", InferenceConfidence("view_cost", f"{seconds:.3f}", 0.9, evidence))
    return None


def _seconds_per_row(record: RunRecord) -> float | None:
    """Seconds per output row over the views ``record`` computed (None: every one was empty)."""
    computed = [done for done in record.views if done.outcome in COMPUTED_OUTCOMES and done.rows]
    return sum(done.seconds for done in computed) / sum(done.rows or 0 for done in computed) if computed else None


def _from_rows(view: str, sources: set[str], released: list[RunRecord], now_rows: dict[str, int],
               rates: dict[str, float | None]) -> ViewCost | None:
    for record in released:
        outcome = _computed(view, record)
        if outcome is None or outcome.rows is None:
            continue
        if record.run_id not in rates:
            rates[record.run_id] = _seconds_per_row(record)
        rate = rates[record.run_id]
        if rate is None:  # every view that run computed was empty: no rate to take
            continue
        growth, how = _growth(sources, record, now_rows)
        seconds = outcome.rows * rate * growth
        evidence = (f"run {record.run_id} measured {outcome.rows:,} rows of it, computed "
                    f"{outcome.maintained or 'full'}, not as this run will", f"{rate * 1e6:.2f} s per million rows "
                    "over the views that run computed", how)
        return ViewCost(seconds, "rows", InferenceConfidence("view_cost", f"{seconds:.3f}", 0.6, evidence))
    return None


def _from_bytes(sources: set[str], stats: dict[str, TableStats]) -> ViewCost:
    read = sum(stats[name].bytes for name in sources if name in stats)
    seconds = read * ESTIMATED_SECONDS_PER_BYTE
    evidence = (f"reads {read:,} bytes of source tables, at {ESTIMATED_SECONDS_PER_BYTE * 1e9:.1f} s a GB",)
    return ViewCost(seconds, "bytes", InferenceConfidence("view_cost", f"{seconds:.3f}", 0.3, evidence,
                                                          "no released run computed this view"))
