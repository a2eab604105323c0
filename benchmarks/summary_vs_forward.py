"""Benchmark: ``cnnshape summary`` against a summary made with a real CPU forward pass (issue 11, targets 1, 2).

    python3 benchmarks/summary_vs_forward.py [--repeat 3] [--sizes 224,2048] [--timeout 600]

Rows, all measured in the same run, each a fresh process (see _measure.py): ``python -c "import
torch"`` (the floor any torch tool pays); per square input size, ``cnnshape summary`` (table),
``cnnshape summary --format json`` and the real-forward summary (ResNet-50 built on the CPU,
forward with hooks collecting each leaf module's output shape and parameter count), ResNet-50 at
batch 1; and, when examples/regnet.py exists, ``cnnshape summary`` of the 645 M-parameter
``regnet_y_128gf`` at 224.

Targets (issue 11): ResNet-50 at 224, table and JSON, <= 1.35x the floor and faster than the real
forward; regnet_y_128gf with peak RSS <= 700 MiB.
"""
from __future__ import annotations

import argparse

from _measure import FLOOR, PY, ROOT, Result, header, measure_rows

SPEC = "examples/resnet.py:ResNet50"
REGNET = "examples/regnet.py:regnet_y_128gf"
FLOOR_RATIO, REGNET_RSS_MIB = 1.35, 700  # issue 11's targets

#: The real-forward summary a user would write without cnnshape (run as ``python -c``).
REAL_FORWARD = """
import sys, torch
sys.path.insert(0, {root!r})
from examples.resnet import ResNet50
size = int(sys.argv[1])
model = ResNet50().eval()
rows = []
def hook(module, inputs, output, name):
    rows.append((name, type(module).__name__, tuple(output.shape),
                 sum(p.numel() for p in module.parameters(recurse=False))))
for name, module in model.named_modules():
    if name and not list(module.children()):
        module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name))
with torch.no_grad():
    out = model(torch.randn(1, 3, size, size))
print(len(rows), tuple(out.shape), sum(r[3] for r in rows))
"""

SUMMARY, JSON, REAL = "cnnshape summary", "cnnshape summary --format json", "real forward + hooks"


def commands(size: int) -> dict[str, list[str]]:
    summary = [PY, "-m", "cnnshape", "summary", SPEC, "--input", f"1,3,{size},{size}"]
    return {SUMMARY: summary, JSON: [*summary, "--format", "json"],
            REAL: [PY, "-c", REAL_FORWARD.format(root=str(ROOT)), str(size)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the median is shown)")
    parser.add_argument("--sizes", default="224,2048", help="square input sizes, comma-separated")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before one command is killed")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    has_regnet = (ROOT / REGNET.split(":")[0]).exists()

    rows: dict[tuple[str, int], list[str]] = {("floor", 0): FLOOR}
    rows |= {(name, size): argv for size in sizes for name, argv in commands(size).items()}
    if has_regnet:
        rows[f"cnnshape summary {REGNET}", 224] = [PY, "-m", "cnnshape", "summary", REGNET, "--input", "1,3,224,224"]
    results = measure_rows(rows, opts.repeat, opts.timeout)
    floor = results["floor", 0]
    assert floor.wall_s is not None, f"python -c 'import torch' failed: {floor.failure}"
    floor_s = floor.wall_s

    def cells(r: Result, real: Result | None) -> str:
        if r.failure or r.wall_s is None or r.rss_mib is None:
            return f"{r.failure} | | | |"
        vs = ""
        if real is not None and real.wall_s is not None and real.rss_mib is not None:
            vs = f"{real.wall_s / r.wall_s:.2f}x faster, {real.rss_mib / r.rss_mib:.2f}x less memory"
        return f"{r.wall_s:.2f} | {r.rss_mib:.0f} | {r.wall_s / floor_s:.2f} | {vs} |"

    print(header(opts.repeat))
    print()
    print("| Command | Input | Wall time (s) | Peak RSS (MiB) | x import torch | vs real forward |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, size), r in results.items():
        if name == "floor":
            print(f'| python -c "import torch" | - | {cells(r, None)}')
        else:
            real = results.get((REAL, size)) if name in (SUMMARY, JSON) else None
            print(f"| {name} | 1x3x{size}x{size} | {cells(r, real)}")
    print()

    if 224 in sizes:
        real = results[REAL, 224]
        for name in (SUMMARY, JSON):
            r = results[name, 224]
            if r.wall_s is None or real.wall_s is None:
                print(f"Target: ResNet-50 at 224, {name}: not measured ({r.failure or real.failure}).")
                continue
            ratio = r.wall_s / floor_s
            print(f"Target: ResNet-50 at 224, {name} <= {FLOOR_RATIO}x import torch: {ratio:.2f}x, "
                  f"{'met' if ratio <= FLOOR_RATIO else 'not met'}; faster than the real forward "
                  f"({r.wall_s:.2f} s vs {real.wall_s:.2f} s): {'yes' if r.wall_s < real.wall_s else 'no'}.")
    if not has_regnet:
        print(f"Target: {REGNET} peak RSS <= {REGNET_RSS_MIB} MiB: skipped, {REGNET.split(':')[0]} does not exist.")
    elif (r := results[f"cnnshape summary {REGNET}", 224]).rss_mib is None:
        print(f"Target: {REGNET} peak RSS <= {REGNET_RSS_MIB} MiB: not measured ({r.failure}).")
    else:
        print(f"Target: {REGNET} peak RSS <= {REGNET_RSS_MIB} MiB: {r.rss_mib:.0f} MiB, "
              f"{'met' if r.rss_mib <= REGNET_RSS_MIB else 'not met'}.")


if __name__ == "__main__":
    main()
