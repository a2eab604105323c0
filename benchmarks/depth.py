"""Benchmark: the cost of ``cnnshape summary`` against network depth (issue 11, target 3).

    python3 benchmarks/depth.py [--blocks 500,5000] [--tracers fx,eager] [--models chain,residual]
                                [--repeat 3] [--timeout 600] [--torch-only]

Rows: ``python -c "import torch"`` (the floor) and, for each generated network of
benchmarks/depth_models.py (chain, residual), tracer and block count, one fresh
``cnnshape summary benchmarks/depth_models.py:MODEL --arg blocks=N --input 1,3,32,32 --tracer T``
process, all measured in the same run (see _measure.py).

``--torch-only`` adds, per model and block count, what torch alone costs for the same network, in
the same run: ``torch-build`` constructs it (plain torch, on the CPU, as the user's code would) and
``torch-build+fx`` also runs ``torch.fx.Tracer().trace`` on it. No cnnshape code runs in those
rows: they show how much of the depth target torch's own module construction and symbolic tracing
take before any analysis starts.

Past floor = wall time - floor; µs/block = past floor / blocks. Linearity = (past floor at the
largest block count / at the smallest) / (largest / smallest): 1.0 is linear in depth, above 1.0
grows faster. cnnshape's fixed costs past the floor (its own imports, construction) pull it below
1.0 when the smallest count is small; the marginal µs/block (the slope between the two counts)
does not include them.
"""
from __future__ import annotations

import argparse

from _measure import FLOOR, PY, header, measure_rows

MODELS = ("chain", "residual")
TARGET_S = 10.0  # issue 11: 5000 residual blocks, fx tracer, <= 10 s past the floor


def summary(model: str, blocks: int, tracer: str) -> list[str]:
    return [PY, "-m", "cnnshape", "summary", f"benchmarks/depth_models.py:{model}", "--arg", f"blocks={blocks}",
            "--input", "1,3,32,32", "--tracer", tracer]


#: ``--torch-only`` rows: the tracer column's name -> the code run after ``import depth_models as d``
TORCH_ONLY = {
    "torch-build": "d.{model}({blocks})",
    "torch-build+fx": "import torch.fx; torch.fx.Tracer().trace(d.{model}({blocks}))",
}


def torch_only(model: str, blocks: int, step: str) -> list[str]:
    code = "import sys; sys.path.insert(0, 'benchmarks'); import depth_models as d; " + TORCH_ONLY[step]
    return [PY, "-c", code.format(model=model, blocks=blocks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="500,5000", help="block counts, comma-separated")
    parser.add_argument("--tracers", default="fx,eager", help="tracers, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the median is shown)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before one command is killed")
    parser.add_argument("--models", default=",".join(MODELS), help="generated models, comma-separated")
    parser.add_argument("--torch-only", action="store_true",
                        help="add rows for torch's own construction and fx tracing of each network")
    opts = parser.parse_args()
    counts = sorted(int(b) for b in opts.blocks.split(","))
    tracers = opts.tracers.split(",")
    models = [m for m in MODELS if m in opts.models.split(",")]

    rows = {("floor", "", 0): FLOOR} | {(m, t, b): summary(m, b, t) for m in models for t in tracers for b in counts}
    if opts.torch_only:
        rows |= {(m, step, b): torch_only(m, b, step) for m in models for step in TORCH_ONLY for b in counts}
        tracers += list(TORCH_ONLY)
    results = measure_rows(rows, opts.repeat, opts.timeout)
    floor = results.pop(("floor", "", 0))
    assert floor.wall_s is not None, f"python -c 'import torch' failed: {floor.failure}"
    past = {key: None if r.wall_s is None else r.wall_s - floor.wall_s for key, r in results.items()}
    floor_cpu = floor.cpu_s or 0.0

    print(header(opts.repeat))
    print()
    # CPU: user + system seconds, past the floor's; on a loaded machine it moves less than the wall time
    print("| Model | Tracer | Blocks | Wall time (s) | Past floor (s) | µs / block | CPU past floor (s) | "
          "Peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print(f'| python -c "import torch" | | | {floor.wall_s:.2f} | | | ({floor_cpu:.2f} CPU) | {floor.rss_mib:.0f} |')
    for (model, tracer, blocks), r in results.items():
        p = past[model, tracer, blocks]
        if r.failure or p is None:
            print(f"| {model} | {tracer} | {blocks} | {r.failure} | | | | |")
        else:
            print(f"| {model} | {tracer} | {blocks} | {r.wall_s:.2f} | {p:.2f} | {p / blocks * 1e6:,.0f} | "
                  f"{(r.cpu_s or 0.0) - floor_cpu:.2f} | {r.rss_mib:.0f} |")

    lo, hi = counts[0], counts[-1]
    if hi > lo:
        print()
        print(f"| Model | Tracer | Linearity {lo} -> {hi} blocks | Marginal µs / block |")
        print("|---|---|---:|---:|")
        for model in models:
            for tracer in tracers:
                a, b = past[model, tracer, lo], past[model, tracer, hi]
                if a is None or b is None or a <= 0:
                    print(f"| {model} | {tracer} | n/a | n/a |")
                else:
                    print(f"| {model} | {tracer} | {b / a / (hi / lo):.2f} | {(b - a) / (hi - lo) * 1e6:,.0f} |")

    print()
    key = ("residual", "fx", 5000)
    if key not in past:
        print(f"Target (issue 11): 5000 residual blocks with fx <= {TARGET_S:g} s past the floor: not measured "
              "in this run (needs --blocks with 5000 and --tracers with fx).")
    elif (p := past[key]) is None:
        print(f"Target (issue 11): 5000 residual blocks with fx <= {TARGET_S:g} s past the floor: "
              f"{results[key].failure}; not met.")
    else:
        print(f"Target (issue 11): 5000 residual blocks with fx <= {TARGET_S:g} s past the floor: "
              f"{p:.1f} s, {'met' if p <= TARGET_S else 'not met'}.")


if __name__ == "__main__":
    main()
