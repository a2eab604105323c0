"""The analysis of one scan task, as a worker process (or a Dask task) runs it: never raises;
whatever goes wrong becomes an error record.

The scan record needs the primary figures (shapes, parameters, MACs/FLOPs, memory) and the
smallest accepted input size; it skips what a record does not hold: the receptive field of every
layer, the pruning note and the footer's notes. The figures are those of ``cnnshape.analyze``
(the same trace, graph and counting; tests/test_scan.py compares them).
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from ..check import FIGURES, MEMORY_FIGURES, Figure, Snapshot, check_budgets
from ..errors import CnnshapeError
from .records import TOTALS, ScanRecord, Violation, error_record
from .settings import ScanSettings
from .sources import Task

_OWN = (str(Path(__file__).resolve().parent.parent), os.path.dirname(os.__file__))
_loaded_spaces: set[str] = set()
_leaf_tables: list[Any] = []  #: leaf_table()'s, once made
_per_thread = threading.local()  #: _minimum's store of size-rule templates


class ScanTimeout(BaseException):
    """The model's analysis ran past the scan's timeout (a BaseException: model code catching
    Exception lets it through)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ScanTimeout` in the body after ``seconds``: by SIGALRM in a main thread (again
    every second, in case the model's code catches it), else by an asynchronous exception in this
    thread (a Dask worker's). Code stuck in C is left to the client, which kills the worker."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum: int, frame: FrameType | None) -> None:
            raise ScanTimeout()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    ident = threading.get_ident()
    done = threading.Event()

    def interrupt() -> None:
        while not done.wait(1.0 if fired else seconds):  # again every second until the body ends
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(ScanTimeout))
            fired.append(True)

    fired: list[bool] = []
    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _where(tb: Any) -> str:
    """The innermost line of the traceback outside cnnshape and the standard library: the model's."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(_OWN)]
    user = [f for f in frames if "site-packages" not in f.filename] or frames
    if not user:
        return ""
    f = user[-1]
    return f" (at {f.filename}:{f.lineno} in {f.name})"


def _message(e: BaseException) -> str:
    if isinstance(e, CnnshapeError):
        return str(e)
    if isinstance(e, SystemExit):
        return f"the model's code called sys.exit({e.code!r}){_where(e.__traceback__)}"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}{_where(e.__traceback__)}"


def _module(task: Task) -> Any:
    """The task's nn.Module, parameters on meta where its constructor allows."""
    from torch import nn

    from ..construct import build_on_meta
    from ..load import load_attribute, load_model

    if task.spec is not None:
        return load_model(task.spec, dict(task.args)).module
    if task.space is not None and task.space not in _loaded_spaces:
        load_attribute(task.space)  # imports the space's file under the name its pickles refer to
        _loaded_spaces.add(task.space)
    assert task.payload is not None
    made = pickle.loads(task.payload)
    if isinstance(made, nn.Module):
        return made
    module = build_on_meta(made).module
    if not isinstance(module, nn.Module):
        raise CnnshapeError(f"its factory returned {type(module).__name__}, not an nn.Module")
    return module


def leaf_table() -> Any:
    """The table of layer calls this process's traces share (trace/memo.py): a space's networks
    repeat the same layers, each run once per process instead of once per network (about 5 ms of a
    NAS-201 network's 80). Made with the first task (it imports torch)."""
    if not _leaf_tables:
        from ..trace.memo import SharedTable

        _leaf_tables.append(SharedTable())
    return _leaf_tables[0]


def _minimum(graph: Any) -> tuple[tuple[str, int | None], ...]:
    """The smallest accepted size per spatial axis by the layer arithmetic of this one trace (as the
    summary's footer derives it: ``minimum_sizes`` is ``analyse_sizes``'s minimum without its
    table and formulas); () where it cannot tell. A secondary figure: never fails the record. The
    size rules' templates are kept across this thread's networks (a store per thread: it is not
    locked, and a Dask worker may run several)."""
    from ..analyse.sizes import SharedTemplates, minimum_sizes

    if graph.trace.size_reads:
        return ()
    templates = getattr(_per_thread, "templates", None)
    if templates is None:
        templates = _per_thread.templates = SharedTemplates()
    try:
        return minimum_sizes(graph, templates)
    except Exception:
        return ()


def analyse_task(task: Task, settings: ScanSettings) -> ScanRecord:
    """The record of one task; never raises (a timeout, a model error, a cnnshape bug: an error record)."""
    start = time.perf_counter()
    if task.problem is not None:
        return error_record(task.name, "exception", task.problem, model=task.origin, inputs=task.shapes)
    try:
        with time_limit(settings.timeout):
            return _analyse(task, settings, start)
    except ScanTimeout as e:
        return error_record(task.name, "timeout", f"the analysis ran past the {settings.timeout:g} s timeout"
                            f"{_where(e.__traceback__)}", model=task.origin, inputs=task.shapes,
                            duration_s=time.perf_counter() - start)
    except BaseException as e:  # noqa: B036  a model's sys.exit or KeyboardInterrupt is its failure too
        return error_record(task.name, "exception", _message(e), model=task.origin, inputs=task.shapes,
                            duration_s=time.perf_counter() - start)


def _analyse(task: Task, settings: ScanSettings, start: float) -> ScanRecord:
    from ..pipeline import no_gc

    # The cyclic collector resumes only once the network's trace, graph and analysis are freed
    # (_primary's locals; the network too, without a memory analysis): resumed with them alive,
    # its first collection walks all of them to find them alive (about 5 ms per NAS-201 network).
    with no_gc():
        module = _module(task)
        record, figures = _primary(module, task, settings)
        if not settings.memory:
            del module
            return _judged(record, figures, task, settings, start)
    try:
        memory = _memory(module, task, settings.memory)
    except Exception as e:  # the primary figures stand; the memory budgets cannot be judged
        return replace(record, status="error", error_kind="exception", duration_s=time.perf_counter() - start,
                       error=f"the memory analysis failed, so its budgets cannot be judged: {_message(e)}")
    return _judged(replace(record, memory=memory), figures + [Figure(f, v) for f, v in memory], task, settings, start)


def _primary(module: Any, task: Task, settings: ScanSettings) -> tuple[ScanRecord, list[Figure]]:
    """The record of ``module`` not yet judged against the budgets, and the figures the budgets
    judge. The report's own totals, outputs and unsupported ops (pipeline.totals_of...), without
    building the report's layer records."""
    from ..analyse.analysis import analyse
    from ..graph import build_graph
    from ..pipeline import on_meta, outputs_of, totals_of, unsupported_of
    from ..trace.memo import shared_across_traces
    from ..trace.tracers import trace

    with on_meta(module):
        with shared_across_traces(leaf_table()):
            traced = trace(module, task.inputs, settings.tracer, ())
        graph = build_graph(traced, module)
        analysis = analyse(graph, {}, receptive_field=False)
        minimum = _minimum(graph) if settings.minimum else ()
    totals = totals_of(graph, analysis)
    record = ScanRecord(task.name, "pass", model=task.origin, inputs=task.shapes,
                        totals=tuple((key, getattr(totals, key)) for key in TOTALS),
                        outputs=tuple(o.shape for o in outputs_of(graph)), minimum=minimum, tracer=graph.trace.tracer,
                        unsupported_ops=tuple(u.op for u in unsupported_of(graph, analysis)))
    return record, [Figure(f, getattr(totals, attr)) for f, (_, attr, _) in FIGURES.items()]


def _judged(record: ScanRecord, figures: list[Figure], task: Task, settings: ScanSettings, start: float) -> ScanRecord:
    """``record`` with its status and violations (``figures`` by ``settings.budgets``), and its duration."""
    results = check_budgets(Snapshot(task.name, tuple(figures), record.outputs), settings.budgets)
    violations = tuple(Violation(r.figure, int(r.value), int(r.limit))  # type: ignore[arg-type]  # budgets: ints
                       for r in results if not r.passed)
    return replace(record, status="fail" if violations else "pass", violations=violations,
                   duration_s=time.perf_counter() - start)


def _memory(module: Any, task: Task, wanted: frozenset[str]) -> tuple[tuple[str, int], ...]:
    """The peaks ``cnnshape check`` takes for its memory budgets (the inference peak; with
    ``train_memory`` also a training step's, with Adam), by the same analysis (memory_run)."""
    from ..memory_run import run_memory
    from ..request import Request

    report = run_memory(Request.of(module, task.inputs), train="train_memory" in wanted)
    figures = []
    for name, (_, path, _) in MEMORY_FIGURES.items():
        value: Any = report
        for attr in path.split("."):
            value = getattr(value, attr, None)
        if isinstance(value, int):
            figures.append((name, value))
    return tuple(figures)


def _warm_up(settings: ScanSettings) -> None:
    """Analyse a small conv net once, so that the first model's clock (and timeout) does not pay
    for what the first analysis of a process imports and caches."""
    from torch import nn

    from ..inputs import InputSpec

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    task = Task("warm-up", "warm-up", (InputSpec((1, 3, 8, 8)),), payload=pickle.dumps(net))
    analyse_task(task, replace(settings, timeout=None))  # with the memory analysis, if the budgets ask for it


def main(read_fd: int, write_fd: int) -> None:
    """A local pool's worker: import torch once, one thread; analyse each task the client sends
    until it sends None or goes away. The models' prints go nowhere (a scan's output is its records)."""
    from multiprocessing.connection import Connection

    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  for the life of the process
    from .. import pipeline  # noqa: F401  the analysers, imported before the first model's clock starts

    conn_in, conn_out = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    settings = conn_in.recv()
    _warm_up(settings)
    # Everything alive now (torch, cnnshape, the warm-up's caches: ~165,000 objects) lives as long
    # as the process: out of the collector's sight, a collection walks only what models leave
    # behind, and no full collection ever walks torch again (about 4 ms less per NAS-201 network,
    # benchmarks/scan.py). Only the collector's bookkeeping changes: nothing is kept or dropped.
    gc.collect()
    gc.freeze()
    conn_out.send("ready")
    while True:
        try:
            task = conn_in.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn_out.send(analyse_task(task, settings))
