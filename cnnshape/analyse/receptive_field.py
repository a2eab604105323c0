"""Receptive field (size, jump, start) of every node, per spatial axis (docs/receptive_field.md).

Per axis, with j the jump (input pixels between neighbouring units) and r the size, a sliding
window with kernel k, stride s, padding p and dilation d (effective kernel k' = d·(k−1)+1) gives
(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019):

    r_out = r_in + (k'−1)·j_in,   j_out = j_in·s,   start_out = start_in + ((k'−1)/2 − p)·j_in

``start`` is the input coordinate of the centre of output unit 0, so unit i sees the input box
[start + i·j − (r−1)/2, start + i·j + (r−1)/2]. After upsampling that box is the continuous
approximation; ``AxisRF.unit_box`` maps the unit back through the index maps and is exact.

Each axis also records where it lives in the tensor (``Place``: the dim, its stride inside that
dim and its extent), so views, squeeze/unsqueeze, flatten and permutes carry the axes along
(1-d pooling runs as unsqueeze, 2-d pool, squeeze; ConvNeXt permutes to channels-last).

The rules are keyed by ATen op name and applied to the ops each node recorded, so module calls
(``nn.Conv2d``) and function calls (``F.conv2d``) take the same path. An op that touches the
tracked tensor and has no rule makes a spatial RF *unknown* from there on; it is never taken as
identity. A global RF stays global through any op.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

from ..registry import Registry, is_pointwise
from ..trace.records import Node, OpCall, TensorMeta

RFKind = Literal["spatial", "global", "flat", "unknown"]


#: how unit i of an axis reads the units of its parent axes (only kept when an upsample is on the
#: way, where the closed form is approximate): ("window", (s, p, span)): units
#: [i·s − p, i·s − p + span]; ("nearest", (w, n, exact)): unit floor(i·w/n) (floor((i + ½)·w/n)
#: for nearest-exact); ("taps", (w, n, taps, align)): the ``taps`` units around source coordinate
#: (i + ½)·w/n − ½ (i·(w−1)/(n−1) with align_corners), clamped to [0, w−1] as torch clamps them
#: (linear, bilinear, bicubic); ("union", ()): the hull over the parents (merged branches)
Source = tuple[str, tuple[Any, ...], tuple["AxisRF", ...]]


@dataclass(frozen=True)
class AxisRF:
    """One spatial axis. ``size`` None: this axis sees the whole input extent."""

    size: Fraction | None
    jump: Fraction
    start: Fraction
    source: Source | None = field(default=None, compare=False, repr=False)

    def unit_box(self, i: int) -> tuple[Fraction, Fraction]:
        """The exact input interval of unit ``i`` (``box`` unless a nearest upsample is on the way)."""
        if self.source is None:
            return self.box(i)
        kind, params, parents = self.source
        if kind == "window":
            s, p, span = params
            return parents[0].unit_box(i * s - p)[0], parents[0].unit_box(i * s - p + span)[1]
        if kind == "nearest":
            w, n, exact = params
            return parents[0].unit_box(math.floor((i + (Fraction(1, 2) if exact else 0)) * Fraction(w, n)))
        if kind == "taps":
            w, n, taps, align = params
            if align:
                c = i * Fraction(w - 1, n - 1) if n > 1 else Fraction(0)
            else:
                c = (i + Fraction(1, 2)) * Fraction(w, n) - Fraction(1, 2)
                if taps == 2:  # linear modes clamp a negative source coordinate to 0
                    c = max(c, Fraction(0))
            # on an exact source unit every other tap has weight 0 (linear and cubic kernels alike)
            reach = (taps // 2 - 1, taps // 2) if c.denominator != 1 else (0, 0)
            lo = min(max(math.floor(c) - reach[0], 0), w - 1)
            hi = min(max(math.floor(c) + reach[1], 0), w - 1)
            return parents[0].unit_box(lo)[0], parents[0].unit_box(hi)[1]
        boxes = [a.unit_box(i) for a in parents]
        return min(b[0] for b in boxes), max(b[1] for b in boxes)

    def box(self, i: int) -> tuple[Fraction, Fraction]:
        """The input interval [lo, hi] output unit ``i`` sees (unclipped, inclusive)."""
        assert self.size is not None
        centre = self.start + i * self.jump
        half = (self.size - 1) / 2
        return centre - half, centre + half


@dataclass(frozen=True)
class Place:
    """Where a spatial axis lives in a tensor: dim ``dim``, with stride ``inner`` inside that dim
    (1 when the dim is the axis itself; W for H after flattening H and W into one dim), and
    ``extent`` units."""

    dim: int
    inner: int
    extent: int

    @property
    def whole(self) -> bool:
        return self.inner == 1


@dataclass(frozen=True)
class ReceptiveField:
    """The RF of one tensor.

    kind ``spatial``: ``axes`` per trailing spatial dim; ``global``: every unit sees the whole input;
    ``flat``: derived from the image but its spatial layout was reshaped away ambiguously;
    ``unknown``: an op without a rule (``unknown_op``) was applied on the way.
    """

    kind: RFKind
    axes: tuple[AxisRF, ...] = ()
    #: False when branches with different centres or jumps were merged (the union is reported)
    aligned: bool = True
    unknown_op: str | None = None
    #: shape of the tensor this RF describes
    shape: tuple[int, ...] = ()
    #: where each axis lives in that tensor (kind ``spatial``)
    places: tuple[Place, ...] = ()
    #: kind ``unknown`` because the analysis itself raised (a cnnshape bug), here or on the way:
    #: the exception as ``"TypeError: ..."``
    failure: str | None = None

    @property
    def is_global(self) -> bool:
        return self.kind == "global"

    def to_dict(self) -> dict[str, Any] | None:
        """JSON: {size: [..] or "global" or "unknown", jump, start, aligned}; None for flat."""
        if self.kind == "flat":
            return None
        if self.kind == "spatial":
            return {
                "size": [_num(a.size) if a.size is not None else "global" for a in self.axes],
                "jump": [_num(a.jump) for a in self.axes],
                "start": [_num(a.start) for a in self.axes],
                "aligned": self.aligned,
            }
        d: dict[str, Any] = {"size": self.kind, "jump": None, "start": None, "aligned": self.aligned}
        if self.unknown_op:
            d["unknown_op"] = self.unknown_op
        return d


def _num(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def fraction_text(value: Fraction | None) -> str:
    if value is None:
        return "global"
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def identity(nd: int, shape: tuple[int, ...]) -> ReceptiveField:
    """An input tensor: every unit sees itself."""
    rank = len(shape)
    return ReceptiveField("spatial", tuple(AxisRF(Fraction(1), Fraction(1), Fraction(0)) for _ in range(nd)),
                          shape=shape, places=tuple(Place(d, 1, shape[d]) for d in range(rank - nd, rank)))


def _global(shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("global", aligned=aligned, shape=shape)


def _unknown(op: str, shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("unknown", aligned=aligned, unknown_op=op, shape=shape)


def _spatial(axes: Sequence[AxisRF], shape: tuple[int, ...], aligned: bool,
             places: Sequence[Place]) -> ReceptiveField:
    if all(a.size is None for a in axes):
        return _global(shape, aligned)
    return ReceptiveField("spatial", tuple(axes), aligned, shape=shape, places=tuple(places))


def _flat(rf: ReceptiveField, shape: tuple[int, ...]) -> ReceptiveField:
    return ReceptiveField("flat", aligned=rf.aligned, shape=shape)


# --- merges ---------------------------------------------------------------------------------


def _union_axis(axes: Sequence[AxisRF]) -> tuple[AxisRF, bool]:
    """Union of the branches' boxes of unit 0; aligned when all centres and jumps agree."""
    source: Source | None = ("union", (), tuple(axes)) if any(a.source for a in axes) else None
    if any(a.size is None for a in axes):
        return AxisRF(None, max(a.jump for a in axes), axes[0].start), True
    jumps, starts = {a.jump for a in axes}, {a.start for a in axes}
    if len(jumps) == 1 and len(starts) == 1:
        size = max(a.size for a in axes)  # type: ignore[type-var]
        return AxisRF(size, axes[0].jump, axes[0].start, source), True
    lo = min(a.box(0)[0] for a in axes)
    hi = max(a.box(0)[1] for a in axes)
    return AxisRF(hi - lo + 1, max(jumps), (lo + hi) / 2, source), False


