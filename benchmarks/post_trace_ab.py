"""Benchmark: the stages after the trace, two checkouts side by side in one process (issues 11, 17).

    python3 benchmarks/post_trace_ab.py OLD NEW [SPEC] [--input 1,3,32,32] [--arg blocks=1000] [--repeat 9]

OLD and NEW are checkout roots (``/work/main`` and ``.``). Each is imported in turn under its own
copy of the ``cnnshape`` modules (swapped in and out of ``sys.modules``), loads and traces the
model once, and then every stage is timed for OLD and NEW alternately (which goes first swapped
each round), ``--repeat`` times: a
shared, noisy machine slows both sides of a pair alike, where two processes run minutes apart see
different loads. Prints the least CPU time of each stage for each side and their ratio, and
whether the two reports render to the same table and JSON (they must: the checks compare output,
not only time).

Stages: the meta copies (``on_meta`` in and out), the graph, the analysis (parameters, MACs, RF;
its parameter counts and receptive fields also timed alone, indented and left out of the total),
the accepted-sizes note, the report, the table and the JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_OURS = ("cnnshape",)


def _is_ours(name: str) -> bool:
    return name in _OURS or name.startswith("cnnshape.")


class Checkout:
    """One checkout's cnnshape, imported once and swapped into ``sys.modules`` while it runs
    (its lazy imports inside functions then find their own modules)."""

    def __init__(self, root: str, spec: str, inputs: str, args: list[str]) -> None:
        self.root = str(Path(root).resolve())
        self.modules: dict[str, Any] = {}
        with self.active():
            sys.path.insert(0, self.root)
            try:
                self.ns = {name: importlib.import_module(f"cnnshape.{name}") for name in (
                    "analyse.analysis", "analyse.params", "analyse.receptive_field", "analyse.sizes",
                    "graph", "inputs", "load", "pipeline", "render.formats",
                    "trace.tracers")}
            finally:
                sys.path.remove(self.root)
            load, inp = self.ns["load"], self.ns["inputs"]
            self.module = load.load_model(spec, load.parse_args(args)).module
            self.specs = inp.normalise_inputs(inputs)
            pipeline = self.ns["pipeline"]
            with pipeline.on_meta(self.module):
                self.trace = self.ns["trace.tracers"].trace(self.module, self.specs, "fx")
                self.graph = self.ns["graph"].build_graph(self.trace, self.module)
                self.analysis = self.ns["analyse.analysis"].analyse(self.graph)  # binds the calls: untimed
                note = self.ns["analyse.sizes"].minimum_note(self.graph)
                self.report = pipeline.build_report(self.graph, self.analysis, model=spec,
                                                    notes=(note,) if note else ())

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        others = {k: sys.modules.pop(k) for k in list(sys.modules) if _is_ours(k)}
        sys.modules.update(self.modules)
        try:
            yield
        finally:
            self.modules = {k: sys.modules.pop(k) for k in list(sys.modules) if _is_ours(k)}
            sys.modules.update(others)

    def stages(self, spec: str) -> dict[str, Callable[[], Any]]:
        pipeline, formats = self.ns["pipeline"], self.ns["render.formats"]
        analyse, sizes, graph = self.ns["analyse.analysis"].analyse, self.ns["analyse.sizes"], self.ns["graph"]
        rf = self.ns["analyse.receptive_field"]

        def meta() -> None:
            with pipeline.on_meta(self.module):
                pass

        return {
            "meta copies": meta,
            "graph": lambda: graph.build_graph(self.trace, self.module),
            "analyse": lambda: analyse(self.graph),
            "  of which parameters": lambda: self.ns["analyse.params"].analyse_params(self.graph),
            "  of which receptive field": lambda: rf.analyse_receptive_fields(self.graph.nodes),
            "accepted-sizes note": lambda: sizes.minimum_note(self.graph),
            "report": lambda: pipeline.build_report(self.graph, self.analysis, model=spec),
            "table": lambda: formats.render(self.report, "table"),
            "json": lambda: formats.render(self.report, "json"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("spec", nargs="?", default="benchmarks/depth_models.py:residual")
    parser.add_argument("--input", default="1,3,32,32")
    parser.add_argument("--arg", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=9)
    opts = parser.parse_args()
    import torch  # noqa: F401  (shared by both checkouts)

    gc.disable()  # as analyze() does
    sides = {label: Checkout(root, opts.spec, opts.input, opts.arg) for label, root in
             (("old", opts.old), ("new", opts.new))}
    best: dict[tuple[str, str], float] = {}
    for rep in range(opts.repeat):
        # the order swapped every round: the side that runs second finds the allocator warmed by the first
        for label, side in (list(sides.items()) if rep % 2 == 0 else list(sides.items())[::-1]):
            with side.active():
                for stage, run in side.stages(opts.spec).items():
                    start = time.process_time()
                    run()
                    seconds = time.process_time() - start
                    best[(stage, label)] = min(best.get((stage, label), float("inf")), seconds)
        gc.collect()
    texts = {}
    for label, side in sides.items():
        with side.active():
            formats = side.ns["render.formats"]
            texts[label] = (formats.render(side.report, "table"), formats.render(side.report, "json"))
    nodes = len(sides["new"].graph.nodes)
    print(f"{opts.spec} {' '.join(opts.arg)} ({nodes} nodes): least CPU s of {opts.repeat}, alternating")
    print(f"| stage | {opts.old} | {opts.new} | new/old |\n|---|---:|---:|---:|")
    totals = {"old": 0.0, "new": 0.0}
    for stage in sides["new"].stages(opts.spec):
        old, new = best[(stage, "old")], best[(stage, "new")]
        if stage != "json" and not stage.startswith(" "):
            totals["old"] += old
            totals["new"] += new
        print(f"| {stage} | {old:.4f} | {new:.4f} | {new / old:.2f} |")
    print(f"| **all but json** | **{totals['old']:.4f}** | **{totals['new']:.4f}** | "
          f"**{totals['new'] / totals['old']:.2f}** |")
    print(f"same table: {texts['old'][0] == texts['new'][0]}; same JSON: {texts['old'][1] == texts['new'][1]}")


if __name__ == "__main__":
    main()
