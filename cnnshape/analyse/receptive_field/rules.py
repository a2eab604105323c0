"""The table of per-op receptive-field rules and the helpers the rules share.

The rules are keyed by ATen op name and applied to the ops each node recorded, so module calls
(``nn.Conv2d``) and function calls (``F.conv2d``) take the same path. An op that touches the
tracked tensor and has no rule makes a spatial RF *unknown* from there on; it is never taken as
identity (:mod:`.traverse`). The rules themselves live in :mod:`.windows` (sliding windows,
resampling, padding, pixel (un)shuffle), :mod:`.layout` (views, reshapes, permutes), :mod:`.select`
(slices, splits, concatenation) and :mod:`.mixing` (element-wise, reductions, products).

Besides the closed form, each rule gives its result a trail (:func:`derive`): per axis, which
units of the input each output unit reads (:mod:`.trail`), and which channels see alike
(:mod:`.channels`), for the exact unit boxes of :mod:`.boxes`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ...registry import Registry
from ...trace.records import OpCall
from .channels import UNKNOWN, Profile, broadcast, canon
from .records import AxisRF, Place, ReceptiveField, flat_rf, spatial_rf, unknown_rf, with_trail
from .trail import SAME, IndexMap, Link, Trail, link

Rule = Callable[[OpCall, ReceptiveField], ReceptiveField]
RF_RULES: Registry[str, Rule] = Registry("receptive_field")
#: per spatial dim of a sliding-window op (index k of the op's nd trailing dims): the new axis and
#: the index map from its units to the units of the old one
AxisMap = Callable[[int, AxisRF], tuple[AxisRF, IndexMap]]
#: ``derive(..., profile=KEEP)``: the channels are the parent's, in the same order
KEEP: Profile = (-2,)


def derive(parent: ReceptiveField, child: ReceptiveField, maps: Sequence[IndexMap] | None = None,
           profile: Profile | None = KEEP, refused: str | None = None) -> ReceptiveField:
    """``child``, computed by a rule from ``parent``, with a trail back to it: unit i of its axis k
    reads the units ``maps[k]`` gives of ``parent``'s axis k (default: the same units). ``profile``:
    its channels' labels (:mod:`.channels`); ``refused``: why no exact box passes through it."""
    if child.kind not in ("spatial", "global", "flat") or parent.trail is None:
        return child
    trail = parent.trail
    labels = trail.profile if profile == KEEP else profile
    if child.kind != "spatial":  # global or flat: each unit sees (some of) what every unit of parent sees
        if child.trail is not None and refused is None:
            return child
        return with_trail(child, Trail((), (link(trail),), refused=refused))
    maps = tuple(maps) if maps is not None else (SAME,) * len(child.axes)
    return with_trail(child, step_trail(trail, tuple([p.extent for p in child.places]), maps, labels, refused))


def step_trail(parent: Trail, extents: tuple[int, ...], maps: tuple[IndexMap, ...], profile: Profile | None,
               refused: str | None) -> Trail:
    """The trail of a tensor with ``extents`` units per axis, unit i of axis k reading the units
    ``maps[k]`` gives of ``parent``'s axis k; a unit is empty (reads only padding or constants) when
    what it reads along some axis is."""
    before = parent.empty or (frozenset(),) * len(maps)
    empty = tuple([m.empty(size, n, e) for m, size, n, e in zip(maps, extents, parent.extents, before)])
    return Trail(extents, (Link(parent, maps),), profile=profile, refused=refused, empty=empty)


def channel_view(rf: ReceptiveField) -> tuple[list[int], list[int]] | None:
    """(dims, sizes) of the tensor dims that hold no axis: the grid of its channels. None when a
    dim holds an axis and other elements too, so no dims give the channels."""
    holding: dict[int, int] = {}
    for p in rf.places:
        holding[p.dim] = holding.get(p.dim, 1) * p.extent
    if any(rf.shape[d] != n for d, n in holding.items()):
        return None
    dims = [d for d in range(len(rf.shape)) if d not in holding]
    return dims, [rf.shape[d] for d in dims]


def relabel(rf: ReceptiveField, profile: Profile | None, refused: str | None = None) -> ReceptiveField:
    """``rf`` with its channels relabelled (the same units), or refused."""
    if rf.trail is None or (profile == rf.trail.profile and refused is None):
        return rf
    return derive(rf, rf, profile=profile, refused=refused)


def known(rf: ReceptiveField) -> Profile | None:
    """The channel labels of ``rf``, UNKNOWN when its trail is gone."""
    return rf.trail.profile if rf.trail is not None else UNKNOWN


def out_shape(call: OpCall) -> tuple[int, ...]:
    return call.outputs[0].shape if call.outputs else ()


