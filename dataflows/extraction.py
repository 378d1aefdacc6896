"""Hamilton nodes of the extraction stage: extract the files the manifest names → extraction tables."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hamilton.function_modifiers import config, tag

from relspec.authority import ExecutionAuthority
from relspec.catalog import RUNS_TABLE, TableStore
from relspec.policy import extraction_writers
from relspec.runs import new_run_record, run_row
from relspec.validation import ValidationFailed
from semantics.entities import EXTRACTION_ENTITIES, FILE, EntityDecl
from semantics.extract.manifest import FileManifest
from semantics.extract.parallel import (
    NO_PROGRESS,
    ExtractedRows,
    ExtractionSpool,
    Progress,
    rows_to_table,
    run_extraction,
)

_ENTITY_TABLES = tuple(entity for entity in EXTRACTION_ENTITIES if entity is not FILE)


@tag(role="extract")
@config.when(extraction_executor="local")
def extraction__local(file_manifest: FileManifest, extraction_authority: ExecutionAuthority,
                      table_store: TableStore, progress: Progress = NO_PROGRESS) -> ExtractedRows:
    """Rows of every extraction entity for the files this build extracts, extracted by this machine's
    worker processes and spooled to its disk by entity (`driver.dask_extraction` holds the Dask one)."""
    spool = ExtractionSpool(Path(table_store.spool_location("extraction")))
    try:
        workers = extraction_authority.policy.extraction.workers  # compiled from the size of the work
        run_extraction(file_manifest.tasks, workers, file_manifest.root, spool, progress)
        for rows in file_manifest.skipped_rows:
            for name, entity_rows in rows.items():
                if entity_rows:
                    spool.add_table(name, rows_to_table(name, entity_rows))
    except BaseException:
        spool.remove()
        raise
    return spool.finish()


@tag(role="extract")
def extraction_authority(execution_authority: ExecutionAuthority, table_store: TableStore) -> ExecutionAuthority:
    """The execution authority once the run passed its gate, which every extraction passes first:
    when validation fails in `error` mode, the run stops here, before anything is written, and
    records why in the run table; the store it will write must be the run's own."""
    _stop_if_invalid(execution_authority, table_store)
    execution_authority.check_resolver(table_store.catalog, "dataset_readiness")
    return execution_authority


def _stop_if_invalid(authority: ExecutionAuthority, table_store: TableStore) -> None:
    if not authority.validation.blocking:
        return
    record = new_run_record(authority.run_id, authority.started_at, "failed_validation",
                            validation=authority.validation.issues,
                            message="validation failed in error mode: nothing was written")
    table_store.append(RUNS_TABLE, run_row(record))
    raise ValidationFailed(f"validation failed, nothing published: {authority.validation.summary()}")


@tag(role="extract")
def extraction_tables(extraction: ExtractedRows, file_manifest: FileManifest, table_store: TableStore,
                      extraction_authority: ExecutionAuthority) -> dict[str, int]:
    """Write the extraction tables: each file's rows replaced alone, in one commit per table (two
    when a distributed extraction's files replace some files' rows: a delete, then the files); the
    tables are written in order, then the files table. The spool (or what the extraction held on this
    machine) is removed once they are written. On a small code base (the policy reads its tables
    into memory) each table keeps the rows it was written from, so that `source_catalog` does not
    read them back. Two are written at a time while the memory they hold allows it
    (`relspec.policy.extraction_writers`: each write holds a sorted copy of its table).

    Returns every extraction table's version after the write (unchanged tables keep theirs).
    """
    replaced = None if not file_manifest.unchanged else file_manifest.replaced_file_ids()
    tables = {entity.table for entity in EXTRACTION_ENTITIES}
    held = extraction_authority.policy.materialization.held_in_memory() & tables

    def write(entity: EntityDecl) -> int:
        return table_store.replace_files(entity.table, extraction.table(entity.name), replaced,
                                         keep=entity.table in held)

    at_once = extraction_writers([extraction.held_bytes(entity.name) for entity in _ENTITY_TABLES],
                                 extraction_authority.policy.profile, replacing=replaced is not None)
    extraction_authority.decided(at_once.confidence)
    writers = ThreadPoolExecutor(max_workers=at_once.writers, thread_name_prefix="cpgflow-extraction-write")
    try:
        written = [writers.submit(write, entity) for entity in _ENTITY_TABLES]
        versions = {entity.table: future.result() for entity, future in zip(_ENTITY_TABLES, written, strict=True)}
        versions[FILE.table] = write(FILE)  # last: it is what marks the other tables' rows as current
    finally:
        writers.shutdown(cancel_futures=True)  # after a failed write, none that has not started
        extraction.remove()
    return versions
