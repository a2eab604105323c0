"""Accepted input sizes (`cnnshape sizes`), checked against exhaustive meta-tensor forward passes."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from typer.testing import CliRunner

from cnnshape.analyse.sizes import Accepted
from cnnshape.api import analyze, on_meta, sizes
from cnnshape.cli import app
from cnnshape.load import load_model

#: ops that select part of a tensor or broadcast one to a given shape: selecting nothing is
#: ordinary Python (``mask[0:-7] = count`` on a 7-wide map, as torchvision's Swin does)
SELECTIONS = {"slice", "select", "narrow", "split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes",
              "tensor_split", "unbind", "chunk", "index", "index_select", "masked_select", "take", "as_strided",
              "diagonal", "expand", "expand_as", "broadcast_to"}


class EmptyTensorWatch(TorchDispatchMode):
    """Records the first ATen call that rejects the size through an empty tensor (a 0-sized dim):
    one that computes an empty result from non-empty tensors (a window larger than its input), other
    than a selection (slicing nothing is no error), or a non-empty result from an empty tensor (an
    adaptive pool or a mean over nothing), other than a concatenation, an in-place write (``fill_``
    into an empty slice) or a ``new_*`` factory. Only an op's main (first) result counts, and only
    for ops that take tensors: batch norm in eval mode returns empty ``save_mean``/``save_invstd``
    side results, built with ``aten.empty`` (no tensor input) and returned second and third, which
    are bookkeeping, not data."""

    def __init__(self) -> None:
        super().__init__()
        self.empty: str | None = None

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        main = next((t for t in tree_leaves(out) if isinstance(t, torch.Tensor)), None)
        if self.empty is None and inputs and main is not None:
            name = func.overloadpacket.__name__
            empty_in = any(0 in t.shape for t in inputs)
            if 0 in main.shape and not empty_in and name not in SELECTIONS:
                self.empty = f"{func} -> {tuple(main.shape)}"
            elif 0 not in main.shape and empty_in and name not in {"cat", "stack"} and not name.endswith("_") \
                    and not name.startswith("new_"):
                self.empty = f"{func} reads an empty tensor -> {tuple(main.shape)}"
        return out


def meta_output_shapes(model: nn.Module, shape: tuple[int, ...], axis: int, s: int) -> list[tuple[int, ...]] | None:
    """torch itself: the model's output shapes at size ``s`` on ``axis``, or None if it rejects it.

    A forward that raises (a kernel's check, or the model's own assert) rejects the size, and so
    does one that computes with empty tensors as :class:`EmptyTensorWatch` says, or returns one:
    torch computes on empty tensors without complaint on meta (a pooling window larger than its
    input gives a 0-wide map, an adaptive pool then makes it 1x1 again), but a layer that outputs
    nothing is not a working model, and cnnshape's rule is that every layer output is at least 1
    along every dimension."""
    dims = list(shape)
    dims[axis] = s
    from cnnshape.analyse.sizes.symbolic import numpy_absence_remembered  # only here: importing it is the
    # symbolic engine's cost, which test_sizes_symbolic.py checks the other paths never pay

    watch = EmptyTensorWatch()
    try:
        with torch.no_grad(), numpy_absence_remembered(), watch:
            out = model(torch.empty(dims, device="meta"))
    except Exception:  # noqa: BLE001 - any error of the forward pass rejects the size
        return None
    outs = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else [out]
    if watch.empty is not None or any(0 in o.shape for o in outs):
        return None
    return [tuple(o.shape) for o in outs]


def formula_value(formula: str, symbol: str, s: int) -> int:
    """Evaluates the printed formula text, e.g. ``floor((H − 1)/32) + 1``, at ``symbol = s``."""
    code = formula.replace("·", "*").replace("−", "-").replace("/", "//").replace(" mod ", " % ")
    code = code.replace(symbol, str(s))
    return eval(code, {"floor": lambda v: v})  # '//' already floors; floor(...) is then the identity


def check_exhaustively(model: nn.Module, shape: tuple[int, ...], sizes_range: Sequence[int],
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


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_alexnet_accepts_every_size_from_63() -> None:
    # conv11 s4 p2: floor((H−7)/4)+1; each of the three maxpool3 s2 needs ≥ 3 in, so backwards:
    # 3 before pool3 <- 7 before pool2 <- 15 before pool1 = floor((H−7)/4)+1 ≥ 15  <=>  H ≥ 63
    model = module("examples/alexnet.py:AlexNet")
    report = sizes(model, [(1, 3, 224, 224)])
    assert [a.minimum for a in report.axes] == [63, 63]
    assert report.axes[0].accepted.words() == "every size ≥ 63"
    check_exhaustively(model, (1, 3, 224, 224), range(1, 513))


@pytest.mark.slow  # > 10 s in docs/test-durations.md
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


#: more than 10 s each in docs/test-durations.md: torch's meta forward of these (the oracle) is slow
SLOW_EXAMPLES = {"MobileNetV2", "DenseNet", "SENet", "TransposedDecoder", "DictOutputNet"}
#: the sizes the slow examples are checked at here: the smallest ones (where minimums are decided)
#: and both sides of the multiples of 32 that stride-2 stages make periodic; benchmarks/sizes_oracle.py
#: sweeps every size 1..512 of every example
SAMPLE = (1, 2, 3, 4, 5, 7, 9, 15, 31, 32, 33, 63, 65, 97, 224, 479, 511)


@pytest.mark.parametrize("spec,shape,step", EXAMPLES, ids=[e[0].split(":")[1] for e in EXAMPLES])
def test_every_example_agrees_with_meta_forward(spec: str, shape: tuple[int, ...], step: int) -> None:
    slow = spec.split(":")[1] in SLOW_EXAMPLES
    check_exhaustively(module(spec), shape, SAMPLE if slow else range(1, 513, step))


def test_string_padding_single_value_per_axis() -> None:
    # padding="valid" reaches ATen as padding=(0,): one value for both axes. A 3x3 valid conv
    # outputs W − 2, so it needs W ≥ 3; every size from there on works.
    report = sizes(nn.Conv2d(1, 1, 3, padding="valid"), [(1, 1, 9, 9)])
    for axis in report.to_dict()["axes"]:
        assert axis["minimum"] == 3
        assert axis["accepted"] == {"kind": "arithmetic", "minimum": 3, "step": 1, "offset": 0, "maximum": None}


def test_summary_footer_names_the_minimum() -> None:
    report = analyze("examples/alexnet.py:AlexNet", [(1, 3, 224, 224)])
    assert ("accepted input sizes: H: every size ≥ 63; W: every size ≥ 63 (layer arithmetic; `cnnshape sizes` "
            "validates)") in report.notes


class Crop(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 2:10]


def test_uncharacterised_axis_says_so() -> None:
    # the layer arithmetic has no rule for slicing; torch's symbolic shapes answer instead: x[:, :, 2:10]
    # is empty up to H = 2 (an empty output rejects the size), and min(H, 10) − 2 rows from H = 3 on
    report = sizes(Crop(), [(1, 3, 16, 16)])
    h = report.axes[0]
    assert "cannot characterise" in h.arithmetic_reason and "slicing a size-dependent dim" in h.arithmetic_reason
    assert h.engine == "symbolic" and h.accepted is not None and h.accepted.words() == "every size ≥ 3"
    assert [s for s in range(1, 40) if h.accepted.contains(s)] == accepted_by_torch(Crop(), (1, 3, 16, 16), 2,
                                                                                     range(1, 40))
    # the output rows are 8 from H = 10 on and H − 2 below: no one formula, and the text says so
    assert [f.formula for f in h.outputs] == ["8 at H = 16, not everywhere (1 at H = 3)"]
    # with the symbolic engine off (as in the summary's note), the axis says why there is no rule
    from cnnshape.analyse.sizes import analyse_sizes
    from cnnshape.graph import build_graph
    from cnnshape.inputs import InputSpec
    from cnnshape.trace.tracers import trace
    model = Crop()
    graph = build_graph(trace(model, (InputSpec((1, 3, 16, 16)),)), model)
    h = analyse_sizes(graph, "Crop", symbolic=False).axes[0]
    assert h.accepted is None and h.minimum is None and h.engine is None
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
        "kind": "arithmetic", "minimum": 63, "step": 1, "offset": 0, "maximum": None}, "engine": "arithmetic"}]
    assert data["outputs"] == []


def test_cli_errors_and_no_spatial_axes() -> None:
    result = runner.invoke(app, ["sizes", "examples/multi_io.py:TiedWeights", "-i", "1,64", "--axis", "5"])
    assert result.exit_code == 2
    assert "--axis 5: the first input 1x64 has dims 0..1" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["sizes", "examples/multi_io.py:TiedWeights", "-i", "1,64"])
    assert result.exit_code == 0
    assert "has no spatial axes" in result.output


# ---- sizes that reach layers as Python values: one trace sees constants, a re-trace sees the truth

class TinyFPN(nn.Module):
    """FPN top-down step: the coarse map is resized to the lateral's size read from its shape."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.lat = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lateral = self.c1(x)
        coarse = self.c2(lateral)
        return self.lat(lateral) + F.interpolate(coarse, size=lateral.shape[-2:], mode="nearest")