def merge(rfs: Sequence[ReceptiveField]) -> ReceptiveField:
    """Where branches meet (add, mul, cat, ...): the union of their RFs."""
    aligned = all(rf.aligned for rf in rfs)
    shape = rfs[0].shape
    for kind in ("unknown", "global"):
        hit = [rf for rf in rfs if rf.kind == kind]
        if hit:
            return replace(hit[0], aligned=aligned)
    spatial = [rf for rf in rfs if rf.kind == "spatial"]
    if not spatial:
        return replace(rfs[0], aligned=aligned)
    if len(spatial) < len(rfs) or len({len(rf.axes) for rf in spatial}) > 1:
        return _unknown("merge of branches with different spatial layouts", shape, aligned)
    axes = []
    for per_axis in zip(*(rf.axes for rf in spatial)):
        axis, ok = _union_axis(per_axis)
        axes.append(axis)
        aligned = aligned and ok
    return _spatial(axes, spatial[0].shape, aligned, spatial[0].places)


# --- per-op rules ---------------------------------------------------------------------------

Rule = Callable[[OpCall, ReceptiveField], ReceptiveField]
RF_RULES: Registry[str, Rule] = Registry("receptive_field")
#: per spatial dim of a sliding-window op (index k of the op's nd trailing dims): the new axis
AxisMap = Callable[[int, AxisRF], AxisRF]


