"""Rules for ops that move, select, reduce or mix units: views and reshapes, permutes, slices,
splits, concatenation, reductions, softmax, matrix products and element-wise ops.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...trace.records import OpCall, TensorMeta
from .records import AxisRF, Place, ReceptiveField, Source, flat_rf, global_rf, spatial_rf, unknown_rf
from .rules import RF_RULES, dims_of, moved, numel, out_shape, unchanged


@RF_RULES.register("aten.glu")
def glu(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """a·sigmoid(b) of the two halves along ``dim``: along channels every unit sees what it saw;
    along a spatial axis unit i combines units i and i + W/2, which no start/jump describes."""
    if rf.kind == "spatial":
        dim = int(call.arg("dim")) % len(rf.shape)
        if any(p.dim == dim for p in rf.places):
            return unknown_rf("glu along a spatial axis", out_shape(call), rf.aligned)
    return unchanged(call, rf)


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
    out = out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    dim = int(call.arg("dim")) % len(out)
    along_spatial = any(p.dim == dim for p in rf.places)
    return replace(rf, shape=out, aligned=rf.aligned and not along_spatial,
                   places=tuple(replace(p, extent=out[p.dim]) if p.whole else p for p in rf.places))


def reshape_place(place: Place, before: Sequence[int], after: Sequence[int]) -> Place | None:
    """Follow an axis through a row-major reshape: with stride G = inner·prod(before[dim+1:]) in
    element order, it lies in the dim e of ``after`` with prod(after[e+1:]) dividing G and
    (G / prod(after[e+1:]))·extent dividing after[e]. None when no dim or several dims fit (the
    axis was split, or it has extent 1 and size-1 dims make the position ambiguous)."""
    g = place.inner * numel(before[place.dim + 1:])
    fits = []
    for e in range(len(after)):
        rest = numel(after[e + 1:])
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
    block, lead = tuple(before[lo:hi]), numel(before[:lo])
    starts = [s for s in range(len(after) - len(block) + 1)
              if tuple(after[s:s + len(block)]) == block and numel(after[:s]) == lead]
    return starts[0] - lo if len(starts) == 1 else None


@RF_RULES.register("aten.view", "aten._unsafe_view", "aten.reshape", "aten._reshape_alias",
                   "aten.flatten", "aten.unflatten", "aten.view_as")
def reshape(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Views and reshapes keep element order. One that only splits or merges dims besides the
    spatial ones (a channel shuffle) moves those dims as a block (``_kept_block``); otherwise each
    axis is followed to the dim (and the stride inside it) it lands in (``reshape_place``), so
    flattening H and W packs both into one dim. When that is ambiguous the layout is lost
    (``flat``)."""
    out = out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    shift = _kept_block(rf, out)
    if shift is not None:
        return replace(rf, shape=out, places=tuple(replace(p, dim=p.dim + shift) for p in rf.places))
    places = []
    for p in rf.places:
        moved = reshape_place(p, rf.shape, out)
        if moved is None:
            return flat_rf(rf, out)
        places.append(moved)
    return replace(rf, shape=out, places=tuple(places))


