"""``cnnshape scan`` throughput (docs/scan.md). Three measurements:

  python benchmarks/scan.py nas201 [--limit N] [--jobs 2]   the NAS-Bench-201 space on the local pool:
        networks/s, and each worker's RSS sampled every second (flat = no leak)
  python benchmarks/scan.py examples [--limit N]            every model of examples/zoo.txt: its time in a
        warm scan worker vs a fresh `cnnshape summary` process
  python benchmarks/scan.py dask [--limit N]                the same NAS-201 networks on a Dask local cluster
        (2 workers, 1 thread each) vs the local pool (2 jobs)
  python benchmarks/scan.py split [--limit N]               where one worker's time goes, in this process: the
        stages of the analysis proper (trace, graph, analyse, minimum, the record's figures) against what the scan adds
        (building the network from its factory, the record, freeing it, the cyclic collector), and the
        pool's cost outside the workers' clocks (one job: wall time minus the records' durations)

Run it on an idle machine: the figures are wall times.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._measure import PY, header, measure_once  # noqa: E402
from cnnshape.scanner import sources  # noqa: E402
from cnnshape.scanner.records import ScanRecord  # noqa: E402
from cnnshape.scanner.settings import ScanSettings  # noqa: E402

SPACE = str(ROOT / "examples" / "nas201.py") + ":candidates"


def nas_tasks(limit: int | None) -> list[sources.Task]:
    return list(itertools.islice(sources.from_space(SPACE), limit))


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_pool(tasks: list[sources.Task], jobs: int, settings: ScanSettings,
             sample_rss: bool = False) -> tuple[list[ScanRecord], float, dict[int, list[float]]]:
    """The records, the wall time from the first task sent to the last record (workers' start-up,
    the import of torch, excluded: it is paid once per scan) and RSS samples per worker pid."""
    from cnnshape.scanner.pool import LocalPool

    pool = LocalPool(jobs, settings)
    rss: dict[int, list[float]] = {}
    stop = threading.Event()
    records: list[ScanRecord] = []
    start = [0.0]

    def sample() -> None:
        while not stop.wait(1.0):
            for pid in pool.pids:
                value = _rss_mib(pid)
                if value is not None:
                    rss.setdefault(pid, []).append(value)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_rss:
        sampler.start()
    begin = time.perf_counter()
    for record in pool.run(iter(tasks)):
        if not records:
            start[0] = time.perf_counter() - record.duration_s  # the first task began about then
        records.append(record)
        if len(records) % 500 == 0:
            print(f"  {len(records)}/{len(tasks)} {len(records) / (time.perf_counter() - begin):.1f}/s",
                  file=sys.stderr, flush=True)
    end = time.perf_counter()
    stop.set()
    print(f"  pool: {end - begin:.1f} s including the workers' start-up", file=sys.stderr)
    return records, end - start[0], rss


def nas201(args: argparse.Namespace) -> None:
    tasks = nas_tasks(args.limit)
    settings = ScanSettings(minimum=not args.no_minimum)
    records, wall, rss = run_pool(tasks, args.jobs, settings, sample_rss=True)
    errors = [r for r in records if r.status == "error"]
    per_model = statistics.median(r.duration_s for r in records)
    print(header())
    print(f"NAS-Bench-201, {len(records)} networks, {args.jobs} worker(s){'' if settings.minimum else ', no minimum'}: "
          f"{wall:.1f} s after start-up, {len(records) / wall:.1f} networks/s; median per network in a worker "
          f"{per_model * 1000:.0f} ms; {len(errors)} error(s)")
    for pid, samples in rss.items():
        if samples:
            third = max(1, len(samples) // 3)
            print(f"  worker {pid}: RSS first third max {max(samples[:third]):.0f} MiB, last third max "
                  f"{max(samples[-third:]):.0f} MiB, peak {max(samples):.0f} MiB ({len(samples)} samples)")


def examples(args: argparse.Namespace) -> None:
    tasks = list(sources.from_file(str(ROOT / "examples" / "zoo.txt")))[: args.limit]
    records, _, _ = run_pool(tasks, 1, ScanSettings())
    by_name = {r.name: r for r in records}
    print(header())
    print("| model | scan worker (s) | fresh `cnnshape summary` process (s) | speed-up |")
    print("|---|---:|---:|---:|")
    total_scan = total_fresh = 0.0
    for task in tasks:
        record = by_name[task.name]
        argv = [PY, "-m", "cnnshape", "summary", task.origin, *itertools.chain.from_iterable(
            ("--input", str(s).replace("x", ",")) for s in task.inputs)]
        fresh = measure_once(argv, timeout=600)
        shown = "failed" if fresh.wall_s is None else f"{fresh.wall_s:.2f}"
        ratio = f"{fresh.wall_s / record.duration_s:.0f}x" if fresh.wall_s and record.duration_s else "-"
        if fresh.wall_s is not None and record.status != "error":
            total_scan += record.duration_s
            total_fresh += fresh.wall_s
        print(f"| {task.name} | {record.duration_s:.2f}{'' if record.status != 'error' else ' (error)'} | "
              f"{shown} | {ratio} |", flush=True)
    print(f"| all | {total_scan:.1f} | {total_fresh:.1f} | {total_fresh / max(total_scan, 1e-9):.1f}x |")


def dask(args: argparse.Namespace) -> None:
    from distributed import LocalCluster

    from cnnshape.scanner.cluster import DaskEngine

    tasks = nas_tasks(args.limit)
    settings = ScanSettings()
    local, local_wall, _ = run_pool(tasks, 2, settings)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        engine = DaskEngine(cluster.scheduler_address, settings)
        warm = list(engine.run(tasks[:4]))  # the workers import torch and the analysers once
        begin = time.perf_counter()
        remote = list(engine.run(tasks))
        dask_wall = time.perf_counter() - begin
    same = {r.name: json.dumps({**r.to_dict(), "duration_s": 0}) for r in local} == \
        {r.name: json.dumps({**r.to_dict(), "duration_s": 0}) for r in remote}
    print(header())
    print(f"{len(tasks)} NAS-201 networks: local pool (2 jobs) {len(tasks) / local_wall:.1f}/s, Dask LocalCluster "
          f"(2 workers x 1 thread) {len(tasks) / dask_wall:.1f}/s: Dask takes {dask_wall / local_wall:.2f}x the "
          f"pool's time; same records: {same} ({len(warm)} warm-up tasks first)")


def split(args: argparse.Namespace) -> None:
    import gc

    import torch

    from cnnshape.pipeline import no_gc, on_meta, outputs_of, totals_of, unsupported_of
    from cnnshape.scanner.worker import _minimum, _module, _warm_up, analyse_task, leaf_table
    from cnnshape.trace.memo import shared_across_traces

    torch.set_num_threads(1)  # as a worker
    limit = args.limit or 100
    tasks = list(itertools.islice(sources.from_space(SPACE), 0, None, max(1, 15625 // limit)))[:limit]
    settings = ScanSettings(minimum=not args.no_minimum)
    _warm_up(settings)
    gc.collect()
    gc.freeze()  # as a worker does after its warm-up
    stages: dict[str, float] = {}
    collecting = [0.0, 0.0]  # start of the running collection, total

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]

    from cnnshape.analyse.analysis import analyse
    from cnnshape.graph import build_graph
    from cnnshape.trace.tracers import trace

    gc.callbacks.append(on_gc)
    begin = time.perf_counter()
    for task in tasks:  # the stages of worker._analyse, each timed
        marks = [time.perf_counter()]
        with no_gc():
            module = _module(task)
            marks.append(time.perf_counter())
            with on_meta(module):
                with shared_across_traces(leaf_table()):  # as the worker traces
                    traced = trace(module, task.inputs, settings.tracer, ())
                marks.append(time.perf_counter())
                graph = build_graph(traced, module)
                marks.append(time.perf_counter())
                analysis = analyse(graph, {}, receptive_field=False)
                marks.append(time.perf_counter())
                minimum = _minimum(graph) if settings.minimum else ()
                marks.append(time.perf_counter())
            record = (totals_of(graph, analysis), outputs_of(graph), unsupported_of(graph, analysis))
            marks.append(time.perf_counter())
            del module, traced, graph, analysis, minimum, record
            marks.append(time.perf_counter())
        for name, a, b in zip(("build the network", "trace", "graph", "analyse", "minimum", "record", "free"),
                              marks, marks[1:]):
            stages[name] = stages.get(name, 0.0) + b - a
    staged = time.perf_counter() - begin
    gc.callbacks.remove(on_gc)
    begin = time.perf_counter()
    for task in tasks:
        analyse_task(task, settings)
    whole = time.perf_counter() - begin
    records, wall, _ = run_pool(tasks, 1, settings)
    outside = wall - sum(r.duration_s for r in records)
    print(header())
    print(f"{len(tasks)} NAS-201 networks (every {15625 // limit}th of the space), one process, ms per network:")
    ms = {name: 1000 * t / len(tasks) for name, t in stages.items()}
    for name, value in ms.items():
        print(f"  {name:18s} {value:6.1f}")
    print(f"  {'cyclic collector':18s} {1000 * collecting[1] / len(tasks):6.1f}  (after each network is freed)")
    proper = sum(ms[k] for k in ("trace", "graph", "analyse", "minimum", "record"))
    print(f"  analysis proper {proper:.1f}, scan's own {ms['build the network'] + ms['free']:.1f} (building, "
          f"freeing); all stages {1000 * staged / len(tasks):.1f}; worker.analyse_task {1000 * whole / len(tasks):.1f}")
    print(f"  one-job pool: {1000 * outside / len(records):.1f} ms per network outside the records' durations "
          f"(the task's and record's trip, freeing, collections)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("nas201", "examples", "dask", "split"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-minimum", action="store_true")
    args = parser.parse_args()
    {"nas201": nas201, "examples": examples, "dask": dask, "split": split}[args.what](args)


if __name__ == "__main__":
    main()
