"""Benchmark: where one ``cnnshape summary`` spends its time, phase by phase (issue 11).

    python3 benchmarks/breakdown.py [SPEC] [--input 1,3,224,224] [--arg blocks=500] [--tracer fx]

Runs the summary pipeline in this fresh process, one phase at a time, and prints the CPU time of
each: imports (torch, then cnnshape), model construction, meta copies, tracing, the core analyses
(parameters, MACs/FLOPs, receptive field), the accepted-sizes note, the report and the table.
Whether ``torch._dynamo`` was imported is printed too. Meant to be run side by side with the same
script against an older checkout (copy it there), as docs/performance.md does.
"""
from __future__ import annotations

import argparse
import gc
import inspect
import sys
import time

T = time.process_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="examples/resnet.py:ResNet50")
    parser.add_argument("--input", default="1,3,224,224")
    parser.add_argument("--arg", action="append", default=[])
    parser.add_argument("--tracer", default="fx")
    opts = parser.parse_args()

    phases: list[tuple[str, float]] = []
    start = T()
    import torch  # noqa: F401  (the floor)
    phases.append(("import torch", T() - start))

    start = T()
    from cnnshape.analyse.sizes import minimum_note
    from cnnshape.graph import build_graph
    from cnnshape.inputs import normalise_inputs
    from cnnshape.load import load_model, parse_args
    from cnnshape.render import formats
    try:  # the layout since the structure step
        from cnnshape.analyse.analysis import analyse
        from cnnshape.pipeline import build_report, on_meta
        from cnnshape.trace.tracers import trace
    except ImportError:  # the first build, measured side by side
        from cnnshape.analyse import analyse  # type: ignore[attr-defined,no-redef]
        from cnnshape.api import on_meta  # type: ignore[attr-defined,no-redef]
        from cnnshape.report import build_report  # type: ignore[attr-defined,no-redef]
        from cnnshape.trace import trace  # type: ignore[attr-defined,no-redef]
    phases.append(("import cnnshape", T() - start))

    gc.disable()  # as analyze() does
    start = T()
    module = load_model(opts.spec, parse_args(opts.arg)).module
    phases.append(("construct the model", T() - start))
    specs = normalise_inputs(opts.input)
    start = T()
    with on_meta(module):
        phases.append(("meta copies", T() - start))
        start = T()
        graph = build_graph(trace(module, specs, opts.tracer), module)
        phases.append((f"trace ({opts.tracer}, {len(graph.nodes)} nodes)", T() - start))
        start = T()
        analysis = analyse(graph)
        phases.append(("params, MACs, receptive field", T() - start))
        start = T()
        if "retrace" in inspect.signature(minimum_note).parameters:  # older versions re-traced here
            from cnnshape.api import _retracer
            note = minimum_note(graph, _retracer(module, specs, graph.trace.tracer, ()))
        else:
            note = minimum_note(graph)
        phases.append(("accepted-sizes note", T() - start))
        start = T()
        extra = {"inputs": specs} if "inputs" in inspect.signature(build_report).parameters else {}
        report = build_report(graph, analysis, model=opts.spec, notes=(note,) if note else (), **extra)
        phases.append(("report", T() - start))
    start = T()
    formats.render(report, "table")
    phases.append(("table", T() - start))

    total = sum(t for _, t in phases)
    print(f"{opts.spec} --input {opts.input} {' '.join('--arg ' + a for a in opts.arg)}".strip())
    print("| phase | CPU s |")
    print("|---|---:|")
    for name, seconds in phases:
        print(f"| {name} | {seconds:.3f} |")
    print(f"| **total** | **{total:.3f}** |")
    print(f"torch._dynamo imported: {'torch._dynamo' in sys.modules}")


if __name__ == "__main__":
    main()
