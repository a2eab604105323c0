"""The receptive-field records: frozen, torch-free (docs/receptive_field.md).

Per axis, with j the jump (input pixels between neighbouring units) and r the size, ``start`` is the
input coordinate of the centre of output unit 0, so unit i sees the input box
[start + i·j − (r−1)/2, start + i·j + (r−1)/2]: the closed form, reported in the tables. After
upsampling it is a continuous approximation, and near the borders it ignores what exists: the
exact box of one unit comes from its ``trail`` (:mod:`.trail`, walked by :mod:`.boxes`).

Each axis also records where it lives in the tensor (``Place``: the dim, its stride inside that
dim and its extent), so views, squeeze/unsqueeze, flatten and permutes carry the axes along.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from ...frozen import fast_init
from .trail import Trail, link

RFKind = Literal["spatial", "global", "flat", "unknown"]


@fast_init
@dataclass(frozen=True)
class AxisRF:
    """One spatial axis. ``size`` None: this axis sees the whole input extent."""

    size: Fraction | None
    jump: Fraction
    start: Fraction
    #: the trail of the tensor this axis belongs to, and which of its axes this is
    trail: Trail | None = field(default=None, compare=False, repr=False)
    axis: int = field(default=0, compare=False, repr=False)

    def box(self, i: int) -> tuple[Fraction, Fraction]:
        """The input interval [lo, hi] output unit ``i`` sees by the closed form (unclipped, inclusive)."""
        assert self.size is not None
        centre = self.start + i * self.jump
        half = (self.size - 1) / 2
        return centre - half, centre + half


@fast_init
@dataclass(frozen=True)
class Piece:
    """One output of a split along a dim that holds no axis: its shape, the channel labels it
    takes from the whole (:mod:`.channels`; None: all alike), and whether it holds every label of
    the whole (then its units see what the whole's do)."""

    shape: tuple[int, ...]
    profile: tuple[int, ...] | None
    complete: bool


@fast_init
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


@fast_init
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
    #: the exact record of the units (spatial, global, flat), :mod:`.trail`
    trail: Trail | None = field(default=None, compare=False, repr=False)
    #: a split along a dim without axes: every output, for the consumers to pick theirs
    pieces: tuple[Piece, ...] = field(default=(), compare=False, repr=False)
    #: a merge of a node's inputs: their RFs in argument order (None: not from the image), for a
    #: concatenation to tell which units and channels come from which
    parts: tuple[ReceptiveField | None, ...] = field(default=(), compare=False, repr=False)

    @property
    def is_global(self) -> bool:
        return self.kind == "global"

    def size_text(self) -> str:
        """The size as the tables print it: ``7``, ``7x5``, ``global``, ``unknown``; ``*`` marks a
        merge of misaligned branches; ``""`` for a flat layout."""
        if self.kind == "flat":
            return ""
        if self.kind != "spatial":
            text: str = self.kind
        else:
            sizes = [fraction_text(a.size) for a in self.axes]
            text = sizes[0] if len(set(sizes)) == 1 else "x".join(sizes)
        return text if self.aligned else text + "*"

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
    return value.numerator if value.denominator == 1 else float(value)  # the numerator: int(value), faster


def fraction_text(value: Fraction | None) -> str:
    if value is None:
        return "global"
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def with_trail(rf: ReceptiveField, trail: Trail | None,
               parts: tuple[ReceptiveField | None, ...] = ()) -> ReceptiveField:
    """``rf`` with ``trail``, its axes pointing at it (and ``parts``)."""
    axes = tuple(AxisRF(a.size, a.jump, a.start, trail, k) for k, a in enumerate(rf.axes))
    # replace(rf, axes=axes, trail=trail, pieces=(), parts=parts), spelt out: once per op of a
    # traversal, where dataclasses.replace's walk over the fields was a tenth of the RF time
    return ReceptiveField(rf.kind, axes, rf.aligned, rf.unknown_op, rf.shape, rf.places, rf.failure, trail=trail,
                          parts=parts)


def with_parts(rf: ReceptiveField, parts: tuple[ReceptiveField | None, ...]) -> ReceptiveField:
    """``replace(rf, parts=parts)``, spelt out as :func:`with_trail` is (once per merge of branches)."""
    return ReceptiveField(rf.kind, rf.axes, rf.aligned, rf.unknown_op, rf.shape, rf.places, rf.failure, rf.trail,
                          rf.pieces, parts)


def identity(nd: int, shape: tuple[int, ...], name: str | None = None) -> ReceptiveField:
    """An input tensor: every unit sees itself."""
    rank = len(shape)
    rf = ReceptiveField("spatial", tuple(AxisRF(Fraction(1), Fraction(1), Fraction(0)) for _ in range(nd)),
                        shape=shape, places=tuple(Place(d, 1, shape[d]) for d in range(rank - nd, rank)))
    return with_trail(rf, Trail(shape[rank - nd:], name=name))


def _whole(rf: ReceptiveField | None) -> Trail | None:
    """A trail without axes that sees everything ``rf``'s units see."""
    if rf is None or rf.trail is None:
        return None
    if not rf.trail.extents:
        return rf.trail
    return Trail((), (link(rf.trail),), profile=rf.trail.profile)


def global_rf(shape: tuple[int, ...], aligned: bool = True, source: ReceptiveField | None = None) -> ReceptiveField:
    """Every unit sees everything ``source``'s units see (all of it, when it is the image)."""
    return ReceptiveField("global", aligned=aligned, shape=shape, trail=_whole(source))


def unknown_rf(op: str, shape: tuple[int, ...], aligned: bool = True) -> ReceptiveField:
    return ReceptiveField("unknown", aligned=aligned, unknown_op=op, shape=shape)


def spatial_rf(axes: Sequence[AxisRF], shape: tuple[int, ...], aligned: bool,
               places: Sequence[Place], source: ReceptiveField | None = None) -> ReceptiveField:
    """A spatial RF; global when every axis sees the whole input (of ``source``)."""
    if all(a.size is None for a in axes):
        return global_rf(shape, aligned, source)
    return ReceptiveField("spatial", tuple(axes), aligned, shape=shape, places=tuple(places))


def flat_rf(rf: ReceptiveField, shape: tuple[int, ...]) -> ReceptiveField:
    """The layout is lost: each element sees some of what ``rf``'s units see."""
    return ReceptiveField("flat", aligned=rf.aligned, shape=shape, trail=_whole(rf))


def error_text(e: BaseException, limit: int = 200) -> str:
    """``"TypeError: <the first line of its message>"``, shortened to ``limit`` characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def failed(e: BaseException, shape: tuple[int, ...]) -> ReceptiveField:
    """The RF of a node whose analysis raised ``e``: unknown, naming the bug."""
    text = error_text(e)
    return ReceptiveField("unknown", unknown_op=f"cnnshape bug ({text})", shape=shape, failure=text)
