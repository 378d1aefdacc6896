"""Hamilton nodes of planning that say what a build extracts: discover the files → compare them with
the last build's → the manifest."""

from __future__ import annotations

import pyarrow as pa
from hamilton.function_modifiers import tag

from relspec.catalog import TableStore
from semantics.discovery import DEFAULT_MAX_FILE_BYTES, Discovery, DiscoveryOptions, discover
from semantics.entities import FILE
from semantics.extract.manifest import FileManifest, plan_manifest


@tag(role="extract")
def discovery(
    source_root: str,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Discovery:
    """The Python files of the code base (git-aware, default excludes, size cap)."""
    options = DiscoveryOptions(include=tuple(include or ()), exclude=tuple(exclude or ()),
                               max_file_bytes=max_file_bytes)
    return discover(source_root, options)


@tag(role="extract")
def previous_files(table_store: TableStore, full_rebuild: bool = False) -> pa.Table | None:
    """The file table of the last build into this output, if any: the per-file cache's key (none
    for a full rebuild, which extracts every file again)."""
    return None if full_rebuild else table_store.read(FILE.table)


@tag(role="extract")
def file_manifest(discovery: Discovery, previous_files: pa.Table | None) -> FileManifest:
    """Which files to extract (new or changed content, or a new extractor) and which to keep."""
    return plan_manifest(discovery, previous_files)
