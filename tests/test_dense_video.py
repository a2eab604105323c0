"""Dense-prediction and video models (issue 13, item 6): segmentation with dict outputs, factorised
3-D convolutions, windowed 3-D attention.

Every figure is checked against torch itself: parameters against ``sum(p.numel())`` (and the
torchvision model card where one exists), MACs against ``FlopCounterMode`` (which counts a
multiply-add as 2 FLOPs, so its total / 2) and output shapes against a real forward pass, on the
CPU at an input small enough to run quickly. At the canonical inputs (520x520 images, 16-frame
clips) torch runs the same forward on meta tensors: FlopCounterMode counts from shapes alone, so
its figure there is torch's too, with no arithmetic of cnnshape's.

torchvision's published "GFLOPS" (the ``_ops`` of each weight's meta) count one multiply-add as one
operation: they were computed with a dispatch-mode counter derived from fvcore's (pytorch/vision
PR #6936), and its resnet50 figure, 4.089, is the 4,089,184,256 multiply-adds of a 224x224 pass
(cnnshape's package docstring and the ResNet-50 example). So ``_ops`` is compared with MACs / 1e9,
to the three decimals published.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from examples.segmentation import DeepLabV3ResNet50, FCNResNet50
from examples.video import R3D18, R2Plus1D18, mid_planes
from examples.video_window import VideoWindowNet, WindowAttentionBlock3d, window_partition, window_reverse


def flat_shapes(output: Any) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of each tensor of a model output, keyed as cnnshape keys them."""
    if isinstance(output, torch.Tensor):
        return [("", tuple(output.shape))]
    return [(f"[{k!r}]", tuple(v.shape)) for k, v in output.items()]


def torch_macs(model: nn.Module, shape: tuple[int, ...], device: str = "cpu") -> tuple[int, Any]:
    """FlopCounterMode's total / 2 and the output of one forward pass of ``model`` on ``device``."""
    counter = FlopCounterMode(display=False)
    x = torch.randn(shape) if device == "cpu" else torch.empty(shape, device=device)
    with counter, torch.no_grad():
        out = model(x)
    return counter.get_total_flops() // 2, out


def check_against_torch(build: Callable[[], nn.Module], shape: tuple[int, ...], tracer: str = "auto") -> int:
    """A real CPU forward: params, every output shape and MACs equal torch's; returns the MACs."""
    torch.manual_seed(0)
    model = build().eval()
    macs, out = torch_macs(model, shape)
    report = cnnshape.analyze(model, [shape], tracer=tracer)
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert [(o.key, o.shape) for o in report.outputs] == flat_shapes(out)
    assert report.totals.macs == macs
    assert report.totals.complete
    return macs


