"""Benchmark: the construction and tracing phases alone, repeated (issues 11 and 17).

    python3 benchmarks/trace_phases.py [SPEC] [--arg blocks=1000] [--input 1,3,32,32] [--reps 3]
    python3 benchmarks/trace_phases.py --nas 100      # NAS-Bench-201 networks, as ``cnnshape scan`` builds them

For SPEC: the median CPU seconds of constructing the model on meta, of fx's symbolic trace, and of
the meta run that makes the node records (tracing without cross-checking, as the CLI does). With
``--nas N``: N NAS-Bench-201 networks (after 10 to warm up), each built and traced, and the
networks per CPU second of those two phases together. Run it side by side against an older
checkout, alternating (``PYTHONPATH=/old python3 benchmarks/trace_phases.py ...``, then the new):
the machine's noise is larger than some of the differences.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T = time.process_time


def _phases(spec: str, args: list[str], inputs: str, reps: int) -> None:
    import torch

    from cnnshape.inputs import normalise_inputs
    from cnnshape.load import load_model, parse_args
    from cnnshape.pipeline import on_meta
    from cnnshape.trace import fx
    from cnnshape.trace.meta import make_inputs

    times: dict[str, list[float]] = {"construct": [], "symbolic trace": [], "meta run": []}
    nodes = 0
    for _ in range(reps):
        start = T()
        module = load_model(spec, parse_args(args)).module
        times["construct"].append(T() - start)
        with on_meta(module):
            tensors = make_inputs(normalise_inputs(inputs))
            start = T()
            graph = fx.symbolic_graph(module, (), len(tensors))
            times["symbolic trace"].append(T() - start)
            runner = fx._MetaRunner(graph, module, tensors[0].device)
            start = T()
            with torch.no_grad(), runner.recorder:  # as trace_fx runs it
                runner.run(*tensors)
            times["meta run"].append(T() - start)
            nodes = len(runner.records)
        del module, graph, runner
        gc.collect()
    print(f"{spec} {' '.join(args)} --input {inputs}: {nodes} nodes, median of {reps}")
    for phase, values in times.items():
        print(f"  {phase:15s} {statistics.median(values):7.3f} s  ({', '.join(f'{v:.3f}' for v in values)})")


def _nas(count: int) -> None:
    from cnnshape.construct import build_on_meta
    from cnnshape.inputs import normalise_inputs
    from cnnshape.pipeline import on_meta
    from cnnshape.trace.fx import trace_fx
    from cnnshape.trace.meta import make_inputs

    sys.path.insert(0, str(ROOT))
    from examples import nas201

    archs = list(itertools.islice(nas201.all_archs(), 0, None, 7))[:count + 10]
    build = trace = 0.0
    for i, arch in enumerate(archs):
        start = T()
        module = build_on_meta(lambda a=arch: nas201.NAS201Network(a)).module
        built = T()
        with on_meta(module):
            trace_fx(module, make_inputs(normalise_inputs(nas201.INPUT)), (), False)
        if i >= 10:
            build += built - start
            trace += T() - built
    print(f"{count} NAS-Bench-201 networks: construct {build:.2f} s, trace {trace:.2f} s, "
          f"{count / (build + trace):.1f} networks per CPU second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="benchmarks/depth_models.py:residual")
    parser.add_argument("--arg", action="append", default=None)
    parser.add_argument("--input", default="1,3,32,32")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--nas", type=int, default=0)
    opts = parser.parse_args()
    import torch  # noqa: F401  (imported before any timing)

    gc.disable()  # as analyze() does
    if opts.nas:
        _nas(opts.nas)
    else:
        _phases(opts.spec, opts.arg if opts.arg is not None else ["blocks=1000"], opts.input, opts.reps)


if __name__ == "__main__":
    main()
