"""Benchmark: ``cnnshape.analyze`` over every example model, twice, in one process (issue 11, target 4).

    python3 benchmarks/throughput.py [--tracer auto] [--passes 2]

The models are those of tests/cases.py (the examples with their canonical inputs), the
untraceable examples (examples/untraceable.py ``CASES``) and, when the file exists,
examples/regnet.py:regnet_y_128gf. One pass analyses them all in turn, then a second pass does it
again (``--passes 3`` or more tells steady growth from warm-up). Per model: the wall time of
``analyze`` in each pass and the process's current RSS after it (``/proc/self/statm``, not the
peak), so the reader sees whether memory stays flat, that is whether anything is retained between
analyses. After each pass, ``gc.collect()`` and the RSS again. The first model of the first pass
also pays one-time costs (torch set-up, lazy imports). A model that fails is listed with its error
and the run goes on.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

from _measure import ROOT, header

sys.path.insert(0, str(ROOT))  # tests.cases and examples, from a checkout
REGNET = "examples/regnet.py:regnet_y_128gf"


def rss_mib() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def models() -> list[tuple[str, list[tuple[int, ...]]]]:
    from examples import untraceable
    from tests.cases import EXAMPLES

    listed = [(e.spec, e.inputs) for e in EXAMPLES]
    listed += [(f"examples/untraceable.py:{name}", [case[0]]) for name, case in untraceable.CASES.items()]
    if (ROOT / REGNET.split(":")[0]).exists() and all(spec != REGNET for spec, _ in listed):
        listed.append((REGNET, [(1, 3, 224, 224)]))
    return listed


def one_pass(listed: list[tuple[str, list[tuple[int, ...]]]], tracer: str) -> list[tuple[str, float]]:
    """(time or error, RSS after) per model."""
    import cnnshape

    rows = []
    for spec, inputs in listed:
        start = time.perf_counter()
        try:
            cnnshape.analyze(spec, inputs, tracer=tracer)  # the report is dropped at once
            cell = f"{time.perf_counter() - start:.3f}"
        except Exception as e:  # noqa: BLE001 - a failing model is a row of the table, not the end of the run
            cell = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        rows.append((cell, rss_mib()))
        print(f"{spec}: {cell}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracer", choices=("auto", "fx", "eager"), default="auto")
    parser.add_argument("--passes", type=int, default=2, help="passes over the list of models")
    opts = parser.parse_args()

    import cnnshape.api  # noqa: F401 - imports are not part of the first model's time

    listed = models()
    start_rss = rss_mib()
    passes, after_gc, totals = [], [], []
    for _ in range(opts.passes):
        start = time.perf_counter()
        passes.append(one_pass(listed, opts.tracer))
        totals.append(time.perf_counter() - start)
        gc.collect()
        after_gc.append(rss_mib())

    print(f"{header()} One process, tracer {opts.tracer}.")
    print()
    numbers = range(1, opts.passes + 1)
    print("| Model | Input | " + " | ".join(f"Pass {n} (s)" for n in numbers) + " | "
          + " | ".join(f"RSS after, pass {n} (MiB)" for n in numbers) + " |")
    print("|---|---|" + "---:|" * 2 * opts.passes)
    for (spec, inputs), *per_pass in zip(listed, *passes):
        shapes = ", ".join("x".join(map(str, shape)) for shape in inputs)
        print(f"| {spec} | {shapes} | " + " | ".join(t for t, _ in per_pass) + " | "
              + " | ".join(f"{m:.0f}" for _, m in per_pass) + " |")
    print()
    print(f"Total for {len(listed)} models: " + ", ".join(f"pass {n} {t:.2f} s" for n, t in zip(numbers, totals)) + ".")
    print(f"RSS after imports {start_rss:.0f} MiB; after gc.collect(): "
          + ", ".join(f"pass {n} {m:.0f} MiB" for n, m in zip(numbers, after_gc))
          + f" (last - first pass: {after_gc[-1] - after_gc[0]:+.0f} MiB).")


if __name__ == "__main__":
    main()
