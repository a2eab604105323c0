"""Receptive field (size, jump, start) of every node, per spatial axis (docs/receptive_field.md).

Per axis, with j the jump (input pixels between neighbouring units) and r the size, a sliding
window with kernel k, stride s, padding p and dilation d (effective kernel k' = d·(k−1)+1) gives
(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019):

    r_out = r_in + (k'−1)·j_in,   j_out = j_in·s,   start_out = start_in + ((k'−1)/2 − p)·j_in

``start`` is the input coordinate of the centre of output unit 0, so unit i sees the input box
[start + i·j − (r−1)/2, start + i·j + (r−1)/2].

The rules are keyed by ATen op name and applied to the ops each node recorded, so module calls
(``nn.Conv2d``) and function calls (``F.conv2d``) take the same path. An op that touches the
tracked tensor and has no rule makes the RF *unknown* from there on; it is never taken as identity.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Literal

from ..trace.records import Node, OpCall, TensorMeta
from .registry import Registry

RFKind = Literal["spatial", "global", "flat", "unknown"]


@dataclass(frozen=True)
class AxisRF:
    """One spatial axis. ``size`` None: this axis sees the whole input extent."""

    size: Fraction | None
    jump: Fraction
    start: Fraction

    def box(self, i: int) -> tuple[Fraction, Fraction]:
        """The input interval [lo, hi] output unit ``i`` sees (unclipped, inclusive)."""
        assert self.size is not None
        centre = self.start + i * self.jump
        half = (self.size - 1) / 2
        return centre - half, centre + half


@dataclass(frozen=True)
class ReceptiveField:
    """The RF of one tensor.

    kind ``spatial``: ``axes`` per trailing spatial dim; ``global``: every unit sees the whole input;
    ``flat``: derived from the image but its spatial layout was reshaped away (e.g. flatten);
    ``unknown``: an op without a rule (``unknown_op``) was applied on the way.
    """

    kind: RFKind
    axes: tuple[AxisRF, ...] = ()
    #: False when branches with different centres or jumps were merged (the union is reported)
    aligned: bool = True
    unknown_op: str | None = None
    #: shape of the tensor this RF describes (spatial axes are its last len(axes) dims)
    shape: tuple[int, ...] = ()

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
    return ReceptiveField("spatial", tuple(AxisRF(Fraction(1), Fraction(1), Fraction(0)) for _ in range(nd)),
                          shape=shape)


def _global(shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("global", aligned=aligned, shape=shape)


def _unknown(op: str, shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("unknown", aligned=aligned, unknown_op=op, shape=shape)


def _spatial(axes: Sequence[AxisRF], shape: tuple[int, ...], aligned: bool) -> ReceptiveField:
    if all(a.size is None for a in axes):
        return _global(shape, aligned)
    return ReceptiveField("spatial", tuple(axes), aligned, shape=shape)


# --- merges ---------------------------------------------------------------------------------


def _union_axis(axes: Sequence[AxisRF]) -> tuple[AxisRF, bool]:
    """Union of the branches' boxes of unit 0; aligned when all centres and jumps agree."""
    if any(a.size is None for a in axes):
        return AxisRF(None, max(a.jump for a in axes), axes[0].start), True
    jumps, starts = {a.jump for a in axes}, {a.start for a in axes}
    if len(jumps) == 1 and len(starts) == 1:
        return AxisRF(max(a.size for a in axes), axes[0].jump, axes[0].start), True  # type: ignore[type-var]
    lo = min(a.box(0)[0] for a in axes)
    hi = max(a.box(0)[1] for a in axes)
    return AxisRF(hi - lo + 1, max(jumps), (lo + hi) / 2), False


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
    return _spatial(axes, spatial[0].shape, aligned)


# --- per-op rules ---------------------------------------------------------------------------

Rule = Callable[[OpCall, ReceptiveField], ReceptiveField]
RF_RULES: Registry[str, Rule] = Registry("receptive_field")


def _arg(call: OpCall, i: int, name: str, default: object = None) -> Any:
    if i < len(call.args):
        return call.args[i]
    return dict(call.kwargs).get(name, default)


