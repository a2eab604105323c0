"""Benchmark: the smallest accepted input size per NAS-Bench-201 network, as a scan worker gets it (issue 17).

    python3 benchmarks/sizes_minimum.py [--nas 200] [--blocks 1000]

Each network (every (15625 // ``--nas``)-th of ``examples/nas201.py``) is built, traced and analysed as
the worker does (not timed), then its minimum is timed in CPU ms: with ``cnnshape.analyse.sizes.
minimum_sizes`` and one ``SharedTemplates`` for the whole run where the checkout has them, else with
the call the worker made before them (``analyse_sizes(graph, "", symbolic=False)``, its axes' symbol
and minimum). One network at a time, right after its trace, as in a scan: not a hundred graphs held
and walked again. Then the summary's footer note (``minimum_note``) on ``benchmarks/depth_models.py:
residual`` with ``--blocks`` blocks, the median of 5 runs. A digest of every answer closes the output.

Meant to be run side by side with another checkout, alternating, on a noisy machine:

    PYTHONPATH=/path/to/old python3 benchmarks/sizes_minimum.py; PYTHONPATH=$PWD python3 benchmarks/sizes_minimum.py

The digests must be equal: the same answers, only sooner.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nas", type=int, default=200, help="how many NAS-Bench-201 networks")
    parser.add_argument("--blocks", type=int, default=1000)
    opts = parser.parse_args()

    import nas201
    import torch

    from cnnshape.analyse import sizes
    from cnnshape.analyse.analysis import analyse
    from cnnshape.graph import build_graph
    from cnnshape.inputs import normalise_inputs
    from cnnshape.load import load_model, parse_args
    from cnnshape.pipeline import on_meta
    from cnnshape.trace.tracers import trace

    torch.set_num_threads(1)  # as a worker
    if hasattr(sizes, "minimum_sizes"):
        shared = sizes.SharedTemplates()
        how = "minimum_sizes, one SharedTemplates"

        def minimum(graph: Any) -> Any:
            return sizes.minimum_sizes(graph, shared)
    else:
        how = "analyse_sizes(symbolic=False)"

        def minimum(graph: Any) -> Any:
            return tuple((a.symbol, a.minimum) for a in sizes.analyse_sizes(graph, "", symbolic=False).axes)

    def graph_of(module: Any, shape: str) -> Any:
        with on_meta(module):
            graph = build_graph(trace(module, normalise_inputs(shape), "fx"), module)
            analyse(graph, {}, receptive_field=False)
        return graph

    gc.disable()  # as the worker does while it analyses a network
    step = max(1, 15625 // opts.nas)
    times, answers = [], []
    for _, factory, shape in itertools.islice(nas201.candidates(), 0, 15625, step):
        graph = graph_of(factory(), shape)
        start = time.process_time()
        answers.append(minimum(graph))
        times.append(time.process_time() - start)
        del graph
        gc.collect()
        if len(times) == opts.nas:
            break
    half = len(times) // 2
    print(f"minimum per NAS-201 network ({how}), CPU ms: mean {1000 * statistics.mean(times):.2f}, median "
          f"{1000 * statistics.median(times):.2f}, mean of the second half {1000 * statistics.mean(times[half:]):.2f} "
          f"({len(times)} networks)")

    spec = str(ROOT / "benchmarks" / "depth_models.py") + ":residual"
    deep = graph_of(load_model(spec, parse_args([f"blocks={opts.blocks}"])).module, "1,3,32,32")
    runs, note = [], None
    for _ in range(5):
        start = time.process_time()
        note = sizes.minimum_note(deep)
        runs.append(time.process_time() - start)
    print(f"minimum_note, residual {opts.blocks} blocks ({len(deep.nodes)} nodes): "
          f"{statistics.median(runs):.3f} CPU s (median of 5)")
    print(f"answers digest: {hashlib.sha256(repr((note, answers)).encode()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
