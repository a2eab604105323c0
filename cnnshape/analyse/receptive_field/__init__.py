"""Receptive field (size, jump, start) of every node, per spatial axis (docs/receptive_field.md).

``records``: the frozen results and their text; ``rules``: the per-op table, filled by
``windows`` (sliding windows, resampling, padding) and ``layout`` (views, selections, reductions,
products, element-wise); ``traverse``: the walk over the graph.
"""
from __future__ import annotations

from . import layout, windows  # noqa: F401  (importing them fills RF_RULES)
from .records import (
    AxisRF,
    Place,
    ReceptiveField,
    RFKind,
    Source,
    error_text,
    failed,
    fraction_text,
    identity,
    unit_box,
)
from .rules import RF_RULES, Rule, unchanged
from .traverse import analyse_receptive_fields, apply_ops, merge, node_rf

__all__ = [
    "AxisRF", "Place", "RF_RULES", "RFKind", "ReceptiveField", "Rule", "Source", "analyse_receptive_fields",
    "apply_ops", "error_text", "failed", "fraction_text", "identity", "merge", "node_rf", "unchanged", "unit_box",
]
