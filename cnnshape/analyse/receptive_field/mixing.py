"""Rules for ops that combine what units see: element-wise ops (and GLU), reductions, softmax,
matrix products and attention.
"""
from __future__ import annotations

from dataclasses import replace

from ...trace.records import OpCall, TensorMeta
from .channels import UNKNOWN, Profile, broadcast, canon, combine, take
from .records import AxisRF, ReceptiveField, flat_rf, global_rf, spatial_rf, unknown_rf
from .rules import RF_RULES, channel_view, derive, dims_of, known, out_shape, relabel, unchanged
from .trail import SAME, WHOLE, IndexMap, Prefix


@RF_RULES.register("aten.glu")
def glu(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """a·sigmoid(b) of the two halves along ``dim``: along channels every unit sees what it saw
    (channel c the labels of c and c + C/2); along a spatial axis unit i combines units i and
    i + W/2, which no start/jump describes."""
    if rf.kind != "spatial":
        return unchanged(call, rf)
    dim = int(call.arg("dim")) % len(rf.shape)
    if any(p.dim == dim for p in rf.places):
        return unknown_rf("glu along a spatial axis", out_shape(call), rf.aligned)
    labels, view = known(rf), channel_view(rf)
    result = replace(rf, shape=out_shape(call))
    if labels is None:
        return result
    if labels == UNKNOWN or view is None:
        return relabel(result, UNKNOWN)
    axis, half = view[0].index(dim), rf.shape[dim] // 2
    a = take(labels, view[1], axis, list(range(half)))
    b = take(labels, view[1], axis, list(range(half, 2 * half)))
    return relabel(result, canon(list(zip(a, b))))


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


def _reduce_over(call: OpCall, rf: ReceptiveField, dims: list[int], keepdim: bool,
                 reach: IndexMap = WHOLE) -> ReceptiveField:
    """``dims`` reduced (or normalised over, keepdim): an axis among them sees every unit of it
    (``reach``: the units of it one output unit reads), channels reduced together the union of
    their labels."""
    out = out_shape(call)
    if rf.kind == "flat":
        return global_rf(out, rf.aligned, source=rf)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    hit = [p.dim in dims for p in rf.places]
    axes = [AxisRF(None, a.jump, a.start) if h else a for a, h in zip(rf.axes, hit)]
    if all(a.size is None for a in axes):
        whole = global_rf(out, rf.aligned, source=rf)
        return whole if reach == WHOLE else derive(rf, whole, refused="a running sum over every axis: its units see "
                                                                      "different parts")
    if not keepdim and any(hit):
        return flat_rf(rf, out)
    labels = _reduced_labels(rf, dims, keepdim)
    if keepdim:
        places = [replace(p, extent=1) if h and out[p.dim] == 1 else p for p, h in zip(rf.places, hit)]
    else:
        places = [replace(p, dim=p.dim - sum(d < p.dim for d in dims)) for p in rf.places]
    maps = [reach if h else SAME for h in hit]
    return derive(rf, spatial_rf(axes, out, rf.aligned, places, source=rf), maps, labels)


def _reduced_labels(rf: ReceptiveField, dims: list[int], keepdim: bool) -> Profile | None:
    labels, view = known(rf), channel_view(rf)
    if labels is None:
        return None
    if labels == UNKNOWN or view is None:
        return UNKNOWN
    axes = [view[0].index(d) for d in dims if d in view[0]]
    if not axes:
        return labels
    reduced = combine(labels, view[1], axes)
    if not keepdim or reduced is None:
        return reduced
    kept = [1 if a in axes else n for a, n in enumerate(view[1])]
    return canon(broadcast(reduced, kept, view[1]))


@RF_RULES.register("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.var", "aten.std",
                   "aten.var_mean", "aten.std_mean", "aten.prod", "aten.logsumexp", "aten.norm",
                   "aten.linalg_vector_norm", "aten.max", "aten.min", "aten.nansum")
def reduction(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A reduction over a spatial dim (global pooling) makes that axis global; over all of them,
    the RF is global. Over channels only: every unit sees what it saw."""
    if call.arg("other") is not None:  # max(a, b), min(a, b): element-wise
        return unchanged(call, rf)
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    dims = dims_of(call.arg("dim"), rank)
    keepdim = bool(call.arg("keepdim", default=False))
    return _reduce_over(call, rf, dims, keepdim)


@RF_RULES.register("aten._softmax", "aten._log_softmax", "aten._safe_softmax", "aten.softmax",
                   "aten.log_softmax")
def softmax(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Normalising over a spatial dim (or over a flattened map, as attention does) sees all of it."""
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    return _reduce_over(call, rf, dims_of(call.arg("dim"), rank), keepdim=True)


@RF_RULES.register("aten.cumsum", "aten.cumprod")
def cumulative(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A running sum over a spatial dim: the closed form calls it global (unit i sees units 0..i
    of the axis: the last one sees it all); the unit boxes are exact."""
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    return _reduce_over(call, rf, dims_of(call.arg("dim"), rank), keepdim=True, reach=Prefix())


@RF_RULES.register("aten.mm", "aten.addmm")
def linear(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A 2-d product A·B with the followed tensor as A (a Linear: rows are positions, columns
    features): each output row reads its own row, so axes in the rows stay as they are and a
    Linear over channels is a 1x1 conv (every output feature reads every input feature: they all
    see alike). An axis in the contracted columns (a Linear over spatial features), or the
    followed tensor as B: global."""
    out = out_shape(call)
    a: TensorMeta = call.arg("mat1", "self")
    if rf.kind == "spatial" and a.shape == rf.shape and all(p.dim == 0 for p in rf.places):
        return relabel(replace(rf, shape=out), None)
    return global_rf(out, rf.aligned, source=rf)


@RF_RULES.register("aten.bmm", "aten.baddbmm", "aten.mv", "aten.dot",
                   "aten._scaled_dot_product_efficient_attention",
                   "aten._scaled_dot_product_flash_attention",
                   "aten._scaled_dot_product_flash_attention_for_cpu",
                   "aten._scaled_dot_product_cudnn_attention")
def matmul(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Attention and other products of activations: each output mixes every position of its
    operand, so the RF is global from here on."""
    return global_rf(out_shape(call), rf.aligned, source=rf)
