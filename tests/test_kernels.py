"""cnnshape's own meta kernels against torch's: same shape, dtype and layout wherever ours answer,
and never an answer where torch refuses the call (ours must then hand over to torch)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnshape import analyze
from cnnshape.trace.kernels import KERNELS, compare

aten = torch.ops.aten
ROOT = Path(__file__).resolve().parent.parent


def meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def agree(func: Any, *args: Any) -> bool:
    """Ours equals torch's (or ours declined); torch refusing means ours must decline too.
    True when ours answered."""
    kernel = KERNELS.get(str(func))
    assert kernel is not None, f"no kernel for {func}"
    ours = kernel(args, {})
    try:
        theirs = func(*args)
    except Exception:
        assert ours is None, f"{func}{[getattr(a, 'shape', a) for a in args]}: torch refuses, ours answered"
        return False
    if ours is not None:
        compare(str(func), ours, theirs)
    return ours is not None


@settings(max_examples=300, deadline=None)
@given(nd=st.integers(1, 3), transposed=st.booleans(), groups=st.sampled_from([1, 2, 3]),
       c=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 3), d=st.integers(1, 2),
       op=st.integers(0, 2), w=st.integers(1, 9), bias=st.booleans(), c_mismatch=st.booleans())
def test_convolution(nd: int, transposed: bool, groups: int, c: int, k: int, s: int, p: int, d: int, op: int,
                     w: int, bias: bool, c_mismatch: bool) -> None:
    c_in, c_out = c * groups + (1 if c_mismatch else 0), 2 * groups
    weight = meta(c_in, c_out // groups, *[k] * nd) if transposed else meta(c_out, c_in // groups or 1, *[k] * nd)
    if c_mismatch:
        weight = meta(c_out, c, *[k] * nd) if not transposed else meta(c * groups, c_out // groups, *[k] * nd)
    b = meta(c_out) if bias else None
    agree(aten.convolution.default, meta(2, c_in, *[w] * nd), weight, b, [s] * nd, [p] * nd, [d] * nd,
          transposed, [op if transposed else 0] * nd, groups)


def test_convolution_answers_the_plain_case() -> None:
    # floor((224 + 2·3 − 7)/2) + 1 = 112
    out = KERNELS.get("aten.convolution.default")(
        (meta(1, 3, 224, 224), meta(64, 3, 7, 7), None, [2, 2], [3, 3], [1, 1], False, [0, 0], 1), {})
    assert out.shape == (1, 64, 112, 112)


@pytest.mark.parametrize("layout", ["channels_last_input", "channels_last_weight", "strided_input", "mixed_dtype"])
def test_unusual_layouts_and_dtypes_go_to_torch(layout: str) -> None:
    x, w = meta(1, 8, 5, 5), meta(4, 8, 1, 1)
    if layout == "channels_last_input":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "channels_last_weight":  # a 1x1 weight is "contiguous" either way; torch still follows it
        w = torch.empty_strided((4, 8, 1, 1), (8, 1, 8, 8), device="meta")
    elif layout == "strided_input":
        x = meta(1, 8, 5, 10)[..., ::2]
    else:
        w = meta(4, 8, 1, 1, dtype=torch.float16)
    args = (x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert KERNELS.get("aten.convolution.default")(args, {}) is None
    agree(aten.convolution.default, *args)


@settings(max_examples=200, deadline=None)
@given(nd=st.integers(2, 3), k=st.integers(1, 4), s=st.integers(0, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       ceil=st.booleans(), w=st.integers(1, 9), batched=st.booleans(), count_pad=st.booleans())
def test_pooling(nd: int, k: int, s: int, p: int, d: int, ceil: bool, w: int, batched: bool, count_pad: bool) -> None:
    x = meta(*([2] if batched else []), 3, *[w] * nd)
    stride = [s] * nd if s else []
    max_pool = getattr(aten, f"max_pool{nd}d_with_indices").default
    avg_pool = getattr(aten, f"avg_pool{nd}d").default
    agree(max_pool, x, [k] * nd, stride, [p] * nd, [d] * nd, ceil)
    agree(avg_pool, x, [k] * nd, stride, [p] * nd, ceil, count_pad, None)
    agree(getattr(aten, f"_adaptive_avg_pool{nd}d").default, x, [max(k, 1)] * nd)


SHAPES = st.lists(st.sampled_from([1, 2, 3]), min_size=0, max_size=4).map(tuple)


@settings(max_examples=300, deadline=None)
@given(a=SHAPES, b=SHAPES, op=st.sampled_from(["add.Tensor", "mul.Tensor", "sub.Tensor", "div.Tensor",
                                               "maximum.default", "add_.Tensor", "mul_.Tensor"]),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]), other_dtype=st.booleans(),
       expand=st.sampled_from(["none", "first", "second"]))
def test_binary_elementwise(a: tuple[int, ...], b: tuple[int, ...], op: str, dtype: torch.dtype,
                            other_dtype: bool, expand: str) -> None:
    packet, overload = op.split(".")
    func = getattr(getattr(aten, packet), overload)
    x, y = meta(*a, dtype=dtype), meta(*b, dtype=torch.float64 if other_dtype else dtype)
    try:  # x.expand_as(y), as SE blocks write it (stride 0 along the expanded axes)
        x, y = (x.expand_as(y), y) if expand == "first" else (x, y.expand_as(x)) if expand == "second" else (x, y)
    except RuntimeError:
        pass
    agree(func, x, y)


@pytest.mark.parametrize("op, args", [
    ("relu.default", ()), ("relu_.default", ()), ("hardtanh_.default", (0.0, 6.0)), ("sigmoid.default", ()),
    ("silu_.default", ()), ("gelu.default", ()), ("clamp.default", (0.0, None)), ("add.Scalar", (2,)),
    ("mul.Scalar", (0.5,)), ("leaky_relu_.default", (0.1,)), ("pow.Tensor_Scalar", (2,)),
])
def test_unary_elementwise(op: str, args: tuple[Any, ...]) -> None:
    packet, overload = op.split(".")
    assert agree(getattr(getattr(aten, packet), overload), meta(2, 3, 4, 4), *args)


def test_comparisons_have_no_kernel() -> None:
    # their result is bool, not the inputs' dtype: torch's kernel runs
    assert KERNELS.get("aten.gt.Tensor") is None and KERNELS.get("aten.eq.Scalar") is None


@pytest.mark.parametrize("training", [False, True])
def test_batch_norm(training: bool) -> None:
    c = meta(8)
    assert agree(aten.native_batch_norm.default, meta(2, 8, 5, 5), c, c, c, c, training, 0.1, 1e-5)
    assert not agree(aten.native_batch_norm.default, meta(2, 7, 5, 5), c, c, c, c, training, 0.1, 1e-5)


@pytest.mark.parametrize("dims, keepdim", [([2, 3], True), ([-1, -2], False), ([1], False), ([0, 0], False)])
def test_mean(dims: list[int], keepdim: bool) -> None:
    agree(aten.mean.dim, meta(2, 3, 4, 5), dims, keepdim)
    agree(aten.sum.dim_IntList, meta(2, 3, 4, 5), dims, keepdim)


@pytest.mark.parametrize("shapes, dim", [([(2, 3, 4), (2, 5, 4)], 1), ([(2, 3, 4), (2, 3, 4)], -1),
                                         ([(2, 3, 4), (2, 5, 5)], 1), ([(2, 3), (2, 3, 4)], 0)])
def test_cat(shapes: list[tuple[int, ...]], dim: int) -> None:
    agree(aten.cat.default, [meta(*s) for s in shapes], dim)


@pytest.mark.parametrize("shapes, dim", [([(2, 3), (2, 3), (2, 3)], 0), ([(2, 3), (2, 3)], -1), ([(2, 3), (2, 3)], 2),
                                         ([(2, 3), (2, 4)], 0), ([(2, 3)], -4)])
def test_stack(shapes: list[tuple[int, ...]], dim: int) -> None:
    agree(aten.stack.default, [meta(*s) for s in shapes], dim)


@pytest.mark.parametrize("bias, k", [((10,), 20), ((1, 10), 20), ((3, 10), 20), ((10,), 19), ((4,), 20)])
def test_addmm(bias: tuple[int, ...], k: int) -> None:
    weight = meta(10, 20)  # as F.linear passes it: the transposed weight, a view
    agree(aten.addmm.default, meta(*bias), meta(3, k), weight.t())


def test_analysis_never_imports_dynamo() -> None:
    # torch's Python meta kernels import torch._dynamo (~1 s) on first use; a model made of
    # standard layers must not need any of them (construction skips initialisers, the tracers
    # use cnnshape's kernels)
    env = {k: v for k, v in os.environ.items() if k != "CNNSHAPE_CROSS_CHECK"}
    code = ("import sys, cnnshape\n"
            "for spec, shape in [('examples/resnet.py:ResNet50', '1,3,224,224'),"
            " ('examples/mobilenet.py:MobileNetV2', '1,3,224,224'), ('examples/senet.py:SENet', '1,3,224,224')]:\n"
            "    for tracer in ('fx', 'eager'):\n"
            "        cnnshape.analyze(spec, shape, tracer=tracer)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


class EveryLayer(nn.Module):
    """Each torch.nn layer cnnshape calls without its forward (cnnshape/trace/layers.py), in the
    configurations that change the ATen calls torch makes."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.ReLU(), nn.ReLU6(),
            nn.ReLU6(inplace=True), nn.Conv2d(8, 8, 3, stride=2, dilation=2, groups=4, bias=False),
            nn.BatchNorm2d(8, eps=1e-3, affine=False), nn.SiLU(inplace=True), nn.Hardswish(), nn.Hardsigmoid(),
            nn.Tanh(),
            nn.MaxPool2d(3), nn.ConvTranspose2d(8, 8, 4, 2, 1, output_padding=1), nn.Sigmoid(),
            nn.MaxPool2d(2, 1, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
            nn.AvgPool2d(2), nn.Dropout(0.5), nn.Identity(), nn.AdaptiveAvgPool2d((3, None)),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 6), nn.BatchNorm1d(6), nn.Linear(6, 4, bias=False),
        )
        self.video = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4), nn.MaxPool3d(2), nn.AvgPool3d(2),
                                   nn.ConvTranspose3d(4, 2, 2, 2))
        self.signal = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ConvTranspose1d(4, 2, 3), nn.Flatten(0, 1))

    def forward(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.body(x), self.video(v), self.signal(s)


@pytest.mark.parametrize("train", [False, True])
def test_layers_called_directly_record_what_their_forward_records(train: bool) -> None:
    # cross_check runs every such layer's forward too and fails if its calls or output differ
    report = analyze(EveryLayer(), [(2, 3, 33, 33), (1, 2, 8, 8, 8), (2, 2, 10)], tracer="fx", train=train,
                     cross_check=True)
    # body, per side: 33 -> conv p1: 33 -> k3 s2 d2 (span 5): floor((33 − 5)/2) + 1 = 15 -> maxpool 3: 5 ->
    # convT k4 s2 p1 op1: (5 − 1)·2 − 2 + 3 + 1 + 1 = 11 -> maxpool k2 s1 p1 ceil: 12 -> avgpool k3 s2 p1 ceil:
    # ceil((12 + 2 − 3)/2) + 1 = 7 -> avgpool 2: 3 -> adaptive (3, None): 3x3 -> adaptive 1 -> flatten 8 ->
    # Linear(8, 6), BatchNorm1d, Linear(6, 4): (2, 4).
    # video: 8 -> conv p1: 8 -> maxpool 2: 4 -> avgpool 2: 2 -> convT k2 s2: (2 − 1)·2 + 2 = 4.
    # signal: 10 -> conv k3: 8 -> convT k3: 10 -> Flatten(0, 1) of 2x2x10: 4x10.
    assert [o.shape for o in report.outputs] == [(2, 4), (1, 2, 4, 4, 4), (4, 10)]


def test_eval_batch_norm_without_momentum() -> None:
    # momentum=None (cumulative average) passes 0.0 to native_batch_norm in eval mode
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, momentum=None))
    assert analyze(model, [(1, 3, 5, 5)], cross_check=True).outputs[0].shape == (1, 4, 5, 5)