def per_axis(value: Any, nd: int, default: int) -> tuple[int, ...]:
    if value is None or value == () or value == []:
        return (default,) * nd
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == nd else (int(value[0]),) * nd
    return (int(value),) * nd


def sliding(call: OpCall, rf: ReceptiveField, nd: int, fn: AxisMap, aligned: bool | None = None,
            profile: Profile | None = KEEP, refused: str | None = None) -> ReceptiveField:
    """Apply ``fn`` to the axes on the op's ``nd`` trailing dims. A dim of the op that holds no
    tracked axis (the size-1 axis 1-d pooling inserts) is not followed; a tracked axis outside
    them, or packed with other axes into one dim, has no rule. ``profile``: the output's channel
    labels (default: the input's); ``refused``: why its units get no exact box."""
    out = out_shape(call)
    shape = rf.shape
    rank = len(shape)
    first = rank - nd
    axes: list[AxisRF] = []
    maps: list[IndexMap] = []
    places = []
    kept = True
    for a, place in zip(rf.axes, rf.places):
        dim = place.dim
        if not first <= dim < rank or place.inner != 1 or shape[dim] != place.extent:
            return unknown_rf(f"{call.op} on a tensor without a matching spatial layout", out, rf.aligned)
        axis, index_map = fn(dim - first, a)
        axes.append(axis)
        maps.append(index_map)
        # Place(dim, 1, out[dim]): the place itself where the extent stays (a 'same' convolution),
        # and the input's tuple of them where every one does (merge tells shared layouts by it)
        if out[dim] != place.extent:
            place, kept = Place(dim, 1, out[dim]), False
        places.append(place)
    aligned = rf.aligned if aligned is None else aligned
    parent = rf.trail
    if parent is None or all(a.size is None for a in axes):  # nothing to link, or every axis global
        return derive(rf, spatial_rf(axes, out, aligned, places, source=rf), maps, profile, refused)
    # derive(rf, spatial_rf(axes, ...), maps, profile, refused) in one step, once per conv or pool of
    # a traversal: the same record, without the child that derive would copy to point its axes at the
    # new trail (tests/test_rf_fast.py compares the two)
    trail = step_trail(parent, tuple([p.extent for p in places]), tuple(maps), parent.profile if profile == KEEP
                       else profile, refused)
    if not kept or len(places) != len(rf.places):
        rf_places = tuple(places)
    else:
        rf_places = rf.places
    return ReceptiveField("spatial", tuple([AxisRF(a.size, a.jump, a.start, trail, k) for k, a in enumerate(axes)]),
                          aligned, shape=out, places=rf_places, trail=trail)


def spatial_only(fn: Rule) -> Rule:
    """Sliding-window ops follow spatial RFs (unknown and global ones never reach a rule)."""

    def rule(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
        if rf.kind != "spatial":
            return unknown_rf(f"{call.op} on a tensor without a spatial layout", out_shape(call), rf.aligned)
        return fn(call, rf)

    rule.__doc__ = fn.__doc__
    return rule


def unchanged(call: OpCall, rf: ReceptiveField) -> ReceptiveField:
    """Element-wise, normalisation (statistics ignored) and copies: every unit sees what it saw.
    Broadcasting against a higher-rank operand adds leading dims (and repeats channel labels)."""
    out = out_shape(call) or rf.shape
    shift = len(out) - len(rf.shape)
    if shift == 0:
        result = rf if out == rf.shape else replace(rf, shape=out)
    else:
        result = replace(rf, shape=out, places=tuple(replace(p, dim=p.dim + shift) for p in rf.places))
    if rf.kind != "spatial" or out == rf.shape:
        return result
    labels = known(rf)
    if labels is None:
        return result
    before, after = channel_view(rf), channel_view(result)
    if labels == UNKNOWN or before is None or after is None:
        return relabel(result, UNKNOWN)
    return relabel(result, canon(broadcast(labels, before[1], after[1])))


def dims_of(value: Any, rank: int) -> list[int]:
    if value is None or value == () or value == []:
        return list(range(rank))
    values = value if isinstance(value, (tuple, list)) else (value,)
    return [int(v) % rank for v in values]


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def moved(rf: ReceptiveField, out: tuple[int, ...], new_dim: Callable[[Place], int | None]) -> ReceptiveField:
    """Each axis moves to dim ``new_dim(place)`` (None: it cannot be followed -> flat)."""
    if rf.kind != "spatial":
        return replace(rf, shape=out)
    places = []
    for p in rf.places:
        d = new_dim(p)
        if d is None:
            return flat_rf(rf, out)
        places.append(replace(p, dim=d))
    return replace(rf, shape=out, places=tuple(places))

