"""Benchmark: the accepted-sizes analysis alone, per model (issues 11 and 17).

    python3 benchmarks/sizes_speed.py [--blocks 1000] [--nas 51] [--rounds 5]

Traces once, outside the timing: ``benchmarks/depth_models.py:residual`` with ``--blocks`` blocks
on 1x3x32x32, and every (15625 // ``--nas``)-th NAS-Bench-201 network (``examples/nas201.py``); the
core analyses run first, as in ``cnnshape summary`` and in a scan worker (they bind each ATen call's
arguments, which the size rules then read). Then it times, in CPU seconds, the summary's footer note
(:func:`minimum_note`) on the residual net and the scan's call (``analyse_sizes(symbolic=False)``)
per NAS network, ``--rounds`` times each, and prints the medians and a digest of every answer.

Meant to be run side by side against another checkout, alternating, on a noisy machine:

    PYTHONPATH=/path/to/old python3 benchmarks/sizes_speed.py; PYTHONPATH=$PWD python3 benchmarks/sizes_speed.py

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--nas", type=int, default=51, help="how many NAS-Bench-201 networks")
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()

    import nas201

    from cnnshape.analyse.analysis import analyse
    from cnnshape.analyse.sizes import analyse_sizes, minimum_note
    from cnnshape.graph import build_graph
    from cnnshape.inputs import normalise_inputs
    from cnnshape.load import load_model, parse_args
    from cnnshape.pipeline import on_meta
    from cnnshape.trace.tracers import trace

    def graph_of(module, shape):  # type: ignore[no-untyped-def]
        with on_meta(module):
            graph = build_graph(trace(module, normalise_inputs(shape), "fx"), module)
            analyse(graph, {}, receptive_field=False)
        return graph

    gc.disable()  # as analyze() and the scan worker do
    spec = str(ROOT / "benchmarks" / "depth_models.py") + ":residual"
    deep = graph_of(load_model(spec, parse_args([f"blocks={opts.blocks}"])).module, "1,3,32,32")
    step = max(1, 15625 // opts.nas)
    nets = [graph_of(factory(), shape) for _, factory, shape in
            itertools.islice(nas201.candidates(), 0, 15625, step)][: opts.nas]

    def timed(work):  # type: ignore[no-untyped-def]
        times, answer = [], None
        for _ in range(opts.rounds):
            start = time.process_time()
            answer = work()
            times.append(time.process_time() - start)
        return statistics.median(times), answer

    note_s, note = timed(lambda: minimum_note(deep))
    scan_s, answers = timed(lambda: [[(a.symbol, a.minimum, a.accepted) for a in
                                      analyse_sizes(g, "", symbolic=False).axes] for g in nets])
    digest = hashlib.sha256(repr((note, answers)).encode()).hexdigest()[:16]
    print(f"minimum_note, residual {opts.blocks} blocks ({len(deep.nodes)} nodes): {note_s:.3f} CPU s")
    mean_nodes = sum(len(g.nodes) for g in nets) // len(nets)
    print(f"analyse_sizes per NAS-201 network ({len(nets)} networks, {mean_nodes} nodes each on average): "
          f"{1000 * scan_s / len(nets):.2f} CPU ms")
    print(f"answers digest: {digest}")


if __name__ == "__main__":
    main()
