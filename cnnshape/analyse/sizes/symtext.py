"""torch's sympy size expressions as cnnshape formula text: ``floor((H − 1)/32) + 1``, as the
layer arithmetic writes them (:func:`.text.affine_text`); ``mod`` for a remainder."""
from __future__ import annotations

from typing import Any

from .text import affine_text


def formula_text(expr: Any, symbol: Any, name: str) -> str:
    """``expr`` (a sympy expression of ``symbol``, with torch's FloorDiv/Mod) written with ``name``."""
    import sympy

    if expr.is_Integer:
        return str(int(expr))
    affine = _affine(expr, symbol)
    if affine is not None:
        return affine_text(name, affine[0], affine[1], 1)
    if isinstance(expr, sympy.Add):
        const, rest = expr.as_coeff_Add()
        floor = _floor_of_affine(rest, symbol)
        if floor is not None:  # floor((a·x + b)/c) + q = floor((a·x + b + q·c)/c)
            a, b, c = floor
            return affine_text(name, a, b + int(const) * c, c)
        return _sum(int(const), sympy.Add.make_args(rest), symbol, name)
    floor = _floor_of_affine(expr, symbol)
    if floor is not None:
        return affine_text(name, *floor)
    head = type(expr).__name__
    if head in ("FloorDiv", "CleanDiv") and len(expr.args) == 2:
        return f"floor({_group(formula_text(expr.args[0], symbol, name))}/{formula_text(expr.args[1], symbol, name)})"
    if head in ("Mod", "PythonMod") and len(expr.args) == 2:
        left, right = (_group(formula_text(arg, symbol, name)) for arg in expr.args)
        return f"({left} mod {right})"
    if isinstance(expr, sympy.Mul):
        coeff, rest = expr.as_coeff_Mul()
        factors = [_group(formula_text(f, symbol, name)) for f in sympy.Mul.make_args(rest)]
        return "·".join(([str(coeff)] if coeff != 1 else []) + factors)
    return str(expr).replace(str(symbol), name)


def _sum(const: int, terms: tuple[Any, ...], symbol: Any, name: str) -> str:
    """The terms with their signs (``H − (H mod 7)``), the constant last, or first when every other
    term is subtracted (``7 − (H mod 7)``)."""
    signed = []
    for term in terms:
        negative = term.as_coeff_Mul()[0] < 0
        signed.append((negative, _group(formula_text(-term if negative else term, symbol, name))))
    if const and all(negative for negative, _ in signed):
        signed.insert(0, (False, str(const)))
    elif const:
        signed.append((const < 0, str(abs(const))))
    if not signed:
        return "0"
    text = ("−" if signed[0][0] else "") + signed[0][1]
    return text + "".join(f" {'−' if negative else '+'} {body}" for negative, body in signed[1:])


def _group(text: str) -> str:
    """``text`` in parentheses when it has spaces and is not already one parenthesised group."""
    if " " not in text or (text.startswith("(") and _closing(text) == len(text) - 1):
        return text
    return f"({text})"


def _closing(text: str) -> int:
    depth = 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0:
            return i
    return -1


def _affine(expr: Any, symbol: Any) -> tuple[int, int] | None:
    """(a, b) when ``expr`` is a·symbol + b with integers a, b."""
    import sympy

    if not expr.free_symbols <= {symbol} or not expr.is_polynomial(symbol):
        return None
    poly = sympy.Poly(expr, symbol)
    if poly.degree() > 1 or not all(c.is_Integer for c in poly.all_coeffs()):
        return None
    coeffs = [int(c) for c in poly.all_coeffs()]
    return (coeffs[0], coeffs[1]) if len(coeffs) == 2 else (0, coeffs[0])


def _floor_of_affine(expr: Any, symbol: Any) -> tuple[int, int, int] | None:
    """(a, b, c) when ``expr`` is floor((a·symbol + b)/c) with a positive integer c."""
    if type(expr).__name__ not in ("FloorDiv", "CleanDiv") or len(expr.args) != 2:
        return None
    num, den = expr.args
    affine = _affine(num, symbol)
    if affine is None or not den.is_Integer or int(den) <= 0:
        return None
    return affine[0], affine[1], int(den)
