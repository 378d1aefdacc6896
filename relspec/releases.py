"""Releases: which version of every table belongs to one consistent build.

A build writes new Delta versions of its tables, checks them, and only then appends one row to the
release log: the version of each table it produced. One append is one Delta commit, so a release
exists whole or not at all. Readers read each table at the version the current release (the last
row of the log) names, so they never see a build in progress, a build that died, or a quarantined
one, and never the nodes of one build with the edges of another. A rollback is a release too: it
names the versions of an earlier one again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import msgspec
import pyarrow as pa

from semantics.entities import EXTRACTION_ENTITIES

if TYPE_CHECKING:  # relspec.runs imports, through the policy, relspec.catalog, which imports this module
    from relspec.runs import RunRecord

ReleaseKind = Literal["build", "rollback"]
# Releases whose tables stay readable (rollback, replay): the current one and the one before. A vacuum
# deletes what only older ones read, so a folder holds about two builds' tables however many it saw.
KEPT_RELEASES = 2


class Release(msgspec.Struct, frozen=True):
    sequence: int  # 1, 2, ... in the order releases were made; the highest is current
    run_id: str  # the run whose tables these are (a rollback: the run it goes back to)
    released_at: str
    kind: ReleaseKind
    versions: dict[str, int]  # table -> its Delta version in this release
    rows: dict[str, int] = {}  # output table -> its rows (the quarantine's size history)
    source_lines: int = 0  # lines of the code base built


RELEASE_SCHEMA = pa.schema([
    pa.field("sequence", pa.int64(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("released_at", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("versions", pa.string(), nullable=False),  # JSON object: table -> version
    pa.field("rows", pa.string(), nullable=False),  # JSON object: output table -> rows
    pa.field("source_lines", pa.int64(), nullable=False),
])


def new_release(previous: Release | None, run_id: str, versions: dict[str, int], *, rows: dict[str, int],
                source_lines: int, kind: ReleaseKind = "build") -> Release:
    return Release(sequence=1 if previous is None else previous.sequence + 1, run_id=run_id,
                   released_at=datetime.now(UTC).isoformat(), kind=kind, versions=dict(sorted(versions.items())),
                   rows=dict(sorted(rows.items())), source_lines=source_lines)


def release_row(release: Release) -> pa.Table:
    return pa.table({
        "sequence": [release.sequence],
        "run_id": [release.run_id],
        "released_at": [release.released_at],
        "kind": [release.kind],
        "versions": [msgspec.json.encode(release.versions).decode()],
        "rows": [msgspec.json.encode(release.rows).decode()],
        "source_lines": [release.source_lines],
    }, schema=RELEASE_SCHEMA)


def read_releases(table: pa.Table | None) -> list[Release]:
    """The releases of a log, oldest first (an absent log: none)."""
    if table is None:
        return []
    releases = [Release(sequence=row["sequence"], run_id=row["run_id"], released_at=row["released_at"],
                        kind=row["kind"], versions=msgspec.json.decode(row["versions"], type=dict[str, int]),
                        rows=msgspec.json.decode(row["rows"], type=dict[str, int]), source_lines=row["source_lines"])
                for row in table.to_pylist()]
    return sorted(releases, key=lambda release: release.sequence)


def current_release(releases: list[Release]) -> Release | None:
    return releases[-1] if releases else None


def release_of_run(releases: list[Release], run_id: str) -> Release | None:
    """The build release of ``run_id`` (not a rollback to it)."""
    return next((release for release in releases if release.run_id == run_id and release.kind == "build"), None)


def input_versions(record: RunRecord) -> dict[str, int]:
    """The extraction tables at the versions the views of run ``record`` read (its execution package)."""
    if record.package is None:
        return {}
    tables = {entity.table for entity in EXTRACTION_ENTITIES}
    return {name: int(version) for name, version in record.package.source_versions.items() if name in tables}


def run_versions(releases: list[Release], record: RunRecord) -> dict[str, int]:
    """The versions to read the tables of run ``record`` at: its release's (after maintenance: those a
    vacuum keeps), or, a run never released, the extraction tables its views read and the outputs it
    published."""
    release = release_of_run(releases, record.run_id)
    if release is not None:
        return release.versions
    return {**input_versions(record), **record.output_versions}


def released_runs(releases: list[Release]) -> frozenset[str]:
    return frozenset(release.run_id for release in releases)


def density_history(releases: list[Release], table: str) -> list[float]:
    """Rows per source line of ``table`` in the build releases, oldest first."""
    return [release.rows[table] / max(release.source_lines, 1) for release in releases
            if release.kind == "build" and table in release.rows]


def rollback_release(releases: list[Release], run_id: str) -> Release:
    """A release naming again the tables of the build release of ``run_id``."""
    target = release_of_run(releases, run_id)
    if target is None:
        known = ", ".join(release.run_id for release in releases if release.kind == "build") or "none"
        raise LookupError(f"no release of run {run_id!r} (released runs: {known})")
    return new_release(current_release(releases), target.run_id, target.versions, rows=target.rows,
                       source_lines=target.source_lines, kind="rollback")
