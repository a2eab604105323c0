"""Accepted input sizes (`cnnshape sizes`), checked against exhaustive meta-tensor forward passes."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cnnshape.api import analyze, on_meta, sizes
from cnnshape.cli import app
from cnnshape.load import load_model


def meta_output_shapes(model: nn.Module, shape: tuple[int, ...], axis: int, s: int) -> list[tuple[int, ...]] | None:
    """torch itself: the model's output shapes at size ``s`` on ``axis``, or None if it rejects it."""
    dims = list(shape)
    dims[axis] = s
    try:
        with torch.no_grad():
            out = model(torch.empty(dims, device="meta"))
    except (RuntimeError, ValueError, IndexError):
        return None
    outs = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else [out]
    return [tuple(o.shape) for o in outs]


def formula_value(formula: str, symbol: str, s: int) -> int:
    """Evaluates the printed formula text, e.g. ``floor((H − 1)/32) + 1``, at ``symbol = s``."""
    code = formula.replace("·", "*").replace("−", "-").replace("/", "//").replace(symbol, str(s))
    return eval(code, {"floor": lambda v: v})  # '//' already floors; floor(...) is then the identity


def check_exhaustively(model: nn.Module, shape: tuple[int, ...], sizes_range: range,
                       axes: tuple[int, ...] | None = None) -> None:
    report = sizes(model, [shape], axes=axes)
    with on_meta(model):
        for a in report.axes:
            assert a.accepted is not None, a.reason
            for s in sizes_range:
                outs = meta_output_shapes(model, shape, a.axis, s)
                assert (outs is not None) == a.accepted.contains(s), (a.symbol, s)
                if outs is None:
                    continue
                for f in a.outputs:
                    index = 0 if not f.key else int(f.key.strip("[]")) if f.key.strip("[]").isdigit() else \
                        list(model(torch.empty(shape, device="meta")).keys()).index(f.key.strip("[]'"))
                    assert outs[index][f.dim] == formula_value(f.formula, a.symbol, s), (a.symbol, s, f)


def module(spec: str, **kwargs: object) -> nn.Module:
    return load_model(spec, kwargs or None).module


def test_lenet_accepts_32_to_35() -> None:
    # conv5 -> H−4, pool2 -> floor((H−4)/2), conv5 -> floor((H−4)/2) − 4, pool2 -> floor((H−12)/4);
    # the first Linear takes 16·5·5 = 400 features, so floor((H−12)/4) = 5, i.e. 32 ≤ H ≤ 35
    model = module("examples/lenet.py:LeNet5")
    report = sizes(model, [(1, 1, 32, 32)])
    for a in report.axes:
        assert a.accepted.to_dict() == {"kind": "arithmetic", "minimum": 32, "step": 1, "offset": 0, "maximum": 35}
        assert a.accepted.words() == "every size from 32 to 35"
    check_exhaustively(model, (1, 1, 32, 32), range(1, 513))


def test_alexnet_accepts_every_size_from_63() -> None:
    # conv11 s4 p2: floor((H−7)/4)+1; each of the three maxpool3 s2 needs ≥ 3 in, so backwards:
    # 3 before pool3 <- 7 before pool2 <- 15 before pool1 = floor((H−7)/4)+1 ≥ 15  <=>  H ≥ 63
    model = module("examples/alexnet.py:AlexNet")
    report = sizes(model, [(1, 3, 224, 224)])
    assert [a.minimum for a in report.axes] == [63, 63]
    assert report.axes[0].accepted.words() == "every size ≥ 63"
    check_exhaustively(model, (1, 3, 224, 224), range(1, 513))


@pytest.mark.parametrize("spec,step", [("examples/resnet.py:ResNet18", 5), ("examples/resnet.py:ResNet50", 11)])
def test_resnet_accepts_every_size(spec: str, step: int) -> None:
    # conv7 s2 p3 at H=1: floor((1+6−6−1)/2)+1 = 1; maxpool3 s2 p1: floor((1+2−2−1)/2)+1 = 1; every
    # stride-2 conv3 p1 and its 1x1 s2 shortcut both give floor((x−1)/2)+1, so the residual adds
    # always match and adaptive pooling makes the head size-free: every H ≥ 1
    model = module(spec)
    report = sizes(model, [(1, 3, 224, 224)])
    assert report.axes[0].accepted.to_dict() == {"kind": "arithmetic", "minimum": 1, "step": 1, "offset": 0,
                                                 "maximum": None}
    check_exhaustively(model, (1, 3, 64, 64), range(1, 513, step), axes=(2,))


def test_unet_accepts_multiples_of_16() -> None:
    # four 2x2 pools then four 2x up-convolutions: the skip concatenation at level k needs
    # 2·floor(H/2^k) = floor(H/2^(k−1)), all of them together mean 16 | H
    model = module("examples/unet.py:UNet", base=4)
    report = sizes(model, [(1, 1, 64, 64)])
    for a in report.axes:
        assert a.accepted.to_dict() == {"kind": "arithmetic", "minimum": 16, "step": 16, "offset": 0, "maximum": None}
        assert a.accepted.words() == "multiples of 16 from 16 up"
        assert [f.formula for f in a.outputs] == [a.symbol]
    check_exhaustively(model, (1, 1, 64, 64), range(1, 513))


