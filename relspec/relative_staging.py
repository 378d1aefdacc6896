"""Which global views an incremental build stages so that the views local relative to them are
updated by file.

A view local relative to a global view (its *base*, `semantics.locality`) is updated by file only when
the build knows which files' rows of the base changed. It learns that by comparing the base's rows
with the current release's (`TableStore.staged_changes`), so only a base written to a staging table
will do; one the topology inlines (read by one view, or cheap to compute again) leaves its readers to
be recomputed whole. Staging such a base costs its write and the comparison, in every build; it saves
its readers' whole recomputation less their update by file. An incremental build stages it when
the saving, from what earlier runs measured, is the larger:

- saving: each reader's seconds computed whole (the latest run that did so with those bases inlined: then
  it computes them too) less its seconds by file
  (the latest run that did so, else its whole seconds times the share of files that changed, and at
  least `BY_FILE_MIN_SECONDS`);
- cost: the base's seconds staged (computed and written, without the comparison), plus its rows times
  the comparison's seconds a row (as the latest run that compared a base measured it, else
  `COMPARE_SECONDS_PER_ROW`), plus comparing each staged base the readers read that no view updated
  by file has compared so far.

Readers share bases (`reference_edges` and `cpg_edges` both need `reference_candidates`): each set of
readers is weighed with the bases they need together, and the best is kept. A base no run has staged
has no measured size: when its readers would save at least `EXPLORE_MIN_SECONDS`, it is staged once
to measure it (its readers are recomputed whole in that build: there are no earlier rows of it to
compare with), and the next build decides from the measurement. A full build, one that changes most
files, and one that holds its staged views in memory update nothing by file: they stage nothing for this.
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from relspec.costs import last_computed, measured_cost

if TYPE_CHECKING:
    from relspec.policy import TableStats, ViewPolicy
    from relspec.runs import RunRecord
    from relspec.view_graph import ViewGraph
    from semantics.locality import Locality

# Seconds a row that `driver.changes` took to compare a staged view's two versions, measured on the
# standard library's staged views (0.9-1.05 microseconds a row): used until a run has measured one.
COMPARE_SECONDS_PER_ROW = 1.0e-6
# The fewest rows a comparison must have read for its seconds a row to be taken: a small table's
# comparison costs its planning, ~0.05 s whatever its rows.
RATE_MIN_ROWS = 100_000
# The least its readers must save for a base of unknown size to be staged once to measure it.
EXPLORE_MIN_SECONDS = 1.0
# The least a view's update by file is taken to cost when no run has measured one: planning and
# scanning for one file's rows (0.05-0.3 s for the standard library's views).
BY_FILE_MIN_SECONDS = 0.1
MAX_WEIGHED_READERS = 12  # readers weighed in every combination (2^12 sets); the rest are not weighed


class _Reader(NamedTuple):
    view: str
    needs: frozenset[str]  # inlined bases it needs staged
    compares: frozenset[str]  # staged bases it reads that no view updated by file compares yet
    whole: float  # its seconds recomputed whole
    by_file: float  # ... and updated by file

    @property
    def saving(self) -> float:
        return max(self.whole - self.by_file, 0.0)


class _Size(NamedTuple):
    rows: int
    seconds: float  # staged: computed and written, without a comparison
    run_id: str


def stage_relative_bases(policies: dict[str, ViewPolicy], localities: dict[str, Locality], graph: ViewGraph,
                         history: list[RunRecord], stats: dict[str, TableStats], updating_by_file: bool,
                         changed_share: float) -> dict[str, ViewPolicy]:
    """``policies`` with the inlined bases worth staging for their readers' update by file staged,
    and why (see the module's doc). ``updating_by_file``: whether this build updates any view by file
    (an incremental build of a few files' changes, staging to tables); ``changed_share``: the share of
    the build's files that changed."""
    if not updating_by_file:
        return policies
    readers = _blocked_readers(policies, localities, graph, history, stats, changed_share)
    sizes = {base: _size(base, history) for reader in readers for base in reader.needs}
    rate, rate_how = _compare_rate(history)
    decided: dict[str, tuple[float, str]] = {}  # base -> (score, why)
    explored = _to_explore(readers, sizes)
    for base, by in explored.items():
        decided[base] = (0.5, (
            f"staged, not inlined, once, to measure it: {_listed(by)} took {_seconds(by, 'whole')} recomputed "
            f"whole and would take ~{_seconds(by, 'by_file')} by file; no run has staged it, so its size and the "
            "cost of comparing it are not known (its readers are recomputed whole in this build: there are no "
            "earlier rows of it to compare with)"))
    weighed = sorted((reader for reader in readers if not reader.needs & explored.keys()
                      and all(sizes[base] is not None for base in reader.needs)),
                     key=lambda reader: -reader.saving)[:MAX_WEIGHED_READERS]
    chosen, cost = _best(weighed, sizes, history, rate)
    for base in sorted({base for reader in chosen for base in reader.needs}):
        by = [reader for reader in chosen if base in reader.needs]
        size = sizes[base]
        assert size is not None
        decided[base] = (0.8, (
            f"staged, not inlined, so that {_listed(by)} can be updated by file: the views updated by file so "
            f"({_listed(chosen)}) took {_seconds(chosen, 'whole')} recomputed whole and would take "
            f"~{_seconds(chosen, 'by_file')} by file; staging and comparing what they need, ~{cost:.2f} s (run "
            f"{size.run_id} staged its {size.rows:,} rows in {size.seconds:.2f} s; compared at "
            f"{rate * 1e6:.2f} us a row, {rate_how})"))
    updated = dict(policies)
    for base, (score, why) in decided.items():
        policy = policies[base]
        updated[base] = msgspec.structs.replace(policy, cache="delta_staging", for_readers=why,
                                                confidence=msgspec.structs.replace(
            policy.confidence, decision_value="delta_staging", score=score,
            evidence=(*policy.confidence.evidence, why)))
    for base in sorted({base for reader in weighed for base in reader.needs} - decided.keys()):
        by = [reader for reader in weighed if base in reader.needs]
        size = sizes[base]
        assert size is not None
        policy = policies[base]
        why = (f"not staged for the update by file of {_listed(by)}: it would save ~{sum(r.saving for r in by):.2f} s, "
               f"less than staging and comparing what they need costs (run {size.run_id} staged its {size.rows:,} "
               f"rows in {size.seconds:.2f} s; compared at {rate * 1e6:.2f} us a row, {rate_how})")
        updated[base] = msgspec.structs.replace(policy, for_readers=why, confidence=msgspec.structs.replace(
            policy.confidence, evidence=(*policy.confidence.evidence, why)))
    return updated


def _blocked_readers(policies: dict[str, ViewPolicy], localities: dict[str, Locality], graph: ViewGraph,
                     history: list[RunRecord], stats: dict[str, TableStats], changed_share: float) -> list[_Reader]:
    """The written views local relative to bases some of which are inlined (and none published or
    pinned by an override), whose whole recomputation a run has measured."""
    def staged(view: str) -> bool:
        return policies[view].cache == "delta_staging"

    relative = {view: locality.bases for view, locality in localities.items()
                if locality.local and locality.bases and policies[view].cache != "none"}
    compared = {base for bases in relative.values() if all(staged(base) for base in bases) for base in bases}
    readers = []
    for view, bases in sorted(relative.items()):
        needs = frozenset(base for base in bases if not staged(base))
        if not needs or any(policies[base].cache != "none" or policies[base].override for base in needs):
            continue
        whole = measured_cost(view, "full", graph, history, stats, functools.partial(_inlined, needs))
        if whole is None:
            continue
        by_file = measured_cost(view, "by_file", graph, history, stats)
        estimate = max(whole.seconds * changed_share, BY_FILE_MIN_SECONDS)
        readers.append(_Reader(view, needs, frozenset(base for base in bases if staged(base)) - compared,
                               whole.seconds, by_file.seconds if by_file else estimate))
    return readers


def _inlined(views: frozenset[str], record: RunRecord) -> bool:
    """Whether ``record``'s run computed each of ``views`` inside its readers' plans: a reader's whole
    seconds there include computing them, as they will if they are not staged."""
    policies = {outcome.view: outcome.policy for outcome in record.views}
    return all(policies.get(view) == "none" for view in views)


def _size(view: str, history: list[RunRecord]) -> _Size | None:
    """What staging ``view`` cost when a run last did (None: no run computed it on its own)."""
    found = last_computed(view, history)
    if found is None:
        return None
    run_id, outcome = found
    return _Size(outcome.rows or 0, max(outcome.seconds - outcome.compared_seconds, 0.0), run_id)


def _compare_rate(history: list[RunRecord]) -> tuple[float, str]:
    """Seconds a row of comparing a staged view with the current release's, as the latest run that
    compared one of at least `RATE_MIN_ROWS` rows measured it over those it compared."""
    for record in reversed(history):
        compared = [view for view in record.views if view.compared_seconds > 0 and (view.rows or 0) >= RATE_MIN_ROWS]
        if record.status == "released" and compared:
            seconds = sum(view.compared_seconds for view in compared)
            rows = sum(view.rows or 0 for view in compared)
            return seconds / rows, f"as run {record.run_id} measured over {rows:,} rows"
    return COMPARE_SECONDS_PER_ROW, "as measured on the standard library (no run here has compared a large one)"


def _to_explore(readers: list[_Reader], sizes: dict[str, _Size | None]) -> dict[str, list[_Reader]]:
    """The bases of unknown size staged once to measure them: each one whose readers would save enough,
    with every other base of unknown size those readers need (they are updated by file only with all)."""
    unknown: dict[str, list[_Reader]] = {}
    for reader in readers:
        for base in sorted(reader.needs):
            if sizes[base] is None:
                unknown.setdefault(base, []).append(reader)
    worth = [by for by in unknown.values() if sum(reader.saving for reader in by) >= EXPLORE_MIN_SECONDS]
    explored: dict[str, list[_Reader]] = {}
    for reader in {reader for by in worth for reader in by}:
        for base in reader.needs & unknown.keys():
            explored.setdefault(base, []).append(reader)
    return {base: sorted(by) for base, by in sorted(explored.items())}


def _best(readers: list[_Reader], sizes: dict[str, _Size | None], history: list[RunRecord],
          rate: float) -> tuple[list[_Reader], float]:
    """The set of readers whose update by file saves the most net of what staging and comparing
    their bases costs (empty: none saves), and that cost."""
    def cost_of(chosen: tuple[_Reader, ...]) -> float:
        needed = {base for reader in chosen for base in reader.needs}
        compared = {base for reader in chosen for base in reader.compares}
        staging = sum(size.seconds + size.rows * rate for base in needed if (size := sizes[base]) is not None)
        return staging + sum(_rows(base, history) * rate for base in compared)

    best: tuple[list[_Reader], float, float] = ([], 0.0, 0.0)  # readers, net saving, cost
    for count in range(1, len(readers) + 1):
        for chosen in itertools.combinations(readers, count):
            cost = cost_of(chosen)
            net = sum(reader.saving for reader in chosen) - cost
            if net > best[1]:
                best = (list(chosen), net, cost)
    return best[0], best[2]


def _rows(view: str, history: list[RunRecord]) -> int:
    found = last_computed(view, history)
    return 0 if found is None else found[1].rows or 0


def _listed(readers: list[_Reader]) -> str:
    return ", ".join(sorted(reader.view for reader in readers))


def _seconds(readers: list[_Reader], which: str) -> str:
    return f"{sum(getattr(reader, which) for reader in readers):.2f} s"
