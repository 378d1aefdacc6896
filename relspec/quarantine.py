"""The data checks a build's output passes before it is released.

A check that fails quarantines the run: its tables are written but not released, so readers keep
reading the last good release. The invariants are exact (no dangling edge endpoint, the declared
schemas, a MODULE node for every file); the size check compares the graph's density (rows per source
line) with this output's own history, so a code base that grows or shrinks is not suspect, but a
build that loses most of its edges is.
"""

from __future__ import annotations

import statistics

import msgspec

# The size check needs this many earlier releases of the output, looks at the last HISTORY_WINDOW of
# them, and fails outside [median / DENSITY_FACTOR, median * DENSITY_FACTOR].
MIN_HISTORY = 3
HISTORY_WINDOW = 5
DENSITY_FACTOR = 3.0
DENSITY_TABLES = ("cpg_nodes", "cpg_edges")


class DataCheck(msgspec.Struct, frozen=True):
    code: str  # edges.dangling_endpoint, schema.mismatch, files.module_missing, rows.outside_history
    subject: str  # the table checked
    passed: bool
    detail: str  # the measured value and the bound, in words


def dangling_endpoints(table: str, dangling: int, example: str | None) -> DataCheck:
    if not dangling:
        return DataCheck("edges.dangling_endpoint", table, True, "every endpoint is a node")
    return DataCheck("edges.dangling_endpoint", table, False,
                     f"{dangling:,} edge(s) with an endpoint that is no node, e.g. {example}")


def schema_matches(table: str, written: list[tuple[str, str]], declared: list[tuple[str, str]]) -> DataCheck:
    if written == declared:
        return DataCheck("schema.mismatch", table, True, "the declared columns and types")
    missing = [name for name, _ in declared if name not in dict(written)]
    extra = [name for name, _ in written if name not in dict(declared)]
    retyped = [name for name, kind in written if name in dict(declared) and dict(declared)[name] != kind]
    parts = [f"{label}: {', '.join(names)}" for label, names in
             (("missing", missing), ("undeclared", extra), ("other type", retyped)) if names]
    return DataCheck("schema.mismatch", table, False, "; ".join(parts) or "columns in another order")


def modules_present(table: str, files_without_module: int, example: str | None) -> DataCheck:
    if not files_without_module:
        return DataCheck("files.module_missing", table, True, "every file has its MODULE node")
    return DataCheck("files.module_missing", table, False,
                     f"{files_without_module:,} file(s) without a MODULE node, e.g. {example}")


def density_in_history(table: str, rows: int, lines: int, history: list[float]) -> DataCheck:
    """``history``: rows per source line of the table in earlier releases, oldest first."""
    density = rows / max(lines, 1)
    recent = history[-HISTORY_WINDOW:]
    if len(recent) < MIN_HISTORY:
        return DataCheck("rows.outside_history", table, True,
                         f"{density:.3f} rows per line; {len(recent)} earlier release(s), {MIN_HISTORY} needed")
    median = statistics.median(recent)
    low, high = median / DENSITY_FACTOR, median * DENSITY_FACTOR
    inside = low <= density <= high
    return DataCheck("rows.outside_history", table, inside,
                     f"{density:.3f} rows per line against {low:.3f}..{high:.3f} "
                     f"(the median {median:.3f} of the last {len(recent)} releases, "
                     f"divided or multiplied by {DENSITY_FACTOR:g})")


def failures(checks: tuple[DataCheck, ...]) -> tuple[DataCheck, ...]:
    return tuple(check for check in checks if not check.passed)


def quarantine_reason(failed: tuple[DataCheck, ...]) -> str:
    """One line: why a run was quarantined."""
    return "quarantined: " + "; ".join(f"{check.code} ({check.subject}): {check.detail}" for check in failed)
