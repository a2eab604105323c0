"""Rules for ops that take part of a tensor or put tensors together: slices, select and splits,
concatenation and stack.

Along a spatial axis they move or crop units (a slice is a window of kernel 1); along the dims
without axes they pick or gather channels, and what a unit of the result sees is then the union
over *those* channels (:mod:`.channels`): given exactly when they hold every label of the whole,
refused otherwise.
"""
from __future__ import annotations

import math
from dataclasses import replace

from ...trace.records import OpCall, TensorMeta
from .channels import UNKNOWN, Profile, canon, concat, covers, expand, take
from .records import AxisRF, Piece, Place, ReceptiveField, flat_rf, spatial_rf, unknown_rf, with_trail
from .rules import RF_RULES, channel_view, derive, known, moved, out_shape, relabel
from .trail import SAME, IndexMap, Link, Part, Trail, Window

#: why a piece of channels that do not all see alike gets no box
PARTIAL = "it reads some of the channels of a tensor whose channels do not all see alike"


def _subset(rf: ReceptiveField, dim: int, indices: list[int]) -> tuple[Profile | None, str | None]:
    """The labels of the channels at ``indices`` along ``dim`` (a dim without axes), and why its
    units get no box when they do not hold every label of ``rf``."""
    labels, view = known(rf), channel_view(rf)
    if labels is None:
        return None, None
    if labels == UNKNOWN or view is None:
        return UNKNOWN, PARTIAL
    piece = take(labels, view[1], view[0].index(dim), indices)
    return canon(piece), None if covers(piece, labels) else PARTIAL


