"""Expressions as formula text: ``floor((H − 1)/32) + 1``."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .expr import CeilPool, Expr, Fixed, Floor, Merge, Scale, Shape, Sum, Var
from .records import SizeFormula


def formulas(name: str, outs: list[tuple[str, Shape]], texts: Formulas) -> list[SizeFormula]:
    return [SizeFormula(name, key, i, texts.text(d)) for key, shape in outs
            for i, d in enumerate(shape) if isinstance(d, Expr)]


class Formulas:
    """Writes expressions as text, collapsing chains of floor maps
    (floor((floor((a·x + b)/c) + b')/c') = floor((a·x + b + c·b')/(c·c'))) and, at a merge, using
    the simplest operand that equals the merged size at every accepted size."""

    def __init__(self, accepted: list[int], table: Mapping[int, Sequence[int | None]], symbol: str) -> None:
        self.accepted, self.table, self.symbol = accepted, table, symbol
        self.memo: dict[int, str] = {}

    def _agrees(self, a: Expr, part: Any) -> bool:
        for s in self.accepted:
            vals = self.table[s]
            if vals[a.id] != (vals[part.id] if isinstance(part, Expr) else part):
                return False
        return True

    def _choose(self, e: Expr) -> Any:
        while isinstance(e, (Merge, Fixed)):
            parts = (e.src,) if isinstance(e, Fixed) else e.parts
            fits = [p for p in parts if self._agrees(e, p)]
            if not fits:
                return e
            e = min(fits, key=lambda p: len(self.text(p)) if isinstance(p, Expr) else 0)
            if not isinstance(e, Expr):
                return e
        return e

    def text(self, e: Any) -> str:
        if not isinstance(e, Expr):
            return str(e)
        if e.id not in self.memo:
            self.memo[e.id] = self._text(e)
        return self.memo[e.id]

    def _text(self, e: Expr) -> str:
        if isinstance(e, Var):
            return self.symbol
        if isinstance(e, (Merge, Fixed)):
            chosen = self._choose(e)
            if chosen is not e:
                return self.text(chosen)
            assert isinstance(e, Merge)
            return f"{'max' if e.mode != 'equal' else 'equal'}({', '.join(self.text(p) for p in e.parts)})"
        if isinstance(e, Sum):
            return " + ".join(self.text(p) for p in e.parts)
        if isinstance(e, Scale):
            return f"floor({self.text(e.src)}·{e.scale:g})"
        if isinstance(e, CeilPool):
            return (f"ceil_pool({self.text(e.src)}; k={e.kernel}, s={e.stride}, p={e.padding}, "
                    f"d={e.dilation})")
        assert isinstance(e, Floor)
        inner, a, b, c = self._chain(e)
        return affine_text(self.text(inner), a, b, c)

    def _chain(self, e: Floor) -> tuple[Any, int, int, int]:
        a, b, c = e.a, e.b, e.c
        src = self._choose(e.src)
        while isinstance(src, Floor):
            a1, b1, c1 = src.a, src.b, src.c
            if c1 == 1:
                a, b, c = a * a1, a * b1 + b, c
            elif a == 1:
                a, b, c = a1, b1 + c1 * b, c1 * c
            else:
                break
            g = math.gcd(a, b, c)
            a, b, c = a // g, b // g, c // g
            src = self._choose(src.src)
        return src, a, b, c


def affine_text(x: str, a: int, b: int, c: int) -> str:
    """floor((a·x + b)/c) written as ``floor((x − r)/c) + q`` with the remainder in (−c, 0]."""
    if " " in x and a != 1:
        x = f"({x})"
    ax = x if a == 1 else f"{a}·{x}"
    if c == 1:
        return ax + (f" + {b}" if b > 0 else f" − {-b}" if b < 0 else "")
    q = -(-b // c)
    r = b - c * q
    body = f"floor(({ax} − {-r})/{c})" if r else f"floor({ax}/{c})"
    return body + (f" + {q}" if q > 0 else f" − {-q}" if q < 0 else "")
