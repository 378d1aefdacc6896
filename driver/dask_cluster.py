"""The Dask cluster a distributed extraction runs on: the one at a scheduler's address, or a local
cluster of worker processes on 127.0.0.1 that the build starts and stops."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hamilton.execution.executors import TaskExecutor, TaskFuture, base_execute_task
from hamilton.execution.grouping import TaskImplementation
from hamilton.execution.state import TaskState

if TYPE_CHECKING:
    from distributed import Client

CONNECT_SECONDS = 10
POLL_SECONDS = 0.02  # how long a poll of a running task waits for it
LOCAL_DASHBOARD = "127.0.0.1:0"  # the local cluster's HTTP endpoints: this machine only, on a free port


class SchedulerUnavailable(RuntimeError):
    """No Dask scheduler answers at the address the build was given."""


def check_scheduler(scheduler: str) -> None:
    """Fail now, in one line, when no Dask scheduler with a worker answers at ``scheduler`` (before a
    build starts)."""
    with dask_client(scheduler, 0):
        pass


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or (None) of a local cluster of ``workers``
    single-threaded worker processes on 127.0.0.1, stopped on leaving."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError, ValueError, TypeError) as error:
            raise SchedulerUnavailable(f"{scheduler}: no Dask scheduler answers ({error})") from error
        with client:
            try:
                client.wait_for_workers(1, timeout=CONNECT_SECONDS)
            except TimeoutError:
                raise SchedulerUnavailable(f"{scheduler}: the Dask scheduler has no worker (none joined within "
                                           f"{CONNECT_SECONDS} s)") from None
            yield client
        return
    with (LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=LOCAL_DASHBOARD, silence_logs=logging.ERROR) as cluster,
          Client(cluster) as client):
        yield client


def patient_executor(client: Client) -> TaskExecutor:
    """Hamilton's Dask executor, whose futures wait a moment for their task when asked how it is:
    Hamilton polls its running tasks in a loop that never sleeps, which would spin a core of the
    build's machine (one its local cluster's workers need) for as long as the shards run."""
    from distributed import wait
    from hamilton.execution.executors import TaskFutureWrappingPythonFuture
    from hamilton.plugins.h_dask import DaskExecutor

    class PatientFuture(TaskFutureWrappingPythonFuture):
        def get_state(self) -> TaskState:
            if not self.future.done():
                with contextlib.suppress(TimeoutError):
                    wait([self.future], timeout=POLL_SECONDS)
            return super().get_state()

    class PatientDaskExecutor(DaskExecutor):
        def submit_task(self, task: TaskImplementation) -> TaskFuture:
            return PatientFuture(self.client.submit(base_execute_task, task))

    return PatientDaskExecutor(client=client)
