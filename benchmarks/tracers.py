"""Time cnnshape's analysis (after imports) with each tracer at growing input sizes.

    python3 benchmarks/tracers.py [--spec examples/resnet.py:ResNet50] [--sizes 224,1024,4096] [--repeat 3]

Prints the median wall time of ``cnnshape.analyze`` per tracer and input size, and the process's
peak RSS at the end. The first call (imports, one-time torch set-up) is not timed. Figures belong
in docs/performance.md.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not
import cnnshape  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="examples/resnet.py:ResNet50")
    parser.add_argument("--sizes", default="224,1024,4096")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    cnnshape.analyze(opts.spec, [(1, 3, sizes[0], sizes[0])])  # warm-up: imports, torch set-up
    print(f"{opts.spec}, median of {opts.repeat} runs of cnnshape.analyze (load + trace + analyse)")
    print(f"{'tracer':8} {'input':>16} {'seconds':>8}")
    for tracer in ("fx", "eager"):
        for size in sizes:
            times = []
            for _ in range(opts.repeat):
                start = time.perf_counter()
                cnnshape.analyze(opts.spec, [(1, 3, size, size)], tracer=tracer)
                times.append(time.perf_counter() - start)
            print(f"{tracer:8} {f'1x3x{size}x{size}':>16} {statistics.median(times):8.3f}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
