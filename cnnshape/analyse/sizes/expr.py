"""Expressions of the input size: a tensor dimension as a function of the studied size ``s``.

The expressions are compositions of floor-affine integer maps (conv/pool windows, transposed
convolutions, padding, upsampling, flattening) plus the constraints that merges impose, hence
eventually periodic: each knows its period, and they are evaluated exactly (Python ints, no torch),
a column at a time: each expression at every studied size in one list comprehension (the sizes
are the inner loop, so a flow of n expressions costs n Python calls per table, not n × sizes).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import repeat
from typing import Any

from ...arith import pool_out
from ...trace.records import TensorMeta

#: an expression's values at the studied sizes, in their order (None where the size is invalid)
Column = list  # of int | None


class Expr:
    """A dimension as a function of the input size; ``column`` gets the columns of earlier
    expressions (by ``id``) and returns its own (None where the size is invalid)."""

    id: int = -1
    #: the node whose size rule created it
    node: str = ""
    #: (P, k): value(s + P) = value(s) + k once s is large enough
    period: tuple[int, int] = (1, 0)

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        raise NotImplementedError

    def sources(self) -> tuple[Expr, ...]:
        """The expressions this one is computed from."""
        return ()

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        """The same expression over other sources (``swap`` maps each of this one's to its
        replacement), made by the constructor again so that its period is the new sources';
        ``node`` is where a merge or constraint now sits (a node's rules replayed, :mod:`.flow`)."""
        raise NotImplementedError


Shape = tuple  #: of int | Expr


class Var(Expr):
    period = (1, 1)

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        return list(sizes)


class Floor(Expr):
    """floor((a·x + b)/c), defined when x is and the result is ≥ 1 (a layer output)."""

    def __init__(self, src: Expr, a: int, b: int, c: int) -> None:
        g = math.gcd(a, b, c)
        self.src, self.a, self.b, self.c = src, a // g, b // g, c // g
        p, k = src.period
        m = self.c // math.gcd(self.c, self.a * k) if k else 1
        self.period = (p * m, self.a * k * m // self.c)

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        a, b, c = self.a, self.b, self.c
        return [None if x is None or (out := (a * x + b) // c) < 1 else out for x in cols[self.src.id]]

    def sources(self) -> tuple[Expr, ...]:
        return (self.src,)

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        return Floor(swap[self.src], self.a, self.b, self.c)  # a, b, c already reduced: the gcd is 1


class CeilPool(Expr):
    """A ``ceil_mode=True`` pooling window whose last window may be dropped (arith.pool_out)."""

    def __init__(self, src: Expr, kernel: int, stride: int, padding: int, dilation: int) -> None:
        self.src, self.kernel, self.stride, self.padding, self.dilation = src, kernel, stride, padding, dilation
        p, k = src.period
        m = stride // math.gcd(stride, k) if k else 1
        self.period = (p * m, k * m // stride)

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        k, st, p, d = self.kernel, self.stride, self.padding, self.dilation
        return [None if x is None or (out := pool_out(x, k, st, p, d, ceil_mode=True)) < 1 else out
                for x in cols[self.src.id]]

    def sources(self) -> tuple[Expr, ...]:
        return (self.src,)

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        return CeilPool(swap[self.src], self.kernel, self.stride, self.padding, self.dilation)


class Scale(Expr):
    """floor(x·scale) with a non-integer scale, in floating point as ``F.interpolate`` does."""

    def __init__(self, src: Expr, scale: float) -> None:
        self.src, self.scale = src, scale
        frac = Fraction(scale).limit_denominator(10**6)
        p, k = src.period
        m = frac.denominator // math.gcd(frac.denominator, frac.numerator * k) if k else 1
        self.period = (p * m, int(frac * k * m))

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        scale = self.scale
        return [None if x is None or (out := math.floor(float(x) * scale)) < 1 else out for x in cols[self.src.id]]

    def sources(self) -> tuple[Expr, ...]:
        return (self.src,)

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        return Scale(swap[self.src], self.scale)


def _lcm_period(parts: Sequence[Any]) -> tuple[int, int]:
    periods = [p.period for p in parts if isinstance(p, Expr)]
    big = math.lcm(*(p for p, _ in periods))
    return big, max(k * (big // p) for p, k in periods)


def _part_columns(parts: Sequence[Any], cols: Sequence[Column], n: int) -> list[Any]:
    """Each part's column; a constant part repeats."""
    return [cols[p.id] if isinstance(p, Expr) else repeat(p, n) for p in parts]


def _swapped(parts: Sequence[Any], swap: Mapping[Expr, Expr]) -> list[Any]:
    return [swap[p] if isinstance(p, Expr) else p for p in parts]


class Merge(Expr):
    """Sizes meeting at a merge. ``equal`` (cat): all equal. ``broadcast`` (add, mul): equal or 1,
    the result is the common non-1 size. ``inplace`` (add_): the first size; the others equal it or are 1."""

    def __init__(self, parts: Sequence[Any], mode: str, where: str) -> None:
        self.parts, self.mode, self.where = tuple(parts), mode, where
        self.period = _lcm_period(self.parts)

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        mode, pairs = self.mode, zip(*_part_columns(self.parts, cols, len(sizes)))
        if len(self.parts) == 2 and mode == "broadcast":
            # the common merge (an add of two maps) inline: _merged's answer for two sizes
            return [None if x is None or y is None else x if x == y or y == 1 else y if x == 1 else None
                    for x, y in pairs]
        return [_merged(xs, mode) for xs in pairs]

    def sources(self) -> tuple[Expr, ...]:
        return tuple(p for p in self.parts if isinstance(p, Expr))

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        return Merge(_swapped(self.parts, swap), self.mode, node)


def _merged(xs: Sequence[int | None], mode: str) -> int | None:
    """The merged size of sizes ``xs`` meeting at a merge (:class:`Merge`), None if they can't."""
    if None in xs:
        return None
    if mode == "equal":
        return xs[0] if all(x == xs[0] for x in xs) else None
    if mode == "inplace":
        return xs[0] if all(x in (xs[0], 1) for x in xs) else None
    big = {x for x in xs if x != 1}
    if len(big) > 1:
        return None
    return big.pop() if big else 1


class Sum(Expr):
    """Concatenation along the dimension: the sum of the parts."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = tuple(parts)
        self.period = _lcm_period(self.parts)

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        return [None if None in xs else sum(xs) for xs in zip(*_part_columns(self.parts, cols, len(sizes)))]

    def sources(self) -> tuple[Expr, ...]:
        return tuple(p for p in self.parts if isinstance(p, Expr))

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        return Sum(_swapped(self.parts, swap))


class Fixed(Expr):
    """A constraint: ``src`` must equal ``size`` (Linear input features, a constant reshape)."""

    def __init__(self, src: Expr, size: int, where: str) -> None:
        self.src, self.size, self.where = src, size, where
        self.period = src.period

    def column(self, cols: Sequence[Column], sizes: Sequence[int]) -> Column:
        size = self.size
        return [size if x == size else None for x in cols[self.src.id]]

    def sources(self) -> tuple[Expr, ...]:
        return (self.src,)

    def rebuilt(self, swap: Mapping[Expr, Expr], node: str) -> Expr:
        return Fixed(swap[self.src], self.size, node)


def evaluate_table(exprs: Sequence[Expr], sizes: Sequence[int]) -> dict[int, tuple[int | None, ...]]:
    """Size -> every expression's value at that size (None where the size is invalid), by ``id``.
    Computed a column (an expression at every size) at a time, then read by size."""
    cols: list[Column] = [[] for _ in exprs]
    for e in exprs:
        cols[e.id] = e.column(cols, sizes)
    return dict(zip(sizes, zip(*cols)))


def evaluate(exprs: Sequence[Expr], s: int) -> tuple[int | None, ...]:
    """Every expression's value at size ``s`` (None where the size is invalid), by ``id``."""
    return evaluate_table(exprs, (s,))[s]


class Uncharacterised(Exception):
    """An op with no size rule touches a dimension that depends on the input size."""


# ---------------------------------------------------------------- building the expressions

@dataclass(frozen=True)
class T:
    """A tensor argument of an op: its traced meta and its shape as expressions."""

    meta: TensorMeta
    shape: Shape

    @property
    def symbolic(self) -> bool:
        return any(isinstance(d, Expr) for d in self.shape)


@dataclass(frozen=True)
class NodeBuilder:
    """What the size rules of one node's ops build with: the node's name, which every expression
    they create records, the node's tensor inputs, and the flow's list of expressions, which it
    extends in evaluation order (every source before its users). The traversal makes one per node."""

    node: str
    inputs: tuple[T, ...]
    #: shared by the builders of all the nodes of one flow; only ever appended to
    exprs: list[Expr]
    #: dims this node's views folded into one (the product's id -> the folded dims, their traced
    #: sizes), until a view unfolds them again (:meth:`fold`, :meth:`unfold`, :meth:`settle`)
    folds: dict[int, tuple[tuple[Any, ...], tuple[int, ...]]] = field(default_factory=dict)

    def add(self, e: Expr) -> Expr:
        e.id, e.node = len(self.exprs), self.node
        self.exprs.append(e)
        return e

    def floor(self, x: Any, a: int, b: int, c: int) -> Any:
        if not isinstance(x, Expr):
            return (a * x + b) // c
        if (a, b, c) == (1, 0, 1):
            return x
        return self.add(Floor(x, a, b, c))

    def merge(self, parts: Sequence[Any], mode: str) -> Any:
        syms = [p for p in parts if isinstance(p, Expr)]
        if not syms:
            if mode == "equal" or mode == "inplace":
                return parts[0]
            return max(parts)
        rest = [p for p in parts if p is not syms[0]]
        if not rest or (mode != "equal" and all(p == 1 for p in rest if not isinstance(p, Expr))
                        and all(p is syms[0] for p in rest if isinstance(p, Expr))):
            if mode != "inplace" or parts[0] is syms[0]:
                return syms[0]
        return self.add(Merge(parts, mode, self.node))

    def fixed(self, x: Any, size: int) -> int:
        if isinstance(x, Expr):
            self.add(Fixed(x, size, self.node))
        return size

    def fold(self, product: Expr, dims: tuple[Any, ...], traced: tuple[int, ...]) -> Expr:
        """A view merged ``dims`` (traced sizes ``traced``) into ``product`` with a constant target
        size: a constraint, unless a later view of the same node unfolds it (torch's matmul folds a
        Linear's leading dims into one and back, with target sizes it reads from the input)."""
        self.folds[product.id] = (dims, traced)
        return product

    def unfold(self, x: Any, traced: tuple[int, ...]) -> tuple[Any, ...] | None:
        """The dims folded into ``x`` when a view splits it back into dims of their traced sizes
        ``traced``, else None."""
        if not isinstance(x, Expr) or x.id not in self.folds or self.folds[x.id][1] != traced:
            return None
        return self.folds.pop(x.id)[0]

    def settle(self, shapes: list[Shape]) -> list[Shape]:
        """At the end of the node: a fold not unfolded fixes its product (a constant reshape), and
        the node's output ``shapes`` get that constant in its place."""
        if not self.folds:  # the common case: nothing to replace
            return shapes
        fixed = {key: self.fixed(self.exprs[key], math.prod(traced)) for key, (_, traced) in self.folds.items()}
        self.folds.clear()
        return [tuple(fixed.get(d.id, d) if isinstance(d, Expr) else d for d in shape) for shape in shapes]
