"""Rules for sliding windows, resampling and padding: conv, pooling, upsampling, pads.

Per axis, a sliding window with kernel k, stride s, padding p and dilation d (effective kernel
k' = d·(k−1)+1) gives (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019):

    r_out = r_in + (k'−1)·j_in,   j_out = j_in·s,   start_out = start_in + ((k'−1)/2 − p)·j_in
"""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from ...trace.records import OpCall, TensorMeta
from .records import AxisRF, ReceptiveField, Source
from .rules import RF_RULES, Rule, out_shape, per_axis, sliding, spatial_only


def window_axis(a: AxisRF, k: int, s: int, p: int, d: int) -> AxisRF:
    """The sliding-window recurrence on one axis."""
    eff = d * (k - 1) + 1
    if a.size is None:
        return AxisRF(None, a.jump * s, a.start)
    source: Source | None = ("window", (s, p, eff - 1), (a,)) if a.source else None
    return AxisRF(a.size + (eff - 1) * a.jump, a.jump * s, a.start + (Fraction(eff - 1, 2) - p) * a.jump, source)


def window(call: OpCall, rf: ReceptiveField, kernel: Sequence[int], stride: Sequence[int],
           padding: Sequence[int], dilation: Sequence[int]) -> ReceptiveField:
    """The sliding-window recurrence on every spatial axis of the op."""
    return sliding(call, rf, len(kernel),
                    lambda i, a: window_axis(a, kernel[i], stride[i], padding[i], dilation[i]))


@RF_RULES.register("aten.convolution", "aten._convolution", "aten.convolution_overrideable",
                   "aten.mkldnn_convolution", "aten.cudnn_convolution", "aten._slow_conv2d_forward")