def meta_model(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return build().eval()


# -- segmentation: DeepLabV3 / FCN with a dilated ResNet-50 and an aux head ---------------------------

SEGMENTATION = [
    # torchvision model cards: num_params, _ops (GFLOPS = GMACs, see the module docstring)
    pytest.param(DeepLabV3ResNet50, "examples/segmentation.py:DeepLabV3ResNet50", 42_004_074, 178.722, id="deeplabv3"),
    pytest.param(FCNResNet50, "examples/segmentation.py:FCNResNet50", 35_322_218, 152.717, id="fcn"),
]


@pytest.mark.parametrize("build, spec, params, gmacs", SEGMENTATION)
def test_segmentation_at_520_matches_torch_and_the_model_card(build, spec, params, gmacs):
    model = meta_model(build)
    assert sum(p.numel() for p in model.parameters()) == params
    macs, out = torch_macs(model, (1, 3, 520, 520), device="meta")
    assert round(macs / 1e9, 3) == gmacs
    report = cnnshape.analyze(spec, [(1, 3, 520, 520)])
    assert report.totals.params == params
    assert report.totals.macs == macs
    # both heads upsampled to the input size, in the dict's order
    assert [(o.key, o.shape) for o in report.outputs] == flat_shapes(out) == [
        ("['out']", (1, 21, 520, 520)), ("['aux']", (1, 21, 520, 520))]


@pytest.mark.parametrize("build", [DeepLabV3ResNet50, FCNResNet50], ids=["deeplabv3", "fcn"])
def test_segmentation_real_forward(build):
    # a non-square input whose sides are not multiples of 8: 49 -> conv1 25 -> maxpool 13 -> layer2 7
    # (then dilation keeps 7); 57 -> 29 -> 15 -> 8; both heads are upsampled back to 49x57
    check_against_torch(build, (1, 3, 49, 57))


def test_segmentation_output_stride_and_dilation():
    report = cnnshape.analyze(DeepLabV3ResNet50(), [(1, 3, 520, 520)])
    layers = {layer.name: layer for layer in report.layers}
    # output stride 8: 520 -> 260 (conv1) -> 130 (maxpool) -> 65 (layer2); layer3 and layer4 keep 65
    assert layers["backbone.layer2.0.conv2"].output_shape == (1, 128, 65, 65)
    assert layers["backbone.layer3.5.conv3"].output_shape == (1, 1024, 65, 65)
    assert layers["backbone.layer4.2.conv3"].output_shape == (1, 2048, 65, 65)
    # torchvision's _make_layer: the first block of a dilated layer keeps the previous dilation
    assert layers["backbone.layer3.0.conv2"].attr("dilation") == (1, 1)
    assert layers["backbone.layer3.1.conv2"].attr("dilation") == (2, 2)
    assert layers["backbone.layer4.0.conv2"].attr("dilation") == (2, 2)
    assert layers["backbone.layer4.1.conv2"].attr("dilation") == (4, 4)
    assert layers["classifier.0.convs.3.0"].attr("dilation") == (36, 36)


# -- video: R(2+1)D-18 and R3D-18 ---------------------------------------------------------------------

def test_r2plus1d_mid_planes_formula():
    # M = floor(27 * Nin * Nout / (9 * Nin + 3 * Nout)): 27*64*64 / (576 + 192) = 110592 / 768 = 144;
    # 27*64*128 / (576 + 384) = 221184 / 960 = 230.4 -> 230; 27*512*512 / (4608 + 1536) = 1152
    assert mid_planes(64, 64) == 144
    assert mid_planes(64, 128) == 230
    assert mid_planes(512, 512) == 1152
    model = R2Plus1D18()
    # both (2+1)D convs of a block use the block's M: layer2.0's second one maps 128 -> 230 -> 128
    assert model.layer2[0].conv1[0][0].out_channels == 230
    assert model.layer2[0].conv2[0][0].out_channels == 230
    assert model.layer2[0].conv2[0][0].kernel_size == (1, 3, 3)
    assert model.layer2[0].conv2[0][3].kernel_size == (3, 1, 1)


VIDEO = [
    # torchvision model cards: num_params, _ops at 16x112x112 (GMACs, see the module docstring)
    pytest.param(R2Plus1D18, "examples/video.py:R2Plus1D18", 31_505_325, 40.519, id="r2plus1d_18"),
    pytest.param(R3D18, "examples/video.py:R3D18", 33_371_472, 40.697, id="r3d_18"),
]


@pytest.mark.parametrize("build, spec, params, gmacs", VIDEO)
def test_video_resnet_at_16x112x112_matches_torch_and_the_model_card(build, spec, params, gmacs):
    model = meta_model(build)
    assert sum(p.numel() for p in model.parameters()) == params
    macs, out = torch_macs(model, (1, 3, 16, 112, 112), device="meta")
    assert round(macs / 1e9, 3) == gmacs
    report = cnnshape.analyze(spec, [(1, 3, 16, 112, 112)])
    assert report.totals.params == params
    assert report.totals.macs == macs
    assert [o.shape for o in report.outputs] == [tuple(out.shape)] == [(1, 400)]


@pytest.mark.parametrize("build", [R2Plus1D18, R3D18], ids=["r2plus1d_18", "r3d_18"])
def test_video_resnet_real_forward(build):
    # 5 frames: layer2..4 stride time too, 5 -> 3 -> 2 -> 1 (k3 s2 p1: (5 + 2 - 3) // 2 + 1 = 3)
    check_against_torch(build, (1, 3, 5, 40, 40))


def test_r2plus1d_feature_maps():
    report = cnnshape.analyze(R2Plus1D18(), [(1, 3, 16, 112, 112)])
    layers = {layer.name: layer for layer in report.layers}
    # stem: (1,7,7) s(1,2,2) p(0,3,3): 112 -> (112 + 6 - 7) // 2 + 1 = 56, then (3,1,1) p(1,0,0) keeps 16
    assert layers["stem.0"].output_shape == (1, 45, 16, 56, 56)
    assert layers["stem.3"].output_shape == (1, 64, 16, 56, 56)
    # layer2.0: the spatial conv strides H, W (56 -> 28), the temporal conv strides T (16 -> 8)
    assert layers["layer2.0.conv1.0.0"].output_shape == (1, 230, 16, 28, 28)
    assert layers["layer2.0.conv1.0.3"].output_shape == (1, 128, 8, 28, 28)
    assert layers["layer4.1.relu"].output_shape == (1, 512, 2, 7, 7)


# -- windowed 3-D attention ---------------------------------------------------------------------------

def test_window_partition_and_reverse_are_inverse():
    x = torch.randn(2, 8, 14, 21, 5)
    windows = window_partition(x, (4, 7, 7))
    # (8/4) * (14/7) * (21/7) = 12 windows per sample, 4*7*7 = 196 tokens each
    assert windows.shape == (2 * 12, 196, 5)
    assert torch.equal(window_reverse(windows, (4, 7, 7), 2, 8, 14, 21), x)


@pytest.mark.parametrize("tracer", ["auto", "eager"])
@pytest.mark.parametrize("shape, macs", [
    # the module docstring's arithmetic: 16 windows of 392 tokens, 3 heads of 32
    ((1, 8, 28, 28, 96), 1_165_688_832),
    # 6x25x25 is padded to 8x28x28 for attention, the MLP runs on the 3,750 real tokens
    ((1, 6, 25, 25, 96), 979_746_816),
])
def test_window_attention_block(shape, macs, tracer):
    assert check_against_torch(WindowAttentionBlock3d, shape, tracer) == macs
    report = cnnshape.analyze(WindowAttentionBlock3d(), [shape], tracer=tracer)
    # norm1 2*96 + qkv 96*288 + 288 + proj 96*96 + 96 + norm2 2*96 + fc1 96*384 + 384 + fc2 384*96 + 96
    assert report.totals.params == 111_840
    assert [o.shape for o in report.outputs] == [shape]


@pytest.mark.parametrize("shape", [(1, 3, 16, 112, 112), (1, 3, 12, 100, 100)])
def test_video_window_net(shape):
    check_against_torch(VideoWindowNet, shape)
    # patch embed 3*96*32 + 96 = 9,312; two blocks 223,680; norm 192; head 96*400 + 400 = 38,800
    assert cnnshape.analyze(VideoWindowNet(), [shape]).totals.params == 271_984
