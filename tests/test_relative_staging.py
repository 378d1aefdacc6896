"""`relspec.relative_staging`: an incremental build stages an inlined global view when its readers'
update by file saves more than staging and comparing it costs, by what earlier runs measured; the
numbers below are hand-made run records, and each expected cost is worked out in its test."""

from __future__ import annotations

import pytest

from relspec.policy import ViewPolicy
from relspec.relative_staging import stage_relative_bases
from relspec.runs import RunRecord, ViewOutcome
from semantics.inference import InferenceConfidence
from semantics.locality import Locality
from tests.test_policy import _pipeline

BASE, READER = "reference_candidates", "reference_edges"  # real views: the graph is the real plan's
LOCALITIES = {
    BASE: Locality(BASE, False, None, ("a join across files",), credited_to="file_id"),
    READER: Locality(READER, True, "file_id", ("reads base with its owner",), (BASE,)),
}


@pytest.fixture(scope="module")
def graph():
    return _pipeline()[2]


def _policies(base_override: bool = False) -> dict[str, ViewPolicy]:
    decided = InferenceConfidence("cache_policy", "x", 1.0, ("topology",))
    return {BASE: ViewPolicy("none", decided, override=base_override), READER: ViewPolicy("delta_staging", decided)}


def _outcome(view: str, policy: str, seconds: float, rows: int | None, compared: float = 0.0) -> ViewOutcome:
    outcome = "lazy" if policy == "none" else "computed_staged"
    return ViewOutcome(view, policy, outcome, rows, seconds, "f", "p", maintained="" if policy == "none" else "full",  # type: ignore[arg-type]
                       compared_seconds=compared)


def _record(run_id: str, *views: ViewOutcome) -> RunRecord:
    return RunRecord(run_id, f"2026-12-03T00:00:0{run_id[-1]}", "", "released", {}, views, (), (), None)


# run1 staged the base: 100,000 rows in 0.5 s; run2 inlined it, and recomputed the reader whole in 5 s
STAGED_ONCE = _record("run1", _outcome(BASE, "delta_staging", 0.5, 100_000), _outcome(READER, "delta_staging", 1.0, 10))
INLINED = _record("run2", _outcome(BASE, "none", 0.0, None), _outcome(READER, "delta_staging", 5.0, 10))


def _stage(graph, history, policies=None, updating="by_file", share=0.01):
    return stage_relative_bases(policies or _policies(), LOCALITIES, graph, history, {}, updating, share)


def test_a_base_is_staged_when_its_readers_save_more_than_it_costs(graph):
    """Saving: 5 s whole, by file ~max(5 s x 1%, 0.1 s) = 0.1 s: 4.9 s. Cost: staged in 0.5 s, plus
    100,000 rows compared at 1 us a row (no run has compared one here): 0.6 s."""
    staged = _stage(graph, [STAGED_ONCE, INLINED])[BASE]
    assert (staged.cache, staged.confidence.score) == ("delta_staging", 0.8)
    assert staged.for_readers is not None and staged.for_readers.startswith(
        "staged, not inlined, so that reference_edges can be updated by file: the views updated by file so "
        "(reference_edges) took 5.00 s recomputed whole and take ~0.10 s by file; staging and comparing "
        "what they need, ~0.60 s (run run1 staged its 100,000 rows in 0.50 s; compared at 1.00 us a row")
    assert staged.confidence.evidence[-1] == staged.for_readers


def test_a_base_costing_more_than_it_saves_stays_inlined(graph):
    """10M rows: 4 s staged + 10 s compared, against 4.9 s saved."""
    large = _record("run1", _outcome(BASE, "delta_staging", 4.0, 10_000_000), _outcome(READER, "delta_staging", 1, 10))
    kept = _stage(graph, [large, INLINED])[BASE]
    assert kept.cache == "none"
    assert kept.for_readers is not None and kept.for_readers.startswith(
        "not staged for the update by file of reference_edges: it would save ~4.90 s")


def test_the_comparison_s_rate_is_the_one_the_last_comparing_run_measured(graph):
    """A run compared 250,000 rows in 0.5 s: 2 us a row, so the base costs 0.5 + 0.2 s."""
    compared = _record("run3", _outcome("call_edges", "delta_staging", 1.0, 250_000, compared=0.5))
    staged = _stage(graph, [STAGED_ONCE, INLINED, compared])[BASE]
    assert "~0.70 s" in staged.for_readers and "compared at 2.00 us a row, as run run3 measured over 250,000 rows" \
        in staged.for_readers


