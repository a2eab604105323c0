"""How each unit of a tensor maps back to the units it was computed from: the exact side of the RF.

Size, jump and start describe an axis in closed form. A :class:`Trail` records, per op, which
units of the op's input(s) each output unit reads, axis by axis (an :class:`IndexMap`), so that
:mod:`.boxes` can walk one unit back to the input pixels it depends on, exactly: clipped to the
units that exist (a crop followed by zero padding reads the padding, not the cropped pixels),
through reflected and replicated borders, transposed convs with holes, ceil-mode and adaptive
windows, and every upsampling mode.

Index maps, output unit i to input units (n input units):

* window (stride s, padding p, dilation d, kernel k): i·s − p + m·d, m = 0..k−1 (convs, pools,
  constant pads and crops with k = 1, slices, pixel_unshuffle with k = s = r)
* transposed (s, p, d, k): the units u with u·s − p + m·d = i for some m
* reflect / replicate (left pad l): i − l reflected about the border units / clamped into [0, n−1]
* nearest (scale c, torch's 1/scale_factor or W_in/W_out): min(floor(i·c), n−1);
  nearest-exact: min(floor((i + ½)·c), n−1); in float32, as torch computes them
* taps (linear 2, cubic 4; scale c): the taps around (i + ½)·c − ½ (i·(n−1)/(W_out−1) with
  align_corners; linear clamps a negative coordinate to 0), clamped into [0, n−1]; on an exact
  unit every other tap has weight 0; in the op's float arithmetic
* adaptive (W_in, W_out): [floor(i·W_in/W_out), ceil((i+1)·W_in/W_out) − 1]
* shuffle (r, pixel_shuffle): floor(i/r)
* same: i (0 from a broadcast size-1 axis); part (offset): i − offset inside the part
  (concatenation along the axis); prefix: 0..i (a running sum); whole: every unit (a global axis)

A map also answers for virtual units (outside [0, n−1], in the padding) when asked to
(``clip=False``): that is how the nominal box, padding included, is found.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from ...frozen import fast_init


@dataclass(frozen=True)
class IndexMap:
    """One axis of one op: output unit -> the input units it reads (before clipping to [0, n−1])."""

    #: every output unit reads some input unit (clamped, reflected, or all of them)
    reads_always: ClassVar[bool] = False

    def units(self, i: int, n: int) -> Iterable[int]:
        raise NotImplementedError

    def image(self, units: frozenset[int] | None, n: int, clip: bool) -> frozenset[int]:
        """The input units the output ``units`` read; clipped to the ``n`` that exist unless not ``clip``."""
        assert units is not None
        out = {u for i in units for u in self.units(i, n)}
        return frozenset(u for u in out if 0 <= u < n) if clip else frozenset(out)

    def misses(self, size: int, n: int) -> bool:
        """Whether one of ``size`` output units reads none of the ``n`` input units (only padding)."""
        if self.reads_always:
            return False
        return any(not any(0 <= u < n for u in self.units(i, n)) for i in range(size))

    def empty(self, size: int, n: int, before: frozenset[int]) -> frozenset[int]:
        """The output units (of ``size``) that read only units in ``before`` or none of the ``n``."""
        if not before and not self.misses(size, n):
            return frozenset()
        return frozenset(i for i in range(size) if all(u in before for u in self.units(i, n) if 0 <= u < n))


@dataclass(frozen=True)
class Window(IndexMap):
    stride: int
    padding: int
    dilation: int = 1
    kernel: int = 1

    def units(self, i: int, n: int) -> Iterable[int]:
        first = i * self.stride - self.padding
        return range(first, first + self.dilation * (self.kernel - 1) + 1, self.dilation)

    def misses(self, size: int, n: int) -> bool:
        """A unit whose first tap i·s − p lies in [0, n−1] reads it; past n − 1 it reads nothing; so
        only the units starting left of 0 need a look."""
        if (size - 1) * self.stride - self.padding > n - 1:
            return True
        # a unit i left of 0 (first tap i·s − p < 0) reads something exactly when its first tap at or
        # right of 0, m = ceil(−first/d), exists (m < k) and lies inside (≤ n − 1): O(1) per unit, the
        # same answer as IndexMap.misses' walk over every tap (tests/test_post_trace_fast.py compares them)
        for i in range(min(size, -(-self.padding // self.stride))):
            first = i * self.stride - self.padding
            m = -(first // self.dilation)  # ceil(-first / d)
            if m > self.kernel - 1 or first + m * self.dilation > n - 1:
                return True
        return False


@dataclass(frozen=True)
class Transposed(IndexMap):
    stride: int
    padding: int
    dilation: int
    kernel: int

    def units(self, i: int, n: int) -> Iterable[int]:
        t = (i + self.padding - m * self.dilation for m in range(self.kernel))
        return (v // self.stride for v in t if v % self.stride == 0)

    def misses(self, size: int, n: int) -> bool:
        """Away from the ends every candidate unit exists, so a unit reads one exactly when its
        residue mod the stride is hit: the ends and one period after the start are enough."""
        edge = self.dilation * (self.kernel - 1) + 2 * self.stride + abs(self.padding) + 1
        looked = {*range(min(size, edge + self.stride)), *range(max(0, size - edge), size)}
        return any(not any(0 <= u < n for u in self.units(i, n)) for i in looked)


@dataclass(frozen=True)
class Reflect(IndexMap):
    reads_always = True

    left: int

    def units(self, i: int, n: int) -> Iterable[int]:
        t = i - self.left
        if t < 0:
            t = -t
        elif t > n - 1:
            t = 2 * (n - 1) - t
        return (t,)


@dataclass(frozen=True)
class Replicate(IndexMap):
    reads_always = True

    left: int

    def units(self, i: int, n: int) -> Iterable[int]:
        return (min(max(i - self.left, 0), n - 1),)


def _f32(x: float) -> float:
    """``x`` rounded to the nearest float32, as torch's float arithmetic rounds."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def _same(x: float) -> float:
    return x


