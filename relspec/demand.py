"""Which staged views a run computes: those a view it really computes reads.

A written view whose table already holds this run's result (same fingerprint, written by a trusted
run) is reused, not computed: its plan never runs. A staged view held in memory has no table to
reuse, so a rebuild computed every one of them again, only for every output to be reused after it:
on a 672-file code base an unchanged rebuild took 59% of its cold build. A staged view held in memory
is computed only when a view that runs reads it — directly, through lazy views, or through other
views held in memory that run — and left out otherwise (outcome ``unneeded``). The decision is exact:
it follows from fingerprints, not estimates. A request that reads view frames itself (a caller's
Hamilton node, a view asked for by name, an override) demands every view.
"""

from __future__ import annotations

import msgspec

from relspec.policy import CompiledExecutionPolicy
from relspec.view_graph import ViewGraph
from semantics.inference import InferenceConfidence


class ViewDemand(msgspec.Struct, frozen=True):
    unneeded: frozenset[str]  # staged views held in memory that no view this run computes would read
    confidence: InferenceConfidence


def output_views(policy: CompiledExecutionPolicy) -> frozenset[str]:
    return frozenset(view for view, choice in policy.cache.items() if choice.cache == "delta_output")


def written_views(policy: CompiledExecutionPolicy) -> frozenset[str]:
    """Views written to a Delta table (published, or staged in a staging table): the ones a run can reuse."""
    held = policy.materialization.held_in_memory()
    return frozenset(view for view, choice in policy.cache.items()
                     if choice.cache == "delta_output" or (choice.cache == "delta_staging" and view not in held))


def view_demand(graph: ViewGraph, written: frozenset[str], outputs: frozenset[str], held: frozenset[str],
                reused: frozenset[str], frames_requested: bool) -> ViewDemand:
    """Which of the staged views ``held`` in memory this run need not compute: every path from one to a
    ``written`` view ends at a view the run reuses (``reused``), whatever lazy or held views lie between
    (or an output, of the ``written`` views, that a view which runs reads: it reads the output's frame)."""
    held = frozenset(view for view in held if view in graph.index)  # (the policy holds extraction tables too)
    runs: dict[str, bool] = {}  # view -> whether it runs: written and not reused, or read by a view that runs
    for view in reversed(graph.names()):
        read = any(runs[reader] for reader in graph.consumers(view))
        # a staging table is what its readers read; an output's readers read its frame (it has no loader)
        runs[view] = view not in reused or (read and view in outputs) if view in written else read
    unneeded = frozenset() if frames_requested else frozenset(view for view in held if not runs[view])
    if frames_requested:
        evidence = ("the request reads view frames itself (a view asked for by name, a caller's node or an "
                    "override): every view is computed",)
    elif not held:
        evidence = ("no staged view is held in memory: each is written to a staging table, reused there by "
                    "fingerprint",)
    else:
        evidence = (f"{len(reused)} of {len(written)} written views hold this run's result already (same "
                    f"fingerprint): {', '.join(sorted(reused)) or 'none'}",
                    f"{len(unneeded)} of {len(held)} staged views held in memory are read by none of the views "
                    "that run, so they are not computed")
    return ViewDemand(unneeded, InferenceConfidence("view_demand", f"{len(unneeded)} unneeded", 1.0, evidence))
