"""Sweep: `cnnshape sizes` against torch itself, size by size, on every example (slow).

    python3 benchmarks/sizes_oracle.py [--to 512] [--step 1] [--only MobileNetV2,DenseNet]

For each example model of tests/test_sizes.py, the accepted sizes and output-size formulas that
``cnnshape.sizes`` derives are checked at every size 1..--to against a meta-tensor forward pass
of the model (tests/test_sizes.py: ``check_exhaustively``, the oracle the tests use). The tests run
the same check on a sample of sizes (every ``step``-th, fewer for the slowest models); this script
is the exhaustive sweep, too slow for the suite: a meta forward of MobileNetV2 costs about a second
on a 2-core machine, because torch's meta kernels for some of its ops are Python decompositions.
Prints one line per model and exits 1 if any disagrees.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=int, default=512)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--only", default="")
    opts = parser.parse_args()
    from tests.test_sizes import EXAMPLES, check_exhaustively, module

    only = {n for n in opts.only.split(",") if n}
    failed = 0
    for spec, shape, _ in EXAMPLES:
        name = spec.split(":")[1]
        if only and name not in only:
            continue
        start = time.perf_counter()
        try:
            check_exhaustively(module(spec), shape, range(1, opts.to + 1, opts.step))
            verdict = "agrees"
        except AssertionError as e:
            failed += 1
            verdict = f"DISAGREES: {e}"
        print(f"{name:22s} sizes 1..{opts.to} step {opts.step}: {verdict} ({time.perf_counter() - start:.1f} s)",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
