"""The local engine: ``jobs`` persistent worker processes (each imports torch once and runs one
torch thread), fed tasks over a pipe.

A worker whose last task took under :data:`QUEUE_BELOW` seconds (a search space's small networks)
gets its next task while it analyses the current one: it starts that next one without waiting
for the client to read its record and answer (about 2 ms a task, 3% of a NAS-201 network). A
slower worker holds one task at a time, so that a long analysis never keeps a waiting task from
an idle worker.

A worker is a fresh interpreter (``python -c``, the parent's ``sys.path``), not a
``multiprocessing`` child: spawning one re-imports the caller's ``__main__``, which runs a user's
unguarded script again in every worker; forking one copies a client that may hold threads.

A worker that dies (a model's ``os._exit``, a segfault, the OOM killer) gives its task a ``crash``
record and is replaced; one past the timeout (stuck in C code, where its own SIGALRM cannot reach)
is killed after a grace period and its task gets a ``timeout`` record. The scan goes on.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from ..errors import EnvironmentFault
from .records import ScanRecord, error_record
from .settings import KILL_GRACE, ScanSettings
from .sources import Task

#: workers in a row that may die before saying they are ready, before the scan gives up
MAX_START_FAILURES = 3
#: a worker whose last task took less than this (seconds) holds a second task in its pipe
QUEUE_BELOW = 1.0


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection  #: receives from the worker
    out: Connection  #: sends to it
    ready: bool = False
    #: the tasks sent and not answered: the first is being analysed (since ``started``), the other waits
    tasks: deque[Task] = field(default_factory=deque)
    started: float = 0.0
    quick: bool = False  #: its last task took under QUEUE_BELOW

    @property
    def task(self) -> Task | None:
        """The task being analysed."""
        return self.tasks[0] if self.tasks else None

    def wants(self) -> bool:
        return self.ready and len(self.tasks) < (2 if self.quick else 1)


def _died(process: subprocess.Popen[bytes]) -> str:
    code = process.poll()
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class LocalPool:
    def __init__(self, jobs: int, settings: ScanSettings) -> None:
        self.jobs = max(1, jobs)
        self.settings = settings
        self._workers: list[_Worker] = []
        self._start_failures = 0
        #: tasks to send before the next of the source's: those a worker died holding, not yet begun
        self._unsent: list[Task] = []

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def _start(self) -> _Worker:
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
        code = "import sys; from cnnshape.scanner.worker import main; main(int(sys.argv[1]), int(sys.argv[2]))"
        try:
            process = subprocess.Popen([sys.executable, "-c", code, str(from_parent), str(to_parent)],
                                       pass_fds=(from_parent, to_parent), stdin=subprocess.DEVNULL, env=env)
        finally:
            os.close(from_parent)
            os.close(to_parent)
        out = Connection(to_child, readable=False)
        out.send(self.settings)
        return _Worker(process, Connection(from_child, writable=False), out)

    def _stop(self, worker: _Worker, kill: bool = False) -> None:
        if kill and worker.process.poll() is None:
            worker.process.kill()
        try:
            worker.process.wait(5)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.conn.close()
        worker.out.close()

    def _replace(self, worker: _Worker) -> None:
        self._stop(worker, kill=True)
        self._workers[self._workers.index(worker)] = self._start()

    def run(self, tasks: Iterable[Task]) -> Iterator[ScanRecord]:
        """The tasks' records, each as soon as it is done (not in task order)."""
        pending = iter(tasks)
        exhausted = False
        self._workers = [self._start() for _ in range(self.jobs)]
        self._unsent = []
        try:
            while True:
                for worker in self._workers:  # give each ready worker with room a task
                    while worker.wants() and (self._unsent or not exhausted):
                        task = self._unsent.pop() if self._unsent else next(pending, None)
                        if task is None:
                            exhausted = True
                        elif task.problem is not None:
                            yield error_record(task.name, "exception", task.problem, model=task.origin,
                                               inputs=task.shapes)
                        else:
                            try:
                                worker.out.send(task)
                            except OSError:  # it died: _collect replaces it; the task goes to another
                                self._unsent.append(task)
                                break
                            if not worker.tasks:
                                worker.started = time.monotonic()
                            worker.tasks.append(task)
                if exhausted and not self._unsent and not any(w.tasks for w in self._workers):
                    return
                yield from self._collect()
        finally:
            for worker in self._workers:
                if worker.process.poll() is None and not worker.tasks:
                    try:
                        worker.out.send(None)
                    except OSError:
                        pass
            for worker in self._workers:
                self._stop(worker, kill=bool(worker.tasks))

    def _collect(self) -> Iterator[ScanRecord]:
        """Wait for a result, a death or a deadline; the records that gives."""
        timeout = self.settings.timeout
        now = time.monotonic()
        deadline = None
        if timeout is not None:
            ends = [w.started + timeout + KILL_GRACE for w in self._workers if w.task is not None]
            deadline = max(0.0, min(ends) - now) if ends else None
        by_conn = {id(w.conn): w for w in self._workers}
        for obj in wait([w.conn for w in self._workers], deadline):  # a message, or EOF: the worker died
            worker = by_conn[id(obj)]
            message = None
            try:
                if worker.conn.poll():
                    message = worker.conn.recv()
            except (EOFError, OSError):
                message = None
            if message == "ready":
                worker.ready = True
                self._start_failures = 0
            elif isinstance(message, ScanRecord):
                worker.tasks.popleft()
                worker.started = time.monotonic()  # the next task in its pipe, if any, begins now
                worker.quick = message.duration_s < QUEUE_BELOW
                yield message
            else:
                try:
                    worker.process.wait(5)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait()
                task, why = worker.task, _died(worker.process)
                self._requeue(worker)
                if task is not None:
                    yield error_record(task.name, "crash", f"the worker process analysing it died ({why})",
                                       model=task.origin, inputs=task.shapes,
                                       duration_s=time.monotonic() - worker.started)
                elif not worker.ready:
                    self._start_failures += 1
                    if self._start_failures >= MAX_START_FAILURES:
                        raise EnvironmentFault(f"scan worker processes die on start ({why}); run "
                                               "`python -c 'import torch, cnnshape.pipeline'` to see why")
                self._replace(worker)
        if timeout is not None:
            now = time.monotonic()
            for worker in list(self._workers):
                task = worker.task
                if task is not None and now - worker.started > timeout + KILL_GRACE:
                    yield error_record(task.name, "timeout",
                                       f"the analysis ran past the {timeout:g} s timeout and did not stop "
                                       f"(stuck outside Python code); its worker process was killed",
                                       model=task.origin, inputs=task.shapes, duration_s=now - worker.started)
                    self._requeue(worker)
                    self._replace(worker)

    def _requeue(self, worker: _Worker) -> None:
        """The tasks waiting behind the one a dying worker was analysing go to the other workers."""
        while len(worker.tasks) > 1:
            self._unsent.append(worker.tasks.pop())
