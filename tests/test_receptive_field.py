"""Receptive fields: hand-derived figures, and an empirical gradient check.

The empirical check linearises a float64 copy of the model (activations and normalisation become
identity, max-pooling a positive averaging window with the same geometry, all weights positive),
back-propagates one output unit and measures the extent of the non-zero input gradient. With
every weight and input positive nothing cancels, so that extent is exactly the set of input
pixels the unit depends on.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from cnnshape import analyze
from cnnshape.analyse.receptive_field import unit_box
from cnnshape.cli import app
from examples.alexnet import AlexNet
from examples.densenet import DenseBlock
from examples.inception import InceptionBlock
from examples.resnet import ResNet18, ResNet50
from examples.senet import SEBlock
from examples.textbook import Conv7Pool3, ThreeConvs3x3
from examples.unet import UNet
from examples.vgg import VGG16

from .size_models import InvertedResidual


def rf_of(report, name):
    return next(layer for layer in report.layers if layer.name == name).receptive_field


def last_in(report, prefix):
    """The last traced node inside module ``prefix`` (its output is the module's output)."""
    return [layer for layer in report.layers if layer.name.startswith(prefix + ".")][-1].receptive_field


# --- hand-checked figures ------------------------------------------------------------------


def test_three_stacked_3x3_convs_see_7():
    # r = 1 + 2 + 2 + 2 = 7, jump 1; padding 1 keeps the centre of unit 0 on pixel 0
    rf = rf_of(analyze(ThreeConvs3x3(), [(1, 8, 32, 32)]), "conv3")
    assert [a.size for a in rf.axes] == [7, 7]
    assert [a.jump for a in rf.axes] == [1, 1] and [a.start for a in rf.axes] == [0, 0]


def test_conv7_s2_then_maxpool3_s2_sees_11_with_jump_4():
    # conv: r 7, j 2; pool: r = 7 + (3-1)*2 = 11, j = 2*2 = 4
    rf = rf_of(analyze(Conv7Pool3(), [(1, 3, 224, 224)]), "maxpool")
    assert [a.size for a in rf.axes] == [11, 11] and [a.jump for a in rf.axes] == [4, 4]


def test_dilated_3x3_d2_sees_5():
    # effective kernel d*(k-1)+1 = 2*2+1 = 5
    rf = rf_of(analyze(nn.Conv2d(1, 1, 3, dilation=2), [(1, 1, 16, 16)]), "output")
    assert [a.size for a in rf.axes] == [5, 5]


# Final receptive fields derived by hand, layer by layer, with r_l = r_{l-1} + (k_l − 1)·j_{l-1} and
# j_l = j_{l-1}·s_l from r_0 = j_0 = 1 (a 1x1 conv and the identity or strided 1x1 shortcut of a
# block never widen the box: the sum's box is the conv path's, the larger one). Padding only moves
# the box, never its size.
#
# ResNet-18 (examples/resnet.py: BasicBlock = two 3x3 convs, the first strided when the stage is):
#   conv1 7x7 s2        r = 1 + 6·1 = 7,              j = 2
#   maxpool 3x3 s2      r = 7 + 2·2 = 11,             j = 4
#   layer1 4 convs 3x3  r = 11 + 4·(2·4) = 43,        j = 4
#   layer2 conv s2      r = 43 + 2·4 = 51,            j = 8;  3 more convs: 51 + 3·(2·8) = 99
#   layer3 conv s2      r = 99 + 2·8 = 115,           j = 16; 3 more convs: 115 + 3·(2·16) = 211
#   layer4 conv s2      r = 211 + 2·16 = 243,         j = 32; 3 more convs: 243 + 3·(2·32) = 435
# ResNet-50 (v1.5, as torchvision: Bottleneck = 1x1, 3x3 (the strided one), 1x1; blocks 3, 4, 6, 3):
#   conv1, maxpool      r = 11,                       j = 4
#   layer1 3 x 3x3      r = 11 + 3·(2·4) = 35,        j = 4
#   layer2 3x3 s2       r = 35 + 2·4 = 43,            j = 8;  3 more blocks: 43 + 3·(2·8) = 91
#   layer3 3x3 s2       r = 91 + 2·8 = 107,           j = 16; 5 more blocks: 107 + 5·(2·16) = 267
#   layer4 3x3 s2       r = 267 + 2·16 = 299,         j = 32; 2 more blocks: 299 + 2·(2·32) = 427
# (ResNet-50 v1, with the stride on the first 1x1, would give 51 after layer2's first block, not 43:
# the variant matters, so these are derived for the layout the examples build, not quoted.)
# VGG-16 features (five stages of 3x3 convs, 2, 2, 3, 3, 3 of them, each stage then a 2x2 s2 pool):
#   stage 1  1 + 2·2 = 5,  pool 5 + 1·1 = 6,      j = 2
#   stage 2  6 + 2·(2·2) = 14,  pool 14 + 1·2 = 16,   j = 4
#   stage 3  16 + 3·(2·4) = 40, pool 40 + 1·4 = 44,   j = 8
#   stage 4  44 + 3·(2·8) = 92, pool 92 + 1·8 = 100,  j = 16
#   stage 5  100 + 3·(2·16) = 196, pool 196 + 1·16 = 212, j = 32
# AlexNet features (torchvision: conv 11x11 s4, pool 3 s2, conv 5x5, pool 3 s2, three 3x3 convs, pool 3 s2):
#   conv 11 s4 r = 11, j = 4; pool r = 11 + 2·4 = 19, j = 8; conv 5 r = 19 + 4·8 = 51;
#   pool r = 51 + 2·8 = 67, j = 16; three 3x3 r = 67 + 3·(2·16) = 163; pool r = 163 + 2·16 = 195, j = 32
@pytest.mark.parametrize("model, node, size", [
    (ResNet18, "layer4", 435),
    (ResNet50, "layer4", 427),
    (VGG16, "features", 212),
    (AlexNet, "features", 195),
])
def test_hand_derived_receptive_fields(model, node, size):
    rf = last_in(analyze(model(), [(1, 3, 224, 224)]), node)
    assert [a.size for a in rf.axes] == [size, size]
    assert [a.jump for a in rf.axes] == [32, 32]
    assert rf.aligned


def test_global_pooling_and_se_gating_are_global_and_stay_global():
    report = analyze(SEBlock(), [(1, 64, 16, 16)])
    assert rf_of(report, "avg_pool").is_global
    assert rf_of(report, "mul").is_global  # the gate multiplies a global map back onto x
    rf = rf_of(analyze(ResNet18(), [(1, 3, 64, 64)]), "fc")
    assert rf.is_global


class _CatAlong(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.cat([x, self.conv(x)], dim=self.dim)


def test_cat_along_channels_is_aligned_but_along_width_is_not():
    # along channels every output unit (i, j) reads input units (i, j) of both parts: one box, the
    # union 3x3. Along W, output column 20 is column 4 of the conv's output (box 3..5), column 2 is
    # column 2 of x (box 2..2): no single start/jump describes the columns.
    channels = rf_of(analyze(_CatAlong(1), [(1, 3, 16, 16)]), "cat")
    width = rf_of(analyze(_CatAlong(3), [(1, 3, 16, 16)]), "cat")
    assert channels.aligned and [a.size for a in channels.axes] == [3, 3]
    assert not width.aligned
    result = runner.invoke(app, ["rf", "tests/test_receptive_field.py:_CatAlong", "--arg", "dim=3",
                                 "--input", "1,3,16,16", "--layer", "cat", "--at", "0,20"])
    assert result.exit_code == 2 and "no per-unit box" in result.output


def test_leaf_block_with_branches_is_unknown_not_too_small():
    # Traced through, the Inception block's largest branch (1x1 then 5x5) gives RF 5 on the stem's
    # RF 3: 3 + 4 = 7. As one --leaf node its ATen calls are four branches, not a chain: following
    # one of them would give 3, so cnnshape says unknown rather than a wrong number.
    traced = analyze("examples/inception.py:InceptionNet", [(1, 3, 32, 32)])
    leaf = analyze("examples/inception.py:InceptionNet", [(1, 3, 32, 32)], leaves=["InceptionBlock"])
    assert [a.size for a in rf_of(traced, "inception3a.cat").axes] == [7, 7]
    rf = rf_of(leaf, "inception3a")
    assert rf.kind == "unknown" and "branches inside one node" in (rf.unknown_op or "")


def test_misaligned_merge_is_reported():
    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3, padding=1)  # centre of unit 0 on pixel 0
            self.b = nn.Conv2d(1, 1, 3, padding=0)  # centre of unit 0 on pixel 1

        def forward(self, x):
            return self.a(x)[..., :14, :14] + self.b(x)

    rf = rf_of(analyze(Offset(), [(1, 1, 16, 16)]), "add")
    assert not rf.aligned
    # union of [-1, 1] and [0, 2]: 4 pixels
    assert [a.size for a in rf.axes] == [4, 4]


def test_op_without_rule_is_unknown_not_identity():
    class Rolled(nn.Module):
        def forward(self, x):
            return F.conv2d(torch.roll(x, 1, dims=3), torch.ones(1, 1, 3, 3, device=x.device))

    report = analyze(Rolled(), [(1, 1, 8, 8)])
    rf = rf_of(report, "roll")
    assert rf.kind == "unknown" and rf.unknown_op == "aten.roll"
    assert rf_of(report, "conv2d").kind == "unknown"
    assert report.to_dict()["layers"][-1]["receptive_field"]["size"] == "unknown"


def test_json_and_table_columns():
    report = analyze(Conv7Pool3(), [(1, 3, 224, 224)])
    layer = next(d for d in report.to_dict()["layers"] if d["name"] == "maxpool")
    assert layer["receptive_field"] == {"size": [11, 11], "jump": [4, 4], "start": [0, 0], "aligned": True}
    se = analyze(SEBlock(), [(1, 64, 16, 16)]).to_dict()["layers"]
    assert next(d for d in se if d["name"] == "mul")["receptive_field"]["size"] == "global"
    assert "RF" in str(report).splitlines()[2]


# --- empirical check --------------------------------------------------------------------------


class DepthwiseOnes(nn.Module):
    """A max-pool replaced by a positive averaging window of the same geometry."""

    def __init__(self, pool: nn.Module, nd: int) -> None:
        super().__init__()
        self.nd, self.pool = nd, pool

    def forward(self, x):
        p = self.pool
        k = p.kernel_size if isinstance(p.kernel_size, tuple) else (p.kernel_size,) * self.nd
        w = torch.ones(x.shape[1], 1, *k, dtype=x.dtype) / math.prod(k)
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.nd - 1]
        return conv(x, w, stride=p.stride or k, padding=p.padding, dilation=p.dilation, groups=x.shape[1])


