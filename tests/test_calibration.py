"""The calibration loop: the fit and the damped, bounded step checked by hand; through real builds,
that ``apply`` moves the threshold the next compile uses (and its cache policies with it), that
``observe`` records without changing anything, and that ``off`` records nothing."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import assert_one_line_error, build, run_cli, write_tree

from driver.delta_store import DeltaTableStore
from driver.factory import plan_driver
from driver.options import BuildOptionError
from relspec.calibration import (
    DAMPING,
    DEFAULT_INLINE_MAX_ROWS,
    DEFAULT_SMALL_INPUT_ROWS,
    INLINE_BOUNDS,
    MAX_STEP,
    SMALL_INPUT_BOUNDS,
    Calibration,
    Thresholds,
    calibrate,
    calibration_row,
    describe,
    fit_costs,
    read_calibrations,
)
from relspec.catalog import CALIBRATION_TABLE, DatasetCatalog
from relspec.costs import ViewCost
from relspec.runs import ViewOutcome
from relspec.view_graph import ViewGraph
from semantics.inference import InferenceConfidence

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "callgraph_fixtures"


def _outcome(view: str, seconds: float, outcome: str = "computed_staged", maintained: str = "full") -> ViewOutcome:
    return ViewOutcome(view, "delta_staging", outcome, 1, seconds, "f", "p", maintained=maintained)  # type: ignore[arg-type]


def _leaf_graph(sources: dict[str, str]) -> ViewGraph:
    """Views reading one source table each ({view: table}), and one view reading a view."""
    views = [SimpleNamespace(name=view, inputs=(table,), fixpoint=None) for view, table in sources.items()]
    views.append(SimpleNamespace(name="reader", inputs=(next(iter(sources)),), fixpoint=None))
    return ViewGraph(SimpleNamespace(views=views))  # type: ignore[arg-type]


def _cost(seconds: float) -> ViewCost:
    return ViewCost(seconds, "seconds", InferenceConfidence("view_cost", str(seconds), 0.9, ()))


def test_the_fit_and_the_damped_step_by_hand() -> None:
    # seconds = 0.01 + 1e-6 * rows exactly: staging's fixed cost pays for 10,000 rows of computation
    rows = {"t1": 1_000, "t2": 5_000, "t3": 20_000, "t4": 100_000}
    graph = _leaf_graph({f"v{table[1]}": table for table in rows})
    outcomes = tuple(_outcome(f"v{table[1]}", 0.01 + 1e-6 * count) for table, count in rows.items())
    outcomes += (_outcome("reader", 50.0),  # reads a view: not the kind the threshold decides
                 _outcome("v1", 9.0, maintained="by_file"))  # a by-file update measures other work
    made = calibrate("r1", "full_build", "apply", Thresholds(), outcomes, {}, graph, rows)
    assert made.fit is not None and made.fit.points == 4
    assert made.fit.fixed_seconds == pytest.approx(0.01) and made.fit.seconds_per_row == pytest.approx(1e-6)
    # half the way in log space from 20,000 toward 10,000: 20,000 * (1/2) ** 0.5
    assert made.proposed.inline_max_rows == round(DEFAULT_INLINE_MAX_ROWS * 0.5 ** DAMPING) == 14_142
    # far off, a run moves at most MAX_STEP: from 20,000 toward 10 rows, 5,000; toward 1e9, 80,000
    tiny = tuple(_outcome(o.view, 1e-5 + 1e-6 * rows[f"t{o.view[1]}"]) for o in outcomes[:4])
    assert calibrate("r", "full_build", "apply", Thresholds(), tiny, {}, graph, rows).proposed.inline_max_rows \
        == DEFAULT_INLINE_MAX_ROWS / MAX_STEP
    flat = tuple(_outcome(o.view, 1000.0 + 1e-6 * rows[f"t{o.view[1]}"]) for o in outcomes[:4])
    assert calibrate("r", "full_build", "apply", Thresholds(), flat, {}, graph, rows).proposed.inline_max_rows \
        == DEFAULT_INLINE_MAX_ROWS * MAX_STEP
    # within the bounds whatever it measured
    low = Thresholds(inline_max_rows=INLINE_BOUNDS[0])
    assert calibrate("r", "full_build", "apply", low, tiny, {}, graph, rows).proposed == low


def test_the_small_input_threshold_moves_toward_where_partitions_start_to_pay() -> None:
    # One partition: 0.01 s + 1e-6 s a row read; two: 0.02 s + 0.5e-6 s a row. The lines cross where
    # 0.01 = 0.5e-6 * rows: at 20,000 rows. From 100,000, half the way in log space: 100,000 * 0.2 ** 0.5.
    reads = {f"a{i}": rows for i, rows in enumerate((1_000, 3_000, 8_000, 40_000))}
    reads |= {f"b{i}": rows for i, rows in enumerate((50_000, 200_000, 400_000, 900_000))}
    partitions = {view: 1 if view.startswith("a") else 2 for view in reads}
    outcomes = tuple(_outcome(view, 0.01 + 1e-6 * rows if partitions[view] == 1 else 0.02 + 0.5e-6 * rows)
                     for view, rows in reads.items())
    outcomes += (_outcome("a0", 5.0, maintained="by_file"),)  # a by-file update measures other work
    graph = _leaf_graph({view: f"t_{view}" for view in reads})
    made = calibrate("r", "full_build", "apply", Thresholds(), outcomes, {}, graph, {}, partitions, reads)
    assert made.partitions is not None and made.partitions.one is not None and made.partitions.several is not None
    assert made.partitions.one.seconds_per_row == pytest.approx(1e-6)
    assert made.partitions.several.fixed_seconds == pytest.approx(0.02)
    assert made.proposed.small_input_rows == round(DEFAULT_SMALL_INPUT_ROWS * 0.2 ** DAMPING) == 44_721
    assert "partitions pay from 20,000 rows read" in made.partitions_confidence.evidence
    assert "small_input_rows 100,000 -> 44,721" in describe(made)
    # several partitions as cheap per row as one: the lines do not cross, nothing moves
    flat = tuple(_outcome(view, 0.01 + 1e-6 * rows) for view, rows in reads.items())
    still = calibrate("r", "full_build", "apply", Thresholds(), flat, {}, graph, {}, partitions, reads)
    assert still.proposed.small_input_rows == DEFAULT_SMALL_INPUT_ROWS
    assert still.partitions_confidence.fallback_reason == "no crossing"
    # every view on one partition (one core, or --jobs 1): nothing to compare
    alone = calibrate("r", "full_build", "apply", Thresholds(), outcomes, {}, graph, {}, dict.fromkeys(reads, 1), reads)
    assert alone.proposed.small_input_rows == DEFAULT_SMALL_INPUT_ROWS and alone.partitions.several is None


def test_too_little_evidence_or_a_nonsense_fit_moves_nothing() -> None:
    rows = {"t1": 1_000, "t2": 5_000, "t3": 20_000}
    graph = _leaf_graph({f"v{table[1]}": table for table in rows})
    three = tuple(_outcome(f"v{table[1]}", 0.01 + 1e-6 * count) for table, count in rows.items())
    assert fit_costs([(1, 1.0)] * 5) is None  # all of one size
    made = calibrate("r", "full_build", "apply", Thresholds(), three, {}, graph, rows)
    assert made.fit is None and made.proposed == Thresholds() and made.confidence.score == 0.0
    rows["t4"] = 100_000
    graph = _leaf_graph({f"v{table[1]}": table for table in rows})
    falling = tuple(_outcome(f"v{table[1]}", 1.0 - 1e-6 * count) for table, count in rows.items())
    assert calibrate("r", "full_build", "apply", Thresholds(), falling, {}, graph, rows).proposed == Thresholds()


def test_the_prediction_error_is_the_median_log_ratio() -> None:
    graph = _leaf_graph({"v1": "t1"})
    outcomes = (_outcome("v1", 2.0), _outcome("reader", 1.0), _outcome("lazy", 5.0, outcome="lazy"))
    costs = {"v1": _cost(1.0), "reader": _cost(4.0), "lazy": _cost(0.0)}
    error = calibrate("r", "full_build", "observe", Thresholds(), outcomes, costs, graph, {}).error
    assert (error.views, error.predicted_seconds, error.actual_seconds) == (2, 5.0, 3.0)
    # |ln 2| and |ln 1/4|: the upper median of two is ln 4
    assert error.median_log_error == pytest.approx(round(math.log(4), 4))
    made = calibrate("r", "full_build", "observe", Thresholds(), outcomes, costs, graph, {})
    assert describe(made).endswith("; predicted 5.00 s of views, measured 3.00 s")
    unknown = {name: _cost(0.0) for name in costs}  # a first build: no run measured any view
    first = calibrate("r", "full_build", "observe", Thresholds(), outcomes, unknown, graph, {})
    assert describe(first).endswith("; no view's seconds predicted (no earlier run measured them), measured 3.00 s")
    lazy = (_outcome("v1", 0.0, outcome="lazy"),)
    none = calibrate("r", "full_build", "observe", Thresholds(), lazy, unknown, graph, {})
    assert describe(none).endswith("; no view computed, measured 0.00 s")


def _records(out: Path) -> list[Calibration]:
    return read_calibrations(DeltaTableStore(DatasetCatalog(str(out))).read(CALIBRATION_TABLE))


def _policy(root: Path, out: Path, mode: str):
    return plan_driver(root, out, calibration=mode).execute(["compiled_policy"])["compiled_policy"]  # type: ignore[arg-type]


def test_apply_moves_the_threshold_the_next_compile_uses(tmp_path: Path) -> None:
    root, out = shutil.copytree(FIXTURES, tmp_path / "src"), tmp_path / "out"
    build(root, out, calibration="apply")
    edited = root / "edited.py"
    for edit in range(2):  # an edit each time: a rebuild with nothing changed computes no view to measure
        edited.write_text("".join(f"def f{number}(x):\n    return x\n\n\n" for number in range(edit + 1)))
        build(root, out, calibration="apply")
    records = _records(out)
    assert [record.mode for record in records] == ["apply"] * 3
    assert [record.workload for record in records] == ["full_build", "incremental_build", "incremental_build"]
    # each incremental run compiled with what the one before it proposed
    assert records[2].before == records[1].proposed
    for record in records:
        before, after = record.before.inline_max_rows, record.proposed.inline_max_rows
        assert INLINE_BOUNDS[0] <= after <= INLINE_BOUNDS[1]
        assert before / MAX_STEP <= after <= before * MAX_STEP
        assert record.fit is not None  # the fixtures stage enough leaf views to measure
        small_before, small_after = record.before.small_input_rows, record.proposed.small_input_rows
        assert small_after == small_before or SMALL_INPUT_BOUNDS[0] <= small_after <= SMALL_INPUT_BOUNDS[1]
        assert small_before / MAX_STEP <= small_after <= small_before * MAX_STEP
        assert record.partitions_confidence is not None  # the build handed each view's partitions and reads
        assert record.partitions_confidence.evidence[0].endswith(" on several")
    assert any(record.proposed != record.before for record in records)
    assert _policy(root, out, "apply").thresholds == records[-1].proposed
    assert _policy(root, out, "observe").thresholds == Thresholds()


def test_a_calibrated_threshold_changes_the_cache_policies_by_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(FIXTURES, out)
    default = _policy(FIXTURES, out, "observe")
    planned = plan_driver(FIXTURES, out).execute(["table_statistics", "graph_positions"])
    stats, positions = planned["table_statistics"], planned["graph_positions"]
    # the source rows inlining a view adds: its rows once per scan of it past the first
    weighed = {view: sum(stats[name].rows for name in policy.weighed_sources) * max(sum(positions[view].scans) - 1, 1)
               for view, policy in default.cache.items() if policy.weighed_sources and not policy.required}
    inlined = sorted(rows for view, rows in weighed.items() if default.cache[view].cache == "none")
    assert inlined, "some leaf views of the fixtures are under the default threshold"
    # a threshold just under what the largest inlined view adds: that view (and only those adding as much) is staged
    moved = Thresholds(inline_max_rows=inlined[-1])
    last = _records(out)[-1]
    claimed = Calibration(run_id="claimed", recorded_at="9999", workload="incremental_build", mode="apply",
                          before=Thresholds(), proposed=moved, fit=None, error=last.error, confidence=last.confidence)
    DeltaTableStore(DatasetCatalog(str(out))).append(CALIBRATION_TABLE, calibration_row(claimed))
    applied = _policy(FIXTURES, out, "apply")
    assert applied.thresholds == moved
    flipped = {view for view in weighed if applied.cache[view].cache != default.cache[view].cache}
    assert flipped == {view for view, rows in weighed.items()
                       if default.cache[view].cache == "none" and rows >= moved.inline_max_rows}
    assert flipped and all(applied.cache[view].cache == "delta_staging" for view in flipped)
    cheaper = f"under {moved.inline_max_rows:,}: cheaper than staging it"
    assert all(cheaper in " ".join(applied.cache[view].confidence.evidence)
               for view, policy in applied.cache.items() if view in weighed and policy.cache == "none")
    assert _policy(FIXTURES, out, "observe").cache == default.cache  # observe ignores the applied record


def test_observe_records_and_changes_nothing_and_off_records_nothing(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", {"a.py": "def f():\n    return 1\n", "b.py": "from a import f\nf()\n"})
    out = tmp_path / "out"
    build(root, out, calibration="off")
    assert _records(out) == []
    for _ in range(2):
        build(root, out)  # observe, the default
    records = _records(out)
    assert [record.mode for record in records] == ["observe", "observe"]
    assert all(record.before == Thresholds() for record in records)  # compiled with the defaults each time
    assert _policy(root, out, "observe").cache == _policy(root, out, "off").cache


def test_the_cli_shows_the_calibration_and_refuses_a_bad_mode(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = write_tree(tmp_path / "src", {"a.py": "x = 1\n"})
    bad = run_cli("build", root, "--out", out, "--calibration", "sometimes")
    assert bad.returncode != 0 and "sometimes" in bad.stderr
    with pytest.raises(BuildOptionError, match="calibration"):
        plan_driver(root, out, calibration="sometimes")  # type: ignore[arg-type]
    done = run_cli("build", root, "--out", out, "--calibration", "apply", "-q")
    assert done.returncode == 0, done.stderr
    assert "calibration: full_build: inline_max_rows" in done.stdout
    shown = run_cli("calibration", out)
    assert shown.returncode == 0, shown.stderr
    (record,) = _records(out)
    assert f"run {record.run_id}" in shown.stdout and "full_build: a build with --calibration apply" in shown.stdout
    assert "why: " in shown.stdout
    assert f"small_input_rows {record.proposed.small_input_rows:,}" in shown.stdout
    assert f"small_input_rows {record.before.small_input_rows:,} -> {record.proposed.small_input_rows:,}: " \
        in shown.stdout
    empty = run_cli("calibration", tmp_path / "nothing")
    assert empty.returncode != 0
    assert_one_line_error(empty.stderr)
