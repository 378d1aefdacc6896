"""Which global views an incremental build stages so that the views local relative to them are
updated by file.

A view local relative to a global view (its *base*, `semantics.locality`) is updated by file only when
the build knows which files' rows of the base changed. It learns that by comparing the base's rows
with the current release's (`TableStore.staged_changes`), so only a base written to a staging table
will do; one the topology inlines (read by one view, or cheap to compute again) leaves its readers to
be recomputed whole. Staging such a base costs its write and the comparison, in every build; it saves
its readers' whole recomputation less their update by file. An incremental build stages it when
the saving, from what the runs in the history measured, is the larger:

- saving: each reader's seconds recomputed whole with those bases inlined (the latest run that did so;
  else the latest that recomputed it whole with them staged, plus their seconds staged there), less
  its seconds with them staged and compared (the median over the runs that did so, whether those
  updated it by file or found too many files changed; else its whole seconds times the share of files
  that changed, and at least `BY_FILE_MIN_SECONDS`);
- cost: each base's seconds staged (computed and written, without the comparison), plus its rows
  times the comparison's seconds a row (as the latest run that compared a large view measured it,
  else `COMPARE_SECONDS_PER_ROW`), plus comparing each staged base the readers read that no view
  updated by file compares so far.

Readers share bases (`reference_edges` and `cpg_edges` both need `reference_candidates`): each set of
readers is weighed with the bases they need together, and the best is kept; a base's cost counts
`STATUS_QUO_MARGIN` less when the last run staged it, and as much more when it did not. A base no run in the
history has staged has no measured size: when its readers would save at least `EXPLORE_MIN_SECONDS`,
it is staged to measure it (its readers are recomputed whole in that build: there are no earlier rows
of it to compare with), and the next build decides from the measurement; a measurement older than the
history is taken again so. A build that updates nothing by file (a full build, one that changes most
files, or none) keeps staged the bases the last run staged for their readers, so that the next
incremental build can compare them (a build that changes nothing reuses them), and stages no other;
one that holds its staged views in memory writes none.
"""

from __future__ import annotations

import functools
import itertools
import statistics
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

from relspec.costs import COMPUTED_OUTCOMES, measured_cost

if TYPE_CHECKING:
    from relspec.policy import TableStats, ViewPolicy
    from relspec.runs import RunRecord, ViewOutcome
    from relspec.view_graph import ViewGraph
    from semantics.locality import Locality

