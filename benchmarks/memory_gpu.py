"""Benchmark for a CUDA machine: the memory estimate of a ResNet-50 training step beside
``torch.cuda.max_memory_allocated`` and the storage-tracking measurement (docs/memory.md).

    python3 benchmarks/memory_gpu.py [--batch 32 --batch 64] [--optimizer adam] [--amp bf16]

Prints one markdown row per batch size. Needs a CUDA device; none was available when the
estimate was written, so docs/memory.md has no GPU figures yet.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cnnshape.memory_run import run_memory, verify_memory  # noqa: E402
from cnnshape.request import Request  # noqa: E402

SPEC = "examples/resnet.py:ResNet50"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, action="append", default=[])
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--amp", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark compares with torch.cuda.max_memory_allocated")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, optimizer {args.optimizer}, amp {args.amp}; MiB")
    print("| batch | estimate | tracked storages | max_memory_allocated | estimate vs allocated |")
    print("|--:|--:|--:|--:|--:|")
    for batch in args.batch or [32, 64]:
        request = Request.of(SPEC, [(batch, 3, 224, 224)], train=True)
        report = run_memory(request, train=True, optimizer=args.optimizer, amp=args.amp)
        checks = verify_memory(request, report, device="cuda", optimizer=args.optimizer).checks
        step = next(c for c in checks if c.what == "training step peak")
        cuda = step.cuda_bytes or 0
        print(f"| {batch} | {step.estimate_bytes / 2**20:.1f} | {step.measured_bytes / 2**20:.1f} "
              f"| {cuda / 2**20:.1f} | {100 * (step.estimate_bytes - cuda) / cuda:+.2f}% |", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