def _out_shape(call: OpCall) -> tuple[int, ...]:
    return call.outputs[0].shape if call.outputs else ()


def _per_axis(value: Any, nd: int, default: int) -> tuple[int, ...]:
    if value is None or value == () or value == []:
        return (default,) * nd
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == nd else (int(value[0]),) * nd
    return (int(value),) * nd


def window(rf: ReceptiveField, shape: tuple[int, ...], kernel: Sequence[int], stride: Sequence[int],
           padding: Sequence[int], dilation: Sequence[int]) -> ReceptiveField:
    """The sliding-window recurrence on every spatial axis."""
    axes = []
    for a, k, s, p, d in zip(rf.axes, kernel, stride, padding, dilation):
        eff = d * (k - 1) + 1
        if a.size is None:
            axes.append(AxisRF(None, a.jump * s, a.start))
            continue
        axes.append(AxisRF(a.size + (eff - 1) * a.jump, a.jump * s, a.start + (Fraction(eff - 1, 2) - p) * a.jump))
    return _spatial(axes, shape, rf.aligned)


def _spatial_only(fn: Rule) -> Rule:
    """Sliding-window ops need a spatial RF of matching rank; global stays global."""

    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        if rf.kind in ("global", "unknown"):
            return replace(rf, shape=_out_shape(call))
        nd = len(_out_shape(call)) - 2
        if rf.kind != "spatial" or len(rf.axes) != nd:
            return _unknown(f"{call.op} on a tensor without a matching spatial layout", _out_shape(call), rf.aligned)
        return fn(call, rf)

    rule.__doc__ = fn.__doc__
    return rule


@RF_RULES.register("aten.convolution", "aten._convolution", "aten.convolution_overrideable",
                   "aten.mkldnn_convolution", "aten.cudnn_convolution", "aten._slow_conv2d_forward")
