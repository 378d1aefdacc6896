"""One writer per output folder: the build lock, and making a folder's tables its release again.

On a local disk the lock is an exclusive ``flock`` on ``DIR/_build.lock``: the kernel drops it when
its holder exits, even killed with SIGKILL, so a dead build never leaves the folder locked.

On object storage (``s3://``) it is a lease, ``PREFIX/_build.lock``: an object created only if absent
(a conditional put, If-None-Match) naming its holder. The holder renews it every third of
`lease_seconds` with a put conditional on its ETag (If-Match), and confirms it the same way before
each commit (`check_lease`), so a build that stalled past its lease and had it taken over commits
nothing more. A build that finds the lease held waits; once the lease's ETag has stayed unchanged
for a whole lease by this machine's monotonic clock (its holder died), it takes the lease over with
a put conditional on that ETag, so of two builds that find it expired only one gets it, and no two
machines' wall clocks are compared. Released, the lease is marked so (conditionally on its ETag)
and the next build takes it at once. The Delta commits themselves are conditional puts too
(delta-rs on S3 since 1.0), so two writers never overwrite each other's commit.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from driver.storage import StorageError, StorageOptions, is_object_store, object_store
from relspec.catalog import TableStore
from relspec.releases import Release, current_release

LOCK_FILE = "_build.lock"
WAIT_POLL_SECONDS = 0.2
LEASE_ENV = "CPGFLOW_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60.0
LEASE_MARGIN = 0.8  # a lease is trusted locally for this share of it after the renewal was sent
log = logging.getLogger(__name__)


class FolderLocked(RuntimeError):
    """Another build holds the output folder."""


class FolderChanged(RuntimeError):
    """Another build released the output folder after this one was planned."""


class LeaseLost(RuntimeError):
    """This build's lease on an output on object storage expired and another build took it."""


def lease_seconds() -> float:
    """How long a lease on object storage lasts unrenewed (``CPGFLOW_LEASE_SECONDS``, default 60)."""
    return float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE_SECONDS)


