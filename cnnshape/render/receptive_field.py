"""The ``cnnshape rf`` outputs: the receptive-field table, its JSON, and one unit's input box."""
from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate

from ..analyse.receptive_field.records import fraction_text
from ..query import rf_layers
from ..report import Report
from .text import shape_text


def _axes_text(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "x".join(values)


def rf_table(report: Report) -> str:
    rows, reasons = [], dict[str | None, str]()
    for layer in rf_layers(report):
        rf = layer.receptive_field
        assert rf is not None
        if rf.kind == "spatial":
            size = _axes_text([fraction_text(a.size) for a in rf.axes])
            jump = _axes_text([fraction_text(a.jump) for a in rf.axes])
            start = _axes_text([fraction_text(a.start) for a in rf.axes])
            aligned = "yes" if rf.aligned else "NO"
        else:
            size, jump, start, aligned = rf.kind, "", "", "-"
            if rf.kind == "unknown":
                reasons.setdefault(rf.unknown_op, layer.name)
        rows.append([layer.name, layer.type, shape_text(layer.output_shape), size, jump, start, aligned])
    body = tabulate(rows, headers=("Layer", "Type", "Output shape", "RF", "Jump", "Start", "Aligned"),
                    tablefmt="simple", colalign=("left", "left", "left", "right", "right", "right", "left"))
    notes = "".join(f"\nunknown from {name} on: {op}" for op, name in reasons.items())
    if notes:
        body += "\n" + notes
    return f"{report.model}  receptive fields in input pixels\n\n{body}\n"


def rf_json(report: Report) -> str:
    layers = [{"name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape or ()),
               "receptive_field": layer.receptive_field.to_dict() if layer.receptive_field else None}
              for layer in rf_layers(report)]
    return json.dumps({"model": report.model, "layers": layers}, indent=2)


def box_text(box: dict[str, Any]) -> str:
    if box["global"]:
        return f"{box['layer']}: every output unit sees the whole input (global receptive field)\n"
    lines = [f"{box['layer']} unit ({', '.join(str(a['index']) for a in box['axes'])}) sees input "
             f"{box['input']}:"]
    for n, a in enumerate(box["axes"]):
        lines.append(f"  axis {n}: [{a['box'][0]}, {a['box'][1]}] -> in the image [{a['clipped'][0]}, "
                     f"{a['clipped'][1]}] ({a['inside']} pixels), {a['padding']} in the padding")
    return "\n".join(lines) + "\n"
