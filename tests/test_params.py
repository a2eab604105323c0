"""Parameter counts against published figures and hand arithmetic."""
from __future__ import annotations

import pytest

import cnnshape

PUBLISHED = [
    # LeCun et al. 1998, modern variant (examples/lenet.py docstring)
    ("examples/lenet.py:LeNet5", (1, 1, 32, 32), 61_706),
    # torchvision model cards
    ("examples/vgg.py:VGG16", (1, 3, 224, 224), 138_357_544),
    ("examples/resnet.py:ResNet18", (1, 3, 224, 224), 11_689_512),
    ("examples/resnet.py:ResNet50", (1, 3, 224, 224), 25_557_032),
    ("examples/mobilenet.py:MobileNetV2", (1, 3, 224, 224), 3_504_872),
    ("examples/alexnet.py:AlexNet", (1, 3, 224, 224), 61_100_840),
]


@pytest.mark.parametrize(("spec", "shape", "expected"), PUBLISHED, ids=[p[0].split(":")[1] for p in PUBLISHED])
def test_published_counts(spec: str, shape: tuple[int, ...], expected: int) -> None:
    totals = cnnshape.analyze(spec, [shape]).totals
    assert totals.params == expected
    assert totals.trainable_params == expected and totals.non_trainable_params == 0
    # float32: 4 bytes per parameter
    assert totals.param_bytes == 4 * expected


def _by_name(report: cnnshape.Report) -> dict[str, cnnshape.LayerRecord]:
    return {layer.name: layer for layer in report.layers}


def test_conv_5x5x3_ten_filters() -> None:
    # 5·5·3·10 weights + 10 biases = 760
    report = cnnshape.analyze("examples/textbook.py:Conv5x5x3", [(1, 3, 32, 32)])
    assert report.totals.params == 5 * 5 * 3 * 10 + 10 == 760
    assert _by_name(report)["conv"].params == 760


def test_depthwise_separable_versus_normal() -> None:
    normal = cnnshape.analyze("examples/textbook.py:NormalConv", [(1, 8, 32, 32)])
    separable = cnnshape.analyze("examples/textbook.py:DepthwiseSeparable", [(1, 8, 32, 32)])
    assert normal.totals.params == 3 * 3 * 8 * 8 == 576
    layers = _by_name(separable)
    assert layers["depthwise"].params == 3 * 3 * 8 == 72  # one 3x3 filter per channel (groups=8)
    assert layers["pointwise"].params == 8 * 8 == 64  # 1x1, 8 → 8
    assert separable.totals.params == 136


def test_factorised_3x1_then_1x3() -> None:
    report = cnnshape.analyze("examples/textbook.py:Factorised3x1", [(1, 1, 8, 8)])
    layers = _by_name(report)
    assert (layers["conv1"].params, layers["conv2"].params) == (3, 3)
    assert report.totals.params == 6


def test_bias_and_buffers_counted() -> None:
    # LeNet5's C1 (features.0): 6 filters of 5x5x1 + 6 biases = 156; C5 (classifier.0):
    # 400·120 + 120 = 48,120. ResNet-18 BatchNorm buffers:
    # running mean + running var per channel (+ 1 num_batches_tracked per BN layer)
    lenet = _by_name(cnnshape.analyze("examples/lenet.py:LeNet5", [(1, 1, 32, 32)]))
    assert lenet["features.0"].params == 5 * 5 * 1 * 6 + 6 == 156
    assert lenet["classifier.0"].params == 16 * 5 * 5 * 120 + 120 == 48_120
    resnet = cnnshape.analyze("examples/resnet.py:ResNet18", [(1, 3, 224, 224)])
    bn_channels = sum(layer.attr("num_features") for layer in resnet.layers if layer.type == "BatchNorm2d")
    bn_layers = sum(1 for layer in resnet.layers if layer.type == "BatchNorm2d")
    # bn1 64; layer1 4x64; layer2 4x128 + down 128; layer3 4x256 + 256; layer4 4x512 + 512
    assert bn_channels == 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512 == 4800
    assert resnet.totals.buffers == 2 * bn_channels + bn_layers


def test_tied_weights_counted_once() -> None:
    report = cnnshape.analyze("examples/multi_io.py:TiedWeights", [(1, 64)])
    layers = _by_name(report)
    # enc 64·64 + 64 = 4,160; mid 4,160; dec bias 64 (its weight is enc's) = 8,384
    assert report.totals.params == 8_384
    # each layer still shows its own count; dec's weight is marked as enc's
    assert layers["dec"].params == 64 * 64 + 64
    assert layers["dec"].shared_with == "enc"
    assert layers["dec"].new_params == 64
    # mid is called twice: the second call is a repeat of the first
    assert layers["mid"].shared_with is None and layers["mid"].new_params == 4_160
    assert layers["mid#2"].params == 4_160
    assert layers["mid#2"].shared_with == "mid" and layers["mid#2"].new_params == 0


@pytest.mark.parametrize("spec, shape", [
    ("examples/multi_io.py:TiedWeights", (1, 64)),
    ("examples/resnet.py:ResNet18", (1, 3, 64, 64)),
    ("examples/densenet.py:DenseNet", (1, 3, 32, 32)),
])
def test_columns_sum_to_totals(spec: str, shape: tuple[int, ...]) -> None:
    report = cnnshape.analyze(spec, [shape])
    t = report.totals
    assert sum(layer.new_params for layer in report.layers) + t.unused_params == t.params
    assert sum(layer.macs for layer in report.layers) == t.macs
    assert sum(layer.flops for layer in report.layers) == t.flops
    assert sum(layer.activation_bytes for layer in report.layers) == t.activation_bytes


def test_unused_parameters_reported() -> None:
    from torch import nn

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 4)  # 4·4 + 4 = 20
            self.spare = nn.Linear(4, 2)  # 4·2 + 2 = 10, never called

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.used(x)

    report = cnnshape.analyze(Unused(), [(1, 4)])
    assert report.totals.params == 30 and report.totals.unused_params == 10
    assert sum(layer.new_params for layer in report.layers) == 20
    assert any("10 parameters" in note for note in report.notes)


def test_frozen_parameters_are_non_trainable() -> None:
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1))
    model[0].requires_grad_(False)  # 3·4·9 + 4 = 112 frozen; 4·4 + 4 = 20 trainable
    totals = cnnshape.analyze(model, [(1, 3, 8, 8)]).totals
    assert (totals.params, totals.trainable_params, totals.non_trainable_params) == (132, 20, 112)
