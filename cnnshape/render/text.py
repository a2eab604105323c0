"""Small text formatters every renderer shares."""
from __future__ import annotations

from typing import Any


def shape_text(shape: tuple[int, ...] | None, sep: str = "x") -> str:
    """``(1, 64, 112, 112)`` -> ``"1x64x112x112"``; a 0-d tensor is ``"scalar"``, None is ``""``."""
    if shape is None:
        return ""
    return sep.join(str(d) for d in shape) if shape else "scalar"


def per_axis_text(value: Any, sep: str = "x") -> str:
    """A per-axis hyper-parameter: ``(3, 3)`` -> ``"3"``, ``(3, 1)`` -> ``"3x1"``, ``2`` -> ``"2"``."""
    if isinstance(value, tuple):
        return str(value[0]) if len(set(value)) == 1 else sep.join(str(v) for v in value)
    return str(value)