def test_trailing_defaults_left_out_by_the_dispatcher_are_put_back() -> None:
    # torch dispatches max_pool2d(x, 3, 2, 1) as (x, [3, 3], [2, 2], [1, 1]): dilation and
    # ceil_mode are left out; ours must still answer, with floor((112 + 2 − 3)/2) + 1 = 56
    from cnnshape.trace.kernels import run
    out = run(aten.max_pool2d_with_indices.default, (meta(1, 64, 112, 112), [3, 3], [2, 2], [1, 1]), {},
              cross_check=True)
    assert out[0].shape == (1, 64, 56, 56)
    assert KERNELS.get("aten.max_pool2d_with_indices.default")(
        (meta(1, 64, 112, 112), [3, 3], [2, 2], [1, 1]), {}) is None  # the kernel alone needs all six


def test_cli_cross_check_catches_a_wrong_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # a conv kernel that answers one channel too many: only --cross-check can notice
    from typer.testing import CliRunner

    from cnnshape.cli import app
    from cnnshape.trace import kernels

    right = KERNELS.get("aten.convolution.default")

    def wrong(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        out = right(args, kwargs)
        return None if out is None else meta(out.shape[0], out.shape[1] + 1, *out.shape[2:])

    monkeypatch.setitem(kernels.KERNELS._table, "aten.convolution.default", wrong)
    monkeypatch.delenv("CNNSHAPE_CROSS_CHECK")
    argv = ["summary", "examples/lenet.py:LeNet5", "--input", "1,1,32,32"]
    checked = CliRunner().invoke(app, [*argv, "--cross-check"])
    assert checked.exit_code == 2 and "meta kernel for aten.convolution.default" in checked.output


# --- sizes the real kernels refuse and torch's meta kernels accept (cnnshape/trace/refusals.py) ---


def refusal(func: Any, device: str, *args: Any) -> str | None:
    """The type of the error ``func`` raises for ``args`` (tensor shapes given as tuples) on ``device``,
    ``"empty"`` for an empty output from a non-empty batch of channels, else None: torch's CPU
    kernel, or on meta what the recorder runs (cnnshape's kernels and size checks, torch's meta kernels)."""
    from cnnshape.trace.kernels import run
    tensors = tuple((torch.randn(a) if device == "cpu" else meta(*a)) if isinstance(a, tuple) else a for a in args)
    try:
        out = func(*tensors) if device == "cpu" else run(func, tensors, {}, cross_check=True)
    except RuntimeError as e:
        return type(e).__name__
    return "empty" if out.numel() == 0 and 0 not in tensors[0].shape[:2] else None


def refused_alike(func: Any, *args: Any) -> None:
    """The recorder refuses on meta what the CPU refuses or leaves empty (cnnshape's rule: every layer
    output is at least 1 along every axis; the CPU's transposed convs refuse an empty output or
    return it, by backend), and cnnshape's size checks refuse nothing else (torch's own meta kernels
    are stricter in a few degenerate cases: an empty batch and an empty map together)."""
    cpu, on_meta = refusal(func, "cpu", *args), refusal(func, "meta", *args)
    assert on_meta is not None if cpu is not None else on_meta != "SizeRefusal", (cpu, on_meta)


@settings(max_examples=300, deadline=None)
@given(nd=st.integers(1, 3), transposed=st.booleans(), k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 3),
       d=st.integers(1, 3), op=st.integers(0, 3), w=st.integers(0, 4), batch=st.integers(0, 2))
