"""Output shapes against torch's own forward pass.

Every example model: the final outputs and every leaf module's output shape equal what a real CPU
forward produces (collected with forward hooks). A property-based test draws random sliding-window
layers and inputs: cnnshape's size arithmetic and report agree with torch's forward, and where
torch rejects a configuration, cnnshape raises one of its own errors with a clear message.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from cnnshape import arith
from cnnshape.errors import CnnshapeError
from cnnshape.load import load_model

from .cases import EXAMPLES, Example


def _flat_shapes(value: Any) -> list[tuple[int, ...]]:
    """Tensor shapes of a (nested) output in pytree order, as cnnshape flattens them."""
    leaves = torch.utils._pytree.tree_leaves(value)
    return [tuple(t.shape) for t in leaves if isinstance(t, torch.Tensor)]


def _real_forward(spec: str, inputs: list[tuple[int, ...]]) -> tuple[Any, dict[str, list[tuple[int, ...]]]]:
    """Build the model on the CPU, run it on random inputs and record each leaf module's output
    shape per call (a module called twice has two entries)."""
    # built on meta, then given uninitialised CPU storage: shapes do not depend on the values,
    # and this skips the weight initialisation that dominates the CPU construction time
    model = load_model(spec).module.to_empty(device="cpu").eval()
    seen: dict[str, list[tuple[int, ...]]] = {}
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
                seen.setdefault(name, []).append(_flat_shapes(out)[0])
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        out = model(*[torch.randn(s) for s in inputs])
    for h in hooks:
        h.remove()
    return out, seen


#: smaller inputs than the canonical ones for the models whose CPU forward is slow (each accepts
#: any size above a minimum: adaptive pooling before the classifier, U-Net multiples of 16)
SMALLER = {
    "examples/alexnet.py:AlexNet": [(1, 3, 96, 96)],
    "examples/vgg.py:VGG16": [(1, 3, 64, 64)],
    "examples/resnet.py:ResNet18": [(1, 3, 64, 64)],
    "examples/resnet.py:ResNet34": [(1, 3, 64, 64)],
    "examples/resnet.py:ResNet50": [(1, 3, 64, 64)],
    "examples/mobilenet.py:MobileNetV2": [(1, 3, 64, 64)],
    "examples/unet.py:UNet": [(1, 1, 64, 48)],
    "examples/conv3d.py:C3DSmall": [(1, 3, 8, 32, 32)],
    "examples/textbook.py:Conv7Pool3": [(1, 3, 64, 64)],
}


@pytest.mark.parametrize("case", EXAMPLES, ids=lambda c: c.spec.split("/")[-1])
def test_example_shapes_equal_real_forward(case: Example) -> None:
    inputs = SMALLER.get(case.spec, case.inputs)
    out, per_module = _real_forward(case.spec, inputs)
    report = cnnshape.analyze(case.spec, inputs)
    assert [o.shape for o in report.outputs] == _flat_shapes(out)
    # every leaf module call: the row's output shape is the hook's
    rows: dict[str, list[tuple[int, ...] | None]] = {}
    for layer in report.layers:
        if layer.kind == "module":
            rows.setdefault(layer.name.split("#")[0], []).append(layer.output_shape)
    assert rows == per_module


def test_example_output_shape_as_documented() -> None:
    # examples/README.md: TwoInputNet -> (logits 1x10, features 1x48), keys of the tuple kept
    report = cnnshape.analyze("examples/multi_io.py:TwoInputNet", [(1, 3, 32, 32), (1, 10)])
    assert [(o.key, o.shape) for o in report.outputs] == [("[0]", (1, 10)), ("[1]", (1, 48))]
    report = cnnshape.analyze("examples/multi_io.py:DictOutputNet", [(1, 3, 32, 32)])
    assert {o.key: o.shape for o in report.outputs} == {"['logits']": (1, 10), "['embedding']": (1, 128)}


# --- closed forms -----------------------------------------------------------------------------


def test_conv_out_textbook() -> None:
    # (W − F + 2P)/S + 1: (227 − 11 + 0)/4 + 1 = 55 (AlexNet conv1); (224 − 7 + 6)/2 + 1 = 112
    assert arith.conv_out(227, 11, 4, 0) == 55
    assert arith.conv_out(224, 7, 2, 3) == 112
    # dilation 2, kernel 3 spans 5: (64 + 2·2 − 2·2 − 1)/1 + 1 = 64
    assert arith.conv_out(64, 3, 1, 2, 2) == 64


def test_pool_out_ceil_mode() -> None:
    # 112 → (112 + 2 − 3)/2 + 1 = 56.5 → floor 56
    assert arith.pool_out(112, 3, 2, 1) == 56
    # ceil: (7 − 2)/2 + 1 = 3.5 → 4 (GoogLeNet-style ceil_mode)
    assert arith.pool_out(7, 2, 2, 0, 1, True) == 4
    # ceil would start the last window in the right padding: (5 + 2 − 2)/2 = 2.5 → 4, dropped → 3
    assert arith.pool_out(5, 2, 2, 1, 1, True) == 3


def test_conv_transpose_out() -> None:
    # (W − 1)·S − 2P + D·(F − 1) + output_padding + 1: (4 − 1)·2 − 2 + 3 + 1 + 1 = 9
    assert arith.conv_transpose_out(4, 4, 2, 1, 1, 1) == 9
    # DCGAN first layer: 1x1 → (1 − 1)·1 − 0 + 4 − 1 + 1 = 4
    assert arith.conv_transpose_out(1, 4) == 4


def test_same_padding_split() -> None:
    # kernel 4 needs 3 pixels of padding: 1 on the left, 2 on the right (torch puts the extra right)
    assert arith.same_padding(4) == (1, 2)
    # kernel 3 dilation 3: 3·2 = 6 → 3 + 3
    assert arith.same_padding(3, 3) == (3, 3)


# --- property-based: random sliding-window layers ---------------------------------------------

_sizes = st.integers(1, 3)


@st.composite
def layer_configs(draw: st.DrawFn) -> dict[str, Any]:
    nd = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["conv", "conv_transpose", "max_pool", "avg_pool"]))

    def per_axis(values: st.SearchStrategy[int]) -> Any:
        """One value for every axis, or a tuple with one per axis."""
        return draw(st.one_of(values, st.tuples(*[values] * nd)))

    cfg: dict[str, Any] = {"nd": nd, "kind": kind, "batch": draw(st.integers(1, 3)),
                           "kernel_size": per_axis(st.integers(1, 4)), "stride": per_axis(st.integers(1, 3))}
    spatial_max = {1: 12, 2: 9, 3: 6}[nd]
    cfg["spatial"] = tuple(draw(st.integers(1, spatial_max)) for _ in range(nd))
    if kind in ("conv", "conv_transpose"):
        cfg["groups"] = draw(st.sampled_from([1, 1, 2]))
        cfg["in_channels"] = cfg["groups"] * draw(_sizes)
        cfg["out_channels"] = cfg["groups"] * draw(_sizes)
        cfg["dilation"] = per_axis(st.integers(1, 3))
        cfg["bias"] = draw(st.booleans())
        if kind == "conv":
            named = draw(st.sampled_from([None, None, "same", "valid"]))
            cfg["padding"] = named or per_axis(st.integers(0, 3))
            # reflect needs padding < size, circular padding ≤ size: some draws break them
            cfg["padding_mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        else:
            cfg["padding"] = per_axis(st.integers(0, 3))
            # output_padding must stay below stride or dilation: draw up to 3 so some configs break it
            cfg["output_padding"] = per_axis(st.integers(0, 3))
    else:
        cfg["in_channels"] = draw(_sizes)
        cfg["padding"] = per_axis(st.integers(0, 2))
        cfg["ceil_mode"] = draw(st.booleans())
        if kind == "max_pool":
            cfg["dilation"] = per_axis(st.integers(1, 3))
        else:
            cfg["count_include_pad"] = draw(st.booleans())
    return cfg


def _build(cfg: dict[str, Any]) -> nn.Module:
    nd = cfg["nd"]
    kwargs = {k: v for k, v in cfg.items() if k not in ("nd", "kind", "spatial", "batch")}
    cls = {
        "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
        "conv_transpose": (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
        "max_pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
        "avg_pool": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
    }[cfg["kind"]][nd - 1]
    if cfg["kind"] in ("max_pool", "avg_pool"):
        kwargs.pop("in_channels")
    return nn.Sequential(cls(**kwargs))


def _arith_size(cfg: dict[str, Any]) -> tuple[int, ...]:
    """The output size from cnnshape.arith alone, per spatial axis."""
    nd = cfg["nd"]
    t = lambda key, default: arith.as_tuple(cfg.get(key, default), nd)  # noqa: E731
    kernel, stride, dilation = t("kernel_size", 1), t("stride", 1), t("dilation", 1)
    out = []
    for axis, size in enumerate(cfg["spatial"]):
        k, s, d = kernel[axis], stride[axis], dilation[axis]
        if cfg["kind"] == "conv_transpose":
            out.append(arith.conv_transpose_out(size, k, s, t("padding", 0)[axis], d,
                                                t("output_padding", 0)[axis]))
        elif cfg["kind"] == "conv":
            padding = cfg["padding"]
            if padding == "same":
                lo, hi = arith.same_padding(k, d)
                out.append(arith.conv_out(size + lo + hi, k, s, 0, d))
            else:
                p = 0 if padding == "valid" else t("padding", 0)[axis]
                out.append(arith.conv_out(size, k, s, p, d))
        else:
            out.append(arith.pool_out(size, k, s, t("padding", 0)[axis], d, cfg["ceil_mode"]))
    return tuple(out)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_configs())
def test_random_layer_matches_torch(cfg: dict[str, Any]) -> None:
    try:
        model = _build(cfg)
    except (ValueError, RuntimeError):
        assume(False)  # torch rejects it at construction: nothing for cnnshape to analyse
        raise
    x_shape = (cfg["batch"], cfg["in_channels"], *cfg["spatial"])
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            real: tuple[int, ...] | None = tuple(model(torch.randn(x_shape)).shape)
        torch_error = None
    except (RuntimeError, ValueError) as e:
        real, torch_error = None, e
    if real is not None and 0 in real:
        # grouped ConvTranspose on the CPU returns an empty tensor where the ungrouped one raises
        # "Output size is too small": an empty output is a rejection too
        real, torch_error = None, None
    if real is not None:
        assert real[2:] == _arith_size(cfg)
        report = cnnshape.analyze(model, [x_shape])
        assert report.outputs[0].shape == real
        row = next(layer for layer in report.layers if layer.name == "0")
        assert row.output_shape == real
        # torch counts a multiply-add as 2 FLOPs (flop_counter.py: conv_flop_count), cnnshape as 1 MAC;
        # pooling is 0 MACs for both
        assert 2 * report.totals.macs == 2 * row.macs == counter.get_total_flops()
    else:
        with pytest.raises(CnnshapeError) as info:
            cnnshape.analyze(model, [x_shape])
        message = str(info.value)
        # names the layer and its type, and says what it received; never the raw torch text alone
        assert "'0'" in message and type(model[0]).__name__ in message, (message, torch_error)
        assert "x".join(map(str, x_shape)) in message, message


def test_too_small_input_is_explained() -> None:
    # 5x5 conv on a 3x3 input: floor((3 + 0 − 1·4 − 1)/1) + 1 = −1 < 1
    model = nn.Sequential(nn.Conv2d(1, 1, 5))
    with pytest.raises(cnnshape.ShapeError, match=r"Conv2d '0' receives 1x1x3x3.*too small.*at least 5"):
        cnnshape.analyze(model, [(1, 1, 3, 3)])


def test_same_padding_even_kernel() -> None:
    # padding="same" with an even kernel pads asymmetrically; the size stays: 10 → 10
    model = nn.Sequential(nn.Conv2d(1, 2, 4, padding="same", dilation=(1, 2)))
    report = cnnshape.analyze(model, [(1, 1, 10, 7)])
    assert report.outputs[0].shape == (1, 2, 10, 7) == tuple(model(torch.randn(1, 1, 10, 7)).shape)


def test_output_padding_not_below_stride_or_dilation_is_rejected() -> None:
    # torch's real forward raises for output_padding ≥ both stride and dilation; the meta kernel
    # does not, so cnnshape checks it itself
    model = nn.Sequential(nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2))
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 1, 4, 4))
    with pytest.raises(cnnshape.ShapeError, match=r"ConvTranspose2d '0'.*output_padding=2.*stride \(2\)"):
        cnnshape.analyze(model, [(1, 1, 4, 4)])


def test_empty_transposed_output_is_rejected() -> None:
    # per axis (W − 1)·1 − 2·3 + 3·(2 − 1) + 2 + 1: W=1 → 0, W=2 → 1. The meta kernel returns an
    # empty 0x1 tensor here where a real forward raises
    model = nn.Sequential(nn.ConvTranspose2d(1, 1, 2, padding=3, dilation=3, output_padding=2))
    with pytest.raises(RuntimeError, match="too small"):
        model(torch.randn(1, 1, 1, 2))
    with pytest.raises(cnnshape.ShapeError, match=r"ConvTranspose2d '0' receives 1x1x1x2.*0x1.*empty"):
        cnnshape.analyze(model, [(1, 1, 1, 2)])
