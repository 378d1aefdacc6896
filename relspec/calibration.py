"""The calibration loop: what a run measured moves the policy's thresholds for the next compile.

The threshold calibrated is the one the cost of staging decides: the source rows below which a view
that reads only source tables is inlined into its readers (recomputed by each) rather than staged
(computed once, written, read back). Staging a view costs a fixed part (a write, a registration, a
read back: ``a`` seconds) plus its computation (``b`` seconds a source row read); inlining it into
two readers costs its computation twice. Inlining pays while ``b * rows < a``: below ``a / b`` rows
(into ``n`` scans, while the ``n - 1`` extra computations read fewer than ``a / b`` rows: the policy
weighs the fan-out against the same threshold).
Each run fits ``seconds = a + b * rows`` over the views of that kind it computed in full, and moves
the threshold toward ``a / b`` — damped (half the way, in log space), at most 4 times a run, within
bounds. The fit and every prediction error are kept per workload class (a full build and an
incremental one measure different things).

The second threshold is the input size below which a view's plan runs on one partition rather than
the session's (and is optimized in one pass rather than three): repartitioning and planning cost a
fixed part and pay back per row. Each run fits the same line over the views it computed in full
under the small input's settings and over those under the session's, by the rows their plans read;
where the small input's settings cost less fixed and more per row, the lines cross at the size where
the session's start to pay, and ``small_input_rows`` moves toward it the same damped way.

Modes: ``off`` records nothing and compiles with the defaults; ``observe`` records what it measured
and the thresholds it would move to, and compiles with the defaults; ``apply`` compiles with the
thresholds the last ``apply`` run of the same workload class left.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import msgspec
import pyarrow as pa

from relspec.costs import COMPUTED_OUTCOMES
from semantics.inference import InferenceConfidence

if TYPE_CHECKING:
    from relspec.costs import ViewCost
    from relspec.runs import ViewOutcome
    from relspec.view_graph import ViewGraph

CalibrationMode = Literal["off", "observe", "apply"]
CALIBRATION_MODES: tuple[CalibrationMode, ...] = ("off", "observe", "apply")
WorkloadClass = Literal["full_build", "incremental_build", "replay", "interactive_query"]

# A view that only scans source tables totalling fewer rows than this is inlined (see the module's
# doc); the default, measured on the fixture suite before calibration existed.
DEFAULT_INLINE_MAX_ROWS = 20_000
INLINE_BOUNDS = (2_000, 2_000_000)
# A view whose plan reads fewer rows than this runs on one partition, optimized in one pass
# (relspec.policy.scan_options): the small size tier's limit, unless calibrated.
DEFAULT_SMALL_INPUT_ROWS = 100_000
SMALL_INPUT_BOUNDS = (10_000, 1_000_000)
DAMPING = 0.5  # the share of the way (in log space) toward what a run measured that one run moves
MAX_STEP = 4.0  # the most one run multiplies or divides a threshold by
MIN_POINTS = 4  # views measured, at least, for a fit to move anything
MIN_GAIN = 0.01  # partitions must save this share of a row's cost on one partition for the lines to cross


class Thresholds(msgspec.Struct, frozen=True):
    inline_max_rows: int = DEFAULT_INLINE_MAX_ROWS
    small_input_rows: int = DEFAULT_SMALL_INPUT_ROWS


class CostFit(msgspec.Struct, frozen=True):
    """``seconds = fixed + per_row * rows`` by least squares over the views measured."""

    points: int
    fixed_seconds: float
    seconds_per_row: float


class PredictionError(msgspec.Struct, frozen=True):
    views: int  # computed in this run and predicted by the compile
    predicted_seconds: float
    actual_seconds: float
    median_log_error: float  # median |ln(actual / predicted)| over the views predicted > 0


class PartitionFits(msgspec.Struct, frozen=True):
    """``seconds = fixed + per_row * rows read`` over the views computed on one partition and over
    those computed on several (None: too few measured)."""

    one: CostFit | None
    several: CostFit | None


class Calibration(msgspec.Struct, frozen=True):
    run_id: str
    recorded_at: str
    workload: WorkloadClass
    mode: CalibrationMode
    before: Thresholds  # what this run compiled with
    proposed: Thresholds  # what the next compile of this workload class uses (mode apply)
    fit: CostFit | None
    error: PredictionError
    confidence: InferenceConfidence
    partitions: PartitionFits | None = None  # what moved small_input_rows (None: a record from before it)
    partitions_confidence: InferenceConfidence | None = None


CALIBRATION_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("recorded_at", pa.string(), nullable=False),
    pa.field("workload", pa.string(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("record", pa.string(), nullable=False),
])


def calibration_row(calibration: Calibration) -> pa.Table:
    return pa.table({"run_id": [calibration.run_id], "recorded_at": [calibration.recorded_at],
                     "workload": [calibration.workload], "mode": [calibration.mode],
                     "record": [msgspec.json.encode(calibration).decode()]}, schema=CALIBRATION_SCHEMA)


def read_calibrations(table: pa.Table | None) -> list[Calibration]:
    """The calibration records of a table, oldest first (an absent table: none)."""
    if table is None:
        return []
    records = [msgspec.json.decode(text, type=Calibration) for text in table.column("record").to_pylist()]
    return sorted(records, key=lambda record: record.recorded_at)


def current_thresholds(history: list[Calibration], workload: WorkloadClass, mode: CalibrationMode) -> Thresholds:
    """The thresholds a compile uses: in mode ``apply`` what the last ``apply`` run of ``workload``
    proposed, else (and with no such run) the defaults."""
    if mode != "apply":
        return Thresholds()
    applied = [record for record in history if record.workload == workload and record.mode == "apply"]
    return applied[-1].proposed if applied else Thresholds()


def fit_costs(points: list[tuple[int, float]]) -> CostFit | None:
    """Least squares of seconds on rows; None with fewer than MIN_POINTS or rows all equal."""
    if len(points) < MIN_POINTS:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return CostFit(n, mean_y - slope * mean_x, slope)


def prediction_error(outcomes: tuple[ViewOutcome, ...], costs: dict[str, ViewCost]) -> PredictionError:
    computed = [outcome for outcome in outcomes if outcome.outcome in COMPUTED_OUTCOMES and outcome.view in costs]
    logs = sorted(abs(math.log(max(outcome.seconds, 1e-4) / costs[outcome.view].seconds))
                  for outcome in computed if costs[outcome.view].seconds > 0)
    return PredictionError(len(computed), round(sum(costs[outcome.view].seconds for outcome in computed), 4),
                           round(sum(outcome.seconds for outcome in computed), 4),
                           round(logs[len(logs) // 2], 4) if logs else 0.0)


def _toward(current: int, target: float, bounds: tuple[int, int]) -> int:
    step = min(MAX_STEP, max(1 / MAX_STEP, (target / current) ** DAMPING))
    return int(min(bounds[1], max(bounds[0], round(current * step))))


def calibrate_partitions(before: Thresholds, outcomes: tuple[ViewOutcome, ...], partitions: dict[str, int],
                         inputs: dict[str, int]) -> tuple[int, PartitionFits, InferenceConfidence]:
    """``small_input_rows`` as this run proposes it, from the views computed in full on one partition
    and on several (``partitions``: view -> the partitions it ran on; ``inputs``: view -> the rows its
    plan read), with the fits and why."""
    computed = [outcome for outcome in outcomes if outcome.outcome in COMPUTED_OUTCOMES
                and outcome.maintained == "full" and outcome.view in inputs and outcome.view in partitions]
    one = fit_costs([(inputs[o.view], o.seconds) for o in computed if partitions[o.view] == 1])
    several = fit_costs([(inputs[o.view], o.seconds) for o in computed if partitions[o.view] > 1])
    fits, current = PartitionFits(one, several), before.small_input_rows
    counts = (f"{sum(partitions[o.view] == 1 for o in computed)} views computed in full on one partition, "
              f"{sum(partitions[o.view] > 1 for o in computed)} on several")
    if one is None or several is None:
        return current, fits, InferenceConfidence("calibration", str(current), 0.0, (
            counts, f"fewer than {MIN_POINTS} measured of each (or all of one size): nothing moves"),
            "not enough measured")
    described = (f"one partition: {one.fixed_seconds:.4f} s + {one.seconds_per_row * 1e6:.3f} s per million rows read; "
                 f"several: {several.fixed_seconds:.4f} s + {several.seconds_per_row * 1e6:.3f} s per million")
    cost = several.fixed_seconds - one.fixed_seconds  # what repartitioning adds whatever the rows
    gain = one.seconds_per_row - several.seconds_per_row  # what it saves a row
    if not (cost > 0 and several.seconds_per_row > 0 and gain > MIN_GAIN * one.seconds_per_row):
        return current, fits, InferenceConfidence("calibration", str(current), 0.0, (
            counts, described, "partitions do not cost more fixed and less per row: the lines do not cross, "
            "nothing moves"), "no crossing")
    target = cost / gain
    proposed = _toward(current, target, SMALL_INPUT_BOUNDS)
    evidence = (counts, described, f"partitions pay from {target:,.0f} rows read",
                f"small_input_rows {current:,} -> {proposed:,} (damped {DAMPING}, at most x{MAX_STEP:g} a run, "
                f"within {SMALL_INPUT_BOUNDS[0]:,}..{SMALL_INPUT_BOUNDS[1]:,})")
    score = min(1.0, min(one.points, several.points) / 20)
    return proposed, fits, InferenceConfidence("calibration", str(proposed), score, evidence)


def calibrate(run_id: str, workload: WorkloadClass, mode: CalibrationMode, before: Thresholds,
              outcomes: tuple[ViewOutcome, ...], costs: dict[str, ViewCost], graph: ViewGraph,
              source_rows: dict[str, int], partitions: dict[str, int] | None = None,
              inputs: dict[str, int] | None = None) -> Calibration:
    """What the run measured and the thresholds it proposes (see the module's doc); ``partitions``
    and ``inputs`` (view -> the partitions its plan ran on, the rows it read) move the second."""
    points = [(graph.upstream_cost(outcome.view, source_rows), outcome.seconds) for outcome in outcomes
              if outcome.outcome in COMPUTED_OUTCOMES and outcome.maintained == "full"
              and outcome.view in graph.index and not graph.inputs(outcome.view)]
    fit = fit_costs(points)
    proposed, evidence = before, [f"{len(points)} views reading only source tables computed in full"]
    if fit is None:
        evidence.append(f"fewer than {MIN_POINTS} measured (or all of one size): nothing moves")
    elif fit.fixed_seconds <= 0 or fit.seconds_per_row <= 0:
        evidence.append(f"fit {fit.fixed_seconds:.4f} s + {fit.seconds_per_row * 1e6:.3f} s per million rows "
                        "has no positive fixed cost and rate: nothing moves")
    else:
        target = fit.fixed_seconds / fit.seconds_per_row
        proposed = Thresholds(inline_max_rows=_toward(before.inline_max_rows, target, INLINE_BOUNDS))
        evidence.append(f"staging costs {fit.fixed_seconds:.4f} s + {fit.seconds_per_row * 1e6:.3f} s per million "
                        f"source rows: inlining pays below {target:,.0f} rows")
        evidence.append(f"inline_max_rows {before.inline_max_rows:,} -> {proposed.inline_max_rows:,} (damped "
                        f"{DAMPING}, at most x{MAX_STEP:g} a run, within {INLINE_BOUNDS[0]:,}..{INLINE_BOUNDS[1]:,})")
    score = 0.0 if fit is None else min(1.0, len(points) / 20)
    small, fits, small_confidence = calibrate_partitions(before, outcomes, partitions or {}, inputs or {})
    proposed = msgspec.structs.replace(proposed, small_input_rows=small)
    return Calibration(run_id=run_id, recorded_at=datetime.now(UTC).isoformat(), workload=workload, mode=mode,
                       before=before, proposed=proposed, fit=fit, error=prediction_error(outcomes, costs),
                       confidence=InferenceConfidence("calibration", str(proposed.inline_max_rows), score,
                                                      tuple(evidence), None if fit else "not enough measured"),
                       partitions=fits, partitions_confidence=small_confidence)


def describe(calibration: Calibration) -> str:
    """One line: the workload class, the threshold as compiled and as proposed, and whether it applies."""
    def moved(before: int, proposed: int) -> str:
        return f"{before:,} -> {proposed:,}" if proposed != before else f"{before:,} (unchanged)"

    before, proposed = calibration.before, calibration.proposed
    effect = {"apply": "the next build compiles with them", "observe": "observed only", "off": "off"}[calibration.mode]
    error = calibration.error
    predicted = (f"predicted {error.predicted_seconds:.2f} s of views" if error.predicted_seconds > 0
                 else "no view computed" if not error.views
                 else "no view's seconds predicted (no earlier run measured them)")
    return (f"{calibration.workload}: inline_max_rows {moved(before.inline_max_rows, proposed.inline_max_rows)}, "
            f"small_input_rows {moved(before.small_input_rows, proposed.small_input_rows)}, {effect}; {predicted}, "
            f"measured {error.actual_seconds:.2f} s")