@dataclass(frozen=True)
class Nearest(IndexMap):
    """torch's ``nearest_idx`` / ``nearest_exact_idx`` (ATen/native/UpSample.h), in float32 as
    there: the scale is 1/scale_factor when one was given, W_in/W_out otherwise."""

    reads_always = True

    size_in: int
    size_out: int
    scale_factor: float | None = None
    exact: bool = False

    def units(self, i: int, n: int) -> Iterable[int]:
        if not self.exact and self.size_out == self.size_in:
            return (i,)
        if not self.exact and self.size_out == 2 * self.size_in:
            return (i >> 1,)
        f = self.scale_factor
        scale = _f32(1.0 / f) if f is not None and f > 0 else _f32(self.size_in / self.size_out)
        return (min(math.floor(_f32((i + 0.5 if self.exact else i) * scale)), n - 1),)


@dataclass(frozen=True)
class Taps(IndexMap):
    """torch's linear (2 taps) and cubic (4 taps) source indices (``area_pixel_compute_source_index``
    and ``guard_index_and_lambda``), in the op's arithmetic (float32, or float64 for double
    tensors); a tap whose weight is 0 (the coordinate falls on a unit) is not read."""

    reads_always = True

    size_in: int
    size_out: int
    scale_factor: float | None
    taps: int
    align: bool
    double: bool = False

    def units(self, i: int, n: int) -> Iterable[int]:
        r = _same if self.double else _f32
        w, m = self.size_in, self.size_out
        if self.taps == 2 and m == w:
            return (i,)
        if self.align:
            scale = r(r(w - 1) / (m - 1)) if m > 1 else 0.0
            c = r(scale * i)
        else:
            f = self.scale_factor
            scale = r(1.0 / f) if f is not None and f > 0 else r(w / m)
            c = r(r(scale * r(i + 0.5)) - 0.5)
            if self.taps == 2 and c < 0:  # linear modes clamp a negative source coordinate to 0
                c = 0.0
        base = min(math.floor(c), w - 1) if self.taps == 2 else math.floor(c)
        if r(c - base) <= 0:
            return (min(max(base, 0), n - 1),)
        return {min(max(u, 0), n - 1) for u in range(base - (self.taps // 2 - 1), base + self.taps // 2 + 1)}


@dataclass(frozen=True)
class Adaptive(IndexMap):
    reads_always = True

    size_in: int
    size_out: int

    def units(self, i: int, n: int) -> Iterable[int]:
        return range(i * self.size_in // self.size_out, -(-(i + 1) * self.size_in // self.size_out))


@dataclass(frozen=True)
class Shuffle(IndexMap):
    reads_always = True

    factor: int

    def units(self, i: int, n: int) -> Iterable[int]:
        return (i // self.factor,)


@dataclass(frozen=True)
class Same(IndexMap):
    def units(self, i: int, n: int) -> Iterable[int]:
        return (0 if n == 1 else i,)

    def misses(self, size: int, n: int) -> bool:
        return n != 1 and size > n


@dataclass(frozen=True)
class Part(IndexMap):
    """The units [offset, offset + n) of a concatenation along the axis come from this part; the
    first and last parts also answer for the virtual units before and after."""

    offset: int
    first: bool
    last: bool

    def units(self, i: int, n: int) -> Iterable[int]:
        t = i - self.offset
        inside = 0 <= t < n or (self.first and t < 0) or (self.last and t >= n)
        return (t,) if inside else ()


@dataclass(frozen=True)
class Prefix(IndexMap):
    """Units 0..i (a running sum along the axis)."""

    reads_always = True

    def units(self, i: int, n: int) -> Iterable[int]:
        return range(0, i + 1)


@dataclass(frozen=True)
class Whole(IndexMap):
    reads_always = True

    def units(self, i: int, n: int) -> Iterable[int]:
        return range(n)

    def image(self, units: frozenset[int] | None, n: int, clip: bool) -> frozenset[int]:
        return frozenset(range(n))


SAME = Same()
WHOLE = Whole()


@fast_init
@dataclass(frozen=True, eq=False)
class Link:
    """Where a tensor's units come from: ``maps[k]`` takes units of its axis k (or, for a tensor
    without axes, of nothing: a :class:`Whole` map) to units of ``parent``'s axis k."""

    parent: Trail
    maps: tuple[IndexMap, ...]


@fast_init
@dataclass(frozen=True, eq=False)
class Trail:
    """The exact record of one tensor's tracked axes: ``extents`` units per axis (``()`` for a
    global or flat tensor: every element sees the union of what its links reach), and the links
    to the tensors it was computed from (none: an input image, ``name``).

    ``profile``: which channels see alike (:mod:`.channels`; None: all of them). ``refused``: why
    no exact box can be given for units that reach back through here. ``within``: links of a
    global tensor whose whole region must lie inside that of ``links`` for every unit to see
    exactly that region (a spatial branch multiplied by a global gate). ``empty``: per axis, the
    units that read no input pixel at all (only padding or constants): a unit whose index along
    some axis is among them is a constant (exact along one link; after a merge, a superset)."""

    extents: tuple[int, ...]
    links: tuple[Link, ...] = ()
    name: str | None = None
    profile: tuple[int, ...] | None = None
    refused: str | None = None
    within: tuple[Link, ...] = ()
    empty: tuple[frozenset[int], ...] = ()

    @property
    def holes(self) -> bool:
        """Whether some unit may be a constant."""
        return any(self.empty)


def link(parent: Trail, maps: Iterable[IndexMap] | None = None) -> Link:
    """A link to ``parent``; ``maps`` None: every axis of it whole."""
    return Link(parent, tuple(maps) if maps is not None else (WHOLE,) * len(parent.extents))
