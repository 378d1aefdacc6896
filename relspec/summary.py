"""What a build produced, as the CLI and notebooks report it."""

from __future__ import annotations

import msgspec


class BuildSummary(msgspec.Struct, frozen=True):
    output_dir: str
    files: int
    files_extracted: int
    files_reused: int
    files_removed: int
    lines: int
    nodes_by_kind: dict[str, int]
    edges_by_kind: dict[str, int]
    diagnostics_by_code: dict[str, int]
    table_versions: dict[str, int]
    run_id: str = ""
    view_outcomes: dict[str, int] = {}  # how many views each outcome (relspec.runs.Outcome) had
    status: str = "released"  # or quarantined: written, failed its data checks, not released
    message: str = ""  # why a run was quarantined
    release: int = 0  # the release this build made current (its sequence); 0 when quarantined
    restored: list[str] = []  # tables brought back to the current release before this build
    files_added: int = 0  # of the files extracted, those no earlier build had (the others changed)
    incremental: bool = False  # a rebuild: the files extracted and removed are its change set
    views_by_file: int = 0  # written views that only had their changed files' rows replaced
    calibration: str = ""  # what the run's measurements moved (or would move, observed), in a line

    @property
    def files_changed(self) -> int:
        return self.files_extracted - self.files_added

    @property
    def nodes(self) -> int:
        return sum(self.nodes_by_kind.values())

    @property
    def edges(self) -> int:
        return sum(self.edges_by_kind.values())

    @property
    def diagnostics(self) -> int:
        return sum(self.diagnostics_by_code.values())