def _since() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Lease:
    """The build lease of one output on object storage (see the module's docstring)."""

    def __init__(self, location: str, options: StorageOptions) -> None:
        self.location = location
        self.store = object_store(location, options)
        self.holder = f"pid {os.getpid()} on {socket.gethostname()} since {_since()}"
        self.etag: str | None = None
        self.lost = False
        self.valid_until = 0.0  # monotonic: the last renewal sent, plus the lease, less a margin
        self._seen: tuple[str, float] | None = None  # another holder's ETag, and since when it is unchanged
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewing = threading.Lock()  # see `_put_renewal`

    def _body(self, released: bool = False) -> bytes:
        return json.dumps({"holder": self.holder, "lease_seconds": lease_seconds(), "released": released}).encode()

    def _put(self, mode: object, released: bool = False) -> None:
        import obstore

        sent = time.monotonic()
        self.etag = obstore.put(self.store, LOCK_FILE, self._body(released), mode=mode)["e_tag"]  # type: ignore[arg-type]
        self.valid_until = sent + lease_seconds() * LEASE_MARGIN

    def _put_renewal(self, released: bool = False) -> None:
        """A put conditional on this lease's ETag, one at a time: the renewer and the build's writer
        threads renew concurrently, and of two puts conditional on one ETag the second would take
        the first for another build's takeover."""
        with self._renewing:
            self._put({"e_tag": self.etag}, released)

    def try_acquire(self) -> str | None:
        """Take the lease if it is free, released or expired; else say who holds it."""
        import obstore
        from obstore.exceptions import (
            AlreadyExistsError,
            NotFoundError,
            PermissionDeniedError,
            PreconditionError,
            UnauthenticatedError,
        )

        try:
            self._put("create")
        except (NotFoundError, FileNotFoundError):
            raise StorageError(f"{self.location}: no such bucket") from None
        except (PermissionDeniedError, UnauthenticatedError, PermissionError) as err:
            raise StorageError(f"{self.location}: access denied ({str(err).splitlines()[0]})") from None
        except (AlreadyExistsError, PreconditionError):
            try:
                current = obstore.get(self.store, LOCK_FILE)
            except (NotFoundError, FileNotFoundError):  # obstore raises either for a missing object
                return "a build that has just finished"
            etag, lease = current.meta["e_tag"], _parsed(bytes(current.bytes()))
            if lease is not None and not lease.get("released") and not self._expired(etag, lease):
                return str(lease.get("holder", "a build"))
            try:  # only one of the builds that found it free wins: the put is conditional on what they saw
                self._put({"e_tag": etag})
            except (AlreadyExistsError, PreconditionError):
                return "another build taking the lease over"
            if lease is None or not lease.get("released"):
                log.warning("took over the expired build lease of %s (%s)", self.location,
                            lease.get("holder") if lease else "unreadable")
        self._renewer = threading.Thread(target=self._renew, name="cpgflow-lease", daemon=True)
        self._renewer.start()
        return None

    def _expired(self, etag: str, lease: dict) -> bool:
        """Whether the holder of ``etag`` stopped renewing: it stayed unchanged for a whole lease, as
        this machine's monotonic clock measures it (no two machines' wall clocks are compared)."""
        now = time.monotonic()
        if self._seen is None or self._seen[0] != etag:
            self._seen = (etag, now)
        return now - self._seen[1] >= float(lease.get("lease_seconds", lease_seconds()))

    def _renew(self) -> None:
        while not self._stop.wait(lease_seconds() / 3):
            try:
                self._put_renewal()
            except Exception as err:  # taken over: lost; unreachable for now: retried while the lease holds
                if _taken(err) or time.monotonic() >= self.valid_until:
                    self._lose(err)
                    return
                log.warning("could not renew the build lease of %s (retrying): %s", self.location, err)

    def _lose(self, cause: object) -> None:
        self.lost = True
        log.error("lost the build lease of %s: %s", self.location, cause)

    def confirm(self) -> None:
        """Renew now, conditionally on this lease's ETag: raise `LeaseLost` unless it is still ours.
        Called before each commit, so a build that stalled past its lease writes nothing more."""
        if not self.lost:
            try:
                self._put_renewal()
                return
            except Exception as err:  # taken over, or unreachable past the lease
                if time.monotonic() < self.valid_until and not _taken(err):
                    return
                self._lose(err)
        raise LeaseLost(f"the build lease of {self.location} expired and another build took it: this build "
                        "stalled past it (raise CPGFLOW_LEASE_SECONDS) and commits nothing more")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.lost:
            return
        try:  # marked released, conditionally on our ETag: never another build's lease
            self._put_renewal(released=True)
        except Exception as err:
            log.warning("could not release the build lease of %s (it expires unrenewed): %s", self.location, err)


def _parsed(body: bytes) -> dict | None:
    """A lease's content, or None when it is not one (an empty file synced from a local output)."""
    try:
        lease = json.loads(body)
    except ValueError:
        return None
    return lease if isinstance(lease, dict) else None


def _taken(error: Exception) -> bool:
    from obstore.exceptions import NotFoundError, PreconditionError

    return isinstance(error, (PreconditionError, NotFoundError, FileNotFoundError))


# Locks this process holds, by lock file or leased location: the open descriptor (or the lease) and
# how many holders share it. A flock is per open file, so a second open in the same process would
# wait on the first for ever; a holder inside the process (the CLI holds the folder for a whole
# build) lets the factory's lock through.
_HELD: dict[Path | str, list] = {}
# Acquisitions of each folder by any lock of this process, so far: a lock taken again knows whether
# another one of this process held the folder since it let it go.
_ACQUISITIONS: dict[Path | str, int] = {}


