"""The memory estimate against a real CPU run on every example model and on random networks.

The measured reference (:mod:`cnnshape.memory_measure`) runs the model for real and takes the
peak of the storages alive; the estimate runs nothing. They agree within 5% (in practice to the
byte on most models). What can remain:

* the estimate runs the model's Python code on meta tensors: code that takes another path on a
  real device makes other tensors (none of these models does). Python's lifetimes (a local that
  holds the old ``x`` in ``x = relu(conv(x))``) are the same on meta, and the walk follows them.
* the optimizer step's temporaries are taken as a multiple of the largest parameter, measured
  once on a small tensor (Adam: 2x); the real step makes them one parameter at a time, so the
  estimate can exceed the measurement by a few parameter-sized buffers' worth of rounding.
* the measurement sees what reaches the dispatcher: allocator rounding and caching, and the
  workspaces kernels allocate internally (oneDNN, cuDNN), are in neither figure (docs/memory.md).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnnshape
from cnnshape.inputs import InputSpec
from cnnshape.load import load_model
from cnnshape.memory_measure import measure_inference, measure_training

TOLERANCE = 0.05

#: (spec, small input shapes, slow): batch 2 where train-mode batch norm needs more than one value
EXAMPLES = [
    ("examples/lenet.py:LeNet5", [(2, 1, 32, 32)], False),
    ("examples/alexnet.py:AlexNet", [(2, 3, 64, 64)], True),
    ("examples/vgg.py:VGG16", [(2, 3, 32, 32)], True),
    ("examples/resnet.py:ResNet18", [(2, 3, 32, 32)], True),
    ("examples/resnet.py:ResNet34", [(2, 3, 32, 32)], True),
    ("examples/resnet.py:ResNet50", [(2, 3, 32, 32)], True),
    ("examples/mobilenet.py:MobileNetV2", [(2, 3, 32, 32)], True),
    ("examples/unet.py:UNet", [(2, 1, 32, 32)], True),
    ("examples/inception.py:InceptionBlock", [(2, 192, 8, 8)], False),
    ("examples/inception.py:InceptionNet", [(2, 3, 32, 32)], True),
    ("examples/conv3d.py:C3DSmall", [(2, 3, 16, 32, 32)], True),
    ("examples/decoder.py:TransposedDecoder", [(2, 100, 1, 1)], False),
    ("examples/dilated.py:DilatedStack", [(2, 3, 32, 32)], False),
    ("examples/dilated.py:DilatedConv1dStack", [(2, 1, 4000)], True),
    ("examples/densenet.py:DenseNet", [(2, 3, 32, 32)], True),
    ("examples/senet.py:SEBlock", [(2, 64, 16, 16)], False),
    ("examples/senet.py:SENet", [(2, 3, 32, 32)], True),
    ("examples/textbook.py:Conv5x5x3", [(2, 3, 32, 32)], False),
    ("examples/textbook.py:NormalConv", [(2, 8, 32, 32)], False),
    ("examples/textbook.py:DepthwiseSeparable", [(2, 8, 32, 32)], False),
    ("examples/textbook.py:Factorised3x1", [(2, 1, 8, 8)], False),
    ("examples/textbook.py:ThreeConvs3x3", [(2, 8, 32, 32)], False),
    ("examples/textbook.py:Conv7Pool3", [(2, 3, 64, 64)], False),
    ("examples/multi_io.py:TwoInputNet", [(2, 3, 32, 32), (2, 10)], False),
    ("examples/multi_io.py:DictOutputNet", [(2, 3, 32, 32)], False),
    ("examples/multi_io.py:TiedWeights", [(2, 64)], False),
]


def agree(model: nn.Module, shapes: list[tuple[int, ...]], optimizer: str) -> None:
    """Estimate (from the module, on meta) and measurement (a copy with the same weights) agree."""
    specs = tuple(InputSpec(s) for s in shapes)
    estimate = cnnshape.memory(model, shapes, train=True, optimizer=optimizer)
    assert estimate.training is not None
    inference = measure_inference(model, specs)
    step = measure_training(model, specs, optimizer)
    i, t = estimate.inference.peak_bytes, estimate.training.peak_bytes
    assert abs(i - inference.peak_bytes) <= TOLERANCE * inference.peak_bytes, (i, inference.peak_bytes)
    assert abs(t - step.peak_bytes) <= TOLERANCE * step.peak_bytes, (t, step.peak_bytes)
    # what autograd saves is read from autograd in both runs: the same tensors, to the byte
    assert estimate.training.saved_bytes == step.saved_bytes


@pytest.mark.parametrize(("spec", "shapes"), [
    pytest.param(spec, shapes, marks=[pytest.mark.slow] if slow else [], id=spec.split(":")[1])
    for spec, shapes, slow in EXAMPLES])
def test_every_example_within_five_percent_of_a_real_run(spec: str, shapes: list[tuple[int, ...]]) -> None:
    torch.manual_seed(0)
    agree(load_model(spec, device="cpu").module, shapes, "adam")


class Residual(nn.Module):
    def __init__(self, channels: int, inplace: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)) + x)


class Concat(nn.Module):
    def __init__(self, channels: int, a: int, b: int) -> None:
        super().__init__()
        self.left = nn.Conv2d(channels, a, 1)
        self.right = nn.Sequential(nn.Conv2d(channels, b, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.left(x), self.right(x)], 1)


@st.composite
def networks(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    """A random stack of conv(+ReLU, in place or not), max/avg pooling, residual and concat blocks."""
    channels = draw(st.integers(1, 4))
    size = draw(st.sampled_from([8, 12, 16]))
    shape = (2, channels, size, size)
    blocks: list[nn.Module] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "pool", "residual", "concat"]))
        if kind == "conv":
            out = draw(st.integers(1, 6))
            blocks += [nn.Conv2d(channels, out, draw(st.sampled_from([1, 3])), padding="same"),
                       nn.ReLU(inplace=draw(st.booleans()))]
            channels = out
        elif kind == "pool" and size >= 4:
            blocks.append(draw(st.sampled_from([nn.MaxPool2d(2), nn.AvgPool2d(2)])))
            size //= 2
        elif kind == "residual":
            blocks.append(Residual(channels, draw(st.booleans())))
        else:
            a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
            blocks.append(Concat(channels, a, b))
            channels = a + b
    return nn.Sequential(*blocks), shape


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=networks(), optimizer=st.sampled_from(["sgd", "momentum", "adam"]))
def test_random_networks_within_five_percent_of_a_real_run(net: tuple[nn.Module, tuple[int, ...]],
                                                           optimizer: str) -> None:
    model, shape = net
    agree(model, [shape], optimizer)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_model_without_parameters_trains_with_nothing_to_step(optimizer: str) -> None:
    # max pooling has no parameter: no gradient, no optimizer state (torch's optimizers refuse an
    # empty parameter list, so there is no step at all), and the measured run agrees
    model = nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2))
    estimate = cnnshape.memory(model, [(2, 3, 8, 8)], train=True, optimizer=optimizer)
    assert estimate.training is not None
    assert estimate.training.gradient_bytes == 0 and estimate.training.optimizer_state_bytes == 0
    agree(model, [(2, 3, 8, 8)], optimizer)
