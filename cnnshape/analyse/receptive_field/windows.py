"""Rules for sliding windows, resampling and padding: conv, pooling, upsampling, pads.

Per axis, a sliding window with kernel k, stride s, padding p and dilation d (effective kernel
k' = d·(k−1)+1) gives (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019):

    r_out = r_in + (k'−1)·j_in,   j_out = j_in·s,   start_out = start_in + ((k'−1)/2 − p)·j_in
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from ...trace.records import OpCall, TensorMeta
from .channels import UNKNOWN, Profile, canon, covers, take
from .percall import per_call
from .records import AxisRF, ReceptiveField
from .rules import KEEP, RF_RULES, Rule, channel_view, known, out_shape, per_axis, sliding, spatial_only
from .trail import Adaptive, IndexMap, Nearest, Reflect, Replicate, Shuffle, Taps, Transposed, Window

#: sliding windows: where they pad, an output unit can read nothing but padding
WINDOWS = frozenset({
    "aten.convolution", "aten._convolution", "aten.convolution_overrideable", "aten.mkldnn_convolution",
    "aten.cudnn_convolution", "aten._slow_conv2d_forward", "aten.max_pool1d", "aten.max_pool2d",
    "aten.max_pool3d", "aten.max_pool1d_with_indices", "aten.max_pool2d_with_indices",
    "aten.max_pool3d_with_indices", "aten.mkldnn_max_pool2d", "aten.mkldnn_max_pool3d", "aten.avg_pool1d",
    "aten.avg_pool2d", "aten.avg_pool3d", "aten.constant_pad_nd",
})


def window_axis(a: AxisRF, k: int, s: int, p: int, d: int) -> tuple[AxisRF, IndexMap]:
    """The sliding-window recurrence on one axis, and its index map."""
    eff = d * (k - 1) + 1
    index_map = window_map(s, p, d, k)
    if a.size is None:
        return AxisRF(None, a.jump * s, a.start), index_map
    size, jump, start = a.size, a.jump, a.start
    if size.denominator == jump.denominator == start.denominator == 1 and eff % 2:
        # integers throughout (an odd effective kernel on an integer grid, nearly every conv and
        # pool): the same values as the Fraction arithmetic below, without its normalising steps;
        # a jump or start the window leaves as it was is the same (immutable) Fraction
        j = jump.numerator
        shift = ((eff - 1) // 2 - p) * j
        return AxisRF(Fraction(size.numerator + (eff - 1) * j), jump if s == 1 else Fraction(j * s),
                      start if shift == 0 else Fraction(start.numerator + shift)), index_map
    return AxisRF(size + (eff - 1) * jump, jump * s, start + (Fraction(eff - 1, 2) - p) * jump), index_map


_WINDOWS: dict[tuple[int, int, int, int], Window] = {}


def window_map(s: int, p: int, d: int, k: int) -> Window:
    """``Window(s, p, d, k)``: one shared (immutable) record per window, not one per axis of every call."""
    key = (s, p, d, k)
    found = _WINDOWS.get(key)
    if found is None:
        if len(_WINDOWS) >= 4096:  # a bound over a long scan of varied networks
            _WINDOWS.clear()
        found = _WINDOWS[key] = Window(s, p, d, k)
    return found


def window(call: OpCall, rf: ReceptiveField, kernel: Sequence[int], stride: Sequence[int],
           padding: Sequence[int], dilation: Sequence[int], profile: Profile | None = KEEP) -> ReceptiveField:
    """The sliding-window recurrence on every spatial axis of the op (``profile``: the output's
    channel labels, default the input's)."""
    return sliding(call, rf, len(kernel), lambda i, a: window_axis(a, kernel[i], stride[i], padding[i], dilation[i]),
                   profile=profile)


def _conv_profile(rf: ReceptiveField, groups: int, c_in: int, c_out: int) -> Profile | None:
    """Output channel c of group g reads input channels of group g: its label is the set of theirs
    (one group: every output channel reads every input channel, so all are alike)."""
    labels = known(rf)
    if labels is None or groups == 1:
        return None
    view = channel_view(rf)
    if labels == UNKNOWN or view is None:
        return UNKNOWN
    sizes = view[1]
    batch = sizes[0] if len(sizes) == 2 else 1
    per_in, per_out = c_in // groups, c_out // groups
    sets = []
    for b in range(batch):
        for c in range(c_out):
            g = c // per_out
            sets.append(frozenset(labels[b * c_in + g * per_in:b * c_in + (g + 1) * per_in]))
    return canon(sets)


@per_call
def _conv_args(call: OpCall) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], int, int,
                                      int, bool]:
    """(nd, kernel, stride, padding, dilation, groups, input channels, output channels, transposed)
    of a convolution call."""
    x: TensorMeta = call.arg("input", "self")
    weight: TensorMeta = call.arg("weight")
    nd = len(weight.shape) - 2
    return (nd, weight.shape[2:], per_axis(call.arg("stride"), nd, 1), per_axis(call.arg("padding"), nd, 0),
            per_axis(call.arg("dilation"), nd, 1), int(call.arg("groups", default=1) or 1), x.shape[-nd - 1],
            out_shape(call)[-nd - 1], bool(call.arg("transposed", default=False)))


