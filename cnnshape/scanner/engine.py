"""A scan: tasks -> records, streamed to a resumable JSONL, on the local pool or a cluster."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError
from .jsonl import open_results
from .records import ScanRecord
from .settings import ScanSettings
from .sources import Task


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _unique(tasks: Iterable[Task]) -> list[Task]:
    """The tasks, each name once (a name is how a resumed scan knows a model is done)."""
    seen: dict[str, Task] = {}
    for task in tasks:
        if task.name in seen:
            raise ConfigError(f"two models are named {task.name!r} ({seen[task.name].origin} and {task.origin}); "
                              "give each its own name (a specs file line takes --name NAME)")
        seen[task.name] = task
    return list(seen.values())


class _Progress:
    """A progress bar with rate and ETA on a terminal (rich), nothing otherwise."""

    def __init__(self, total: int, show: bool) -> None:
        self._bar: Any = None
        if not show:
            return
        try:
            import rich.progress  # noqa: F401
        except ImportError:  # the bar is optional (pip install "cnnshape[progress]")
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("scan"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                             TextColumn("{task.fields[errors]}"), transient=False,
                             console=_stderr_console())
        self._task = self._bar.add_task("scan", total=total, rate="", errors="")
        self._bar.start()
        self._errors = 0

    def advance(self, record: ScanRecord) -> None:
        if self._bar is None:
            return
        self._errors += not record.ok
        task = self._bar.tasks[0]
        speed = task.speed
        self._bar.update(self._task, advance=1, rate=f"{speed:.1f}/s" if speed else "",
                         errors=f"{self._errors} error(s)" if self._errors else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr)


def run_scan(tasks: Iterable[Task], settings: ScanSettings, *, output: str | None = None, jobs: int | None = None,
             cluster: str | None = None, progress: bool = False,
             on_record: Callable[[ScanRecord], None] | None = None) -> list[ScanRecord]:
    """Every task's record: those already in ``output`` (skipped), then the new ones, appended to
    ``output`` as each finishes. ``cluster``: a Dask scheduler address (else ``jobs`` local workers)."""
    todo = _unique(tasks)
    with open_results(output) as results:
        done = {r.name for r in results.done}
        todo = [t for t in todo if t.name not in done]
        records = list(results.done)
        if not todo:
            return records
        engine = _engine(cluster, jobs, settings, len(todo))
        bar = _Progress(len(todo), progress)
        try:
            for record in engine.run(todo):
                results.write(record)
                records.append(record)
                bar.advance(record)
                if on_record is not None:
                    on_record(record)
        finally:
            bar.close()
    return records


def _engine(cluster: str | None, jobs: int | None, settings: ScanSettings, count: int) -> Any:
    if cluster is not None:
        from .cluster import DaskEngine

        return DaskEngine(cluster, settings)
    from .pool import LocalPool

    return LocalPool(min(jobs or default_jobs(), count), settings)


def iter_records(records: Iterable[ScanRecord], only_passing: bool = False) -> Iterator[ScanRecord]:
    return (r for r in records if r.status == "pass" or not only_passing)
