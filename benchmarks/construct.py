"""Benchmark: building models on meta (cnnshape/construct.py), this checkout against another.

    python benchmarks/construct.py [--against /path/to/other/checkout] [--repeat 5]

Each run is one fresh process that imports torch and cnnshape, then builds one model with
``cnnshape.load.load_model`` under the collector pause the pipeline builds it under, and prints
the CPU seconds of the construction alone and the process's peak RSS. With ``--against`` every
model is built by both checkouts (the other's ``cnnshape`` first on ``PYTHONPATH``; the model
files are this checkout's), run for run interleaved so that a noisy moment hits both alike; each
cell is the median of its runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._measure import PY, header  # noqa: E402

NAS = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"
#: label -> (spec, constructor arguments)
MODELS: dict[str, tuple[str, dict[str, object]]] = {
    "residual, 1000 blocks": ("benchmarks/depth_models.py:residual", {"blocks": 1000}),
    "ResNet-50": ("examples/resnet.py:ResNet50", {}),
    "a NAS-Bench-201 network": ("examples/nas201.py:NAS201Network", {"arch": NAS}),
    "RegNetY-400MF": ("examples/regnet.py:regnet_y_400mf", {}),
    "RegNetY-128GF (strategy 2)": ("examples/regnet.py:regnet_y_128gf", {}),
}

_CHILD = """
import gc, json, resource, sys, time
import torch
import cnnshape
from cnnshape.load import load_model
spec, kwargs = sys.argv[1], json.loads(sys.argv[2])
load_model("benchmarks/depth_models.py:residual", {"blocks": 2})  # the first build's one-off costs
gc.disable()  # as the pipeline builds (pipeline.no_gc)
start = time.process_time()
loaded = load_model(spec, kwargs)
cpu = time.process_time() - start
print(json.dumps({"cpu_s": cpu, "on": loaded.constructed_on, "note": loaded.note, "package": cnnshape.__file__,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build_once(checkout: Path, spec: str, kwargs: dict[str, object]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}  # and -P: not the working folder's cnnshape
    done = subprocess.run([PY, "-P", "-c", _CHILD, spec, json.dumps(kwargs)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{spec} with {checkout} failed:\n{done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(result["package"]).startswith(str(checkout)):
        raise SystemExit(f"{checkout}: imported cnnshape from {result['package']} instead")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, default=None, help="another checkout to build with too")
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    checkouts = {"this": ROOT} | ({"other": opts.against.resolve()} if opts.against else {})
    runs: dict[tuple[str, str], list[dict[str, object]]] = {}
    for round_ in range(opts.repeat):
        for label, (spec, kwargs) in MODELS.items():
            for name, checkout in checkouts.items():
                result = build_once(checkout, spec, kwargs)
                runs.setdefault((label, name), []).append(result)
                print(f"[{round_ + 1}/{opts.repeat}] {label} ({name}): {result['cpu_s']:.3f} s CPU, "
                      f"{result['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)

    def cell(label: str, name: str) -> str:
        rs = runs[(label, name)]
        cpu = statistics.median(float(r["cpu_s"]) for r in rs)  # type: ignore[arg-type]
        rss = max(float(r["rss_mib"]) for r in rs)  # type: ignore[arg-type]
        return f"{cpu:.3f} s ({rss:.0f} MiB, on {rs[0]['on']})"

    print(header(opts.repeat))
    names = list(checkouts)
    print("| model | " + " | ".join(f"{n} ({checkouts[n]})" for n in names) + (" | ratio |" if opts.against else " |"))
    print("|---|" + "---:|" * (len(names) + (1 if opts.against else 0)))
    for label in MODELS:
        row = [cell(label, n) for n in names]
        if opts.against:
            this = statistics.median(float(r["cpu_s"]) for r in runs[(label, "this")])  # type: ignore[arg-type]
            other = statistics.median(float(r["cpu_s"]) for r in runs[(label, "other")])  # type: ignore[arg-type]
            row.append(f"{this / other:.2f}")
        print(f"| {label} | " + " | ".join(row) + " |")
    print("CPU seconds of the construction alone (median of the runs); peak RSS of the whole process (the largest).")


if __name__ == "__main__":
    main()