@RF_RULES.register("aten.unsqueeze")
def unsqueeze(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A size-1 dim inserted at ``dim``: the axes at or after it move one dim on."""
    out = out_shape(call)
    at = int(call.arg("dim")) % len(out)
    return moved(rf, out, lambda p: p.dim + (p.dim >= at))


@RF_RULES.register("aten.squeeze")
def squeeze(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Size-1 dims removed (all of them, or the given ones): later axes move back; an axis that
    was itself removed can no longer be followed."""
    rank = len(rf.shape)
    given = call.arg("dim")
    dims = set(dims_of(given, rank)) if given is not None else set(range(rank))
    gone = sorted(d for d in dims if rf.shape[d] == 1)
    return moved(rf, out_shape(call), lambda p: None if p.dim in gone else p.dim - sum(d < p.dim for d in gone))


@RF_RULES.register("aten.expand", "aten.expand_as", "aten.repeat")
def expand(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """New leading dims move the axes on; expanding or repeating an axis itself loses the layout."""
    out = out_shape(call)
    shift = len(out) - len(rf.shape)
    return moved(rf, out, lambda p: p.dim + shift if out[p.dim + shift] == rf.shape[p.dim] else None)


@RF_RULES.register("aten.as_strided")
def as_strided(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Only a same-shape as_strided (a restride torch inserts) is followed."""
    out = out_shape(call)
    return replace(rf, shape=out) if out == rf.shape or rf.kind != "spatial" else flat_rf(rf, out)


@RF_RULES.register("aten.stack")
def stack(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A new dim at ``dim``: the axes at or after it move one dim on."""
    out = out_shape(call)
    at = int(call.arg("dim")) % len(out)
    return moved(rf, out, lambda p: p.dim + (p.dim >= at))


@RF_RULES.register("aten.permute", "aten.transpose", "aten.t", "aten.movedim")
def permute(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """The axes move with their dims (channels-last and back, token-major sequences)."""
    out = out_shape(call)
    rank = len(out)
    if call.op == "aten.permute":
        order = [int(d) % rank for d in call.arg("dims")]
    elif call.op == "aten.movedim":
        src, dst = dims_of(call.arg("source"), rank), dims_of(call.arg("destination"), rank)
        rest = iter(d for d in range(rank) if d not in src)
        by_dst = dict(zip(dst, src))
        order = [by_dst[d] if d in by_dst else next(rest) for d in range(rank)]
    else:
        a = int(call.arg("dim0")) % rank if call.op != "aten.t" else 0
        b = int(call.arg("dim1")) % rank if call.op != "aten.t" else min(1, rank - 1)
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    return moved(rf, out, lambda p: order.index(p.dim))


@RF_RULES.register("aten.slice")
def slice_(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """x[..., a:b:step] on a spatial dim: start_out = start_in + a·j_in, j_out = step·j_in."""
    out = out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    rank = len(rf.shape)
    dim = int(call.arg("dim")) % rank
    hit = [i for i, p in enumerate(rf.places) if p.dim == dim]
    if not hit:
        return replace(rf, shape=out)
    if not rf.places[hit[0]].whole or len(hit) > 1:
        return unknown_rf(f"{call.op} across packed spatial axes", out, rf.aligned)
    begin = call.arg("start") or 0
    size = rf.shape[dim]
    begin = max(0, begin + size if begin < 0 else min(begin, size))
    step = int(call.arg("step") or 1)
    axes, places = list(rf.axes), list(rf.places)
    a = axes[hit[0]]
    source: Source | None = ("window", (step, -begin, 0), (a,)) if a.source else None
    axes[hit[0]] = AxisRF(a.size, a.jump * step, a.start + begin * a.jump, source)
    places[hit[0]] = Place(dim, 1, out[dim])
    return spatial_rf(axes, out, rf.aligned, places)


@RF_RULES.register("aten.select", "aten.unbind", "aten.split", "aten.split_with_sizes",
                   "aten.unsafe_split", "aten.chunk")
def select(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Picking or splitting along a non-spatial dim (q, k, v out of a fused qkv; channel groups):
    the axes are unchanged (select and unbind remove that dim). Unbinding or splitting along a
    spatial dim (an RNN stepping over a sequence) makes the positions separate tensors: the layout
    is gone (``flat``), and whatever mixes them (the recurrent matmuls) is global. Selecting one
    position of a spatial axis: no rule."""
    out = out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    dim = int(call.arg("dim")) % len(rf.shape)
    if any(p.dim == dim for p in rf.places):
        if call.op == "aten.select":
            return unknown_rf(f"{call.op} of one position along a spatial axis", out, rf.aligned)
        return flat_rf(rf, out)
    removed = len(out) < len(rf.shape)
    return moved(rf, out, lambda p: p.dim - (removed and p.dim > dim))


def _reduce_over(call: OpCall, rf: ReceptiveField, dims: list[int], keepdim: bool) -> ReceptiveField:
    out = out_shape(call)
    if rf.kind == "flat":
        return global_rf(out, rf.aligned)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    axes = [AxisRF(None, a.jump, a.start) if p.dim in dims else a for a, p in zip(rf.axes, rf.places)]
    if all(a.size is None for a in axes):
        return global_rf(out, rf.aligned)
    if keepdim:
        return spatial_rf(axes, out, rf.aligned, rf.places)
    if any(p.dim in dims for p in rf.places):
        return flat_rf(rf, out)
    places = [replace(p, dim=p.dim - sum(d < p.dim for d in dims)) for p in rf.places]
    return spatial_rf(axes, out, rf.aligned, places)


@RF_RULES.register("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.var", "aten.std",
                   "aten.var_mean", "aten.std_mean", "aten.prod", "aten.logsumexp", "aten.norm",
                   "aten.linalg_vector_norm", "aten.max", "aten.min", "aten.nansum")
def reduction(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A reduction over a spatial dim (global pooling) makes that axis global; over all of them,
    the RF is global. Over channels only: unchanged."""
    if call.arg("other") is not None:  # max(a, b), min(a, b): element-wise
        return unchanged(call, rf)
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    dims = dims_of(call.arg("dim"), rank)
    keepdim = bool(call.arg("keepdim", default=False))
    return _reduce_over(call, rf, dims, keepdim)


@RF_RULES.register("aten._softmax", "aten._log_softmax", "aten._safe_softmax", "aten.softmax",
                   "aten.log_softmax", "aten.cumsum", "aten.cumprod")
def softmax(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Normalising over a spatial dim (or over a flattened map, as attention does) sees all of it."""
    rank = len(rf.shape) if rf.shape else len(call.arg("self").shape)
    return _reduce_over(call, rf, dims_of(call.arg("dim"), rank), keepdim=True)


@RF_RULES.register("aten.mm", "aten.addmm")
def linear(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A 2-d product A·B with the followed tensor as A (a Linear: rows are positions, columns
    features): each output row reads its own row, so axes in the rows stay as they are and a
    Linear over channels is a 1x1 conv. An axis in the contracted columns (a Linear over spatial
    features), or the followed tensor as B: global."""
    out = out_shape(call)
    a: TensorMeta = call.arg("mat1", "self")
    if rf.kind == "spatial" and a.shape == rf.shape and all(p.dim == 0 for p in rf.places):
        return replace(rf, shape=out)
    return global_rf(out, rf.aligned)


@RF_RULES.register("aten.bmm", "aten.baddbmm", "aten.mv", "aten.dot",
                   "aten._scaled_dot_product_efficient_attention",
                   "aten._scaled_dot_product_flash_attention",
                   "aten._scaled_dot_product_flash_attention_for_cpu",
                   "aten._scaled_dot_product_cudnn_attention")
def matmul(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Attention and other products of activations: each output mixes every position of its
    operand, so the RF is global from here on."""
    return global_rf(out_shape(call), rf.aligned)

