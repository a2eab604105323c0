"""Benchmark: the stages after the trace, each timed alone on one traced model (issues 11 and 17).

    python3 benchmarks/post_trace.py [SPEC] [--input 1,32,32] [--arg blocks=1000] [--repeat 5]

Loads and traces the model once, then runs each stage ``--repeat`` times on that trace and prints
the least CPU time of each: the graph, the parameter counts, the whole analysis (with and without
the receptive field, as ``cnnshape scan`` runs it), the report, and the table and JSON renderers.
The least of several runs in one process is the figure least disturbed by a shared machine; for an
A/B comparison run it against two checkouts in turn (``PYTHONPATH=/old`` vs ``PYTHONPATH=/new``;
the checkout on PYTHONPATH is the one measured).
"""
from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="benchmarks/depth_models.py:residual")
    parser.add_argument("--input", default="1,3,32,32")
    parser.add_argument("--arg", action="append", default=[])
    parser.add_argument("--tracer", default="fx")
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()

    from cnnshape.analyse.analysis import analyse
    from cnnshape.analyse.params import analyse_params
    from cnnshape.graph import build_graph
    from cnnshape.inputs import normalise_inputs
    from cnnshape.load import load_model, parse_args
    from cnnshape.pipeline import build_report, on_meta
    from cnnshape.render import formats
    from cnnshape.trace.tracers import trace

    gc.disable()  # as analyze() does
    module = load_model(opts.spec, parse_args(opts.arg or ["blocks=1000"])).module
    best: dict[str, float] = {}

    def timed(name: str, stage: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        result = stage(*args, **kwargs)
        best[name] = min(best.get(name, float("inf")), time.process_time() - start)
        return result

    with on_meta(module):
        graph = build_graph(trace(module, normalise_inputs(opts.input), opts.tracer), module)
        analyse(graph)  # the first analysis binds every call's arguments (kept on the call): not timed
        for _ in range(opts.repeat):
            timed("graph", build_graph, graph.trace, module)
            timed("parameters", analyse_params, graph)
            analysis = timed("analyse", analyse, graph)
            timed("analyse, no RF (scan)", analyse, graph, {}, receptive_field=False)
            report = timed("report", build_report, graph, analysis, model=opts.spec)
            timed("table", formats.render, report, "table")
            timed("json", formats.render, report, "json")
    print(f"{opts.spec} {' '.join(opts.arg)} ({len(graph.nodes)} nodes), least CPU s of {opts.repeat}")
    print("| stage | CPU s |\n|---|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
