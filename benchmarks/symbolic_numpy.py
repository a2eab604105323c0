"""Benchmark: the symbolic sizes engine with and without the numpy-absence workaround.

    python3 benchmarks/symbolic_numpy.py [SPEC] [--input 1,3,224,224] [--axis 2]

Without numpy installed, ``torch.sym_max`` tries ``import numpy`` on every call, and each failed
import searches ``sys.path``; cnnshape's symbolic engine marks numpy absent while it runs the model
(``cnnshape.analyse.sizes.symbolic.numpy_absence_remembered``). This runs ``cnnshape.sizes`` on
one axis in two fresh processes, side by side: as shipped, and with the workaround replaced by a
no-op. Prints the CPU seconds and the failed ``numpy`` imports of each. Where numpy is installed,
both rows are the same (nothing to work around).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import contextlib, importlib._bootstrap as boot, json, sys, time
sys.path.insert(0, {root!r})
import torch
from cnnshape.api import sizes
import cnnshape.analyse.sizes.symbolic as symbolic
if {disable}:
    symbolic.numpy_absence_remembered = contextlib.nullcontext
lookups = 0
find = boot._find_spec
def counting(name, path, target=None):
    global lookups
    lookups += name == "numpy"
    return find(name, path, target)
boot._find_spec = counting
start = time.process_time()
axis = sizes({spec!r}, [{shape}], axes=[{axis}]).axes[0]
print(json.dumps({{"cpu": time.process_time() - start, "lookups": lookups, "engine": axis.engine,
                  "accepted": axis.accepted.words() if axis.accepted else None}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="tests/size_models.py:ShuffleNetV2")
    parser.add_argument("--input", default="1,3,224,224")
    parser.add_argument("--axis", type=int, default=2)
    opts = parser.parse_args()
    shape = tuple(int(d) for d in opts.input.split(","))
    print(f"{opts.spec} --input {opts.input}, axis {opts.axis}")
    print("| run | CPU s | failed numpy imports | engine | accepted |")
    print("|---|---:|---:|---|---|")
    for label, disable in (("without the workaround", True), ("as shipped", False)):
        code = CHILD.format(root=str(ROOT), disable=disable, spec=opts.spec, shape=shape, axis=opts.axis)
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {label} | {row['cpu']:.1f} | {row['lookups']:,} | {row['engine']} | {row['accepted']} |")


if __name__ == "__main__":
    main()