@_spatial_only
def conv(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Convolution (any dimensionality, dilated, padded; transposed when ``transposed``).

    Transposed (stride s, padding p, dilation d, kernel k): output unit o gathers the input units i
    with i·s in [o + p − d·(k−1), o + p], at most n = ceil((d·(k−1)+1)/s) of them, so
    r_out = r_in + (n−1)·j_in (the largest over units), j_out = j_in/s and
    start_out = start_in + (p − d·(k−1)/2)/s · j_in (the centre of that window)."""
    weight: TensorMeta = call.args[1]
    nd = len(weight.shape) - 2
    kernel = weight.shape[2:]
    stride = _per_axis(_arg(call, 3, "stride"), nd, 1)
    padding = _per_axis(_arg(call, 4, "padding"), nd, 0)
    dilation = _per_axis(_arg(call, 5, "dilation"), nd, 1)
    shape = _out_shape(call)
    if not bool(_arg(call, 6, "transposed", False)):
        return window(rf, shape, kernel, stride, padding, dilation)
    axes = []
    for a, k, s, p, d in zip(rf.axes, kernel, stride, padding, dilation):
        n = -(-(d * (k - 1) + 1) // s)
        size = None if a.size is None else a.size + (n - 1) * a.jump
        axes.append(AxisRF(size, a.jump / s, a.start + (p - Fraction(d * (k - 1), 2)) / s * a.jump))
    return _spatial(axes, shape, rf.aligned)


@RF_RULES.register("aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d",
                   "aten.max_pool1d_with_indices", "aten.max_pool2d_with_indices",
                   "aten.max_pool3d_with_indices", "aten.mkldnn_max_pool2d", "aten.mkldnn_max_pool3d")
@_spatial_only
def max_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(input, kernel, stride=kernel, padding=0, dilation=1, ceil_mode): the window recurrence."""
    nd = len(rf.axes)
    kernel = _per_axis(_arg(call, 1, "kernel_size"), nd, 1)
    stride = _per_axis(_arg(call, 2, "stride") or kernel, nd, 1)
    return window(rf, _out_shape(call), kernel, stride, _per_axis(_arg(call, 3, "padding"), nd, 0),
                  _per_axis(_arg(call, 4, "dilation"), nd, 1))


@RF_RULES.register("aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d")
@_spatial_only
def avg_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """(input, kernel, stride=kernel, padding=0, ceil_mode, ...): no dilation."""
    nd = len(rf.axes)
    kernel = _per_axis(_arg(call, 1, "kernel_size"), nd, 1)
    stride = _per_axis(_arg(call, 2, "stride") or kernel, nd, 1)
    return window(rf, _out_shape(call), kernel, stride, _per_axis(_arg(call, 3, "padding"), nd, 0), (1,) * nd)


@RF_RULES.register("aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d", "aten.adaptive_avg_pool1d",
                   "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d",
                   "aten.adaptive_avg_pool2d", "aten.adaptive_avg_pool3d")
@_spatial_only
def adaptive_pool(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Output size 1 on an axis: that axis becomes global. Input size W divisible by output size n:
    a pool with kernel = stride = W/n. Otherwise torch's windows [floor(i·W/n), ceil((i+1)·W/n))
    vary in size and are not on a regular grid: kernel = the largest window, stride W/n, and the
    RF is marked not aligned."""
    x: TensorMeta = call.args[0]
    nd = len(rf.axes)
    axes, aligned = [], rf.aligned
    for a, w, n in zip(rf.axes, x.shape[-nd:], _out_shape(call)[-nd:]):
        if n == 1 or a.size is None:
            axes.append(AxisRF(None, a.jump * w, a.start))
            continue
        k = max(-(-(i + 1) * w // n) - (i * w // n) for i in range(n))
        s = Fraction(w, n)
        aligned = aligned and w % n == 0
        axes.append(AxisRF(a.size + (k - 1) * a.jump, a.jump * s, a.start + Fraction(k - 1, 2) * a.jump))
    return _spatial(axes, _out_shape(call), aligned)


def _resample(taps: int | None) -> Rule:
    """Upsampling by W_in -> W_out: jump shrinks by W_in/W_out. ``taps`` input units per output
    unit (None: nearest, 1). align_corners maps unit o to o·(W_in−1)/(W_out−1); otherwise to
    (o + 1/2)·W_in/W_out − 1/2 (the centre used as ``start``)."""

    @_spatial_only
    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        x: TensorMeta = call.args[0]
        nd = len(rf.axes)
        align = taps is not None and bool(_arg(call, 2, "align_corners", False))
        n_taps = taps or 1
        axes = []
        for a, w, n in zip(rf.axes, x.shape[-nd:], _out_shape(call)[-nd:]):
            if align and n > 1:
                jump, offset = a.jump * Fraction(w - 1, n - 1), Fraction(0)
            else:
                jump, offset = a.jump * Fraction(w, n), (Fraction(w, n) - 1) / 2
            size = None if a.size is None else a.size + (n_taps - 1) * a.jump
            axes.append(AxisRF(size, jump, a.start + (offset + Fraction(n_taps - 1, 2)) * a.jump
                               if not align else a.start))
        return _spatial(axes, _out_shape(call), rf.aligned)

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
    pads = tuple(_arg(call, 1, "pad"))
    nd = len(rf.axes)
    lefts = [0] * nd
    for i in range(len(pads) // 2):
        if i < nd:
            lefts[nd - 1 - i] = int(pads[2 * i])
    axes = [AxisRF(a.size, a.jump, a.start - p * a.jump) for a, p in zip(rf.axes, lefts)]
    return _spatial(axes, _out_shape(call), rf.aligned)


def unchanged(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Element-wise, normalisation (statistics ignored) and copies: every unit sees what it saw."""
    return replace(rf, shape=_out_shape(call) or rf.shape)


ELEMENTWISE = (
    "add", "sub", "mul", "div", "rsub", "neg", "abs", "reciprocal", "sqrt", "rsqrt", "pow", "exp",
    "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "erf", "erfc", "sigmoid",
    "tanh", "relu", "relu6", "leaky_relu", "hardtanh", "elu", "selu", "celu", "gelu", "silu", "mish",
    "hardswish", "hardsigmoid", "softplus", "threshold", "clamp", "clamp_min", "clamp_max",
    "maximum", "minimum", "floor", "ceil", "round", "trunc", "sign", "fmod", "remainder", "eq",
    "ne", "lt", "le", "gt", "ge", "masked_fill", "square", "addcmul", "addcdiv", "lerp", "copy",
)
RF_RULES.add(unchanged, *(f"aten.{n}{suffix}" for n in ELEMENTWISE for suffix in ("", "_")))
RF_RULES.add(unchanged, "aten.where", "aten._prelu_kernel", "aten.native_dropout", "aten.bernoulli",
             "aten.bernoulli_", "aten.log_sigmoid_forward", "aten.hardshrink", "aten.softshrink",
             "aten.nan_to_num", "aten.isnan", "aten.isinf", "aten.clone", "aten.contiguous",
             "aten.detach", "aten.alias", "aten._to_copy", "aten.to", "aten.lift_fresh",
             "aten.lift_fresh_copy", "aten.cat", "aten.zeros_like", "aten.ones_like",
             "aten.empty_like", "aten.full_like", "aten.fill_", "aten.zero_",
             "aten.native_batch_norm", "aten._native_batch_norm_legit",
             "aten._native_batch_norm_legit_no_training", "aten.cudnn_batch_norm",
             "aten._batch_norm_with_update", "aten._batch_norm_no_update",
             "aten.native_layer_norm", "aten.native_group_norm", "aten._fused_rms_norm",
             "aten.channel_shuffle", "aten.native_channel_shuffle")


def _spatial_dims(rf: ReceptiveField, rank: int) -> list[int]:
    return list(range(rank - len(rf.axes), rank))


def _dims(value: Any, rank: int) -> list[int]:
    if value is None or value == () or value == []:
        return list(range(rank))
    values = value if isinstance(value, (tuple, list)) else (value,)
    return [int(v) % rank for v in values]


def _reshape(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Views and reshapes keep the RF when the trailing spatial dims are untouched; otherwise the
    spatial layout is lost (``flat``), except that a global RF stays global."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    nd = len(rf.axes)
    x: TensorMeta = call.args[0]
    if len(out) >= nd + 1 and out[-nd:] == x.shape[-nd:]:
        return replace(rf, shape=out)
    return ReceptiveField("flat", aligned=rf.aligned, shape=out)


RF_RULES.add(_reshape, "aten.view", "aten._unsafe_view", "aten.reshape", "aten._reshape_alias",
             "aten.flatten", "aten.unflatten", "aten.squeeze", "aten.unsqueeze", "aten.expand",
             "aten.expand_as", "aten.view_as", "aten.as_strided", "aten.stack", "aten.repeat")


@RF_RULES.register("aten.permute", "aten.transpose", "aten.t", "aten.movedim")
def permute(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A permutation that moves a spatial dim loses the layout (``flat``)."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    rank = len(out)
    if call.op == "aten.permute":
        order = [int(d) % rank for d in call.args[1]]
    elif call.op == "aten.t":
        order = [1, 0][:rank]
    else:
        a, b = int(_arg(call, 1, "dim0", 0)) % rank, int(_arg(call, 2, "dim1", 1)) % rank
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    if all(order[d] == d for d in _spatial_dims(rf, rank)) and call.op != "aten.movedim":
        return replace(rf, shape=out)
    return ReceptiveField("flat", aligned=rf.aligned, shape=out)


@RF_RULES.register("aten.slice")
def slice_(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """x[..., a:b:step] on a spatial dim: start_out = start_in + a·j_in, j_out = step·j_in."""
    out = _out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    rank = len(rf.shape)
    dim = int(_arg(call, 1, "dim", 0)) % rank
    spatial = _spatial_dims(rf, rank)
    if dim not in spatial:
        return replace(rf, shape=out)
    begin = _arg(call, 2, "start", 0) or 0
    size = rf.shape[dim]
    begin = max(0, begin + size if begin < 0 else min(begin, size))
    step = int(_arg(call, 4, "step", 1) or 1)
    axes = list(rf.axes)
    a = axes[spatial.index(dim)]
    axes[spatial.index(dim)] = AxisRF(a.size, a.jump * step, a.start + begin * a.jump)
    return _spatial(axes, out, rf.aligned)


def _reduce_over(call: OpCall, rf: ReceptiveField, dims: list[int], keepdim: bool) -> ReceptiveField:
    out = _out_shape(call)
    if rf.kind == "flat":
        return _global(out, rf.aligned)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    spatial = _spatial_dims(rf, len(rf.shape))
    axes = [AxisRF(None, a.jump, a.start) if d in dims else a for a, d in zip(rf.axes, spatial)]
    if all(a.size is None for a in axes):
        return _global(out, rf.aligned)
    if not keepdim and any(d in dims for d in spatial):
        return ReceptiveField("flat", aligned=rf.aligned, shape=out)
    return _spatial(axes, out, rf.aligned)


@RF_RULES.register("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.var", "aten.std",
                   "aten.var_mean", "aten.std_mean", "aten.prod", "aten.logsumexp", "aten.norm",
                   "aten.linalg_vector_norm", "aten.max", "aten.min", "aten.nansum")
def reduction(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A reduction over a spatial dim (global pooling) makes that axis global; over all of them,
    the RF is global. Over channels only: unchanged."""
    rank = len(rf.shape) if rf.shape else len(call.args[0].shape)
    dims = _dims(_arg(call, 1, "dim"), rank)
    keepdim = bool(_arg(call, 2, "keepdim", False))
    return _reduce_over(call, rf, dims, keepdim)


@RF_RULES.register("aten._softmax", "aten._log_softmax", "aten._safe_softmax", "aten.softmax",
                   "aten.log_softmax", "aten.cumsum", "aten.cumprod")
def softmax(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Normalising over a spatial dim (or over a flattened map, as attention does) sees all of it."""
    rank = len(rf.shape) if rf.shape else len(call.args[0].shape)
    return _reduce_over(call, rf, _dims(_arg(call, 1, "dim"), rank), keepdim=True)


@RF_RULES.register("aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.mv", "aten.dot",
                   "aten._scaled_dot_product_efficient_attention",
                   "aten._scaled_dot_product_flash_attention",
                   "aten._scaled_dot_product_flash_attention_for_cpu",
                   "aten._scaled_dot_product_cudnn_attention")
def matmul(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Linear over spatial features, attention and other products: each output mixes every
    position of its operand, so the RF is global from here on."""
    if rf.kind == "unknown":
        return replace(rf, shape=_out_shape(call))
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
    """Run the node's recorded ATen calls through their rules, following the tracked tensor."""
    for call in node.ops:
        if rf.kind == "unknown" or not call.outputs or not _reads(call, rf.shape):
            continue
        rule = RF_RULES.get(call.op)
        rf = _unknown(call.op, _out_shape(call), rf.aligned) if rule is None else rule(call, rf)
    return rf


def node_rf(node: Node, inputs: Sequence[ReceptiveField | None]) -> ReceptiveField | None:
    """The RF of one node given its producers' RFs (None: the tensor does not derive from an image)."""
    out = node.output
    if node.kind == "input":
        if out is None or len(out.shape) < 3:
            return None
        return identity(len(out.shape) - 2, out.shape)
    known = [rf for rf in inputs if rf is not None]
    if not known or out is None:
        return None
    if node.kind == "output":
        return known[0]
    rf = apply_ops(node, merge(known))
    if rf.kind == "spatial" and rf.shape != out.shape:
        return _unknown(f"{node.type} (output {out} does not match the followed tensor)", out.shape, rf.aligned)
    return rf


def analyse_receptive_fields(nodes: Sequence[Node]) -> dict[str, ReceptiveField | None]:
    """RF of every node, in execution order."""
    rfs: dict[str, ReceptiveField | None] = {}
    for node in nodes:
        rfs[node.name] = node_rf(node, [rfs.get(name) for name in node.inputs])
    return rfs


def unit_box(axis: AxisRF, index: int, extent: int) -> tuple[int, int, int, int]:
    """(lo, hi, clipped lo, clipped hi) of the input pixels output unit ``index`` sees on an axis
    of ``extent`` input pixels; fractional boundaries (after upsampling) are rounded outwards."""
    if axis.size is None:
        return 0, extent - 1, 0, extent - 1
    lo_f, hi_f = axis.box(index)
    lo, hi = math.floor(lo_f), math.ceil(hi_f)
    return lo, hi, max(lo, 0), min(hi, extent - 1)
