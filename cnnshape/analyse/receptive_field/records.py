"""The receptive-field records: frozen, torch-free (docs/receptive_field.md).

Per axis, with j the jump (input pixels between neighbouring units) and r the size, ``start`` is the
input coordinate of the centre of output unit 0, so unit i sees the input box
[start + i·j − (r−1)/2, start + i·j + (r−1)/2]. After upsampling that box is the continuous
approximation; ``AxisRF.unit_box`` maps the unit back through the index maps and is exact.

Each axis also records where it lives in the tensor (``Place``: the dim, its stride inside that
dim and its extent), so views, squeeze/unsqueeze, flatten and permutes carry the axes along.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

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


def global_rf(shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("global", aligned=aligned, shape=shape)


def unknown_rf(op: str, shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("unknown", aligned=aligned, unknown_op=op, shape=shape)


def spatial_rf(axes: Sequence[AxisRF], shape: tuple[int, ...], aligned: bool,
               places: Sequence[Place]) -> ReceptiveField:
    if all(a.size is None for a in axes):
        return global_rf(shape, aligned)
    return ReceptiveField("spatial", tuple(axes), aligned, shape=shape, places=tuple(places))


def flat_rf(rf: ReceptiveField, shape: tuple[int, ...]) -> ReceptiveField:
    return ReceptiveField("flat", aligned=rf.aligned, shape=shape)


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