def check_lease(location: str) -> None:
    """Raise `LeaseLost` if this process leased ``location`` and the lease is no longer its own
    (confirmed with the store): a build that lost its lease must not commit."""
    held = _HELD.get(location)
    if held is not None and isinstance(held[0], _Lease):
        held[0].confirm()


class BuildLock:
    """The exclusive right to write an output folder; ``acquire`` waits up to ``timeout`` seconds
    (None: as long as it takes; 0: not at all). Re-entrant within a process."""

    def __init__(self, output_dir: str, timeout: float | None = None, storage_options: StorageOptions = None) -> None:
        self.remote = is_object_store(output_dir)
        self.key: Path | str = output_dir.rstrip("/") if self.remote else Path(output_dir) / LOCK_FILE
        self.storage_options = storage_options
        self.timeout = timeout
        self._holding = False
        # Whether no other holder had the folder since this lock last let it go: no other acquisition in
        # this process (`_ACQUISITIONS`) and, when the release let the folder go, the lock file as it
        # left it (its inode and modification time: an acquisition writes its holder into the file, a
        # release empties it). False when unknown: the first acquisition, a lease on object storage let go.
        self.undisturbed = False
        self._released: tuple[int, tuple[int, int] | None] | None = None  # (acquisitions, the file's state)

    def _where(self) -> str:
        return str(self.key) if self.remote else str(Path(self.key).parent)

    def acquire(self) -> None:
        if self._holding:
            return
        acquisitions = _ACQUISITIONS.get(self.key, 0)
        self.undisturbed = self._released is not None and self._released[0] == acquisitions
        _ACQUISITIONS[self.key] = acquisitions + 1
        if self.key in _HELD:  # this process holds the folder (another lock of it, e.g. the CLI's, never let go)
            if isinstance(_HELD[self.key][0], _Lease):
                _HELD[self.key][0].confirm()
            _HELD[self.key][1] += 1
            self._holding = True
            return
        handle: int | _Lease
        if self.remote:
            self.undisturbed = False  # (what another build did with the lease in between is not known)
            handle = _Lease(str(self.key), self.storage_options)
            self._wait(handle.try_acquire, lambda: None)
        else:
            path = Path(self.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self._wait(lambda: _try_flock(handle), lambda: os.close(handle))
            self.undisturbed &= self._released is not None and self._released[1] == _file_state(handle)
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"pid {os.getpid()} since {_since()}".encode(), 0)
        _HELD[self.key] = [handle, 1]
        self._holding = True

    def _wait(self, attempt: Callable[[], str | None], give_up: Callable[[], None]) -> None:
        """Call ``attempt`` (None: acquired; else who holds the folder) until it acquires or the
        timeout passes."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        announced = False
        while True:
            holder = attempt()
            if holder is None:
                return
            if deadline is not None and time.monotonic() >= deadline:
                give_up()
                raise FolderLocked(f"another build ({holder}) is writing {self._where()}")
            if not announced:
                log.warning("waiting for another build (%s) to finish writing %s", holder, self._where())
                announced = True
            time.sleep(WAIT_POLL_SECONDS if not self.remote else min(2.0, max(WAIT_POLL_SECONDS, lease_seconds() / 10)))

    def release(self) -> None:
        if not self._holding:
            return
        self._holding = False
        held = _HELD[self.key]
        held[1] -= 1
        acquisitions = _ACQUISITIONS.get(self.key, 0)
        if held[1]:
            self._released = (acquisitions, None)  # the folder stays this process's
            return
        del _HELD[self.key]
        if isinstance(held[0], _Lease):
            self._released = None
            held[0].release()
            return
        os.ftruncate(held[0], 0)
        self._released = (acquisitions, _file_state(held[0]))
        fcntl.flock(held[0], fcntl.LOCK_UN)
        os.close(held[0])

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _file_state(fd: int) -> tuple[int, int]:
    state = os.fstat(fd)
    return state.st_ino, state.st_mtime_ns


def _try_flock(fd: int) -> str | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(fd)


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