Updating = Literal["by_file", "whole", "in_memory"]  # how a build updates its views (stage_relative_bases)
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
# How much less a base's cost counts when the last run staged it, and more when it did not.
STATUS_QUO_MARGIN = 0.25
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
                         history: list[RunRecord], stats: dict[str, TableStats], updating: Updating,
                         changed_share: float) -> dict[str, ViewPolicy]:
    """``policies`` with the inlined bases worth staging for their readers' update by file staged,
    and why (see the module's doc). ``updating``: how this build updates its views (``by_file`` in an
    incremental build of a few files' changes writing staging tables; ``whole`` otherwise, and when no
    file changed; ``in_memory`` when staged views are held in memory); ``changed_share``: the share of
    the build's files that changed."""
    if updating == "in_memory":
        return policies
    if updating == "whole":
        return _keep_staged(policies, localities, history)
    readers = _blocked_readers(policies, localities, graph, history, stats, changed_share)
    sizes = {base: _size(base, history) for reader in readers for base in reader.needs}
    rate, rate_how = _compare_rate(history)
    decided: dict[str, tuple[float, str]] = {}  # base -> (score, why)
    explored = _to_explore(readers, sizes)
    for base, by in explored.items():
        decided[base] = (0.5, (
            f"staged, not inlined, to measure it: {_listed(by)} took {_seconds(by, 'whole')} recomputed "
            f"whole and would take ~{_seconds(by, 'by_file')} by file; no run in the history has staged it, so its "
            "size and the cost of comparing it are not known (its readers are recomputed whole in this build: "
            "there are no earlier rows of it to compare with)"))
    weighed = sorted((reader for reader in readers if not reader.needs & explored.keys()
                      and all(sizes[base] is not None for base in reader.needs)),
                     key=lambda reader: (-reader.saving, reader.view))[:MAX_WEIGHED_READERS]
    chosen, cost = _best(weighed, sizes, history, rate, _staged_last(policies, history))
    for base in sorted({base for reader in chosen for base in reader.needs}):
        by = [reader for reader in chosen if base in reader.needs]
        size = sizes[base]
        assert size is not None
        decided[base] = (0.8, (
            f"staged, not inlined, so that {_listed(by)} can be updated by file: the views updated by file so "
            f"({_listed(chosen)}) took {_seconds(chosen, 'whole')} recomputed whole and take "
            f"~{_seconds(chosen, 'by_file')} by file; staging and comparing what they need, ~{cost:.2f} s (run "
            f"{size.run_id} staged its {size.rows:,} rows in {size.seconds:.2f} s; compared at "
            f"{rate * 1e6:.2f} us a row, {rate_how})"))
    updated = _staged(policies, decided)
    for base in sorted({base for reader in weighed for base in reader.needs} - decided.keys()):
        by = [reader for reader in weighed if base in reader.needs]
        size = sizes[base]
        assert size is not None
        policy = policies[base]
        why = (f"not staged for the update by file of {_listed(by)}: it would save ~{sum(r.saving for r in by):.2f} s, "
               f"less than staging and comparing what they need costs (run {size.run_id} staged its {size.rows:,} "
               f"rows in {size.seconds:.2f} s; compared at {rate * 1e6:.2f} us a row, {rate_how})")
        updated[base] = msgspec.structs.replace(policy, for_readers=why, confidence=policy.confidence.citing(why))
    return updated


def _staged(policies: dict[str, ViewPolicy], decided: dict[str, tuple[float, str]]) -> dict[str, ViewPolicy]:
    updated = dict(policies)
    for base, (score, why) in decided.items():
        policy = policies[base]
        confidence = msgspec.structs.replace(policy.confidence.citing(why), decision_value="delta_staging", score=score)
        updated[base] = msgspec.structs.replace(policy, cache="delta_staging", for_readers=why, confidence=confidence,
                                                passes_on=None)  # staged for its readers, whatever its plan does
    return updated


def _keep_staged(policies: dict[str, ViewPolicy], localities: dict[str, Locality],
                 history: list[RunRecord]) -> dict[str, ViewPolicy]:
    """The inlined bases the latest run staged (for their readers: the topology inlines them, and no
    override pins them), staged again by a build that updates nothing by file."""
    bases = {base for locality in localities.values() if locality.local for base in locality.bases}
    kept = {base: (0.8, "kept staged, though this build updates nothing by file, so that the next incremental "
                        "build can compare its rows with this one's (the last run staged it for its readers)")
            for base in sorted(bases & _staged_last(policies, history)) if not policies[base].override}
    return _staged(policies, kept)


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
        whole = _whole_seconds(view, needs, graph, history, stats)
        if whole is None:
            continue
        by_file = _median([outcome.seconds for record, outcome in _computed_in(view, history)
                           if _compared(needs, record)])
        if by_file is None:
            by_file = max(whole * changed_share, BY_FILE_MIN_SECONDS)
        readers.append(_Reader(view, needs, frozenset(base for base in bases if staged(base)) - compared,
                               whole, by_file))
    return readers


def _whole_seconds(view: str, needs: frozenset[str], graph: ViewGraph, history: list[RunRecord],
                   stats: dict[str, TableStats]) -> float | None:
    """``view``'s seconds recomputed whole with ``needs`` inlined: as the latest run that did so
    measured them (scaled by how its sources grew), else the latest that did so with them staged,
    plus their seconds staged there (the work inlining them moves into ``view``)."""
    inlined = measured_cost(view, "full", graph, history, stats, functools.partial(_inlined, needs))
    if inlined is not None:
        return inlined.seconds
    for record, outcome in reversed(_computed_in(view, history)):
        moved = [found for found in record.views if found.view in needs and found.outcome == "computed_staged"]
        if outcome.maintained == "full" and len(moved) == len(needs):
            return outcome.seconds + sum(found.seconds - found.compared_seconds for found in moved)
    return None