def linearise(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).double().eval()
    identity_types = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                      nn.Dropout, nn.GroupNorm, nn.LayerNorm)
    for name, child in list(model.named_children()):
        if isinstance(child, identity_types):
            setattr(model, name, nn.Identity())
        elif isinstance(child, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            setattr(model, name, DepthwiseOnes(child, int(type(child).__name__[-2])))
        else:
            setattr(model, name, linearise(child))
    for p in model.parameters(recurse=False):
        with torch.no_grad():
            p.fill_(1.0 / max(1, p[0].numel()) if p.dim() > 1 else 0.0)
    return model


def empirical_extent(model: nn.Module, shape, index, module: nn.Module | None = None):
    """Per spatial axis, (first, last) input pixel with a non-zero gradient of output unit
    ``index`` (summed over channels) of ``module``'s output (default: the model's output)."""
    lin = linearise(model)
    target = lin if module is None else dict(lin.named_modules())[next(
        n for n, m in model.named_modules() if m is module)]
    captured = []
    handle = target.register_forward_hook(lambda m, i, o: captured.append(o))
    x = (torch.rand(shape, dtype=torch.float64) + 0.5).requires_grad_()
    lin(x)
    handle.remove()
    out = captured[0]
    out[(slice(None), slice(None), *index)].sum().backward()
    nz = x.grad.abs().sum(dim=(0, 1)) > 0
    extents = []
    for axis in range(nz.dim()):
        other = tuple(d for d in range(nz.dim()) if d != axis)
        hit = nz.any(dim=other) if other else nz
        idx = hit.nonzero().flatten()
        extents.append((int(idx.min()), int(idx.max())))
    return extents


def analytic_extent(rf, index, image):
    if rf.is_global:
        return [(0, n - 1) for n in image]
    return [unit_box(a, i, n)[2:] for a, i, n in zip(rf.axes, index, image)]


def check(model, shape, node=None, module=None, index=None, report=None, unclipped=False):
    """Analytic box of the centre unit (or ``index``) of ``node`` (default: the model output),
    clipped to the image, against the measured gradient extent."""
    report = report or analyze(model, [shape])
    rf = last_in(report, node) if node else rf_of(report, "output")
    layer_shape = next(row for row in report.layers if row.receptive_field is rf).output_shape
    index = index or tuple(n // 2 for n in layer_shape[2:])
    if unclipped:
        boxes = [unit_box(a, i, n) for a, i, n in zip(rf.axes, index, shape[2:])]
        assume(all(b[:2] == b[2:] for b in boxes))
    assert analytic_extent(rf, index, shape[2:]) == empirical_extent(model, shape, index, module)
    return rf


def test_empirical_resnet18_layerwise():
    model = ResNet18()
    report = analyze(model, [(1, 3, 64, 64)])
    # layer1: 11 + 4 convs * 2 * jump 4 = 43; layer2: the strided 3x3 still steps at jump 4:
    # 43 + 2*4 + 3 convs * 2 * jump 8 = 99 (clipped on 64 pixels); layer4: 435, derived above
    # test_hand_derived_receptive_fields
    for name, size in (("layer1", 43), ("layer2", 99), ("layer4", 435)):
        rf = check(model, (1, 3, 64, 64), name, getattr(model, name), report=report)
        assert rf.axes[0].size == size


@pytest.mark.parametrize("model, half", [
    (ResNet18, 217),  # (435 − 1)/2
    pytest.param(ResNet50, 213, marks=pytest.mark.slow),  # (427 − 1)/2; > 10 s in docs/test-durations.md
])
def test_empirical_resnet_final_rf_at_the_corner(model, half):
    # on 224x224 the whole-image box hides the size; the corner unit (0, 0) of layer4 is centred on
    # pixel 0 (every conv pads (k − 1)/2), so its box is [−half, half] and the gradient of the
    # linearised model reaches exactly pixels 0..half: the hand-derived RF, measured
    net = model()
    measured = empirical_extent(net, (1, 3, 224, 224), (0, 0), net.layer4)
    assert measured == [(0, half), (0, half)]
    rf = last_in(analyze(net, [(1, 3, 224, 224)]), "layer4")
    assert [(a.size, a.start) for a in rf.axes] == [(2 * half + 1, 0)] * 2
    assert analytic_extent(rf, (0, 0), (224, 224)) == measured


def test_empirical_inception_block():
    rf = check(InceptionBlock(), (1, 192, 12, 12))
    # widest branch: 1x1 then 5x5 -> 5 (the 3x3 max-pool then 1x1 gives 3)
    assert rf.axes[0].size == 5 and rf.aligned


def test_empirical_unet():
    model = UNet(base=4)
    rf = check(model, (1, 1, 64, 64), index=(20, 37))
    check(model, (1, 1, 64, 64), index=(31, 32))
    assert rf.aligned


def test_empirical_densenet_block():
    # three layers of 1x1 then 3x3 (pad 1): 1 + 3*2 = 7; the concatenation keeps the input (r 1)
    rf = check(DenseBlock(3, 8, 4, 2), (1, 8, 16, 16))
    assert rf.axes[0].size == 7 and rf.aligned


def test_empirical_se_block_is_global():
    rf = check(SEBlock(), (1, 64, 9, 9))
    assert rf.is_global


@st.composite
def stacks(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        d = draw(st.integers(1, 3))
        p = draw(st.integers(0, (d * (k - 1)) // 2))
        if draw(st.booleans()):
            layers.append(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d))
        else:
            layers.append(nn.MaxPool2d(k, stride=s, padding=min(p, k // 2), dilation=d))
    return nn.Sequential(*layers)


@settings(max_examples=25, deadline=None)
@given(stacks())
def test_random_conv_pool_stacks_match_gradient(model):
    # large enough that the centre unit's box (r <= 1 + 9*(1+3+9+27) = 361) lies inside the
    # image: clipped boxes of dilated or strided stacks have holes at their clipped edge
    shape = (1, 1, 400, 400)
    try:
        out = model(torch.zeros(shape))
    except RuntimeError:
        return  # the stack shrinks the input away: nothing to compare
    if out.shape[-1] == 0 or out.shape[-2] == 0:
        return
    check(model, shape, unclipped=True)


# --- CLI ------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_rf_table_and_json():
    result = runner.invoke(app, ["rf", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("maxpool"))
    assert row.split()[3:7] == ["11", "4", "0", "yes"]
    result = runner.invoke(app, ["rf", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224",
                                 "--format", "json"])
    data = json.loads(result.output)
    assert next(d for d in data["layers"] if d["name"] == "conv1")["receptive_field"]["size"] == [7, 7]


def test_cli_rf_unit_box():
    # unit i of the pool covers [4i - 5, 4i + 5]: unit 0 -> [-5, 5], 5 of them padding; unit 10 -> [35, 45]
    result = runner.invoke(app, ["rf", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224",
                                 "--layer", "maxpool", "--at", "0,10", "--format", "json"])
    assert result.exit_code == 0, result.output
    axes = json.loads(result.output)["axes"]
    assert axes[0] == {"index": 0, "box": [-5, 5], "clipped": [0, 5], "inside": 6, "padding": 5}
    assert axes[1]["box"] == [35, 45] and axes[1]["padding"] == 0


def test_cli_rf_unit_box_of_a_container_module():
    # --layer layer4 means the output of the Sequential layer4: ResNet-18's RF there is 435 (derived
    # above test_hand_derived_receptive_fields), so each axis box spans 435 pixels (clipped to the
    # 224-pixel image).
    result = runner.invoke(app, ["rf", "examples/resnet.py:ResNet18", "--input", "1,3,224,224",
                                 "--layer", "layer4", "--at", "3,3", "--format", "json"])
    assert result.exit_code == 0, result.output
    for axis in json.loads(result.output)["axes"]:
        lo, hi = axis["box"]
        assert hi - lo + 1 == 435
        assert axis["inside"] == 224


def test_cli_rf_unknown_layer_lists_close_names():
    result = runner.invoke(app, ["rf", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224",
                                 "--layer", "maxpol", "--at", "0,0"])
    assert result.exit_code == 2
    assert "no spatial layer" in result.output and "maxpool" in result.output
    assert "Traceback" not in result.output


def test_cli_rf_index_out_of_range():
    result = runner.invoke(app, ["rf", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224",
                                 "--layer", "maxpool", "--at", "56,0"])
    assert result.exit_code == 2 and "56x56" in result.output


# --- layouts: 1-d pooling, channels-last, attention, nearest upsampling ----------------------


def test_1d_pooling_through_unsqueeze_squeeze():
    # conv k3: r 3, j 1; maxpool 2: r = 3 + 1*1 = 4, j 2; conv k3: r = 4 + 2*2 = 8;
    # avgpool 2: r = 8 + 1*2 = 10, j 4; conv k3: r = 10 + 2*4 = 18
    model = nn.Sequential(nn.Conv1d(1, 1, 3), nn.MaxPool1d(2), nn.Conv1d(1, 1, 3), nn.AvgPool1d(2),
                          nn.Conv1d(1, 1, 3))
    report = analyze(model, [(1, 1, 100)])
    rfs = [rf_of(report, str(i)) for i in range(5)]
    assert [rf.axes[0].size for rf in rfs] == [3, 4, 8, 10, 18]
    assert [rf.axes[0].jump for rf in rfs] == [1, 2, 2, 4, 4]
    check(model, (1, 1, 100))


class ConvNeXtStem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 4, stride=4)
        self.norm = nn.LayerNorm(4)
        self.dw = nn.Conv2d(4, 4, 7, padding=3, groups=4)
        self.pw = nn.Linear(4, 4)

    def forward(self, x):
        x = self.norm(self.stem(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.pw(self.dw(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_convnext_channels_last_norm_and_linear_keep_the_rf():
    # stem k4 s4: r 4, j 4; LayerNorm and the Linear over channels (a 1x1 conv) keep it;
    # dwconv 7x7: r = 4 + 6*4 = 28
    report = analyze(ConvNeXtStem(), [(1, 1, 64, 64)])
    assert [a.size for a in rf_of(report, "norm").axes] == [4, 4]
    assert [a.size for a in rf_of(report, "dw").axes] == [28, 28]
    assert [a.size for a in rf_of(report, "output").axes] == [28, 28]
    check(ConvNeXtStem(), (1, 1, 64, 64), index=(5, 9))


class TinyViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.qkv = nn.Linear(8, 24)
        self.rnn = nn.GRU(8, 8, batch_first=True)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        a, _ = self.mha(t, t, t)
        q, k, v = self.qkv(t).reshape(1, 16, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v)
        r, _ = self.rnn(t)
        return a, o, r


def test_attention_and_rnn_over_tokens_are_global():
    report = analyze(TinyViT(), [(1, 1, 16, 16)])
    # tokens keep the patch RF (4, jump 4) through flatten/transpose and the qkv Linear
    assert [a.size for a in rf_of(report, "transpose").axes] == [4, 4]
    assert [a.size for a in rf_of(report, "getitem_2").axes] == [4, 4]  # q after unbind
    for name in ("mha", "getitem", "scaled_dot_product_attention", "rnn"):
        assert rf_of(report, name).is_global, name
    assert not any(row.receptive_field and row.receptive_field.kind == "unknown" for row in report.layers)


class Upsampled(nn.Module):
    def __init__(self, mode: str = "nearest", align_corners: bool | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3, stride=2, padding=1),
                                  nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3, padding=1))
        self.up = nn.Upsample(scale_factor=2, mode=mode, align_corners=align_corners)

    def forward(self, x):
        return self.up(self.body(x))


@pytest.mark.parametrize("unit", [0, 5, 6, 11])
def test_nearest_upsampling_unit_boxes_are_exact(unit):
    # output unit u reads source unit floor(u/2): units 2m and 2m+1 share source unit m's box,
    # which the gradient of the linearised model confirms
    check(Upsampled(), (1, 1, 64, 64), index=(unit, unit))


@pytest.mark.parametrize("mode, align", [("bilinear", None), ("bicubic", None), ("bilinear", True)])
@pytest.mark.parametrize("unit", [0, 5, 6, 11, 15])
def test_interpolating_upsample_unit_boxes_are_exact(mode, align, unit):
    # output unit u reads the 2 (bilinear) or 4 (bicubic) source units around (u + 1/2)/2 − 1/2
    # (u·(w−1)/(n−1) with align_corners), clamped to the feature map as torch clamps them; the
    # gradient confirms each box
    check(Upsampled(mode, align), (1, 1, 64, 64), index=(unit, unit))


def test_cli_rf_table_unknown_rows_are_short():
    class Rolled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3)
            self.b = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.b(torch.roll(self.a(x), 1, dims=3))

    from cnnshape.render.receptive_field import rf_table
    text = rf_table(analyze(Rolled(), [(1, 1, 16, 16)]))
    rows = [line.split() for line in text.splitlines() if line.startswith(("roll", "b "))]
    assert [row[-2:] for row in rows] == [["unknown", "-"], ["unknown", "-"]]
    assert text.count("aten.roll") == 1 and "unknown from roll" in text


def test_untabled_pointwise_ops_and_glu_keep_the_rf():
    # conv 3x3 -> RF 3; GLU over channels and atan (an element-wise op torch tags `pointwise`,
    # with no entry of its own in the RF table) leave it at 3. GLU over the width pairs columns
    # i and i + W/2, so it is unknown.
    class Gated(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.glu = nn.GLU(dim=dim)

        def forward(self, x):
            return torch.atan(self.glu(self.conv(x)))

    over_channels = analyze(Gated(1), [(1, 3, 16, 16)])
    assert [a.size for a in rf_of(over_channels, "atan").axes] == [3, 3]
    assert rf_of(analyze(Gated(3), [(1, 3, 16, 16)]), "glu").kind == "unknown"


# --- split with sizes (Inception-NeXt, FasterNet) and channel shuffles (ShuffleNetV2) ----------


class InceptionDWConv(nn.Module):
    """Inception-NeXt's token mixer: the channels split by a list of sizes into an identity part,
    a 3x3, a 1x11 and an 11x1 depthwise conv, concatenated back."""

    def __init__(self, channels: int = 64, band: int = 11) -> None:
        super().__init__()
        gc = channels // 8
        self.hw = nn.Conv2d(gc, gc, 3, padding=1, groups=gc)
        self.w = nn.Conv2d(gc, gc, (1, band), padding=(0, band // 2), groups=gc)
        self.h = nn.Conv2d(gc, gc, (band, 1), padding=(band // 2, 0), groups=gc)
        self.sizes = [channels - 3 * gc, gc, gc, gc]

    def forward(self, x):
        x_id, x_hw, x_w, x_h = torch.split(x, self.sizes, dim=1)
        return torch.cat((x_id, self.hw(x_hw), self.w(x_w), self.h(x_h)), dim=1)


class PartialConvBlock(nn.Module):
    """FasterNet's block: a 3x3 conv on the first quarter of the channels (``x.split([16, 48])``),
    then a 1x1 MLP, added to the input."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.part = channels // 4
        self.conv = nn.Conv2d(self.part, self.part, 3, padding=1, bias=False)
        self.mlp = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.ReLU(), nn.Conv2d(2 * channels, channels, 1))

    def forward(self, x):
        x1, x2 = x.split([self.part, x.shape[1] - self.part], dim=1)
        return x + self.mlp(torch.cat((self.conv(x1), x2), 1))


class SplitSizesNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 4, stride=4)
        self.mixer = InceptionDWConv()
        self.mix = nn.Conv2d(64, 64, 1)
        self.pconv = PartialConvBlock()
        self.thirds = nn.Conv2d(16, 16, 5, padding=2)

    def forward(self, x):
        # the RF is one box per tensor, the union over its channels: the 1x1 convs mix every
        # channel into every other, so each part a conv picks out sees that union too
        x = self.pconv(self.mix(self.mixer(self.stem(x))))
        a, b, c = x.split([16, 16, 32], dim=1)
        return torch.cat([self.thirds(a), b, c], 1)


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_split_with_sizes_keeps_the_rf(tracer):
    # stem k4 s4: r 4, j 4. Mixer: the union of identity (4), 3x3 (4 + 2*4 = 12) and the 1x11 /
    # 11x1 bands (4 + 10*4 = 44 along their axis): 44 on both axes. PConv 3x3: 44 + 2*4 = 52.
    # The 5x5 on the first 16 channels: 52 + 4*4 = 68. The gradient confirms each box.
    report = analyze(SplitSizesNet(), [(1, 3, 96, 96)], tracer=tracer)
    assert [a.size for a in rf_of(report, "mixer.cat").axes] == [44, 44]
    assert [a.size for a in rf_of(report, "output").axes] == [68, 68]
    assert rf_of(report, "output").aligned
    for index in ((12, 12), (0, 5), (23, 17)):
        check(SplitSizesNet(), (1, 3, 96, 96), index=index, report=report)


class ShuffleNetV2Small(nn.Module):
    """ShuffleNetV2 x1.0's stem and first stages (24 -> 116 -> 232 channels), of the units of
    tests/size_models.py (torchvision's InvertedResidual: stride 2 runs both branches on the input;
    stride 1 splits the channels with ``chunk(2)`` and convolves one half; then the shuffle)."""

    def __init__(self, stages: tuple[tuple[int, int], ...] = ((116, 3),)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        units, inp = [], 24
        for oup, repeats in stages:
            units += [InvertedResidual(inp, oup, 2)] + [InvertedResidual(oup, oup, 1) for _ in range(repeats - 1)]
            inp = oup
        self.stages = nn.Sequential(*units)
        self.conv5 = nn.Conv2d(inp, 64, 1)

    def forward(self, x):
        return self.conv5(self.stages(self.maxpool(self.conv1(x))))


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_channel_shuffle_keeps_the_rf(tracer):
    # conv 3x3 s2: r 3, j 2; maxpool 3 s2: 3 + 2*2 = 7, j 4; unit 1 (stride 2): both branches end
    # in a 3x3 s2 depthwise conv: 7 + 2*4 = 15, j 8; units 2 and 3 (stride 1): the convolved half
    # adds 2*8 each, 31 then 47 (the other half keeps less: the union is the larger box)
    model = ShuffleNetV2Small()
    report = analyze(model, [(1, 3, 64, 64)], tracer=tracer)
    sizes = [rf_of(report, name).axes[0].size for name in ("stages.0.view_1", "stages.1.view_1", "stages.2.view_1")]
    assert sizes == [15, 31, 47]
    assert not any(row.receptive_field and row.receptive_field.kind in ("unknown", "flat") for row in report.layers)
    for index in ((4, 4), (0, 0), (7, 2)):
        check(model, (1, 3, 64, 64), index=index, report=report)


def test_channel_shuffle_on_a_1x1_map():
    # 16 -> conv s2: 8 -> pool: 4 -> stage 1: 2 -> stage 2: 1: the shuffle views a 1x1 map, where
    # size-1 dims could hold the axes anywhere; the spatial dims stay where they were. Every unit
    # sees the whole 16x16 input (gradient)
    model = ShuffleNetV2Small(((116, 2), (232, 2)))
    report = analyze(model, [(1, 3, 16, 16)])
    assert rf_of(report, "output").kind == "spatial"
    check(model, (1, 3, 16, 16), index=(0, 0), report=report)
