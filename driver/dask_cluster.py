"""The Dask cluster a distributed extraction runs on: the one at a scheduler's address, or a local
cluster of worker processes on 127.0.0.1 that the build starts and stops."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

CONNECT_SECONDS = 10
LOCAL_DASHBOARD = "127.0.0.1:0"  # the local cluster's HTTP endpoints: this machine only, on a free port


class SchedulerUnavailable(RuntimeError):
    """No Dask scheduler answers at the address the build was given."""


def check_scheduler(scheduler: str) -> None:
    """Fail now, in one line, when no Dask scheduler answers at ``scheduler`` (before a build starts)."""
    with dask_client(scheduler, 0):
        pass


@contextmanager
def dask_client(scheduler: str, workers: int) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or (empty) of a local cluster of ``workers``
    single-threaded worker processes on 127.0.0.1, stopped on leaving."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            raise SchedulerUnavailable(f"{scheduler}: no Dask scheduler answers ({error})") from error
        with client:
            yield client
        return
    with (LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=LOCAL_DASHBOARD, silence_logs=logging.ERROR) as cluster,
          Client(cluster) as client):
        yield client