def _computed_in(view: str, history: list[RunRecord]) -> list[tuple[RunRecord, ViewOutcome]]:
    """The released runs that computed ``view``, oldest first, with its outcome in each."""
    return [(record, outcome) for record in history if record.status == "released"
            for outcome in record.views if outcome.view == view and outcome.outcome in COMPUTED_OUTCOMES]


def _compared(needs: frozenset[str], record: RunRecord) -> bool:
    """Whether ``record``'s run staged each of ``needs`` and knew which files' rows of it changed (it
    compared it, or reused it): its readers ran as they will with those bases staged."""
    outcomes = {outcome.view: outcome for outcome in record.views if outcome.view in needs}
    return len(outcomes) == len(needs) and all(
        outcome.outcome == "reused" or (outcome.outcome == "computed_staged" and outcome.compared_seconds > 0)
        for outcome in outcomes.values())


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _inlined(views: frozenset[str], record: RunRecord) -> bool:
    """Whether ``record``'s run computed each of ``views`` inside its readers' plans: a reader's whole
    seconds there include computing them, as they will if they are not staged."""
    policies = {outcome.view: outcome.policy for outcome in record.views}
    return all(policies.get(view) == "none" for view in views)


def _size(view: str, history: list[RunRecord]) -> _Size | None:
    """What staging ``view`` to a table cost when a run last did (None: no run in the history did)."""
    for record, outcome in reversed(_computed_in(view, history)):
        if outcome.outcome == "computed_staged" and outcome.rows is not None:
            return _Size(outcome.rows, max(outcome.seconds - outcome.compared_seconds, 0.0), record.run_id)
    return None


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


def _best(readers: list[_Reader], sizes: dict[str, _Size | None], history: list[RunRecord], rate: float,
          staged_last: frozenset[str]) -> tuple[list[_Reader], float]:
    """The set of readers whose update by file saves the most net of what staging and comparing
    their bases costs (empty: none saves), and that cost. The cost of a base the last run staged
    counts `STATUS_QUO_MARGIN` less, and of one it did not, as much more: a decision near the margin
    is not reversed on noise (each reversal costs a build whose readers cannot be updated by file)."""
    rows = {base: _rows(base, history) for reader in readers for base in reader.compares}

    def cost_of(chosen: tuple[_Reader, ...], margin: float) -> float:
        needed = {base for reader in chosen for base in reader.needs}
        compared = {base for reader in chosen for base in reader.compares}
        staging = sum((size.seconds + size.rows * rate) * (1 - margin if base in staged_last else 1 + margin)
                      for base in needed if (size := sizes[base]) is not None)
        return staging + sum(rows[base] * rate for base in compared)

    best: tuple[list[_Reader], float, float] = ([], 0.0, 0.0)  # readers, net saving, cost
    for count in range(1, len(readers) + 1):
        for chosen in itertools.combinations(readers, count):
            net = sum(reader.saving for reader in chosen) - cost_of(chosen, STATUS_QUO_MARGIN)
            if net > best[1]:
                best = (list(chosen), net, cost_of(chosen, 0.0))
    return best[0], best[2]


def _staged_last(policies: dict[str, ViewPolicy], history: list[RunRecord]) -> frozenset[str]:
    """The views the topology inlines that the latest run staged (for their readers)."""
    latest = next((record for record in reversed(history) if record.status == "released"), None)
    if latest is None:
        return frozenset()
    return frozenset(outcome.view for outcome in latest.views
                     if outcome.policy == "delta_staging" and policies.get(outcome.view) is not None
                     and policies[outcome.view].cache == "none")


def _rows(view: str, history: list[RunRecord]) -> int:
    size = _size(view, history)
    return 0 if size is None else size.rows


def _listed(readers: list[_Reader]) -> str:
    return ", ".join(sorted(reader.view for reader in readers))


def _seconds(readers: list[_Reader], which: str) -> str:
    return f"{sum(getattr(reader, which) for reader in readers):.2f} s"