class StrideCeil(nn.Module):
    """conv3 s2 p1 then maxpool3 s2 p1 with ceil_mode (the last window may start in the padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.pool2 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool2(self.pool(self.conv(x)))


def test_stride2_conv_with_ceil_mode_pooling() -> None:
    # conv: floor((H−1)/2)+1 ≥ 1 for every H; ceil-mode pools never produce 0, so every H ≥ 1.
    # H = 4: conv 2, pool ceil((2+2−2−1)/2)+1 = 2 but the 2nd window starts at 2 ≥ 2+1? no -> 2;
    # pool2 ceil((2−1−1)/2... ceil(0/2)+1 = 1 -> output 1
    model = StrideCeil()
    report = sizes(model, [(1, 1, 32, 32)])
    a = report.axes[0]
    assert a.accepted.words() == "every size ≥ 1"
    assert formula_value(a.outputs[0].formula, "H", 4) == 1
    check_exhaustively(model, (1, 1, 32, 32), range(1, 513))


EXAMPLES = [
    ("examples/inception.py:InceptionNet", (1, 3, 32, 32), 7),
    ("examples/conv3d.py:C3DSmall", (1, 3, 16, 32, 32), 17),
    ("examples/decoder.py:TransposedDecoder", (1, 100, 1, 1), 3),
    ("examples/dilated.py:DilatedStack", (1, 3, 64, 64), 3),
    ("examples/dilated.py:DilatedConv1dStack", (1, 1, 1000), 1),
    ("examples/densenet.py:DenseNet", (1, 3, 32, 32), 11),
    ("examples/senet.py:SENet", (1, 3, 32, 32), 5),
    ("examples/mobilenet.py:MobileNetV2", (1, 3, 64, 64), 17),
    ("examples/vgg.py:VGG16", (1, 3, 64, 64), 9),
    ("examples/textbook.py:Conv7Pool3", (1, 3, 64, 64), 1),
    ("examples/textbook.py:Factorised3x1", (1, 1, 8, 8), 1),
    ("examples/multi_io.py:DictOutputNet", (1, 3, 32, 32), 1),
]


@pytest.mark.parametrize("spec,shape,step", EXAMPLES, ids=[e[0].split(":")[1] for e in EXAMPLES])
def test_every_example_agrees_with_meta_forward(spec: str, shape: tuple[int, ...], step: int) -> None:
    check_exhaustively(module(spec), shape, range(1, 513, step))


def test_string_padding_single_value_per_axis() -> None:
    # padding="valid" reaches ATen as padding=(0,): one value for both axes. A 3x3 valid conv
    # outputs W − 2, so it needs W ≥ 3; every size from there on works.
    report = sizes(nn.Conv2d(1, 1, 3, padding="valid"), [(1, 1, 9, 9)])
    for axis in report.to_dict()["axes"]:
        assert axis["minimum"] == 3
        assert axis["accepted"] == {"kind": "arithmetic", "minimum": 3, "step": 1, "offset": 0, "maximum": None}


def test_summary_footer_names_the_minimum() -> None:
    report = analyze("examples/alexnet.py:AlexNet", [(1, 3, 224, 224)])
    assert "minimum input size: H ≥ 63, W ≥ 63 (see `cnnshape sizes`)" in report.notes


class Crop(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 2:10]


def test_uncharacterised_axis_says_so() -> None:
    report = sizes(Crop(), [(1, 3, 16, 16)])
    h = report.axes[0]
    assert h.accepted is None and h.minimum is None
    assert "cannot characterise" in h.reason and "slicing a size-dependent dim" in h.reason


runner = CliRunner()


def test_cli_text_and_json() -> None:
    result = runner.invoke(app, ["sizes", "examples/textbook.py:Conv7Pool3", "-i", "1,3,224,224", "--layers"])
    assert result.exit_code == 0, result.output
    # conv7 s2 p3 then maxpool3 s2 p1: floor((floor((H−1)/2)+1 − 1)/2) + 1 = floor((H−1)/4) + 1
    assert "output dim 2 = floor((H − 1)/4) + 1" in result.output
    assert "every size ≥ 1" in result.output
    assert "per layer:" in result.output
    result = runner.invoke(app, ["sizes", "examples/alexnet.py:AlexNet", "-i", "1,3,224,224", "--axis", "3",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema"] == "cnnshape.sizes/1"
    assert data["axes"] == [{"axis": 3, "symbol": "W", "minimum": 63, "accepted": {
        "kind": "arithmetic", "minimum": 63, "step": 1, "offset": 0, "maximum": None}}]
    assert data["outputs"] == []


def test_cli_errors_and_no_spatial_axes() -> None:
    result = runner.invoke(app, ["sizes", "examples/multi_io.py:TiedWeights", "-i", "1,64", "--axis", "5"])
    assert result.exit_code == 2
    assert "--axis 5: the first input 1x64 has dims 0..1" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["sizes", "examples/multi_io.py:TiedWeights", "-i", "1,64"])
    assert result.exit_code == 0
    assert "has no spatial axes" in result.output