def test_convolution_is_refused_on_meta_where_the_cpu_refuses_it(nd: int, transposed: bool, k: int, s: int, p: int,
                                                                 d: int, op: int, w: int, batch: int) -> None:
    # torch's meta kernel gives an output for an output_padding not below stride or dilation, an empty
    # transposed output and an empty spatial input; the CPU refuses each (not with an empty batch;
    # an empty transposed output it refuses or returns, by backend)
    weight = (2, 3, *[k] * nd)
    x = (batch, 2 if transposed else 3, *[w] * nd)
    refused_alike(aten.convolution.default, x, weight, None, [s] * nd, [p] * nd, [d] * nd, transposed,
                  [op if transposed else 0] * nd, 1)


@settings(max_examples=300, deadline=None)
@given(mode=st.sampled_from([("upsample_linear1d", 1), ("upsample_bilinear2d", 2), ("upsample_trilinear3d", 3),
                              ("upsample_bicubic2d", 2), ("_upsample_bilinear2d_aa", 2), ("upsample_nearest2d", 2),
                              ("_upsample_nearest_exact3d", 3)]),
       w=st.integers(0, 3), out=st.integers(0, 3), scale=st.sampled_from([None, 0.5, 2.0]))
def test_interpolation_is_refused_on_meta_where_the_cpu_refuses_it(mode: tuple[str, int], w: int, out: int,
                                                                   scale: float | None) -> None:
    # torch's meta kernels for the linear modes give an empty output where the CPU refuses it
    func, nd = getattr(aten, mode[0]).default, mode[1]
    extra = () if "nearest" in mode[0] else (False,)
    refused_alike(func, (1, 2, w, *[2] * (nd - 1)), [out] + [2] * (nd - 1), *extra, *[scale] * nd)