@RF_RULES.register("aten.convolution", "aten._convolution", "aten.convolution_overrideable",
                   "aten.mkldnn_convolution", "aten.cudnn_convolution", "aten._slow_conv2d_forward")
@spatial_only
def conv(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Convolution (any dimensionality, dilated, padded; transposed when ``transposed``).

    Transposed (stride s, padding p, dilation d, kernel k): output unit o gathers the input units i
    with i·s in [o + p − d·(k−1), o + p], at most n = ceil((d·(k−1)+1)/s) of them, so
    r_out = r_in + (n−1)·j_in (the largest over units), j_out = j_in/s and
    start_out = start_in + (p − d·(k−1)/2)/s · j_in (the centre of that window)."""
    nd, kernel, stride, padding, dilation, groups, c_in, c_out, is_transposed = _conv_args(call)
    profile = _conv_profile(rf, groups, c_in, c_out)
    if not is_transposed:
        return window(call, rf, kernel, stride, padding, dilation, profile)

    def transposed(i: int, a: AxisRF) -> tuple[AxisRF, IndexMap]:
        k, s, p, d = kernel[i], stride[i], padding[i], dilation[i]
        n = -(-(d * (k - 1) + 1) // s)
        size = None if a.size is None else a.size + (n - 1) * a.jump
        return AxisRF(size, a.jump / s, a.start + (p - Fraction(d * (k - 1), 2)) / s * a.jump), Transposed(s, p, d, k)

    return sliding(call, rf, nd, transposed, profile=profile)


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
    RF is marked not aligned. The unit boxes follow torch's windows exactly."""
    x: TensorMeta = call.arg("self", "input")
    nd = window_rank(call)
    ins, outs = x.shape[-nd:], out_shape(call)[-nd:]

    def adaptive(i: int, a: AxisRF) -> tuple[AxisRF, IndexMap]:
        w, n = ins[i], outs[i]
        if n == 1 or a.size is None:
            return AxisRF(None, a.jump * w, a.start), Adaptive(w, n)
        k = max(-(-(u + 1) * w // n) - (u * w // n) for u in range(n))
        axis = AxisRF(a.size + (k - 1) * a.jump, a.jump * Fraction(w, n), a.start + Fraction(k - 1, 2) * a.jump)
        return axis, Adaptive(w, n)

    tracked = [p.dim - (len(rf.shape) - nd) for p in rf.places]
    aligned = rf.aligned and all(ins[i] % outs[i] == 0 or outs[i] == 1 for i in tracked if 0 <= i < nd)
    return sliding(call, rf, nd, adaptive, aligned)


def _scales(call: OpCall, nd: int) -> tuple[float | None, ...]:
    """The scale factors the op was given per axis (``scales_h`` ..., or ``scale_factors``), if any."""
    factors = call.arg("scale_factors")
    if factors:
        return tuple(float(f) for f in factors) * (nd if len(factors) == 1 else 1)
    names = {1: ("scales",), 2: ("scales_h", "scales_w"), 3: ("scales_d", "scales_h", "scales_w")}[nd]
    return tuple(call.arg(name) for name in names)


def _resample(taps: int | None) -> Rule:
    """Upsampling by W_in -> W_out: jump shrinks by W_in/W_out. ``taps`` input units per output
    unit (None: nearest, 1). align_corners maps unit o to o·(W_in−1)/(W_out−1); otherwise to
    (o + 1/2)·W_in/W_out − 1/2 (the centre used as ``start``). The unit boxes follow torch's index
    maps exactly (:class:`.trail.Nearest`, :class:`.trail.Taps`); antialiased resampling has other
    taps, so it gives no unit boxes."""

    @spatial_only
    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        x: TensorMeta = call.arg("self", "input")
        nd = window_rank(call)
        align = taps is not None and bool(call.arg("align_corners", default=False))
        n_taps = taps or 1
        ins, outs = x.shape[-nd:], out_shape(call)[-nd:]
        scales = _scales(call, nd)
        double = x.dtype == "float64"

        def resample(i: int, a: AxisRF) -> tuple[AxisRF, IndexMap]:
            w, n = ins[i], outs[i]
            if align and n > 1:
                jump, start = a.jump * Fraction(w - 1, n - 1), a.start
            else:
                jump = a.jump * Fraction(w, n)
                # the taps sit around the mapped coordinate itself
                start = a.start + (Fraction(w, n) - 1) / 2 * a.jump
            index_map: IndexMap
            if taps is None:
                index_map = Nearest(w, n, scales[i], "exact" in call.op)
            else:
                index_map = Taps(w, n, scales[i], taps, align, double)
            if a.size is None:
                return AxisRF(None, jump, start), index_map
            return AxisRF(a.size + (n_taps - 1) * a.jump, jump, start), index_map

        refused = "antialiased resampling (its taps are not modelled)" if call.op.endswith("_aa") else None
        return sliding(call, rf, nd, resample, refused=refused)

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
    """Padding (pairs from the last dim backwards; negative pads crop) moves unit 0 left by the left
    pad: start_out = start_in − p_left·j_in; the closed form treats reflected/replicated border
    units like zeros. The unit boxes follow the reflection (unit i reads |i − p_left|, mirrored at
    the far end) or replication (clamped) exactly."""
    pads = tuple(call.arg("pad", "padding"))
    nd = len(pads) // 2
    lefts = [int(pads[2 * (nd - 1 - i)]) for i in range(nd)]
    kind = Reflect if "reflection" in call.op else Replicate if "replication" in call.op else None

    def padded(i: int, a: AxisRF) -> tuple[AxisRF, IndexMap]:
        axis, index_map = window_axis(a, 1, 1, lefts[i], 1)
        return axis, kind(lefts[i]) if kind is not None else index_map

    return sliding(call, rf, nd, padded)


@RF_RULES.register("aten.pixel_shuffle")
@spatial_only
def pixel_shuffle(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(*, C·r², H, W) -> (*, C, H·r, W·r): output unit y reads input unit floor(y/r), channel
    c·r² + (y mod r)·r + (x mod r). Per axis as a nearest upsampling by r: size unchanged,
    jump j/r, start moved by (1/r − 1)/2·j. Channels that do not all see alike: the units of a
    phase read only some of them, so their box is given only when each phase holds every label."""
    r = int(call.arg("upscale_factor"))
    labels, view = known(rf), channel_view(rf)
    profile: Profile | None = None
    refused = None
    if labels is not None:
        if labels == UNKNOWN or view is None:
            profile, refused = UNKNOWN, "pixel_shuffle of channels that do not all see alike"
        else:
            sizes = view[1]
            c = sizes[-1]
            grid = [*sizes[:-1], c // (r * r), r * r]
            phases = [take(labels, grid, len(grid) - 1, [ph]) for ph in range(r * r)]
            if not all(covers(ph, labels) for ph in phases):
                refused = "pixel_shuffle of channels that do not all see alike (each phase reads some of them)"
            profile = canon(list(zip(*phases)))

    def shuffled(i: int, a: AxisRF) -> tuple[AxisRF, IndexMap]:
        start = a.start + (Fraction(1, r) - 1) / 2 * a.jump
        return AxisRF(a.size, a.jump / r, start), Shuffle(r)

    return sliding(call, rf, 2, shuffled, profile=profile, refused=refused)


@RF_RULES.register("aten.pixel_unshuffle")
@spatial_only
def pixel_unshuffle(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(*, C, H·r, W·r) -> (*, C·r², H, W): output unit h reads input units h·r .. h·r + r − 1 (the
    channels hold the phases): a window with kernel = stride = r. Each phase is a different
    channel, so the channels no longer see alike."""
    r = int(call.arg("downscale_factor"))
    labels, view = known(rf), channel_view(rf)
    profile: Profile | None = UNKNOWN
    if labels != UNKNOWN and view is not None:
        base = labels if labels is not None else (0,) * math.prod(view[1])
        profile = canon([(label, phase) for label in base for phase in range(r * r)])
    return window(call, rf, (r, r), (r, r), (0, 0), (1, 1), profile)


