"""Which channels of a tensor see alike: the channel profile of a :class:`.trail.Trail`.

The RF of a tensor is one box per unit for all its channels: their union. That is exact for the
unit as a whole, but an op that reads only some of the channels at a unit (a split piece, a
select, pixel_shuffle's phases) sees only their union, which is smaller when the channels differ
(a concatenation of a cropped branch with a wide one). So a trail keeps, per channel, a class
label: channels with the same label see the same pixels from every unit; ``None`` when all do,
as after any full convolution, which mixes every channel into every other.

The channels are the elements of the tensor's dims that hold no spatial axis (batch included),
row-major: a flat tuple of labels, viewed with those dims' sizes (:func:`view`) when an op needs
them. Reshapes keep element order and so keep the flat tuple; other ops rearrange it here.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence

Profile = tuple[int, ...]
#: the labels could not be followed (a broadcast merge, a concatenation whose parts are not known):
#: fine for anything that reads every channel, a reason to refuse for anything that reads some
UNKNOWN: Profile = (-1,)


def canon(labels: Sequence[Hashable]) -> Profile | None:
    """Labels renumbered 0, 1, ... in order of first appearance; None when they are all alike."""
    ids: dict[Hashable, int] = {}
    out = tuple(ids.setdefault(v, len(ids)) for v in labels)
    return None if len(ids) <= 1 else out


def expand(profile: Profile | None, size: int) -> Profile:
    """The labels of ``size`` channels (all alike when ``profile`` is None)."""
    return profile if profile is not None else (0,) * size


def _strides(sizes: Sequence[int]) -> list[int]:
    return [math.prod(sizes[k + 1:]) for k in range(len(sizes))]


def take(profile: Profile, sizes: Sequence[int], axis: int, indices: Sequence[int]) -> Profile:
    """The channels at ``indices`` along grid axis ``axis`` (that axis keeps len(indices) entries)."""
    outer, inner = math.prod(sizes[:axis]), math.prod(sizes[axis + 1:])
    size = sizes[axis]
    return tuple(profile[(o * size + i) * inner + r] for o in range(outer) for i in indices for r in range(inner))


def concat(parts: Sequence[tuple[Profile, Sequence[int]]], axis: int) -> Profile:
    """Profiles of grids of the same sizes but along ``axis``, concatenated along it."""
    outer = math.prod(parts[0][1][:axis])
    out: list[int] = []
    for o in range(outer):
        for profile, sizes in parts:
            block = sizes[axis] * math.prod(sizes[axis + 1:])
            out.extend(profile[o * block:(o + 1) * block])
    return tuple(out)


def permute(profile: Profile, sizes: Sequence[int], order: Sequence[int]) -> Profile:
    """Grid axes reordered: new axis k is old axis ``order[k]``."""
    strides = _strides(sizes)
    return tuple(profile[sum(i * strides[a] for i, a in zip(index, order))]
                 for index in itertools.product(*(range(sizes[a]) for a in order)))


def combine(profile: Profile, sizes: Sequence[int], axes: Sequence[int]) -> Profile | None:
    """A label per channel of the grid with ``axes`` reduced away: the set of the labels reduced
    into it (those channels see the union of what theirs see)."""
    keep = [a for a in range(len(sizes)) if a not in axes]
    strides = _strides(sizes)
    labels = []
    for index in itertools.product(*(range(sizes[a]) for a in keep)):
        base = sum(i * strides[a] for i, a in zip(index, keep))
        labels.append(frozenset(profile[base + sum(j * strides[a] for j, a in zip(rest, axes))]
                                for rest in itertools.product(*(range(sizes[a]) for a in axes))))
    return canon(labels)


def broadcast(profile: Profile, sizes: Sequence[int], to: Sequence[int]) -> Profile:
    """The grid broadcast to ``to`` (new leading axes; size-1 axes repeated), as torch broadcasts."""
    sizes = [1] * (len(to) - len(sizes)) + list(sizes)
    strides = _strides(sizes)
    return tuple(profile[sum((i if sizes[a] > 1 else 0) * strides[a] for a, i in enumerate(index))]
                 for index in itertools.product(*(range(n) for n in to)))


def covers(piece: Sequence[int], whole: Profile | None) -> bool:
    """Whether ``piece`` (labels taken from ``whole``) holds every label of ``whole``: then the union
    over its channels is the union over all of them."""
    return whole is None or (whole != UNKNOWN and set(piece) == set(whole))
