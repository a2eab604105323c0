"""Text and JSON for a finished :class:`~cnnshape.analyse.sizes.SizeReport` (never recomputes)."""
from __future__ import annotations

import json

from ..analyse.sizes.records import SYMBOLIC, SizeReport
from ..errors import param


def _key(key: str) -> str:
    return f"output{key}" if key else "output"


def render_sizes_text(report: SizeReport, layers: bool = False) -> str:
    shape = "x".join(str(d) for d in report.input_shape)
    lines = [f"{report.model}  (working example: input {shape})", ""]
    if not report.axes:
        lines.append(f"The first input {shape} has no spatial axes (dims 2..); choose one with {param('axes')}.")
    for a in report.axes:
        lines.append(f"Axis {a.axis} ({a.symbol}, given {a.given}):")
        if a.accepted is None:
            lines.append(f"  {a.reason}")
            continue
        lines.append(f"  minimum: {a.minimum}")
        lines.append(f"  accepted: {a.accepted.words()}")
        if a.engine_note:
            lines.append(f"  {'engine' if a.engine == SYMBOLIC else 'note'}: {a.engine_note}")
        if a.arithmetic_reason:
            lines.append(f"  layer arithmetic: {a.arithmetic_reason}")
        if a.outputs:
            for f in a.outputs:
                lines.append(f"  {_key(f.key)} dim {f.dim} = {f.formula}")
        else:
            lines.append(f"  no output dimension depends on {a.symbol}")
        if layers and a.engine == SYMBOLIC:
            lines.append("  per layer: only the layer arithmetic gives them")
        elif layers:
            lines.append("  per layer:")
            width = max((len(f.name + f.key) for f in a.layers), default=0)
            lines += [f"    {(f.name + f.key).ljust(width)}  dim {f.dim} = {f.formula}" for f in a.layers]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_sizes_json(report: SizeReport, layers: bool = False) -> str:
    return json.dumps(report.to_dict(layers), indent=2, ensure_ascii=False) + "\n"
