"""Property-based: random chains of 2–3 layers against torch itself.

Each drawn model is an ``nn.Sequential`` of sliding-window layers (conv with every ``padding_mode``,
transposed conv, max/avg pooling), adaptive pooling and upsampling (nearest, and the linear mode of
its rank), on a batch of 1–3. torch runs it layer by layer on the CPU, each layer under its own
``FlopCounterMode``; then

* where torch runs every layer and no layer's output is empty (a 0-sized dimension), cnnshape's
  output shape, every row's shape and every row's MACs are torch's (MACs = FlopCounterMode's FLOPs
  / 2: torch counts a multiply-add as two FLOPs and gives pooling and interpolation none);
* otherwise cnnshape raises one of its own errors, naming the first layer torch failed at (or the
  first one with an empty output: torch carries on computing with empty tensors, cnnshape's rule
  is that every layer output is at least 1 along every dimension).

Under CI the examples are derandomized (tests/conftest.py), so a red build reproduces.
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
from cnnshape.errors import CnnshapeError

KINDS = ["conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_avg", "adaptive_max", "upsample"]
CLASSES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "conv_transpose": (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
    "max_pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
    "avg_pool": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
    "adaptive_avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
    "adaptive_max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
    "upsample": (nn.Upsample,) * 3,
}
LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


@st.composite
def layer(draw: st.DrawFn, nd: int, channels: int) -> tuple[str, dict[str, Any], int]:
    """(kind, constructor kwargs, output channels) for one layer reading ``channels`` channels."""
    kind = draw(st.sampled_from(KINDS))

    def per_axis(values: st.SearchStrategy[int]) -> Any:
        return draw(st.one_of(values, st.tuples(*[values] * nd)))

    kwargs: dict[str, Any] = {}
    out = channels
    if kind in ("conv", "conv_transpose"):
        groups = draw(st.sampled_from([1, 2])) if channels % 2 == 0 else 1
        out = groups * draw(st.integers(1, 3))
        kwargs.update(in_channels=channels, out_channels=out, groups=groups, kernel_size=per_axis(st.integers(1, 4)),
                      stride=per_axis(st.integers(1, 3)), dilation=per_axis(st.integers(1, 2)),
                      bias=draw(st.booleans()))
        if kind == "conv":
            kwargs["padding"] = draw(st.sampled_from([None, None, "same", "valid"])) or per_axis(st.integers(0, 3))
            # reflect needs padding < size, circular padding ≤ size: some draws break them
            kwargs["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        else:
            kwargs["padding"] = per_axis(st.integers(0, 2))
            kwargs["output_padding"] = per_axis(st.integers(0, 2))
    elif kind in ("max_pool", "avg_pool"):
        kwargs.update(kernel_size=per_axis(st.integers(1, 3)), stride=draw(st.one_of(st.none(), st.integers(1, 3))),
                      padding=per_axis(st.integers(0, 1)), ceil_mode=draw(st.booleans()))
        if kind == "max_pool":
            kwargs["dilation"] = per_axis(st.integers(1, 2))
        else:
            kwargs["count_include_pad"] = draw(st.booleans())
    elif kind in ("adaptive_avg", "adaptive_max"):
        # one size for every axis, or one per axis where None keeps that axis's size (the 1-d
        # adaptive pools take an int only)
        sizes = st.integers(1, 4)
        kwargs["output_size"] = draw(sizes if nd == 1 else st.one_of(sizes, st.tuples(*[st.none() | sizes] * nd)))
    else:
        mode = draw(st.sampled_from(["nearest", LINEAR_MODE[nd]]))
        kwargs["mode"] = mode
        if draw(st.booleans()):
            kwargs["scale_factor"] = draw(st.sampled_from([1, 2, 3, 0.5, 1.5]))
        else:
            kwargs["size"] = draw(st.integers(1, 9)) if nd == 1 else tuple(draw(st.integers(1, 9)) for _ in range(nd))
        if mode != "nearest":
            kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    return kind, kwargs, out


@st.composite
def chains(draw: st.DrawFn) -> dict[str, Any]:
    nd = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 4))
    layers, c = [], channels
    for _ in range(draw(st.integers(2, 3))):
        kind, kwargs, c = draw(layer(nd, c))
        layers.append((kind, kwargs))
    spatial = tuple(draw(st.integers(1, {1: 16, 2: 10, 3: 6}[nd])) for _ in range(nd))
    return {"nd": nd, "shape": (draw(st.integers(1, 3)), channels, *spatial), "layers": layers}


def build(chain: dict[str, Any]) -> nn.Sequential:
    return nn.Sequential(*[CLASSES[kind][chain["nd"] - 1](**kwargs) for kind, kwargs in chain["layers"]])


def run_torch(model: nn.Sequential, shape: tuple[int, ...]) -> tuple[list[tuple[int, ...]], list[int], int | None]:
    """Real CPU forward, layer by layer: each layer's output shape and FlopCounterMode FLOPs, and
    the index of the first layer that raises or outputs an empty tensor (None if none)."""
    x = torch.randn(shape)
    shapes: list[tuple[int, ...]] = []
    flops: list[int] = []
    for i, module in enumerate(model):
        try:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                x = module(x)
        except (RuntimeError, ValueError):
            return shapes, flops, i
        if 0 in x.shape:
            return shapes, flops, i
        shapes.append(tuple(x.shape))
        flops.append(counter.get_total_flops())
    return shapes, flops, None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_random_chain_matches_torch(chain: dict[str, Any]) -> None:
    try:
        model = build(chain).eval()
    except (ValueError, RuntimeError):
        assume(False)  # torch rejects it at construction (e.g. padding="same" with a stride)
        raise
    shape = chain["shape"]
    shapes, flops, failed_at = run_torch(model, shape)
    if failed_at is None:
        report = cnnshape.analyze(model, [shape])
        assert report.outputs[0].shape == shapes[-1]
        rows = {row.name: row for row in report.layers}
        for i, (real, f) in enumerate(zip(shapes, flops)):
            assert rows[str(i)].output_shape == real, i
            assert 2 * rows[str(i)].macs == f, (i, rows[str(i)].macs, f)
        assert 2 * report.totals.macs == sum(flops)
    else:
        with pytest.raises(CnnshapeError) as info:
            cnnshape.analyze(model, [shape])
        message = str(info.value)
        name = type(model[failed_at]).__name__
        assert f"'{failed_at}'" in message and name in message, (failed_at, name, message)


@pytest.mark.parametrize("mode, shape", [
    ("linear", (1, 1, 1)), ("bilinear", (1, 1, 1, 4)), ("trilinear", (1, 1, 2, 1, 2)),
])
def test_linear_upsampling_to_zero_is_rejected(mode: str, shape: tuple[int, ...]) -> None:
    # scale 0.5 on a size-1 axis: floor(1 · 0.5) = 0 output pixels; torch's CPU forward refuses it
    model = nn.Sequential(nn.Upsample(scale_factor=0.5, mode=mode))
    with pytest.raises(RuntimeError, match="Input and output sizes should be greater than 0"):
        model(torch.randn(shape))
    # refused at the op itself (cnnshape/trace/refusals.py), with the arithmetic and the input it needs
    with pytest.raises(CnnshapeError, match=rf"Upsample '0' receives {'x'.join(map(str, shape))} .*: {mode} "
                                            r"upsampling .* floor\(1·0\.5\) = 0 pixels .* input of at least 2"):
        cnnshape.analyze(model, [shape])


@pytest.mark.parametrize("model, shape, expected", [
    # output_padding 1 is not below stride 1 or dilation 1: torch's CPU forward refuses layer 0; on
    # meta it gives (1 − 1)·1 + 0 + 1 + 1 = 2 columns, which the pool (padding 1 > kernel 1 / 2) refuses
    (nn.Sequential(nn.ConvTranspose1d(2, 1, 1, output_padding=1), nn.AvgPool1d(1, padding=1)), (1, 2, 1),
     r"output_padding=1 along spatial axis 0 must be smaller than its stride \(1\) or its dilation \(1\).*"
     r"at most 0"),
    # (H − 1)·1 − 2·3 + 3·(2 − 1) + 2 + 1 = H − 1: at H = 1 layer 0's output is empty; torch's CPU
    # forward refuses layer 0 ("too small"), the 3x3 conv then refuses the empty map
    # the fixes the message gives: W = 2 gives (2 − 1)·1 − 2·3 + 3 + 2 + 1 = 1 row; padding 2 gives
    # (1 − 1)·1 − 2·2 + 3 + 2 + 1 = 2 rows
    (nn.Sequential(nn.ConvTranspose2d(1, 1, 2, padding=3, dilation=3, output_padding=2), nn.Conv2d(1, 1, 3)),
     (1, 1, 1, 2), r"its output would be 0x1, empty along spatial axis 0: .* = \(1−1\)·1 − 2·3 \+ 3·\(2−1\) \+ 2 "
                   r"\+ 1 = 0; .* input of at least 2 there, or padding at most 2"),
], ids=["output_padding", "empty_output"])
def test_rejected_transposed_conv_is_named_before_the_next_layer(model: nn.Sequential, shape: tuple[int, ...],
                                                                  expected: str) -> None:
    with pytest.raises(RuntimeError):
        model[0](torch.randn(shape))
    # refused at the op itself (cnnshape/trace/refusals.py), before the next layer sees its meta output
    for tracer in ("fx", "eager"):
        with pytest.raises(CnnshapeError, match=rf"^{type(model[0]).__name__} '0' receives {'x'.join(map(str, shape))} "
                                                rf"\(the model input 'input'\): {expected}"):
            cnnshape.analyze(model, [shape], tracer=tracer)
