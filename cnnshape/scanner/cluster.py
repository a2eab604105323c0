"""The same scan on a Dask distributed cluster (``pip install "cnnshape[cluster]"``): the client
submits each task to the scheduler at ``address`` (``tcp://host:8786``) and writes the records to
its own results file as they come back. Dask does the networking, the scheduling and the restarting
of dead workers; cnnshape adds nothing of its own on the wire.

The workers need cnnshape and the models' files at the same paths (a shared filesystem). A worker
runs each model in one of its threads, with one torch thread: start them ``--nthreads 1`` and one
per core (``--nworkers N``). A timeout stops Python code by an exception in that thread; code stuck
in C cannot be stopped on a Dask worker (the client cannot kill a thread), and keeps its thread
busy. A task whose worker died more often than the scheduler allows (``allowed-failures``, 3 by
default) is a ``crash`` record.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import ConfigError, EnvironmentFault
from .records import ScanRecord, error_record
from .settings import ScanSettings
from .sources import Task
from .worker import analyse_task

#: tasks in flight per worker thread: enough to hide the scheduler's round trip
IN_FLIGHT_PER_THREAD = 4
_ready = False


def _run_on_worker(task: Task, settings: ScanSettings) -> ScanRecord:
    """A Dask task: one torch thread per process (set once), then the local workers' analysis."""
    global _ready
    if not _ready:
        import torch

        torch.set_num_threads(1)
        _ready = True
    return analyse_task(task, settings)


def _client(address: Any) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise EnvironmentFault('--cluster needs Dask distributed: pip install "cnnshape[cluster]"') from None
    if not isinstance(address, str):  # a Client or a LocalCluster from the API
        return address if isinstance(address, Client) else Client(address)
    if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ConfigError(f"--cluster {address!r}: give a Dask scheduler address such as tcp://host:8786")
    try:
        return Client(address, timeout="20s")
    except OSError as e:
        raise EnvironmentFault(f"--cluster {address}: cannot reach the Dask scheduler ({e})") from None


class DaskEngine:
    def __init__(self, address: Any, settings: ScanSettings) -> None:
        self.address = address
        self.settings = settings

    def run(self, tasks: Iterable[Task]) -> Iterator[ScanRecord]:
        from distributed import as_completed

        client = _client(self.address)
        own = client is not self.address
        try:
            threads = max(1, sum(client.nthreads().values()))
            window = IN_FLIGHT_PER_THREAD * threads
            pending = iter(tasks)
            flying: dict[Any, Task] = {}
            done = as_completed()

            def top_up() -> list[ScanRecord]:
                problems = []
                while len(flying) < window:
                    task = next(pending, None)
                    if task is None:
                        break
                    if task.problem is not None:  # reported without a round trip
                        problems.append(error_record(task.name, "exception", task.problem, model=task.origin,
                                                     inputs=task.shapes))
                        continue
                    future = client.submit(_run_on_worker, task, self.settings, pure=False)
                    flying[future] = task
                    done.add(future)
                return problems

            yield from top_up()
            for future in done:
                yield self._record(future, flying.pop(future))
                future.release()
                yield from top_up()
        finally:
            if own:
                client.close()

    def _record(self, future: Any, task: Task) -> ScanRecord:
        if future.status == "finished":
            record: ScanRecord = future.result()
            return record
        error = future.exception()
        name = type(error).__name__
        if name == "KilledWorker":
            return error_record(task.name, "crash", f"the Dask workers analysing it died ({error})",
                                model=task.origin, inputs=task.shapes)
        return error_record(task.name, "exception", f"the Dask task failed: {name}: {error}",
                            model=task.origin, inputs=task.shapes)
