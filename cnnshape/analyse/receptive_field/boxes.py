"""The exact input box of one output unit: its dependencies walked back along the trails.

Starting from the unit (one index per axis), each link's index maps give the units of the tensor
it came from that the unit reads, axis by axis: a *region*, one set of units per axis. Regions
are propagated in reverse topological order (every consumer of a tensor before it), so each
tensor is visited once with all the regions that reach it; a region contained in another one is
dropped. What reaches the input is the set of pixels the unit depends on, and the box is its
bounding box per axis: what the gradient of the unit is non-zero on, when nothing cancels.

Two walks are made: ``clip=True`` keeps only units that exist (the *pixels*), ``clip=False`` also
follows virtual units in the padding (the *nominal* box, as the closed form counts it). A trail
marked ``refused`` on the way raises :class:`Refused` with its reason: no box rather than a wrong
one.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .records import AxisRF, ReceptiveField
from .trail import Link, Trail

Region = tuple[frozenset[int], ...]
Box = tuple[tuple[int, int], ...]
#: more separate regions than this at one tensor: no box (the walk would not stay small)
MAX_REGIONS = 256


class Refused(ValueError):
    """No exact box can be given for the unit; the message says why."""


@dataclass(frozen=True)
class UnitBox:
    """The input box of one unit: ``nominal`` per axis counts the padding positions it covers;
    ``pixels`` per axis bounds the input pixels it depends on (None: none, the unit reads only
    padding or constants). ``inputs``: the names of the inputs reached."""

    nominal: Box | None
    pixels: Box | None
    inputs: tuple[str | None, ...] = ()


def _order(start: Trail) -> list[Trail]:
    """Every trail ``start`` reaches, each before the ones it links to."""
    seen: set[int] = set()
    post: list[Trail] = []
    stack: list[tuple[Trail, int]] = [(start, 0)]
    while stack:
        trail, k = stack.pop()
        if k == 0:
            if id(trail) in seen:
                continue
            seen.add(id(trail))
        links = (*trail.links, *trail.within)
        if k < len(links):
            stack.append((trail, k + 1))
            stack.append((links[k].parent, 0))
        else:
            post.append(trail)
    return post[::-1]


def _inside(a: Region, b: Region) -> bool:
    return all(x <= y for x, y in zip(a, b))


def _prune(regions: list[Region]) -> list[Region]:
    """Without empty regions and ones inside another; two regions that differ along one axis only
    become one (their union is the product with the union along that axis)."""
    out: list[Region] = []
    for r in sorted(set(r for r in regions if all(r)), key=lambda r: -math.prod(len(s) for s in r)):
        if not any(_inside(r, o) for o in out):
            out.append(r)
    merged = True
    while merged and len(out) > 1:
        merged = False
        for a in range(len(out)):
            for b in range(a + 1, len(out)):
                differ = [k for k, (x, y) in enumerate(zip(out[a], out[b])) if x != y]
                if len(differ) == 1:
                    k = differ[0]
                    union: Region = (*out[a][:k], out[a][k] | out[b][k], *out[a][k + 1:])
                    rest = [r for n, r in enumerate(out) if n not in (a, b) and not _inside(r, union)]
                    out, merged = [*rest, union], True
                    break
            if merged:
                break
    if len(out) > MAX_REGIONS:
        raise Refused(f"the unit's dependencies split into more than {MAX_REGIONS} separate regions")
    return out


def _through(link: Link, region: Region, clip: bool) -> Region:
    parent = link.parent
    return tuple(m.image(region[k] if k < len(region) else None, n, clip)
                 for k, (m, n) in enumerate(zip(link.maps, parent.extents)))


def _hull(regions: Sequence[Region]) -> Box:
    return tuple((min(min(r[k]) for r in regions), max(max(r[k]) for r in regions)) for k in range(len(regions[0])))


def walk(trail: Trail, region: Region, clip: bool) -> dict[Trail, list[Region]]:
    """The regions of every input ``region`` of ``trail`` depends on (clipped to what exists)."""
    pending: dict[int, list[Region]] = {id(trail): [region]}
    reached: dict[Trail, list[Region]] = {}
    for node in _order(trail):
        regions = _prune(pending.pop(id(node), []))
        if not regions:
            continue
        if node.refused:
            raise Refused(node.refused)
        if not node.links:
            reached[node] = regions
            continue
        if node.within:
            _check_within(node)
        for link in node.links:
            pending.setdefault(id(link.parent), []).extend(_through(link, r, clip) for r in regions)
    return reached


def _check_within(node: Trail) -> None:
    """A global tensor's ``within`` branches must reach no pixel outside its other links' region."""
    main = _boxes(Trail((), node.links))
    for extra in node.within:
        for trail, box in _boxes(Trail((), (extra,))).items():
            if trail not in main or any(lo < m_lo or hi > m_hi for (lo, hi), (m_lo, m_hi) in zip(box, main[trail])):
                raise Refused("a branch merged into a global one reaches pixels outside its region, so the units "
                              "of the merge do not all see the same pixels")


def _boxes(trail: Trail) -> dict[Trail, Box]:
    return {t: _hull(regions) for t, regions in walk(trail, (), clip=True).items()}


def _all_units(trail: Trail) -> Region:
    return tuple(frozenset(range(n)) for n in trail.extents)


def input_box(rf: ReceptiveField, index: Sequence[int] | None = None, axis: int | None = None,
              image: str | None = None) -> UnitBox:
    """The box in input ``image`` (default: every input reached) of unit ``index`` of ``rf`` (one
    index per axis; a global RF has one box for all its units). With ``axis``, the index is that
    axis's alone and the unit is the whole row/column across the other axes. Raises
    :class:`Refused` when no exact box exists."""
    if rf.trail is None:
        raise Refused(f"the receptive field is {rf.kind}")
    trail = rf.trail
    if rf.kind == "spatial" and index is not None:
        region = _all_units(trail)
        if axis is not None:
            region = (*region[:axis], frozenset((index[0],)), *region[axis + 1:])
        else:
            region = tuple(frozenset((i,)) for i in index)
    else:
        region = _all_units(trail)
    pixels = walk(trail, region, clip=True)
    nominal = walk(trail, region, clip=False)
    return UnitBox(_union(nominal, image), _union(pixels, image), tuple(t.name for t in pixels))


def _union(reached: dict[Trail, list[Region]], image: str | None) -> Box | None:
    regions = [r for t, rs in reached.items() if image is None or t.name == image for r in rs]
    return _hull(regions) if regions else None


def unit_box(axis: AxisRF, index: int, extent: int) -> tuple[int, int, int, int]:
    """(lo, hi, clipped lo, clipped hi) of the input pixels output unit ``index`` of one axis
    sees, along that axis of ``extent`` input pixels, across all units of the other axes: the
    nominal box (padding positions included) and the pixels it depends on (lo > hi: none). Exact
    (:func:`input_box`); without a trail, the closed form rounded outwards."""
    if axis.trail is None:
        if axis.size is None:
            return 0, extent - 1, 0, extent - 1
        lo_f, hi_f = axis.box(index)
        lo, hi = math.floor(lo_f), math.ceil(hi_f)
        return lo, hi, max(lo, 0), min(hi, extent - 1)
    rf = ReceptiveField("spatial", trail=axis.trail)
    box = input_box(rf, (index,), axis=axis.axis)
    if box.pixels is None:
        lo, hi = box.nominal[axis.axis] if box.nominal else (index, index - 1)
        return lo, hi, lo, lo - 1
    nominal = box.nominal[axis.axis] if box.nominal else box.pixels[axis.axis]
    return (*nominal, *box.pixels[axis.axis])
