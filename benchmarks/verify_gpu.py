"""GPU figures for docs/performance.md: ResNet-50 verified on CUDA at batch 1 and 64.

    python3 benchmarks/verify_gpu.py [--repeat 20] [--dtype float16]

For each batch size: the device name, whether every layer matched the static analysis, the
median forward latency, the peak memory of one pass (torch.cuda.max_memory_allocated above what
was allocated before it) and the static activation-memory estimate. Without a CUDA device it
says so and exits 0 without measuring anything; a layer mismatch exits 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = str(ROOT / "examples" / "resnet.py") + ":ResNet50"
BATCHES = (1, 64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per batch size (median)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default=None)
    opts = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(f"no GPU present: torch.cuda.is_available() is False (torch {torch.__version__}); nothing measured")
        return 0

    from cnnshape import analyze, verify
    from cnnshape.units import binary_bytes

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  CUDA {torch.version.cuda}")
    print(f"model: {SPEC}  dtype: {opts.dtype or 'float32'}  repeats: {opts.repeat}")
    all_match = True
    for batch in BATCHES:
        inputs = [(batch, 3, 224, 224)]
        report = analyze(SPEC, inputs)
        v = verify(SPEC, inputs, report, device="cuda", dtype=opts.dtype, repeat=opts.repeat)
        peak = "not measured" if v.peak_bytes is None else binary_bytes(v.peak_bytes)
        print(f"batch {batch:>3}: {v.matched}/{len(v.layers)} layers match; "
              f"latency {v.latency_ms:.3f} ms (median); peak {peak}; "
              f"static activations {binary_bytes(v.static_activation_bytes)}")
        all_match = all_match and v.ok
        torch.cuda.empty_cache()
    return 0 if all_match else 1


if __name__ == "__main__":
    raise SystemExit(main())
