"""One writer per output folder: the build lock, and making a folder's tables its release again.

The lock is an exclusive ``flock`` on ``DIR/_build.lock``: the kernel drops it when its holder
exits, even killed with SIGKILL, so a dead build never leaves the folder locked. It holds for a
local folder; an output on object storage has no lock yet (one build at a time is then the caller's
duty; see docs/releases.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from relspec.catalog import TableStore
from relspec.releases import Release, current_release

LOCK_FILE = "_build.lock"
WAIT_POLL_SECONDS = 0.2
log = logging.getLogger(__name__)


class FolderLocked(RuntimeError):
    """Another build holds the output folder."""


class FolderChanged(RuntimeError):
    """Another build released the output folder after this one was planned."""


# Locks this process holds, by lock file: the open descriptor and how many holders share it. A flock
# is per open file, so a second open in the same process would wait on the first for ever; a holder
# inside the process (the CLI holds the folder for a whole build) lets the factory's lock through.
_HELD: dict[Path, list[int]] = {}


class BuildLock:
    """The exclusive right to write an output folder; ``acquire`` waits up to ``timeout`` seconds
    (None: as long as it takes; 0: not at all). Re-entrant within a process."""

    def __init__(self, output_dir: str, timeout: float | None = None) -> None:
        self.path = Path(output_dir) / LOCK_FILE if "://" not in output_dir else None
        self.timeout = timeout
        self._holding = False

    @property
    def held(self) -> bool:
        return self._holding or self.path is None

    def acquire(self) -> None:
        if self.held:
            return
        assert self.path is not None
        if self.path in _HELD:
            _HELD[self.path][1] += 1
            self._holding = True
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise FolderLocked(f"another build ({holder}) is writing {self.path.parent}") from None
                if not announced:
                    log.warning("waiting for another build (%s) to finish writing %s", holder, self.path.parent)
                    announced = True
                time.sleep(WAIT_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}".encode(), 0)
        _HELD[self.path] = [fd, 1]
        self._holding = True

    def release(self) -> None:
        if not self._holding or self.path is None:
            return
        self._holding = False
        held = _HELD[self.path]
        held[1] -= 1
        if held[1]:
            return
        del _HELD[self.path]
        os.ftruncate(held[0], 0)
        fcntl.flock(held[0], fcntl.LOCK_UN)
        os.close(held[0])

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    return text or "pid unknown"


def restore_release(store: TableStore, releases: list[Release]) -> tuple[str, ...]:
    """Bring every table of the current release (the last of ``releases``, the store's log read
    under the lock) back to the version it names, where a build that died or was quarantined (or a
    rollback) left a later one; returns the tables restored. The next build then starts from exactly
    what readers read."""
    release = current_release(releases)
    if release is None:
        return ()
    restored = []
    for name, version in sorted(release.versions.items()):
        if store.version(name) is not None and not store.holds_version(name, version):
            store.restore(name, version)
            restored.append(name)
    return tuple(restored)
