"""The validator bundle: checks over plan, policy, capabilities and catalog that return typed issues.

In `warn` mode issues are reported and the run goes on; in `error` mode an issue of severity
`error` stops the run before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from relspec.policy import CompiledExecutionPolicy, ValidationMode
from semantics.ir import SemanticIR

Severity = Literal["error", "warning"]
LOW_CONFIDENCE = 0.8


class RuntimeCapabilities(msgspec.Struct, frozen=True):
    """What the engine of this run actually offers, probed rather than assumed."""

    datafusion_version: str
    deltalake_version: str
    pyarrow_version: str
    python_version: str
    functions: tuple[str, ...]  # SQL functions the session knows
    recursive_queries: bool  # WITH RECURSIVE runs
    delta_provider: bool  # a Delta table registers as a DataFusion table provider
    tested_pair: bool  # datafusion and deltalake are the pinned, tested-together pair


class ValidationIssue(msgspec.Struct, frozen=True):
    code: str
    severity: Severity
    subject: str  # a view or a dataset
    message: str


class ValidationResult(msgspec.Struct, frozen=True):
    mode: ValidationMode
    issues: tuple[ValidationIssue, ...]

    @property
    def blocking(self) -> bool:
        return self.mode == "error" and any(issue.severity == "error" for issue in self.issues)

    def summary(self) -> str:
        return "; ".join(f"{issue.code} ({issue.subject}): {issue.message}" for issue in self.issues)


class ValidationFailed(RuntimeError):
    """The run stopped before writing anything: validation found errors in `error` mode."""


class ValidationInput(msgspec.Struct, frozen=True):
    ir: SemanticIR
    policy: CompiledExecutionPolicy
    capabilities: RuntimeCapabilities
    overrides: dict[str, str]
    datasets: tuple[str, ...]  # datasets the catalog can resolve


def _policy_vocabulary(given: ValidationInput) -> list[ValidationIssue]:
    views = set(given.ir.names())
    issues = [ValidationIssue("policy.unknown_view", "error", name, f"override names no view of the plan: {name}")
              for name in sorted(given.overrides) if name not in views]
    issues += [ValidationIssue("policy.missing_view", "error", name, "the plan has a view the policy does not cover")
               for name in sorted(views - set(given.policy.cache))]
    return issues


def _outputs_published(given: ValidationInput) -> list[ValidationIssue]:
    return [ValidationIssue("policy.output_not_published", "error", name,
                            f"a requested output with cache policy {given.policy.cache[name].cache}: "
                            "it would never be written")
            for name in given.ir.outputs if name in given.policy.cache
            and given.policy.cache[name].cache != "delta_output"]


def _intermediates_not_published(given: ValidationInput) -> list[ValidationIssue]:
    return [ValidationIssue("policy.intermediate_published", "error", name,
                            "delta_output on a view that is not an output: no table is declared for it")
            for name, policy in given.policy.cache.items()
            if policy.cache == "delta_output" and name not in given.ir.outputs]


def _required_materialization(given: ValidationInput) -> list[ValidationIssue]:
    return [ValidationIssue("policy.required_staging_dropped", "error", name,
                            "a recursive view re-scans this view: it must be staged, not lazy")
            for name, policy in given.policy.cache.items() if policy.required and policy.cache == "none"]


def _functions_available(given: ValidationInput) -> list[ValidationIssue]:
    known = set(given.capabilities.functions)
    return [ValidationIssue("capabilities.missing_function", "error", view,
                            f"needs SQL function(s) the engine lacks: {', '.join(missing)}")
            for view, needed in sorted(given.policy.udfs.items())
            if (missing := [name for name in needed if name not in known])]


def _engine_features(given: ValidationInput) -> list[ValidationIssue]:
    issues = []
    recursive = [view.name for view in given.ir.views if getattr(view.spec, "recursive", False)]
    if recursive and not given.capabilities.recursive_queries:
        issues.append(ValidationIssue("capabilities.no_recursive_queries", "error", ", ".join(recursive),
                                      "the engine does not run WITH RECURSIVE queries"))
    if not given.capabilities.tested_pair:
        issues.append(ValidationIssue(
            "capabilities.untested_versions", "warning", "engine",
            f"datafusion {given.capabilities.datafusion_version} with deltalake "
            f"{given.capabilities.deltalake_version} is not the pinned, tested pair"))
    return issues


def _catalog_resolves_sources(given: ValidationInput) -> list[ValidationIssue]:
    views = set(given.ir.names())
    needed = sorted({name for view in given.ir.views for name in view.inputs if name not in views})
    return [ValidationIssue("catalog.unresolvable_source", "error", name, "no dataset of the catalog provides it")
            for name in needed if name not in given.datasets]


def _join_confidence(given: ValidationInput) -> list[ValidationIssue]:
    return [ValidationIssue("plan.low_confidence_join", "warning", view.name,
                            f"join keys inferred with confidence {view.join.keys.confidence.score:.2f}: "
                            f"{view.join.keys.confidence.fallback_reason}")
            for view in given.ir.views if view.join is not None and view.join.keys.confidence is not None
            and view.join.keys.confidence.score < LOW_CONFIDENCE]


VALIDATORS: tuple[Callable[[ValidationInput], list[ValidationIssue]], ...] = (
    _policy_vocabulary, _outputs_published, _intermediates_not_published, _required_materialization,
    _functions_available, _engine_features, _catalog_resolves_sources, _join_confidence,
)


def validate(given: ValidationInput) -> ValidationResult:
    issues = tuple(issue for validator in VALIDATORS for issue in validator(given))
    return ValidationResult(mode=given.policy.validation_mode, issues=issues)