@RF_RULES.register("aten.slice")
def slice_(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """x[..., a:b:step] on a spatial dim: start_out = start_in + a·j_in, j_out = step·j_in; unit i
    reads unit a + i·step. On a dim without axes: the channels a, a + step, ... < b."""
    out = out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    rank = len(rf.shape)
    dim = int(call.arg("dim")) % rank
    size = rf.shape[dim]
    begin = call.arg("start") or 0
    begin = max(0, begin + size if begin < 0 else min(begin, size))
    step = int(call.arg("step") or 1)
    hit = [i for i, p in enumerate(rf.places) if p.dim == dim]
    if not hit:
        labels, refused = _subset(rf, dim, list(range(begin, begin + step * out[dim], step)))
        return relabel(replace(rf, shape=out), labels, refused)
    if not rf.places[hit[0]].whole or len(hit) > 1:
        return unknown_rf(f"{call.op} across packed spatial axes", out, rf.aligned)
    axes, places = list(rf.axes), list(rf.places)
    a = axes[hit[0]]
    axes[hit[0]] = AxisRF(a.size, a.jump * step, a.start + begin * a.jump)
    places[hit[0]] = Place(dim, 1, out[dim])
    maps: list[IndexMap] = [SAME] * len(axes)
    maps[hit[0]] = Window(step, -begin)
    return derive(rf, spatial_rf(axes, out, rf.aligned, places, source=rf), maps)


@RF_RULES.register("aten.select", "aten.unbind", "aten.split", "aten.split_with_sizes",
                   "aten.unsafe_split", "aten.chunk")
def select(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Picking or splitting along a non-spatial dim (q, k, v out of a fused qkv; channel groups):
    the axes are unchanged (select and unbind remove that dim). Unbinding or splitting along a
    spatial dim (an RNN stepping over a sequence) makes the positions separate tensors: the layout
    is gone (``flat``), and whatever mixes them (the recurrent matmuls) is global. Selecting one
    position of a spatial axis: no rule. The RF of a split is the first piece's; every piece is
    kept (``pieces``) for the consumer that reads it to take its own channels."""
    out = out_shape(call)
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    dim = int(call.arg("dim")) % len(rf.shape)
    if any(p.dim == dim for p in rf.places):
        if call.op == "aten.select":
            return unknown_rf(f"{call.op} of one position along a spatial axis", out, rf.aligned)
        return flat_rf(rf, out)
    removed = len(out) < len(rf.shape)
    result = moved(rf, out, lambda p: p.dim - (removed and p.dim > dim))
    if known(rf) is None:
        return result
    if call.op == "aten.select":
        index = int(call.arg("index")) % rf.shape[dim]
        return relabel(result, *_subset(rf, dim, [index]))
    pieces, offset = [], 0
    for meta in call.outputs:
        size = 1 if removed else meta.shape[dim]
        labels, refused = _subset(rf, dim, list(range(offset, offset + size)))
        pieces.append(Piece(meta.shape, labels, refused is None))
        offset += size
    first = pieces[0]
    return replace(relabel(result, first.profile, None if first.complete else PARTIAL), pieces=tuple(pieces))


def _gather(call: OpCall, rf: ReceptiveField, new_dim: bool) -> ReceptiveField:
    """cat / stack of the node's inputs (``rf``: their merge, ``rf.parts`` them in order)."""
    out = out_shape(call)
    tensors = call.arg("tensors") or ()
    parts = rf.parts
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    dim = int(call.arg("dim")) % len(out)
    along = [k for k, p in enumerate(rf.places) if p.dim == dim and not new_dim]
    known_parts = len(parts) == len(tensors) and all(
        part is None or (part.shape == t.shape and (part.kind == "spatial" or not along))
        for part, t in zip(parts, tensors) if isinstance(t, TensorMeta))
    dims_after = [p.dim + (new_dim and p.dim >= dim) for p in rf.places]
    places = tuple(replace(p, dim=d, extent=out[d] if p.whole else p.extent) for p, d in zip(rf.places, dims_after))
    result = replace(rf, shape=out, places=places, aligned=rf.aligned and not along, parts=())
    if along:  # along a spatial axis: unit i of it comes from one part, at i − offset
        if not known_parts or rf.trail is None:
            return with_trail(result, Trail(tuple(p.extent for p in places), refused="a concatenation along a "
                                            "spatial axis whose parts are not known"))
        links, offset = [], 0
        empty: list[set[int]] = [set() for _ in places]
        for n, (part, t) in enumerate(zip(parts, tensors)):
            size = t.shape[dim]
            if part is not None and part.trail is not None:
                maps: list[IndexMap] = [SAME] * len(places)
                maps[along[0]] = Part(offset, n == 0, n == len(tensors) - 1)
                links.append(Link(part.trail, tuple(maps)))
                for k, e in enumerate(part.trail.empty):  # a superset: a unit is empty if empty along one axis
                    empty[k] |= {offset + i for i in e} if k == along[0] else e
            else:  # not from the image: its units read nothing
                empty[along[0]] |= set(range(offset, offset + size))
            offset += size
        labels = None if all(part is None or known(part) is None for part in parts) else UNKNOWN
        return with_trail(result, Trail(tuple(p.extent for p in places), tuple(links), profile=labels,
                                        empty=tuple(frozenset(e) for e in empty)))
    return relabel(result, _stacked(rf, tensors, dim, new_dim) if known_parts else UNKNOWN)


def _stacked(rf: ReceptiveField, tensors: tuple[TensorMeta, ...], dim: int, new_dim: bool) -> Profile | None:
    """Labels of channels gathered from the parts (``rf.parts``, merged into ``rf``): a part's own
    labels, told apart from another part's unless it is the same tensor; the channels of a part
    not derived from the image see nothing, a label of their own."""
    axis_dims = {p.dim for p in rf.places}
    grids, tagged = [], []
    for n, (part, t) in enumerate(zip(rf.parts, tensors)):
        dims = [d for d in range(len(t.shape)) if d not in axis_dims]
        sizes = [t.shape[d] for d in dims]
        labels = known(part) if part is not None else None
        if labels == UNKNOWN or (part is not None and channel_view(part) != (dims, sizes)):
            return UNKNOWN
        tag = id(part.trail) if part is not None else ("nothing", n)
        tagged.append(tuple((tag, v) for v in expand(labels, math.prod(sizes))))
        axis = sum(d < dim for d in dims) if new_dim else dims.index(dim)
        grids.append([*sizes[:axis], 1, *sizes[axis:]] if new_dim else sizes)
    ids: dict[object, int] = {}
    flat = [tuple(ids.setdefault(v, len(ids)) for v in labels) for labels in tagged]
    return canon(concat(list(zip(flat, grids)), axis))


@RF_RULES.register("aten.cat")
def cat(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Concatenation along channels: every unit sees what the parts' units see (their union), and
    the channels keep the labels of their part. Along a spatial axis the axis continues (its extent
    grows), unit i coming from the part it falls in; no single start/jump maps every unit to its
    box, so the result is marked misaligned."""
    return _gather(call, rf, new_dim=False)


@RF_RULES.register("aten.stack")
def stack(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """A new dim at ``dim`` (no axis): the axes at or after it move one dim on; along it, the parts."""
    return _gather(call, rf, new_dim=True)
