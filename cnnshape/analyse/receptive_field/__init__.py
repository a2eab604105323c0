"""Receptive field (size, jump, start) of every node, per spatial axis (docs/receptive_field.md),
and the exact input box of any one unit.

``records``: the frozen results and their text; ``trail``: how units map back to the units they
read (``channels``: which channels see alike), walked by ``boxes`` for one unit's exact box;
``rules``: the per-op table, filled by ``windows`` (sliding windows, resampling, padding,
pixel (un)shuffle), ``layout`` (views, reshapes, permutes), ``select`` (slices, splits,
concatenation) and ``mixing`` (element-wise, reductions, products); ``traverse``: the walk over the
graph; ``percall``: what the walk derives from a call alone, memoised per call object for one walk.
"""
from __future__ import annotations

from . import layout, mixing, select, windows  # noqa: F401  (importing them fills RF_RULES)
from .boxes import Refused, UnitBox, input_box, unit_box
from .records import (
    AxisRF,
    Piece,
    Place,
    ReceptiveField,
    RFKind,
    error_text,
    failed,
    fraction_text,
    identity,
)
from .rules import RF_RULES, Rule, unchanged
from .trail import IndexMap, Link, Trail
from .traverse import analyse_receptive_fields, apply_ops, merge, node_rf

__all__ = [
    "AxisRF", "IndexMap", "Link", "Piece", "Place", "RF_RULES", "RFKind", "ReceptiveField", "Refused", "Rule",
    "Trail", "UnitBox", "analyse_receptive_fields", "apply_ops", "error_text", "failed", "fraction_text", "identity",
    "input_box", "merge", "node_rf", "unchanged", "unit_box",
]
