"""Which input sizes a model accepts, derived from the layer arithmetic.

Each tensor dimension that depends on the studied input axis is an *expression* of the input size
``s`` built from the per-layer formulas of :mod:`cnnshape.arith` (conv/pool windows, transposed
convolutions, padding, upsampling, flattening), plus the constraints that merges impose (equal
sizes at ``cat``, broadcast-compatible sizes at ``add``/``mul``, a fixed size where a Linear or a
constant reshape consumes the dimension). Adaptive pooling turns a dimension back into a constant.

A size is accepted when every expression is defined (every layer output ≥ 1) and every constraint
holds. The expressions are compositions of floor-affine integer maps, hence eventually periodic:
they are evaluated exactly (Python ints, no torch) for every size 1..N, N covering several periods,
and an arithmetic rule {minimum, step, offset, maximum} is fitted and verified against all of them.

Size rules live in one registry keyed by ATen op name (``SIZE_RULES``); an op with no rule on a
dimension that depends on the input makes the axis *uncharacterised* (reported, never guessed).

Where this layer arithmetic cannot characterise an axis (an op without a size rule, sizes read
into Python values), :mod:`.symbolic` answers instead with torch's own symbolic shapes (the guards
a fake-tensor trace records, region by region), imported only then; each axis says which engine
answered.

One module per concern: :mod:`.expr` (the expression algebra), :mod:`.rules` (the per-op size
rules), :mod:`.flow` (the traversal), :mod:`.records` (the results, torch-free), :mod:`.fit` (fitting
and validating the rule), :mod:`.text` (formula text), :mod:`.empty` (when an empty tensor rejects
a size), :mod:`.symbolic`, :mod:`.symtext` and :mod:`.fallback` (the second engine).
"""
from __future__ import annotations

from .fit import (
    MAX_UP_TO,
    MIN_UP_TO,
    PYTHON_VALUES,
    Retrace,
    analyse_axis,
    analyse_sizes,
    minimum_note,
    minimum_sizes,
)
from .flow import SharedTemplates
from .records import (
    ARITHMETIC,
    SCHEMA,
    SYMBOLIC,
    Accepted,
    AxisSizes,
    SizeFormula,
    SizeReport,
    axis_symbol,
    default_axes,
)
from .rules import SIZE_RULES, SizeRule

__all__ = [
    "ARITHMETIC", "MAX_UP_TO", "MIN_UP_TO", "PYTHON_VALUES", "SCHEMA", "SIZE_RULES", "SYMBOLIC", "Accepted",
    "AxisSizes", "Retrace", "SharedTemplates", "SizeFormula", "SizeReport", "SizeRule", "analyse_axis", "analyse_sizes",
    "axis_symbol", "default_axes", "minimum_note", "minimum_sizes",
]