@spatial_only
def conv(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Convolution (any dimensionality, dilated, padded; transposed when ``transposed``).

    Transposed (stride s, padding p, dilation d, kernel k): output unit o gathers the input units i
    with i·s in [o + p − d·(k−1), o + p], at most n = ceil((d·(k−1)+1)/s) of them, so
    r_out = r_in + (n−1)·j_in (the largest over units), j_out = j_in/s and
    start_out = start_in + (p − d·(k−1)/2)/s · j_in (the centre of that window)."""
    weight: TensorMeta = call.arg("weight")
    nd = len(weight.shape) - 2
    kernel = weight.shape[2:]
    stride = per_axis(call.arg("stride"), nd, 1)
    padding = per_axis(call.arg("padding"), nd, 0)
    dilation = per_axis(call.arg("dilation"), nd, 1)
    if not bool(call.arg("transposed", default=False)):
        return window(call, rf, kernel, stride, padding, dilation)

    def transposed(i: int, a: AxisRF) -> AxisRF:
        k, s, p, d = kernel[i], stride[i], padding[i], dilation[i]
        n = -(-(d * (k - 1) + 1) // s)
        size = None if a.size is None else a.size + (n - 1) * a.jump
        return AxisRF(size, a.jump / s, a.start + (p - Fraction(d * (k - 1), 2)) / s * a.jump)

    return sliding(call, rf, nd, transposed)


@RF_RULES.register("aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d",
                   "aten.max_pool1d_with_indices", "aten.max_pool2d_with_indices",
                   "aten.max_pool3d_with_indices", "aten.mkldnn_max_pool2d", "aten.mkldnn_max_pool3d")
@spatial_only
def max_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(input, kernel, stride=kernel, padding=0, dilation=1, ceil_mode): the window recurrence."""
    nd = window_rank(call)
    kernel = per_axis(call.arg("kernel_size"), nd, 1)
    stride = per_axis(call.arg("stride") or kernel, nd, 1)
    return window(call, rf, kernel, stride, per_axis(call.arg("padding"), nd, 0),
                  per_axis(call.arg("dilation"), nd, 1))


def window_rank(call: OpCall) -> int:
    """Spatial rank of a pooling/upsampling/padding op, from its name (``..._pool2d``: 2)."""
    for nd in (1, 2, 3):
        if f"{nd}d" in call.op:
            return nd
    raise ValueError(call.op)


@RF_RULES.register("aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d")
@spatial_only
def avg_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(input, kernel, stride=kernel, padding=0, ceil_mode, ...): no dilation."""
    nd = window_rank(call)
    kernel = per_axis(call.arg("kernel_size"), nd, 1)
    stride = per_axis(call.arg("stride") or kernel, nd, 1)
    return window(call, rf, kernel, stride, per_axis(call.arg("padding"), nd, 0), (1,) * nd)


@RF_RULES.register("aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d", "aten.adaptive_avg_pool1d",
                   "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d",
                   "aten.adaptive_avg_pool2d", "aten.adaptive_avg_pool3d")
@spatial_only
def adaptive_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Output size 1 on an axis: that axis becomes global. Input size W divisible by output size n:
    a pool with kernel = stride = W/n. Otherwise torch's windows [floor(i·W/n), ceil((i+1)·W/n))
    vary in size and are not on a regular grid: kernel = the largest window, stride W/n, and the
    RF is marked not aligned."""
    x: TensorMeta = call.arg("self", "input")
    nd = window_rank(call)
    ins, outs = x.shape[-nd:], out_shape(call)[-nd:]

    def adaptive(i: int, a: AxisRF) -> AxisRF:
        w, n = ins[i], outs[i]
        if n == 1 or a.size is None:
            return AxisRF(None, a.jump * w, a.start)
        k = max(-(-(u + 1) * w // n) - (u * w // n) for u in range(n))
        return AxisRF(a.size + (k - 1) * a.jump, a.jump * Fraction(w, n), a.start + Fraction(k - 1, 2) * a.jump)

    tracked = [p.dim - (len(rf.shape) - nd) for p in rf.places]
    aligned = rf.aligned and all(ins[i] % outs[i] == 0 or outs[i] == 1 for i in tracked if 0 <= i < nd)
    return sliding(call, rf, nd, adaptive, aligned)


def _resample(taps: int | None) -> Rule:
    """Upsampling by W_in -> W_out: jump shrinks by W_in/W_out. ``taps`` input units per output
    unit (None: nearest, 1). align_corners maps unit o to o·(W_in−1)/(W_out−1); otherwise to
    (o + 1/2)·W_in/W_out − 1/2 (the centre used as ``start``). Each also records its exact index
    map for unit boxes: nearest floor(o·W_in/W_out) (nearest-exact: floor((o + 1/2)·W_in/W_out)),
    the others the clamped taps around the mapped coordinate."""

    @spatial_only
    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        x: TensorMeta = call.arg("self", "input")
        nd = window_rank(call)
        align = taps is not None and bool(call.arg("align_corners", default=False))
        n_taps = taps or 1
        ins, outs = x.shape[-nd:], out_shape(call)[-nd:]

        def resample(i: int, a: AxisRF) -> AxisRF:
            w, n = ins[i], outs[i]
            if align and n > 1:
                jump, start = a.jump * Fraction(w - 1, n - 1), a.start
            else:
                jump = a.jump * Fraction(w, n)
                # the taps sit around the mapped coordinate itself
                start = a.start + (Fraction(w, n) - 1) / 2 * a.jump
            if a.size is None:
                return AxisRF(None, jump, start)
            source: Source | None
            if taps is None:
                source = ("nearest", (w, n, "exact" in call.op), (a,))
            else:
                source = ("taps", (w, n, taps, align), (a,))
            return AxisRF(a.size + (n_taps - 1) * a.jump, jump, start, source)

        return sliding(call, rf, nd, resample)

    rule.__doc__ = _resample.__doc__
    return rule


RF_RULES.add(_resample(None), "aten.upsample_nearest1d", "aten.upsample_nearest2d",
             "aten.upsample_nearest3d", "aten._upsample_nearest_exact1d",
             "aten._upsample_nearest_exact2d", "aten._upsample_nearest_exact3d")
RF_RULES.add(_resample(2), "aten.upsample_linear1d", "aten.upsample_bilinear2d",
             "aten.upsample_trilinear3d", "aten._upsample_bilinear2d_aa")
RF_RULES.add(_resample(4), "aten.upsample_bicubic2d", "aten._upsample_bicubic2d_aa")


@RF_RULES.register("aten.constant_pad_nd", "aten.reflection_pad1d", "aten.reflection_pad2d",
                   "aten.reflection_pad3d", "aten.replication_pad1d", "aten.replication_pad2d",
                   "aten.replication_pad3d")
@spatial_only
def pad(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Padding (pairs from the last dim backwards) moves unit 0 left by the left pad:
    start_out = start_in − p_left·j_in. Reflected/replicated border units are treated like zeros."""
    pads = tuple(call.arg("pad", "padding"))
    nd = len(pads) // 2
    lefts = [int(pads[2 * (nd - 1 - i)]) for i in range(nd)]
    return sliding(call, rf, nd, lambda i, a: window_axis(a, 1, 1, lefts[i], 1))