def test_a_base_of_unknown_size_is_staged_once_to_measure_it(graph):
    staged = _stage(graph, [INLINED])[BASE]
    assert (staged.cache, staged.confidence.score) == ("delta_staging", 0.5)
    assert staged.for_readers.startswith("staged, not inlined, to measure it: reference_edges took 5.00 s "
                                         "recomputed whole and would take ~0.10 s by file")


def test_a_base_whose_readers_would_save_little_is_not_measured(graph):
    """0.5 s whole, ~0.1 s by file: 0.4 s saved, under a second."""
    cheap = _record("run2", _outcome(BASE, "none", 0.0, None), _outcome(READER, "delta_staging", 0.5, 10))
    assert _stage(graph, [cheap])[BASE] == _policies()[BASE]


def test_a_reader_measured_only_with_the_base_staged_counts_the_base_s_seconds_as_its_own(graph):
    """With no run that inlined the base, the reader's whole seconds are those it took with the base
    staged (1 s in run1) plus the base's seconds there (0.5 s), the work inlining moves into it: 1.5 s
    whole, ~0.1 s by file, 1.4 s saved against 0.6 s of cost."""
    staged = _stage(graph, [STAGED_ONCE])[BASE]
    assert staged.cache == "delta_staging" and "took 1.50 s recomputed whole" in staged.for_readers


def test_a_reader_s_seconds_by_file_are_the_median_of_the_runs_that_compared_its_base(graph):
    """Runs that compared the base (its compared seconds > 0) ran the reader as it will run: by file
    in 0.2 s and 0.3 s, and whole (too many files changed) in 4 s: the median, 0.3 s, is its cost.
    The run that staged the base without comparing it (run1: no earlier rows) is not one of them."""
    def compared(run_id, seconds, maintained):
        reader = ViewOutcome(READER, "delta_staging", "computed_staged", 10, seconds, "f", "p", maintained=maintained)
        return _record(run_id, _outcome(BASE, "delta_staging", 0.5, 100_000, compared=0.1), reader)

    history = [STAGED_ONCE, INLINED, compared("run3", 0.2, "by_file"), compared("run4", 4.0, "full"),
               compared("run5", 0.3, "by_file")]
    staged = _stage(graph, history)[BASE]
    assert "took 5.00 s recomputed whole and take ~0.30 s by file" in staged.for_readers


def test_a_build_that_updates_nothing_by_file_keeps_the_bases_the_last_run_staged(graph):
    """So that the next incremental build can compare them; a build holding its views in memory writes
    no staging table, and nothing is staged when the last run inlined the base."""
    last_staged = _record("run3", _outcome(BASE, "delta_staging", 0.5, 100_000),
                          _outcome(READER, "delta_staging", 1, 10))
    kept = _stage(graph, [INLINED, last_staged], updating="whole")[BASE]
    assert kept.cache == "delta_staging" and kept.for_readers.startswith("kept staged, though this build updates "
                                                                         "nothing by file")
    assert _stage(graph, [INLINED, last_staged], updating="in_memory") == _policies()
    assert _stage(graph, [last_staged, INLINED], updating="whole") == _policies()


def test_a_base_pinned_by_an_override_is_left_alone(graph):
    policies = _policies(base_override=True)
    assert _stage(graph, [STAGED_ONCE, INLINED], policies) == policies
    assert _stage(graph, [INLINED, STAGED_ONCE], policies, updating="whole") == policies


def test_a_decision_near_the_margin_keeps_what_the_last_run_did(graph):
    """4.9 s saved against 3 s staged + 1,000,000 rows compared at 1 us = 4 s of cost: counted 25%
    more (5 s) when the last run inlined the base, so it stays inlined; 25% less (3 s) when the last
    run staged it, so it stays staged."""
    big = _record("run1", _outcome(BASE, "delta_staging", 3.0, 1_000_000), _outcome(READER, "delta_staging", 1, 10))
    assert _stage(graph, [big, INLINED])[BASE].cache == "none"
    big_last = _record("run3", *big.views)
    staged = _stage(graph, [INLINED, big_last])[BASE]
    assert staged.cache == "delta_staging" and "~4.00 s" in staged.for_readers
