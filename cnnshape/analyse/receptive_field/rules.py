"""The table of per-op receptive-field rules and the helpers the rules share.

The rules are keyed by ATen op name and applied to the ops each node recorded, so module calls
(``nn.Conv2d``) and function calls (``F.conv2d``) take the same path. An op that touches the
tracked tensor and has no rule makes a spatial RF *unknown* from there on; it is never taken as
identity (:mod:`.traverse`). The rules themselves live in :mod:`.windows` (sliding windows,
resampling, padding) and :mod:`.layout` (views, selections, reductions, products, element-wise).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ...registry import Registry
from ...trace.records import OpCall
from .records import AxisRF, Place, ReceptiveField, flat_rf, spatial_rf, unknown_rf

Rule = Callable[[OpCall, ReceptiveField], ReceptiveField]
RF_RULES: Registry[str, Rule] = Registry("receptive_field")
#: per spatial dim of a sliding-window op (index k of the op's nd trailing dims): the new axis
AxisMap = Callable[[int, AxisRF], AxisRF]


def out_shape(call: OpCall) -> tuple[int, ...]:
    return call.outputs[0].shape if call.outputs else ()


def per_axis(value: Any, nd: int, default: int) -> tuple[int, ...]:
    if value is None or value == () or value == []:
        return (default,) * nd
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == nd else (int(value[0]),) * nd
    return (int(value),) * nd


def sliding(call: OpCall, rf: ReceptiveField, nd: int, fn: AxisMap,
            aligned: bool | None = None) -> ReceptiveField:
    """Apply ``fn`` to the axes on the op's ``nd`` trailing dims. A dim of the op that holds no
    tracked axis (the size-1 axis 1-d pooling inserts) is not followed; a tracked axis outside
    them, or packed with other axes into one dim, has no rule."""
    out = out_shape(call)
    rank = len(rf.shape)
    op_dims = range(rank - nd, rank)
    axes, places = [], []
    for a, place in zip(rf.axes, rf.places):
        if place.dim not in op_dims or not place.whole or rf.shape[place.dim] != place.extent:
            return unknown_rf(f"{call.op} on a tensor without a matching spatial layout", out, rf.aligned)
        axes.append(fn(place.dim - (rank - nd), a))
        places.append(Place(place.dim, 1, out[place.dim]))
    return spatial_rf(axes, out, rf.aligned if aligned is None else aligned, places)


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
    Broadcasting against a higher-rank operand adds leading dims."""
    out = out_shape(call) or rf.shape
    shift = len(out) - len(rf.shape)
    return replace(rf, shape=out, places=tuple(replace(p, dim=p.dim + shift) for p in rf.places))


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

