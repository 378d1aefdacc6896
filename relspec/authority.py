"""The execution authority: the one object a run's views execute through.

The driver builds it (session, capabilities, dataset resolver, compiled policy, validation); the
pipeline's view nodes only see this interface, so they cannot run a view any other way than the
policy says.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

import msgspec
from datafusion import DataFrame

from relspec.catalog import DatasetCatalog
from relspec.policy import CompiledExecutionPolicy
from relspec.runs import ViewOutcome
from relspec.validation import RuntimeCapabilities, ValidationResult
from semantics.inference import InferenceConfidence
from semantics.ir import EmittedView


class StagedQuery(msgspec.Struct, frozen=True):
    """A staged view to compute: its saver builds the frame, writes it and lets it go (a frame held to
    the end of the run, as Hamilton holds node results, keeps alive much of what its plan read)."""

    view: str
    fingerprint: str  # over the frames the view was given
    needed: bool = True  # False: no view this run computes reads it (`relspec.demand`), so it is not computed


class ResolverIdentityError(RuntimeError):
    """A dataset resolver other than the run's own reached one of the run's boundaries."""


class ExecutionAuthority(abc.ABC):
    policy: CompiledExecutionPolicy
    validation: ValidationResult
    capabilities: RuntimeCapabilities
    resolver: DatasetCatalog
    started_at: str  # ISO time the run's authority was built
    run_id: str  # the run's id, recorded with everything it writes

    def check_resolver(self, resolver: DatasetCatalog, boundary: str) -> None:
        if resolver.identity != self.resolver.identity:
            raise ResolverIdentityError(
                f"{boundary}: dataset resolver {resolver.identity[:8]} is not this run's ({self.resolver.identity[:8]})"
            )

    @abc.abstractmethod
    def query(self, view: EmittedView, fingerprint: str, inputs: Mapping[str, DataFrame]) -> DataFrame:
        """A lazy or output view's frame over the frames it reads (``inputs``, by view name)."""

    @abc.abstractmethod
    def pending(self, view: EmittedView, fingerprint: str, inputs: Mapping[str, DataFrame],
                needed: bool = True) -> StagedQuery:
        """A staged view over the frames it reads, to be computed by `stage` (unless not ``needed``: see
        `relspec.demand`)."""

    @abc.abstractmethod
    def reuses(self, view: str, fingerprint: str) -> bool:
        """Whether a written view's table holds the result of ``fingerprint`` already, so that the run
        will not compute it."""

    @abc.abstractmethod
    def stage(self, query: StagedQuery) -> dict[str, object]:
        """Compute a staged view and write it to its staging table (unless that holds this result
        already, by fingerprint: then nothing is computed); return what was written: table URI, Delta
        version, rows, fingerprint, outcome."""

    @abc.abstractmethod
    def load_staged(self, view: str) -> DataFrame:
        """The frame a staged view's readers read: its staging table, registered as the policy says."""

    @abc.abstractmethod
    def publish(self, view: str, frame: DataFrame) -> dict[str, object]:
        """Write an output view to its published table (unless the table already holds exactly this
        result, by fingerprint); return what was written, as `stage` does."""

    @abc.abstractmethod
    def outcomes(self) -> tuple[ViewOutcome, ...]:
        """What happened to each view so far, in execution order."""

    @abc.abstractmethod
    def decided(self, confidence: InferenceConfidence) -> None:
        """Record a decision the run made from what it measured, not compiled ahead (how many
        extraction tables were written at once): the run record carries it to the provenance graph."""

    @abc.abstractmethod
    def decisions(self) -> tuple[InferenceConfidence, ...]:
        """The decisions recorded by `decided`, in the order they were made."""
