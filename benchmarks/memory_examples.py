"""Benchmark: the static memory estimate (``cnnshape.memory``) beside a real CPU run of every
example model, and torchinfo's "Estimated Total Size" on the same models (docs/memory.md).

    python3 benchmarks/memory_examples.py [--optimizer adam] [--only ResNet18] [--large]

Per model (small inputs, batch 2 where batch-norm in train mode needs more than one value): the
inference peak and the training-step peak (forward, backward of the summed outputs,
``optimizer.step()`` at the steady state) estimated on meta tensors and measured on the CPU with
random weights (:mod:`cnnshape.memory_measure`), the saved-for-backward bytes of both, and
torchinfo's estimate when torchinfo is installed (``pip install torchinfo``; not a dependency).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import cnnshape  # noqa: E402
from cnnshape.inputs import InputSpec  # noqa: E402
from cnnshape.load import load_model  # noqa: E402
from cnnshape.memory_measure import measure_inference, measure_training  # noqa: E402

#: the examples at small inputs (the canonical ones of examples/README.md are far larger)
SMALL = [
    ("examples/lenet.py:LeNet5", [(2, 1, 32, 32)]),
    ("examples/alexnet.py:AlexNet", [(2, 3, 64, 64)]),
    ("examples/vgg.py:VGG16", [(2, 3, 32, 32)]),
    ("examples/resnet.py:ResNet18", [(2, 3, 32, 32)]),
    ("examples/resnet.py:ResNet34", [(2, 3, 32, 32)]),
    ("examples/resnet.py:ResNet50", [(2, 3, 32, 32)]),
    ("examples/mobilenet.py:MobileNetV2", [(2, 3, 32, 32)]),
    ("examples/unet.py:UNet", [(2, 1, 32, 32)]),
    ("examples/inception.py:InceptionBlock", [(2, 192, 8, 8)]),
    ("examples/inception.py:InceptionNet", [(2, 3, 32, 32)]),
    ("examples/conv3d.py:C3DSmall", [(2, 3, 16, 32, 32)]),
    ("examples/decoder.py:TransposedDecoder", [(2, 100, 1, 1)]),
    ("examples/dilated.py:DilatedStack", [(2, 3, 32, 32)]),
    ("examples/dilated.py:DilatedConv1dStack", [(2, 1, 4000)]),
    ("examples/densenet.py:DenseNet", [(2, 3, 32, 32)]),
    ("examples/senet.py:SEBlock", [(2, 64, 16, 16)]),
    ("examples/senet.py:SENet", [(2, 3, 32, 32)]),
    ("examples/textbook.py:Conv5x5x3", [(2, 3, 32, 32)]),
    ("examples/textbook.py:NormalConv", [(2, 8, 32, 32)]),
    ("examples/textbook.py:DepthwiseSeparable", [(2, 8, 32, 32)]),
    ("examples/textbook.py:Factorised3x1", [(2, 1, 8, 8)]),
    ("examples/textbook.py:ThreeConvs3x3", [(2, 8, 32, 32)]),
    ("examples/textbook.py:Conv7Pool3", [(2, 3, 64, 64)]),
    ("examples/multi_io.py:TwoInputNet", [(2, 3, 32, 32), (2, 10)]),
    ("examples/multi_io.py:DictOutputNet", [(2, 3, 32, 32)]),
    ("examples/multi_io.py:TiedWeights", [(2, 64)]),
]
#: ``--large``: realistic inputs, where activations outweigh the weights
LARGE = [
    ("examples/resnet.py:ResNet50", [(8, 3, 224, 224)]),
    ("examples/mobilenet.py:MobileNetV2", [(8, 3, 224, 224)]),
    ("examples/unet.py:UNet", [(2, 1, 256, 256)]),
]


def torchinfo_total(spec: str, shapes: list[tuple[int, ...]]) -> int | None:
    """torchinfo's "Estimated Total Size" in bytes (its own MB are 1e6 bytes), or None."""
    try:
        import torchinfo
    except ImportError:
        return None
    model = load_model(spec, device="cpu").module
    stats = torchinfo.summary(model, input_size=shapes, verbose=0, device="cpu")
    return int(stats.total_input + stats.total_output_bytes + stats.total_param_bytes)


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f}"


def pct(estimate: int, measured: int) -> str:
    return f"{100 * (estimate - measured) / measured:+.2f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--large", action="store_true", help="the LARGE inputs instead of the small ones")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; optimizer {args.optimizer}; MiB")
    print("| model | input | inference est. | measured | diff | train step est. | measured | diff "
          "| saved est. | measured | torchinfo total | seconds |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for spec, shapes in LARGE if args.large else SMALL:
        if args.only and not any(o in spec for o in args.only):
            continue
        start = time.perf_counter()
        specs = tuple(InputSpec(s) for s in shapes)
        est = cnnshape.memory(spec, shapes, train=True, optimizer=args.optimizer)
        assert est.training is not None
        inf = measure_inference(load_model(spec, device="cpu").module, specs)
        step = measure_training(load_model(spec, device="cpu").module, specs, args.optimizer)
        info = torchinfo_total(spec, shapes)
        shown = " ".join("x".join(map(str, s)) for s in shapes)
        print(f"| {spec.split(':')[1]} | {shown} | {mib(est.inference.peak_bytes)} | {mib(inf.peak_bytes)} "
              f"| {pct(est.inference.peak_bytes, inf.peak_bytes)} | {mib(est.training.peak_bytes)} "
              f"| {mib(step.peak_bytes)} | {pct(est.training.peak_bytes, step.peak_bytes)} "
              f"| {mib(est.training.saved_bytes)} | {mib(step.saved_bytes)} | {mib(info)} "
              f"| {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