def _out_shape(call: OpCall) -> tuple[int, ...]:
    return call.outputs[0].shape if call.outputs else ()


def _per_axis(value: Any, nd: int, default: int) -> tuple[int, ...]:
    if value is None or value == () or value == []:
        return (default,) * nd
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == nd else (int(value[0]),) * nd
    return (int(value),) * nd


def _sliding(call: OpCall, rf: ReceptiveField, nd: int, fn: AxisMap,
             aligned: bool | None = None) -> ReceptiveField:
    """Apply ``fn`` to the axes on the op's ``nd`` trailing dims. A dim of the op that holds no
    tracked axis (the size-1 axis 1-d pooling inserts) is not followed; a tracked axis outside
    them, or packed with other axes into one dim, has no rule."""
    out = _out_shape(call)
    rank = len(rf.shape)
    op_dims = range(rank - nd, rank)
    axes, places = [], []
    for a, place in zip(rf.axes, rf.places):
        if place.dim not in op_dims or not place.whole or rf.shape[place.dim] != place.extent:
            return _unknown(f"{call.op} on a tensor without a matching spatial layout", out, rf.aligned)
        axes.append(fn(place.dim - (rank - nd), a))
        places.append(Place(place.dim, 1, out[place.dim]))
    return _spatial(axes, out, rf.aligned if aligned is None else aligned, places)


def _spatial_only(fn: Rule) -> Rule:
    """Sliding-window ops follow spatial RFs (unknown and global ones never reach a rule)."""

    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        if rf.kind != "spatial":
            return _unknown(f"{call.op} on a tensor without a spatial layout", _out_shape(call), rf.aligned)
        return fn(call, rf)

    rule.__doc__ = fn.__doc__
    return rule


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
    return _sliding(call, rf, len(kernel),
                    lambda i, a: window_axis(a, kernel[i], stride[i], padding[i], dilation[i]))


@RF_RULES.register("aten.convolution", "aten._convolution", "aten.convolution_overrideable",
                   "aten.mkldnn_convolution", "aten.cudnn_convolution", "aten._slow_conv2d_forward")
