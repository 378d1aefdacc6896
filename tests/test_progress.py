"""What a build shows while it runs: a bar of the pipeline's steps (the one running by name) beside
extraction's files, counted from the real Hamilton driver, and drawn by `cpgflow build` on a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from hamilton.lifecycle import NodeExecutionHook
from rich.console import Console
from rich.progress import Progress

from driver.factory import build_driver
from driver.progress import STEPS, ExtractionBar, StepBar, pipeline_steps, step_label
from tests.conftest import CPGFLOW, cli_env, write_tree

PROGRAM = {"m.py": "def f(x):\n    return x + 1\n\n\nprint(f(2))\n"}


def test_a_step_is_labelled_by_its_view_and_what_became_of_it() -> None:
    assert step_label("cpg_edges__published") == "cpg_edges (published)"
    assert step_label("value_flow_fixpoint__staged") == "value_flow_fixpoint (staged)"
    assert step_label("extraction") == "extraction"


class _Executed(NodeExecutionHook):
    """The nodes the driver ran, in order (what the bar must count)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def run_before_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        self.names.append(node_name)

    def run_after_node_execution(self, **future_kwargs: Any) -> None:
        pass


def test_the_steps_bar_counts_every_node_the_build_runs(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", PROGRAM)
    bar = Progress(console=Console(file=io.StringIO()))
    steps, executed = StepBar(bar), _Executed()
    dr = build_driver(root, tmp_path / "out", jobs=1, adapters=[steps, executed])
    total = pipeline_steps(dr, ["build_summary"], ["progress"])
    steps.start(total)
    files = ExtractionBar(bar)
    dr.execute(["build_summary"], inputs={"progress": files})

    (shown,) = [task for task in bar.tasks if task.id == steps.task]
    assert shown.completed == shown.total == total == len(executed.names)
    assert len(set(executed.names)) == len(executed.names)
    assert {"extraction", "value_flow_fixpoint__staged", "cpg_edges__published"} <= set(executed.names)
    assert shown.description == f"{STEPS}: {step_label(executed.names[-1])}"  # the last step run, by name
    (extracted,) = [task for task in bar.tasks if task.id == files.task]
    assert extracted.completed == extracted.total == 1


def test_cpgflow_build_draws_the_steps_on_a_terminal(tmp_path: Path) -> None:
    """Through the console script with its stderr on a pseudo-terminal, as a user sees it: the last
    frame before the (transient) bars clear has every step done, the last one named."""
    root = write_tree(tmp_path / "src", PROGRAM)
    env = {key: value for key, value in cli_env().items() if key not in ("TTY_INTERACTIVE", "TTY_COMPATIBLE")}
    env["TERM"] = "xterm"  # (Rich draws nothing on a terminal it is told is dumb)
    controller, terminal = pty.openpty()
    process = subprocess.Popen([str(CPGFLOW), "build", str(root), "-o", str(tmp_path / "out")],
                               stdout=subprocess.PIPE, stderr=terminal, env=env, text=True)
    os.close(terminal)
    drawn, deadline = b"", time.monotonic() + 300
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([controller], [], [], left)[0]:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end closed: the build is done
                break
            if not chunk:
                break
            drawn += chunk
        else:
            process.kill()
        out, _ = process.communicate(timeout=60)
    finally:
        os.close(controller)
    assert process.returncode == 0
    assert "Built the CPG of" in out
    frames = drawn.decode("utf-8", "replace")
    done = re.findall(rf"{STEPS}: build_summary\W[^\r\n]*?\b(\d+)/(\d+)\b", frames)
    assert done and done[-1][0] == done[-1][1], frames[-2000:]
    assert re.search(r"extracting\W[^\r\n]*?\b1/1\b", frames), frames[-2000:]
