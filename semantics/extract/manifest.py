"""Which files a build must extract: new or changed content, or a new extractor version."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow as pa

from semantics.discovery import Discovery, SkippedFile
from semantics.extract.files import EXTRACTOR_VERSION, FileTask, content_hash, failure_rows
from semantics.ids import file_id_for


class FileManifest(msgspec.Struct):
    root: str
    tasks: list[FileTask]  # files to extract now
    skipped_rows: list[dict[str, list[tuple]]]  # rows standing for files we will not extract
    unchanged: list[str]  # paths whose rows from an earlier build are still right
    removed: list[str]  # paths of an earlier build that are gone
    discovered: int
    added: list[str] = []  # paths to extract that no earlier build had (the others in `tasks` changed)
    incremental: bool = False  # there is an earlier build to change: the tasks and removals are its change set
    # the share of the source the earlier build extracted rows from (its parsed files' bytes) in files
    # kept unchanged: how much of what it wrote this build keeps (0.0: no earlier build, or a full rebuild)
    kept_share: float = 0.0

    def replaced_file_ids(self) -> list[str]:
        """Every file whose rows this build rewrites (or deletes)."""
        paths = [task.path for task in self.tasks] + self.removed
        paths += [rows["file"][0][1] for rows in self.skipped_rows]
        return sorted({file_id_for(path) for path in paths})

    def changed_file_ids(self) -> tuple[str, ...] | None:
        """The files whose rows differ from the earlier build's, or None when there is no earlier
        build to change (every row is new)."""
        return tuple(self.replaced_file_ids()) if self.incremental else None


def _skipped_rows(root: Path, skipped: SkippedFile) -> dict[str, list[tuple]]:
    """Rows standing for a file discovery refused. A file over the size cap is still a module of
    the code base: its MODULE row stays, with the content hash of its bytes."""
    raw = b""
    if skipped.code == "file_too_large":
        try:
            raw = (root / skipped.path).read_bytes()
        except OSError as err:
            skipped = SkippedFile(skipped.path, "unreadable", f"cannot read: {err.strerror or err}")
    is_module = skipped.code == "file_too_large"
    task = FileTask(skipped.path, raw, content_hash(raw) if is_module else "")
    return failure_rows(task, "discover", skipped.code, skipped.message, with_module=is_module)


def plan_manifest(discovery: Discovery, previous: pa.Table | None,
                  extractor_version: str = EXTRACTOR_VERSION) -> FileManifest:
    """Read every discovered file once and decide what to extract.

    ``previous`` is the earlier build's file table (path, content_hash, extractor_version, parsed
    and the rest), or None for a first build.
    """
    known: dict[str, tuple[str, str]] = {}
    if previous is not None and previous.num_rows:
        for path, digest, version in zip(previous.column("path").to_pylist(),
                                         previous.column("content_hash").to_pylist(),
                                         previous.column("extractor_version").to_pylist(), strict=True):
            known[path] = (digest, version)
    root = Path(discovery.root)
    tasks: list[FileTask] = []
    skipped_rows: list[dict[str, list[tuple]]] = []
    unchanged: list[str] = []
    for found in discovery.files:
        try:
            raw = (root / found.path).read_bytes()
        except OSError as err:
            task = FileTask(found.path, b"", "")
            skipped_rows.append(failure_rows(task, "discover", "unreadable", f"cannot read: {err.strerror or err}",
                                             with_module=False))
            continue
        digest = content_hash(raw)
        if known.get(found.path) == (digest, extractor_version):
            unchanged.append(found.path)
        else:
            tasks.append(FileTask(found.path, raw, digest))
    for skipped in discovery.skipped:
        skipped_rows.append(_skipped_rows(root, skipped))
    present = {found.path for found in discovery.files} | {s.path for s in discovery.skipped}
    removed = sorted(path for path in known if path not in present)
    return FileManifest(root=discovery.root, tasks=tasks, skipped_rows=skipped_rows, unchanged=unchanged,
                        removed=removed, discovered=len(discovery.files) + len(discovery.skipped),
                        added=[task.path for task in tasks if task.path not in known], incremental=bool(known),
                        kept_share=_kept_share(previous, unchanged))


def _kept_share(previous: pa.Table | None, unchanged: list[str]) -> float:
    """The share of the source the earlier build (its file table ``previous``) extracted rows from that
    is in the files kept ``unchanged``: its parsed files only (a file over the size cap, or one that
    did not parse, holds a row or two, whatever its size)."""
    if previous is None or not previous.num_rows:
        return 0.0
    parsed = previous.filter(previous.column("parsed"))
    sizes = dict(zip(parsed.column("path").to_pylist(), parsed.column("size_bytes").to_pylist(), strict=True))
    earlier = sum(sizes.values())
    return sum(sizes.get(path, 0) for path in unchanged) / earlier if earlier else 0.0