@pytest.mark.parametrize("op, args, message", [
    # (1 − 1)·2 − 2·2 + 1·(3 − 1) + 1 + 1 = 0: an input of 2 gives 2, padding 1 gives 2
    ("aten.convolution.default", ((1, 2, 1), (2, 3, 3), None, [2], [2], [1], True, [1], 1),
     r"its output would be 0, empty along spatial axis 0: .* = \(1−1\)·2 − 2·2 \+ 1·\(3−1\) \+ 1 \+ 1 = 0; .* "
     r"input of at least 2 there, or padding at most 1\.$"),
    ("aten.convolution.default", ((1, 2, 4, 4), (2, 3, 3, 3), None, [2, 2], [0, 0], [1, 3], True, [0, 3], 1),
     r"output_padding=3 along spatial axis 1 must be smaller than its stride \(2\) or its dilation \(3\); .* to at "
     r"most 2\.$"),
    ("aten.convolution.default", ((1, 3, 4, 0), (2, 3, 1, 1), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
     r"its input is empty along spatial axis 1 \(size 0\)"),
    # floor(3·0.25) = 0: 4 rows give 1
    ("aten.upsample_bilinear2d.default", ((1, 1, 3, 8), [0, 2], False, 0.25, 0.25),
     r"bilinear upsampling with scale_factor=0.25 gives floor\(3·0.25\) = 0 pixels along spatial axis 0: an empty "
     r"output \(0x2\), .* input of at least 4 there, or a scale_factor of at least 1/3\.$"),
    ("aten.upsample_nearest1d.default", ((1, 1, 3), [0]),
     r"nearest upsampling to 0 is empty along spatial axis 0, .* at least 1 pixel there\.$"),
])
def test_refusals_give_the_numbers_and_the_fix(op: str, args: tuple[Any, ...], message: str) -> None:
    from cnnshape.trace.kernels import run
    from cnnshape.trace.refusals import SizeRefusal
    packet, _, overload = op.removeprefix("aten.").partition(".")
    func = getattr(getattr(aten, packet), overload)
    with pytest.raises(RuntimeError):
        func(*(torch.randn(a) if isinstance(a, tuple) else a for a in args))
    with pytest.raises(SizeRefusal, match=message):
        run(func, tuple(meta(*a) if isinstance(a, tuple) else a for a in args), {})
