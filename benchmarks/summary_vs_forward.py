"""Benchmark: ``cnnshape summary`` against a summary made with a real CPU forward pass.

Each measurement runs in a fresh process; wall time and peak RSS come from a small wrapper process
that starts the command and reads ``resource.getrusage(RUSAGE_CHILDREN)`` once it exits, so every
figure covers exactly one command (interpreter start-up and ``import torch`` included).

    python3 benchmarks/summary_vs_forward.py [--repeat 3] [--sizes 224,2048]

Rows: ``python -c "import torch"`` (the floor any torch tool pays), ``cnnshape summary`` and the
real-forward summary (ResNet-50 built on the CPU, forward with hooks collecting each leaf module's
output shape and parameter count), on ResNet-50 at batch 1 and each square input size.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = "examples/resnet.py:ResNet50"

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

#: Runs argv[1:] and prints {"wall_s", "max_rss_kib", "rc"} for that one child.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall_s": wall, "max_rss_kib": rss, "rc": proc.returncode, "err": proc.stderr[-500:]}))
"""


def measure(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, *argv], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result['err']}")
    return result


def commands(size: int) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "cnnshape summary": [py, "-m", "cnnshape", "summary", SPEC, "--input", f"1,3,{size},{size}"],
        "real forward + hooks": [py, "-c", REAL_FORWARD.format(root=str(ROOT)), str(size)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the median is shown)")
    parser.add_argument("--sizes", default="224,2048", help="square input sizes, comma-separated")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]

    def run_row(argv: list[str]) -> tuple[float, float]:
        results = [measure(argv) for _ in range(opts.repeat)]
        return (statistics.median(r["wall_s"] for r in results),
                statistics.median(r["max_rss_kib"] for r in results) / 1024)

    import torch  # only for the version line

    print(f"# {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}, median of {opts.repeat}")
    print()
    print("| Command | Input | Wall time (s) | Peak RSS (MiB) | vs real forward |")
    print("|---|---|---:|---:|---:|")
    floor = run_row([sys.executable, "-c", "import torch"])
    print(f"| python -c \"import torch\" | - | {floor[0]:.2f} | {floor[1]:.0f} | |")
    for size in sizes:
        rows = {name: run_row(argv) for name, argv in commands(size).items()}
        real = rows["real forward + hooks"]
        for name, (wall, rss) in rows.items():
            ratio = "" if name.startswith("real") else f"{real[0] / wall:.1f}x faster, {real[1] / rss:.1f}x less memory"
            print(f"| {name} | 1x3x{size}x{size} | {wall:.2f} | {rss:.0f} | {ratio} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