@_spatial_only
def conv(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Convolution (any dimensionality, dilated, padded; transposed when ``transposed``).

    Transposed (stride s, padding p, dilation d, kernel k): output unit o gathers the input units i
    with i·s in [o + p − d·(k−1), o + p], at most n = ceil((d·(k−1)+1)/s) of them, so
    r_out = r_in + (n−1)·j_in (the largest over units), j_out = j_in/s and
    start_out = start_in + (p − d·(k−1)/2)/s · j_in (the centre of that window)."""
    weight: TensorMeta = call.arg("weight")
    nd = len(weight.shape) - 2
    kernel = weight.shape[2:]
    stride = _per_axis(call.arg("stride"), nd, 1)
    padding = _per_axis(call.arg("padding"), nd, 0)
    dilation = _per_axis(call.arg("dilation"), nd, 1)
    if not bool(call.arg("transposed", default=False)):
        return window(call, rf, kernel, stride, padding, dilation)

    def transposed(i: int, a: AxisRF) -> AxisRF:
        k, s, p, d = kernel[i], stride[i], padding[i], dilation[i]
        n = -(-(d * (k - 1) + 1) // s)
        size = None if a.size is None else a.size + (n - 1) * a.jump
        return AxisRF(size, a.jump / s, a.start + (p - Fraction(d * (k - 1), 2)) / s * a.jump)

    return _sliding(call, rf, nd, transposed)


@RF_RULES.register("aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d",
                   "aten.max_pool1d_with_indices", "aten.max_pool2d_with_indices",
                   "aten.max_pool3d_with_indices", "aten.mkldnn_max_pool2d", "aten.mkldnn_max_pool3d")
@_spatial_only
def max_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(input, kernel, stride=kernel, padding=0, dilation=1, ceil_mode): the window recurrence."""
    nd = _window_rank(call)
    kernel = _per_axis(call.arg("kernel_size"), nd, 1)
    stride = _per_axis(call.arg("stride") or kernel, nd, 1)
    return window(call, rf, kernel, stride, _per_axis(call.arg("padding"), nd, 0),
                  _per_axis(call.arg("dilation"), nd, 1))


def _window_rank(call: OpCall) -> int:
    """Spatial rank of a pooling/upsampling/padding op, from its name (``..._pool2d``: 2)."""
    for nd in (1, 2, 3):
        if f"{nd}d" in call.op:
            return nd
    raise ValueError(call.op)


@RF_RULES.register("aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d")
@_spatial_only
def avg_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(input, kernel, stride=kernel, padding=0, ceil_mode, ...): no dilation."""
    nd = _window_rank(call)
    kernel = _per_axis(call.arg("kernel_size"), nd, 1)
    stride = _per_axis(call.arg("stride") or kernel, nd, 1)
    return window(call, rf, kernel, stride, _per_axis(call.arg("padding"), nd, 0), (1,) * nd)


@RF_RULES.register("aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d", "aten.adaptive_avg_pool1d",
                   "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d",
                   "aten.adaptive_avg_pool2d", "aten.adaptive_avg_pool3d")
@_spatial_only
def adaptive_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Output size 1 on an axis: that axis becomes global. Input size W divisible by output size n:
    a pool with kernel = stride = W/n. Otherwise torch's windows [floor(i·W/n), ceil((i+1)·W/n))
    vary in size and are not on a regular grid: kernel = the largest window, stride W/n, and the
    RF is marked not aligned."""
    x: TensorMeta = call.arg("self", "input")
    nd = _window_rank(call)
    ins, outs = x.shape[-nd:], _out_shape(call)[-nd:]

    def adaptive(i: int, a: AxisRF) -> AxisRF:
        w, n = ins[i], outs[i]
        if n == 1 or a.size is None:
            return AxisRF(None, a.jump * w, a.start)
        k = max(-(-(u + 1) * w // n) - (u * w // n) for u in range(n))
        return AxisRF(a.size + (k - 1) * a.jump, a.jump * Fraction(w, n), a.start + Fraction(k - 1, 2) * a.jump)

    tracked = [p.dim - (len(rf.shape) - nd) for p in rf.places]
    aligned = rf.aligned and all(ins[i] % outs[i] == 0 or outs[i] == 1 for i in tracked if 0 <= i < nd)
    return _sliding(call, rf, nd, adaptive, aligned)


def _resample(taps: int | None) -> Rule:
    """Upsampling by W_in -> W_out: jump shrinks by W_in/W_out. ``taps`` input units per output
    unit (None: nearest, 1). align_corners maps unit o to o·(W_in−1)/(W_out−1); otherwise to
    (o + 1/2)·W_in/W_out − 1/2 (the centre used as ``start``). Each also records its exact index
    map for unit boxes: nearest floor(o·W_in/W_out) (nearest-exact: floor((o + 1/2)·W_in/W_out)),
    the others the clamped taps around the mapped coordinate."""

    @_spatial_only
    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        x: TensorMeta = call.arg("self", "input")
        nd = _window_rank(call)
        align = taps is not None and bool(call.arg("align_corners", default=False))
        n_taps = taps or 1
        ins, outs = x.shape[-nd:], _out_shape(call)[-nd:]

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

        return _sliding(call, rf, nd, resample)

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
@_spatial_only
def pad(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Padding (pairs from the last dim backwards) moves unit 0 left by the left pad:
    start_out = start_in − p_left·j_in. Reflected/replicated border units are treated like zeros."""
    pads = tuple(call.arg("pad", "padding"))
    nd = len(pads) // 2
    lefts = [int(pads[2 * (nd - 1 - i)]) for i in range(nd)]
    return _sliding(call, rf, nd, lambda i, a: window_axis(a, 1, 1, lefts[i], 1))


@RF_RULES.register("aten.glu")
def glu(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """a·sigmoid(b) of the two halves along ``dim``: along channels every unit sees what it saw;
    along a spatial axis unit i combines units i and i + W/2, which no start/jump describes."""
    if rf.kind == "spatial":
        dim = int(call.arg("dim")) % len(rf.shape)
        if any(p.dim == dim for p in rf.places):
            return _unknown("glu along a spatial axis", _out_shape(call), rf.aligned)
    return unchanged(call, rf)


def unchanged(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Element-wise, normalisation (statistics ignored) and copies: every unit sees what it saw.
    Broadcasting against a higher-rank operand adds leading dims."""
    out = _out_shape(call) or rf.shape
    shift = len(out) - len(rf.shape)
    return replace(rf, shape=out, places=tuple(replace(p, dim=p.dim + shift) for p in rf.places))


#: element-wise ops torch does not tag ``pointwise`` (the tagged ones are the fallback in apply_ops)
ELEMENTWISE = (
    "rsub", "abs", "relu6", "gelu", "mish", "hardswish", "softplus", "threshold", "maximum",
    "minimum", "eq", "ne", "lt", "le", "gt", "ge", "masked_fill", "copy",
)
RF_RULES.add(unchanged, *(f"aten.{n}{suffix}" for n in ELEMENTWISE for suffix in ("", "_")))
RF_RULES.add(unchanged, "aten.where", "aten._prelu_kernel", "aten.native_dropout", "aten.bernoulli",
             "aten.bernoulli_", "aten.log_sigmoid_forward", "aten.hardshrink", "aten.softshrink",
             "aten.nan_to_num", "aten.isnan", "aten.isinf", "aten.clone", "aten.contiguous",
             "aten.detach", "aten.alias", "aten._to_copy", "aten.to", "aten.lift_fresh",
             "aten.lift_fresh_copy", "aten.zeros_like", "aten.ones_like",
             "aten.empty_like", "aten.full_like", "aten.fill_", "aten.zero_",
             "aten.native_batch_norm", "aten._native_batch_norm_legit",
             "aten._native_batch_norm_legit_no_training", "aten.cudnn_batch_norm",
             "aten._batch_norm_with_update", "aten._batch_norm_no_update",
             "aten.native_layer_norm", "aten.native_group_norm", "aten._fused_rms_norm",
             "aten.channel_shuffle", "aten.native_channel_shuffle")


@RF_RULES.register("aten.cat")
def cat(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Concatenation along channels: unchanged. Along a spatial axis the axis continues (its extent
    grows; the node merges the branches' RFs), but the units of the second part come from another
    tensor, so no single start/jump maps every unit to its box: the result is marked misaligned."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    dim = int(call.arg("dim")) % len(out)
    along_spatial = any(p.dim == dim for p in rf.places)
    return replace(rf, shape=out, aligned=rf.aligned and not along_spatial,
                   places=tuple(replace(p, extent=out[p.dim]) if p.whole else p for p in rf.places))


def _dims(value: Any, rank: int) -> list[int]:
    if value is None or value == () or value == []:
        return list(range(rank))
    values = value if isinstance(value, (tuple, list)) else (value,)
    return [int(v) % rank for v in values]


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _moved(rf: ReceptiveField, out: tuple[int, ...], new_dim: Callable[[Place], int | None]) -> ReceptiveField:
    """Each axis moves to dim ``new_dim(place)`` (None: it cannot be followed -> flat)."""
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    places = []
    for p in rf.places:
        d = new_dim(p)
        if d is None:
            return _flat(rf, out)
        places.append(replace(p, dim=d))
    return replace(rf, shape=out, places=tuple(places))


def reshape_place(place: Place, before: Sequence[int], after: Sequence[int]) -> Place | None:
    """Follow an axis through a row-major reshape: with stride G = inner·prod(before[dim+1:]) in
    element order, it lies in the dim e of ``after`` with prod(after[e+1:]) dividing G and
    (G / prod(after[e+1:]))·extent dividing after[e]. None when no dim or several dims fit (the
    axis was split, or it has extent 1 and size-1 dims make the position ambiguous)."""
    g = place.inner * _numel(before[place.dim + 1:])
    fits = []
    for e in range(len(after)):
        rest = _numel(after[e + 1:])
        if g % rest == 0 and after[e] % ((g // rest) * place.extent) == 0:
            fits.append(Place(e, g // rest, place.extent))
    return fits[0] if len(fits) == 1 else None


def _kept_block(rf: ReceptiveField, after: Sequence[int]) -> int | None:
    """A reshape that leaves the dims holding the axes as they are, splitting or merging only the
    dims before them (a channel shuffle: b, c, h, w -> b, g, c/g, h, w) or after them: how far
    those dims move. Row-major order keeps them intact when the same run of sizes appears in
    ``after`` behind dims of the same total size. None when not so, or when size-1 dims let the
    run sit in more than one place."""
    before = rf.shape
    lo, hi = min(p.dim for p in rf.places), max(p.dim for p in rf.places) + 1
    block, lead = tuple(before[lo:hi]), _numel(before[:lo])
    starts = [s for s in range(len(after) - len(block) + 1)
              if tuple(after[s:s + len(block)]) == block and _numel(after[:s]) == lead]
    return starts[0] - lo if len(starts) == 1 else None


@RF_RULES.register("aten.view", "aten._unsafe_view", "aten.reshape", "aten._reshape_alias",
                   "aten.flatten", "aten.unflatten", "aten.view_as")
def reshape(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Views and reshapes keep element order. One that only splits or merges dims besides the
    spatial ones (a channel shuffle) moves those dims as a block (``_kept_block``); otherwise each
    axis is followed to the dim (and the stride inside it) it lands in (``reshape_place``), so
    flattening H and W packs both into one dim. When that is ambiguous the layout is lost
    (``flat``)."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    shift = _kept_block(rf, out)
    if shift is not None:
        return replace(rf, shape=out, places=tuple(replace(p, dim=p.dim + shift) for p in rf.places))
    places = []
    for p in rf.places:
        moved = reshape_place(p, rf.shape, out)
        if moved is None:
            return _flat(rf, out)
        places.append(moved)
    return replace(rf, shape=out, places=tuple(places))


@RF_RULES.register("aten.unsqueeze")
def unsqueeze(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A size-1 dim inserted at ``dim``: the axes at or after it move one dim on."""
    out = _out_shape(call)
    at = int(call.arg("dim")) % len(out)
    return _moved(rf, out, lambda p: p.dim + (p.dim >= at))


@RF_RULES.register("aten.squeeze")
def squeeze(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Size-1 dims removed (all of them, or the given ones): later axes move back; an axis that
    was itself removed can no longer be followed."""
    rank = len(rf.shape)
    given = call.arg("dim")
    dims = set(_dims(given, rank)) if given is not None else set(range(rank))
    gone = sorted(d for d in dims if rf.shape[d] == 1)
    return _moved(rf, _out_shape(call), lambda p: None if p.dim in gone else p.dim - sum(d < p.dim for d in gone))


@RF_RULES.register("aten.expand", "aten.expand_as", "aten.repeat")
def expand(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """New leading dims move the axes on; expanding or repeating an axis itself loses the layout."""
    out = _out_shape(call)
    shift = len(out) - len(rf.shape)
    return _moved(rf, out, lambda p: p.dim + shift if out[p.dim + shift] == rf.shape[p.dim] else None)


@RF_RULES.register("aten.as_strided")
def as_strided(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Only a same-shape as_strided (a restride torch inserts) is followed."""
    out = _out_shape(call)
    return replace(rf, shape=out) if out == rf.shape or rf.kind != "spatial" else _flat(rf, out)


@RF_RULES.register("aten.stack")
def stack(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A new dim at ``dim``: the axes at or after it move one dim on."""
    out = _out_shape(call)
    at = int(call.arg("dim")) % len(out)
    return _moved(rf, out, lambda p: p.dim + (p.dim >= at))


@RF_RULES.register("aten.permute", "aten.transpose", "aten.t", "aten.movedim")
def permute(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """The axes move with their dims (channels-last and back, token-major sequences)."""
    out = _out_shape(call)
    rank = len(out)
    if call.op == "aten.permute":
        order = [int(d) % rank for d in call.arg("dims")]
    elif call.op == "aten.movedim":
        src, dst = _dims(call.arg("source"), rank), _dims(call.arg("destination"), rank)
        rest = iter(d for d in range(rank) if d not in src)
        by_dst = dict(zip(dst, src))
        order = [by_dst[d] if d in by_dst else next(rest) for d in range(rank)]
    else:
        a = int(call.arg("dim0")) % rank if call.op != "aten.t" else 0
        b = int(call.arg("dim1")) % rank if call.op != "aten.t" else min(1, rank - 1)
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    return _moved(rf, out, lambda p: order.index(p.dim))


@RF_RULES.register("aten.slice")
def slice_(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """x[..., a:b:step] on a spatial dim: start_out = start_in + a·j_in, j_out = step·j_in."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    rank = len(rf.shape)
    dim = int(call.arg("dim")) % rank
    hit = [i for i, p in enumerate(rf.places) if p.dim == dim]
    if not hit:
        return replace(rf, shape=out)
    if not rf.places[hit[0]].whole or len(hit) > 1:
        return _unknown(f"{call.op} across packed spatial axes", out, rf.aligned)
    begin = call.arg("start") or 0
    size = rf.shape[dim]
    begin = max(0, begin + size if begin < 0 else min(begin, size))
    step = int(call.arg("step") or 1)
    axes, places = list(rf.axes), list(rf.places)
    a = axes[hit[0]]
    source: Source | None = ("window", (step, -begin, 0), (a,)) if a.source else None
    axes[hit[0]] = AxisRF(a.size, a.jump * step, a.start + begin * a.jump, source)
    places[hit[0]] = Place(dim, 1, out[dim])
    return _spatial(axes, out, rf.aligned, places)


@RF_RULES.register("aten.select", "aten.unbind", "aten.split", "aten.split_with_sizes",
                   "aten.unsafe_split", "aten.chunk")
def select(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Picking or splitting along a non-spatial dim (q, k, v out of a fused qkv; channel groups):
    the axes are unchanged (select and unbind remove that dim). Unbinding or splitting along a
    spatial dim (an RNN stepping over a sequence) makes the positions separate tensors: the layout
    is gone (``flat``), and whatever mixes them (the recurrent matmuls) is global. Selecting one
    position of a spatial axis: no rule."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    dim = int(call.arg("dim")) % len(rf.shape)
    if any(p.dim == dim for p in rf.places):
        if call.op == "aten.select":
            return _unknown(f"{call.op} of one position along a spatial axis", out, rf.aligned)
        return _flat(rf, out)
    removed = len(out) < len(rf.shape)
    return _moved(rf, out, lambda p: p.dim - (removed and p.dim > dim))


def _reduce_over(call: OpCall, rf: ReceptiveField, dims: list[int], keepdim: bool) -> ReceptiveField:
    out = _out_shape(call)
    if rf.kind == "flat":
        return _global(out, rf.aligned)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    axes = [AxisRF(None, a.jump, a.start) if p.dim in dims else a for a, p in zip(rf.axes, rf.places)]
    if all(a.size is None for a in axes):
        return _global(out, rf.aligned)
    if keepdim:
        return _spatial(axes, out, rf.aligned, rf.places)
    if any(p.dim in dims for p in rf.places):
        return _flat(rf, out)
    places = [replace(p, dim=p.dim - sum(d < p.dim for d in dims)) for p in rf.places]
    return _spatial(axes, out, rf.aligned, places)


@RF_RULES.register("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.var", "aten.std",
                   "aten.var_mean", "aten.std_mean", "aten.prod", "aten.logsumexp", "aten.norm",
                   "aten.linalg_vector_norm", "aten.max", "aten.min", "aten.nansum")
def reduction(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A reduction over a spatial dim (global pooling) makes that axis global; over all of them,
    the RF is global. Over channels only: unchanged."""
    if call.arg("other") is not None:  # max(a, b), min(a, b): element-wise
        return unchanged(call, rf)
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    dims = _dims(call.arg("dim"), rank)
    keepdim = bool(call.arg("keepdim", default=False))
    return _reduce_over(call, rf, dims, keepdim)


@RF_RULES.register("aten._softmax", "aten._log_softmax", "aten._safe_softmax", "aten.softmax",
                   "aten.log_softmax", "aten.cumsum", "aten.cumprod")
def softmax(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Normalising over a spatial dim (or over a flattened map, as attention does) sees all of it."""
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    return _reduce_over(call, rf, _dims(call.arg("dim"), rank), keepdim=True)


@RF_RULES.register("aten.mm", "aten.addmm")
def linear(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A 2-d product A·B with the followed tensor as A (a Linear: rows are positions, columns
    features): each output row reads its own row, so axes in the rows stay as they are and a
    Linear over channels is a 1x1 conv. An axis in the contracted columns (a Linear over spatial
    features), or the followed tensor as B: global."""
    out = _out_shape(call)
    a: TensorMeta = call.arg("mat1", "self")
    if rf.kind == "spatial" and a.shape == rf.shape and all(p.dim == 0 for p in rf.places):
        return replace(rf, shape=out)
    return _global(out, rf.aligned)


@RF_RULES.register("aten.bmm", "aten.baddbmm", "aten.mv", "aten.dot",
                   "aten._scaled_dot_product_efficient_attention",
                   "aten._scaled_dot_product_flash_attention",
                   "aten._scaled_dot_product_flash_attention_for_cpu",
                   "aten._scaled_dot_product_cudnn_attention")
def matmul(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Attention and other products of activations: each output mixes every position of its
    operand, so the RF is global from here on."""
    return _global(_out_shape(call), rf.aligned)


# --- the traversal --------------------------------------------------------------------------


def _reads(call: OpCall, shape: tuple[int, ...]) -> bool:
    """Whether ``call`` reads a tensor of the tracked shape (ops on weights are not followed)."""
    for value in (*call.args, *(v for _, v in call.kwargs)):
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, TensorMeta) and v.shape == shape for v in values):
            return True
    return False


def apply_ops(node: Node, rf: ReceptiveField) -> ReceptiveField:
    """Run the node's recorded ATen calls through their rules, following the tracked tensor.
    Unknown stays unknown and global stays global, whatever the op.

    The calls are followed as a chain. A node that reads its input again after the chain has moved
    on to another shape branches internally (a user's ``--leaf`` block such as an Inception
    module): one chain would miss the other branches, so its RF is reported unknown instead."""
    first = rf.shape
    # only a module called on one tensor: a multi-input op (attention's q, k, v) reads its other
    # inputs by design
    watch = node.kind == "module" and len(node.inputs) == 1
    for call in node.ops:
        if rf.kind in ("unknown", "global") or not call.outputs:
            continue
        if watch and rf.shape != first and _reads(call, first) and not _reads(call, rf.shape):
            return _unknown(f"{node.type} (branches inside one node: drop --leaf for it to follow them)",
                            _out_shape(call), rf.aligned)
        if not _reads(call, rf.shape):
            continue
        rule = RF_RULES.get(call.op) or (unchanged if is_pointwise(call.op) else None)
        rf = _unknown(call.op, _out_shape(call), rf.aligned) if rule is None else rule(call, rf)
    return rf


def _piece(rf: ReceptiveField, shape: tuple[int, ...]) -> ReceptiveField | None:
    """``rf`` for a piece of its tensor split along another dim (a chunk or split piece, with its
    own channel count): the axes stay. None when ``shape`` changes a dim holding an axis."""
    if rf.kind != "spatial" or rf.shape == shape:
        return replace(rf, shape=shape)
    same_axes = len(rf.shape) == len(shape) and all(rf.shape[p.dim] == shape[p.dim] for p in rf.places)
    return replace(rf, shape=shape) if same_axes else None


def node_rf(node: Node, inputs: Sequence[ReceptiveField | None]) -> ReceptiveField | None:
    """The RF of one node given its producers' RFs (None: the tensor does not derive from an image)."""
    out = node.output
    if node.kind == "input":
        if out is None or len(out.shape) < 3:
            return None
        return identity(len(out.shape) - 2, out.shape)
    if len(inputs) == len(node.input_metas):
        # a producer with several outputs (the eager tracer's split: no getitem node) gives the RF
        # of its first one: each consumer takes the piece it reads
        inputs = [rf if rf is None else _piece(rf, meta.shape) or rf for rf, meta in zip(inputs, node.input_metas)]
    known = [rf for rf in inputs if rf is not None]
    if not known or out is None:
        return None
    if node.kind == "output":
        return known[0]
    rf = apply_ops(node, merge(known))
    piece = _piece(rf, out.shape)  # a getitem of chunk/split keeps the axes
    if piece is not None:
        return piece
    return _unknown(f"{node.type} (output {out} does not match the followed tensor)", out.shape, rf.aligned)


def analyse_receptive_fields(nodes: Sequence[Node]) -> dict[str, ReceptiveField | None]:
    """RF of every node, in execution order. A node whose analysis raises (a bug in a rule) is
    ``unknown`` with the exception as its ``failure``, and so is everything derived from it; the
    other nodes keep their RF."""
    rfs: dict[str, ReceptiveField | None] = {}
    for node in nodes:
        try:
            rfs[node.name] = node_rf(node, [rfs.get(name) for name in node.inputs])
        except Exception as e:  # a bug here must not take the other analyses down: reported, not hidden
            rfs[node.name] = failed(e, node.output.shape if node.output else ())
    return rfs


def error_text(e: BaseException, limit: int = 200) -> str:
    """``"TypeError: <the first line of its message>"``, shortened to ``limit`` characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def failed(e: BaseException, shape: tuple[int, ...]) -> ReceptiveField:
    """The RF of a node whose analysis raised ``e``: unknown, naming the bug."""
    text = error_text(e)
    return ReceptiveField("unknown", unknown_op=f"cnnshape bug ({text})", shape=shape, failure=text)


def unit_box(axis: AxisRF, index: int, extent: int) -> tuple[int, int, int, int]:
    """(lo, hi, clipped lo, clipped hi) of the input pixels output unit ``index`` sees on an axis
    of ``extent`` input pixels; exact through upsampling (``AxisRF.unit_box``), other fractional
    boundaries (transposed convs) are rounded outwards."""
    if axis.size is None:
        return 0, extent - 1, 0, extent - 1
    lo_f, hi_f = axis.unit_box(index)
    lo, hi = math.floor(lo_f), math.ceil(hi_f)
    return lo, hi, max(lo, 0), min(hi, extent - 1)