class YoloHead(nn.Module):
    """YOLO detection head: ``y.view(bs, na, no, ny, nx)`` with ny, nx read from ``y.shape``."""

    def __init__(self, na: int = 3, no: int = 6) -> None:
        super().__init__()
        self.na, self.no = na, no
        self.body = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 8, 8, 3, stride=2, padding=1) for i in range(5)])
        self.m = nn.Conv2d(8, na * no, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.m(self.body(x))
        bs, _, ny, nx = y.shape
        return y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()


class CRNN(nn.Module):
    """Text recogniser: the feature map's width becomes the sequence, ``reshape(b, w, c·h)``."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                                 nn.MaxPool2d(2))
        self.fc = nn.Linear(8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)
        b, c, h, w = f.shape
        return self.fc(f.permute(0, 3, 1, 2).reshape(b, w, c * h))


class DownUntil(nn.Module):
    """Control flow on a size: halve the width until it is at most 8 (fx can't trace it: eager)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 3, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while x.shape[-1] > 8:
            x = self.down(x)
        return x


class EvenWidth(nn.Module):
    """The model's own check rejects sizes the layer arithmetic accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:
            raise ValueError("width must be even")
        return self.conv(x)


def accepted_by_torch(model: nn.Module, shape: tuple[int, ...], axis: int, sizes_range: range) -> list[int]:
    with on_meta(model):
        return [s for s in sizes_range if meta_output_shapes(model, shape, axis, s) is not None]


PYTHON_VALUED = [
    # (model, working example, axis, sizes the model accepts per torch that a one-trace rule missed)
    (TinyFPN, (1, 3, 64, 64), 2, range(1, 300)),      # every H ≥ 1; the one-trace rule was a 4-size set
    (YoloHead, (1, 3, 640, 640), 2, range(1, 1300, 7)),  # runs at 320, 1280..., the rule said 634..641
    (CRNN, (1, 1, 32, 128), 3, range(1, 300)),        # every W ≥ 4; the rule said 128..131
    (DownUntil, (1, 3, 64, 64), 3, range(1, 300)),    # every W ≥ 1; the traced loop count holds for 57..64
]


@pytest.mark.parametrize("cls,shape,axis,span", PYTHON_VALUED, ids=[p[0].__name__ for p in PYTHON_VALUED])
def test_python_valued_sizes_get_their_rule_from_torchs_symbolic_shapes(cls: type[nn.Module], shape: tuple[int, ...],
                                                                        axis: int, span: range) -> None:
    model = cls()
    truth = accepted_by_torch(model, shape, axis, span)
    # ground truth: torch runs the model at sizes far from the working example (2× and more)
    assert max(truth) > 2 * shape[axis] - 10
    a = next(a for a in sizes(model, [shape]).axes if a.axis == axis)
    # the layer arithmetic's re-traces find the Python values and decline; the symbolic engine answers
    assert a.engine == "symbolic", a.reason
    assert "depend on the input through Python values" in a.arithmetic_reason
    assert "differs at size" in a.arithmetic_reason
    assert a.accepted is not None and [s for s in span if a.accepted.contains(s)] == truth


def test_python_valued_sizes_leave_the_other_axis_alone() -> None:
    # DownUntil's loop reads only the width; along H the three stride-2 convs (traced at W=64)
    # give floor((H − 1)/8) + 1 for every H ≥ 1
    check_exhaustively(DownUntil(), (1, 3, 64, 64), range(1, 300), axes=(2,))
    # CRNN along H: two 2x2 pools then c·h = 8·floor(H/4) must be the Linear's 64 -> 32 ≤ H ≤ 35
    check_exhaustively(CRNN(), (1, 1, 32, 128), range(1, 300), axes=(2,))


def test_model_rejecting_a_size_the_arithmetic_accepts() -> None:
    a = sizes(EvenWidth(), [(1, 3, 8, 8)]).axes[1]
    truth = accepted_by_torch(EvenWidth(), (1, 3, 8, 8), 3, range(1, 100))
    assert truth == list(range(2, 100, 2))  # torch: odd widths fail
    # the arithmetic's re-trace at 1 fails on the model's own check; the symbolic engine records
    # the check as the guard Eq(Mod(W, 2), 0)
    assert "the model fails at size 1" in a.arithmetic_reason and "width must be even" in a.arithmetic_reason
    assert a.engine == "symbolic" and a.accepted is not None
    assert a.accepted.words() == "multiples of 2 from 2 up"
    assert [s for s in range(1, 100) if a.accepted.contains(s)] == truth


def test_summary_footer_drops_a_python_valued_minimum() -> None:
    # the one-trace arithmetic says "H ≥ 634" although torch runs YoloHead at 320 (checked here): the
    # footer names where the model reads sizes instead of a rule
    assert accepted_by_torch(YoloHead(), (1, 3, 640, 640), 2, range(320, 321)) == [320]
    notes = analyze(YoloHead(), [(1, 3, 640, 640)]).notes
    assert any(n.startswith("accepted input sizes: not derived from one trace, the model reads tensor sizes")
               and "test_sizes.py" in n and "y.shape" in n for n in notes), notes


class ConvNeXtish(nn.Module):
    """ConvNeXt layout: patchify stem k4 s4, channels-last LayerNorm via permute, three k2 s2
    downsamplers with GroupNorm, global mean, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.downs = nn.ModuleList(nn.Conv2d(8, 8, 2, stride=2) for _ in range(3))
        self.gn = nn.GroupNorm(2, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        for d in self.downs:
            x = self.gn(d(x))
        return self.head(x.mean((-2, -1)))


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_convnext_layer_norm_channels_last() -> None:
    # floor(floor(floor(floor(H/4)/2)/2)/2) = floor(H/32) ≥ 1  <=>  H ≥ 32, every size from there
    model = ConvNeXtish()
    report = sizes(model, [(1, 3, 64, 64)])
    assert [a.accepted.words() for a in report.axes] == ["every size ≥ 32", "every size ≥ 32"]
    check_exhaustively(model, (1, 3, 64, 64), range(1, 300, 3))
    assert ("accepted input sizes: H: every size ≥ 32; W: every size ≥ 32 (layer arithmetic; `cnnshape sizes` "
            "validates)") in analyze(model, [(1, 3, 64, 64)]).notes


class LayerNormOverWidth(nn.Module):
    """LayerNorm over the last (size-dependent) dim: its weight fixes the width."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def test_layer_norm_over_a_studied_dim_fixes_it() -> None:
    # torch: LayerNorm(16) needs the last dim to be exactly 16; any other dim is free
    check_exhaustively(LayerNormOverWidth(), (1, 3, 8, 16), range(1, 100))
    assert [a.accepted.words() for a in sizes(LayerNormOverWidth(), [(1, 3, 8, 16)]).axes] == \
        ["every size ≥ 1", "exactly 16"]


class Stride31(nn.Module):
    """conv1d k1 s31 then a Linear taking 2 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 1, stride=31)
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


def test_small_sets_with_gaps_are_listed() -> None:
    # conv1d k1 s31: floor((L − 1)/31) + 1 must be the Linear's 2  <=>  32 ≤ L ≤ 62; every size there.
    # a step-31 rule with two members: 1 and 32 are accepted, 2..31 are not
    model = Stride31()
    check_exhaustively(model, (1, 1, 40), range(1, 200))
    gaps = Accepted("arithmetic", minimum=1, step=31, offset=1, maximum=32)
    assert [s for s in range(1, 100) if gaps.contains(s)] == [1, 32]
    assert gaps.words() == "only 1, 32"
    assert Accepted("arithmetic", minimum=16, step=16, offset=0, maximum=80).words() == "multiples of 16 from 16 to 80"


# ---- empty outputs: torch computes a 0-sized map without raising; the size is still rejected

def test_the_oracle_counts_an_empty_intermediate_as_a_rejection() -> None:
    # ConvTranspose2d k2 p3 d3 output_padding 2 outputs W − 1 columns (arithmetic below): at W = 1 an
    # empty map, which the adaptive pool turns back into 2 columns without an error on meta
    model = nn.Sequential(nn.ConvTranspose2d(1, 1, 2, padding=3, dilation=3, output_padding=2),
                          nn.AdaptiveAvgPool2d(2))
    with on_meta(model), torch.no_grad():
        assert tuple(model(torch.empty(1, 1, 8, 1, device="meta")).shape) == (1, 1, 2, 2)
        assert meta_output_shapes(model, (1, 1, 8, 8), 3, 1) is None
        assert meta_output_shapes(model, (1, 1, 8, 8), 3, 2) == [(1, 1, 2, 2)]
    # batch norm's empty save_mean/save_invstd side results are not outputs
    normed = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).eval()
    with on_meta(normed):
        assert meta_output_shapes(normed, (1, 1, 8, 8), 3, 1) == [(1, 2, 8, 1)]


@pytest.mark.parametrize("model, minimum", [
    # ConvTranspose2d k2 p3 d3 output_padding 2: (W − 1)·1 − 2·3 + 3·(2 − 1) + 2 + 1 = W − 1, so
    # W = 1 gives an empty map (the meta kernel returns it, it does not raise): every W ≥ 2
    (nn.ConvTranspose2d(1, 1, 2, padding=3, dilation=3, output_padding=2), 2),
    # grouped ConvTranspose2d k1 p1: (W − 1) − 2 + 1 = W − 2, empty at W = 2: every W ≥ 3
    (nn.ConvTranspose2d(2, 2, 1, padding=1, groups=2), 3),
], ids=["transposed", "grouped_transposed"])
def test_a_size_giving_an_empty_output_is_rejected_not_uncharacterised(model: nn.Module, minimum: int) -> None:
    shape = (1, model.in_channels, 8, 8)
    # the oracle (an empty intermediate or output is a rejection) agrees with the arithmetic above
    assert accepted_by_torch(model, shape, 3, range(1, 40)) == list(range(minimum, 40))
    a = sizes(model, [shape]).axes[1]
    assert a.reason is None, a.reason
    assert a.accepted.words() == f"every size ≥ {minimum}"
    check_exhaustively(model, shape, range(1, 100))


class ChannelsLastLinear(nn.Module):
    """A Linear on a channels-last map, as ConvNeXt's pointwise layers: torch's matmul folds
    (N, H, W, C) into (N·H·W, C) with a view whose target sizes it reads from the input, multiplies,
    and unfolds the product back into (N, H, W, C')."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_linear_on_a_channels_last_map_keeps_the_sizes_free() -> None:
    # conv k3 s2: floor((H − 3)/2) + 1 ≥ 1 <=> H ≥ 3; the Linear's fold and unfold keep H and W (the
    # fold's constant target size used to fix H to the traced 32 or 33)
    model = ChannelsLastLinear()
    report = sizes(model, [(1, 3, 32, 32)])
    assert [(a.engine, a.accepted.words() if a.accepted else a.reason) for a in report.axes] == [
        ("arithmetic", "every size ≥ 3"), ("arithmetic", "every size ≥ 3")]
    assert [f.formula for f in report.axes[0].outputs] == ["floor((H − 1)/2)"]
    check_exhaustively(model, (1, 3, 32, 32), range(1, 120))


class LinearLikeItsFoldedInput(nn.Module):
    """conv k4 s4 to a 8x8 map of 16 channels, channels last (contiguous, as after ConvNeXt's
    LayerNorm), then Linear(16, 64): torch folds the Linear's input to (8·8, 16) = (64, 16), the very
    shape of its weight, then transposes the weight. Which argument of that transpose is the weight
    must come from the trace, not from the shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 4, stride=4)
        self.fc = nn.Linear(16, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2)


def test_a_weight_shaped_like_an_activation_stays_a_constant() -> None:
    # conv k4 s4: floor(H/4) ≥ 1 <=> H ≥ 4, on either axis; the Linear keeps H and W free. The
    # arithmetic used to take the weight for the folded input (both 64 x 16 at 32 x 32) and fix H
    # near the traced size; the summary's note (arithmetic alone) said so too.
    model = LinearLikeItsFoldedInput()
    report = sizes(model, [(1, 3, 32, 32)])
    assert [(a.engine, a.accepted.words() if a.accepted else a.reason) for a in report.axes] == [
        ("arithmetic", "every size ≥ 4"), ("arithmetic", "every size ≥ 4")]
    check_exhaustively(model, (1, 3, 32, 32), range(1, 100))
    assert ("accepted input sizes: H: every size ≥ 4; W: every size ≥ 4 (layer arithmetic; `cnnshape sizes` "
            "validates)") in analyze(model, [(1, 3, 32, 32)]).notes
