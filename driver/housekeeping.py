"""What a user does to an output folder between builds: roll back to an earlier release, list and
drop quarantined runs. Each takes the folder's build lock, so it never races a build."""

from __future__ import annotations

from deltalake import DeltaTable
from pyarrow import fs

from driver.delta_store import DeltaTableStore
from driver.lock import BuildLock, restore_release
from driver.storage import all_exist, is_object_store
from relspec.catalog import RELEASES_TABLE, RUNS_TABLE
from relspec.releases import KEPT_RELEASES, Release, current_release, release_row, rollback_release
from relspec.runs import RunRecord, read_records

LOCK_TIMEOUT_SECONDS = 600.0


def readable(store: DeltaTableStore, name: str, version: int) -> bool:
    """Every data file of ``name`` at ``version`` is still there (a vacuum has not deleted it)."""
    try:
        uris = DeltaTable(store.catalog.location(name), version=version,
                          storage_options=store.storage_options).file_uris()
    except Exception:  # the version's log entry is gone, or the table is
        return False
    if not uris:
        return True
    if is_object_store(uris[0]):
        return all_exist(uris, store.storage_options)
    filesystem, _ = fs.FileSystem.from_uri(uris[0])
    return all(filesystem.get_file_info(fs.FileSystem.from_uri(uri)[1]).type == fs.FileType.File for uri in uris)


def roll_back(store: DeltaTableStore, run_id: str) -> Release:
    """Append a release naming again the tables of the build release of ``run_id``."""
    lock = BuildLock(store.catalog.root, timeout=LOCK_TIMEOUT_SECONDS, storage_options=store.storage_options)
    lock.acquire()
    try:
        made = rollback_release(store.releases(), run_id)
        gone = sorted(name for name, version in made.versions.items() if not readable(store, name, version))
        if gone:
            raise LookupError(f"the tables of run {run_id} were vacuumed ({', '.join(gone)}): only the last "
                              f"{KEPT_RELEASES} releases stay readable")
        store.append(RELEASES_TABLE, release_row(made))
        return made
    finally:
        lock.release()


def kept_quarantined(store: DeltaTableStore) -> list[RunRecord]:
    """Quarantined runs whose published tables can still be read."""
    return [record for record in read_records(store.read(RUNS_TABLE)) if record.status == "quarantined"
            and all(readable(store, name, version) for name, version in record.output_versions.items())]


def drop_quarantined(store: DeltaTableStore) -> int:
    """Bring every table back to the current release and delete the files only quarantined runs
    read; returns how many files were deleted."""
    lock = BuildLock(store.catalog.root, timeout=LOCK_TIMEOUT_SECONDS, storage_options=store.storage_options)
    lock.acquire()
    try:
        releases = store.releases()[-KEPT_RELEASES:]
        restore_release(store, releases)
        release = current_release(releases)
        removed = 0
        for name in sorted(release.versions if release else {}):
            keep = sorted({made.versions[name] for made in releases if name in made.versions})
            table = DeltaTable(store.catalog.location(name), storage_options=store.storage_options)
            removed += len(table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False,
                                        keep_versions=keep or None))
        return removed
    finally:
        lock.release()
