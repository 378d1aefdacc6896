"""What a build shows while it runs, on Rich progress bars: the pipeline's steps (each view computed,
staged or published, each policy and release step) and, within extraction, its files.

Extraction is a tenth to a fifth of a large build; without the steps a user would watch a finished
files bar while the views run for most of a minute. ::

    bar = Progress(...)
    steps = StepBar(bar)
    dr = build_driver(root, out, adapters=[steps])
    steps.start(pipeline_steps(dr, ["build_summary"], {"progress"}))
    with bar:
        dr.execute(["build_summary"], inputs={"progress": ExtractionBar(bar)})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hamilton.lifecycle import NodeExecutionHook

from semantics.extract.parallel import Progress as ExtractionProgress

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hamilton.driver import Driver
    from rich.progress import Progress, TaskID

STEPS = "steps"


def pipeline_steps(dr: Driver, final_vars: list[str], inputs: Iterable[str]) -> int:
    """How many nodes ``dr`` executes to compute ``final_vars`` given ``inputs``: every node they
    depend on but the ones the driver is handed (its config, the planned context, ``inputs``)."""
    upstream, given = dr.graph.get_upstream_nodes(final_vars, runtime_inputs=dict.fromkeys(inputs))
    return len(upstream) - len(given)


def step_label(node_name: str) -> str:
    """A node's name as the bar shows it: ``cpg_edges__published`` is ``cpg_edges (published)``."""
    view, _, how = node_name.rpartition("__")
    return f"{view} ({how})" if view else node_name


class StepBar(NodeExecutionHook):
    """The pipeline's steps on a task of ``bar``: how many of them are done, and the one running."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        """The execution about to run has ``total`` steps (see `pipeline_steps`)."""
        self.task = self.bar.add_task(STEPS, total=total)

    def run_before_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=f"{STEPS}: {step_label(node_name)}")

    def run_after_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        if self.task is not None:
            self.bar.advance(self.task)


class ExtractionBar(ExtractionProgress):
    """Extraction's files, done of all, on a task of ``bar``."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        self.task = self.bar.add_task("extracting", total=total)

    def advance(self, done: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, done)
