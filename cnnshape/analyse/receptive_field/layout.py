"""Rules for ops that move units without reading new ones: views and reshapes, squeeze and
unsqueeze, expand, permutes. Each keeps every unit's box; only where the axes live changes
(``Place``), and, when dims without axes move, the order of the channels (:mod:`.channels`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...trace.records import OpCall
from .channels import UNKNOWN, broadcast
from .channels import permute as permute_labels
from .records import Place, ReceptiveField, flat_rf
from .rules import RF_RULES, channel_view, dims_of, known, moved, numel, out_shape, relabel


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
    """New leading dims move the axes on; expanding or repeating an axis itself loses the layout.
    Expanded channels repeat their labels; repeated (tiled) ones are not followed."""
    out = out_shape(call)
    shift = len(out) - len(rf.shape)
    result = moved(rf, out, lambda p: p.dim + shift if out[p.dim + shift] == rf.shape[p.dim] else None)
    labels, before, after = known(rf), channel_view(rf), channel_view(result)
    if result.kind != "spatial" or labels is None:
        return result
    if call.op == "aten.repeat" or labels == UNKNOWN or before is None or after is None:
        return relabel(result, UNKNOWN)
    return relabel(result, broadcast(labels, before[1], after[1]))


@RF_RULES.register("aten.as_strided")
def as_strided(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Only a same-shape as_strided (a restride torch inserts) is followed."""
    out = out_shape(call)
    return replace(rf, shape=out) if out == rf.shape or rf.kind != "spatial" else flat_rf(rf, out)


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
    result = moved(rf, out, lambda p: order.index(p.dim))
    labels, view = known(rf), channel_view(rf)
    if result.kind != "spatial" or labels is None:
        return result
    if labels == UNKNOWN or view is None:
        return relabel(result, UNKNOWN)
    # the dims without axes, in their new order, as positions in the old channel grid
    grid_order = [view[0].index(d) for d in order if d in view[0]]
    return result if grid_order == sorted(grid_order) else relabel(result, permute_labels(labels, view[1], grid_order))


