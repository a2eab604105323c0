"""Channel bookkeeping for the pruning what-if: every channel of every tensor (and of every
parameter axis that meets one) gets an id; ids that must be removed together are joined.

A *unit* is one set of joined ids: removing it removes one channel (or, through a flatten, the
``H·W`` features of one channel; through a grouped conv, one channel of every group) everywhere it
appears. A *group* is a set of units that arose together (the output channels of one conv, joined
with everything they meet): the ratio is applied per group. Torch-free; the rules that say which
ids meet live in :mod:`.rules`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    """The channel ids of one tensor along its channel axis (``ids[i]``: channel ``i``).

    ``outer`` > 0: the channels were split by a view into axes ``axis`` (``outer`` long) and
    ``axis + 1`` (the rest); ``ids`` run over both, row-major. Of the two, the part ``literal``
    (0: at ``axis``, 1: at ``axis + 1``) keeps its size (shuffle groups, heads: a count in the
    code) and the other shrinks when channels are pruned."""

    axis: int
    ids: tuple[int, ...]
    outer: int = 0
    literal: int = 0

    def sizes(self, kept: int) -> tuple[int, int]:
        """The two parts' sizes when ``kept`` of the channels stay (split labels only)."""
        fixed = self.outer if self.literal == 0 else len(self.ids) // self.outer
        return (fixed, kept // fixed) if self.literal == 0 else (kept // fixed, fixed)

    def __len__(self) -> int:
        return len(self.ids)


#: a parameter or buffer axis of a module: (module path, tensor name, axis)
TensorAxis = tuple[str, str, int]


@dataclass(frozen=True)
class Member:
    """A module tensor axis that meets a group: what pruning it changes."""

    layer: str  #: module path ("layer1.0.conv1")
    tensor: str  #: "weight", "bias", "running_mean", ...
    axis: int
    role: str  #: "out" (the layer makes these channels), "in" (it reads them), "norm" (it follows them)


class Channels:
    """Union-find over channel ids, and over the batches they were created in."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._batch_of: list[int] = []
        self._batch_parent: list[int] = []
        self.origins: list[str] = []  #: batch -> where it was created ("conv1 out")
        self.reasons: dict[int, list[str]] = {}  #: batch root -> why its group cannot be pruned
        self.params: dict[TensorAxis, tuple[int, ...]] = {}
        self.members: dict[TensorAxis, Member] = {}

    # --- ids and batches

    def fresh(self, n: int, origin: str, one_batch: bool = True) -> tuple[int, ...]:
        """``n`` new ids: one new batch (a layer's new channels), or one batch each (the columns
        of a layer that reads channels made elsewhere: they must not tie their sources together)."""
        start = len(self._parent)
        for _ in range(1 if one_batch else n):
            self._batch_parent.append(len(self._batch_parent))
            self.origins.append(origin)
        first = len(self._batch_parent) - (1 if one_batch else n)
        self._parent.extend(range(start, start + n))
        self._batch_of.extend([first] * n if one_batch else range(first, first + n))
        return tuple(range(start, start + n))

    def find(self, i: int) -> int:
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def batch(self, i: int) -> int:
        b = self._batch_of[i]
        parent = self._batch_parent
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)
        ba, bb = self.batch(a), self.batch(b)
        if ba != bb:
            keep, gone = min(ba, bb), max(ba, bb)
            self._batch_parent[gone] = keep
            if gone in self.reasons:
                self.reasons.setdefault(keep, []).extend(self.reasons.pop(gone))

    def join(self, a: Sequence[int], b: Sequence[int]) -> None:
        """Join two equally long id sequences position by position."""
        if len(a) != len(b):
            raise ValueError(f"cannot join {len(a)} channels with {len(b)}")
        for x, y in zip(a, b):
            self.union(x, y)

    def fix(self, ids: Iterable[int], reason: str) -> None:
        """The groups of ``ids`` cannot be pruned, because of ``reason``."""
        for b in {self.batch(i) for i in ids}:
            reasons = self.reasons.setdefault(b, [])
            if reason not in reasons:
                reasons.append(reason)

    # --- module tensors

    def param(self, layer: str, tensor: str, axis: int, n: int, role: str, whole: bool = False) -> tuple[int, ...]:
        """The ids of a module tensor axis (created on first use: a shared module meets the same
        ids); one batch when the layer makes the channels (or ``whole``: they come from nowhere
        cnnshape can follow), else one batch per id, to be joined with the channels' source."""
        key = (layer, tensor, axis)
        if key not in self.params:
            self.params[key] = self.fresh(n, f"{layer} {role}", one_batch=role == "out" or whole)
            self.members[key] = Member(layer, tensor, axis, role)
        return self.params[key]

    @property
    def size(self) -> int:
        return len(self._parent)
