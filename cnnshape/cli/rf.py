"""``cnnshape rf``: the receptive field of every spatial layer, or the input box of one output unit."""
from __future__ import annotations

import difflib
import json
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError
from .common import (
    Args,
    Inputs,
    Leaves,
    Output,
    Spec,
    Traceback,
    Tracer,
    TracerOpt,
    analyze_from_cli,
    guarded,
    write_output,
)

if TYPE_CHECKING:
    from ..report import LayerRecord, Report


class RFFormat(str, Enum):
    table = "table"
    json = "json"


def _rf_layers(report: Report) -> list[LayerRecord]:
    return [layer for layer in report.layers
            if layer.receptive_field is not None and layer.receptive_field.kind != "flat"]


def _axes_text(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "x".join(values)


def rf_table(report: Report) -> str:
    from tabulate import tabulate

    from ..analyse.receptive_field import fraction_text
    from ..render.text import shape_text

    rows, reasons = [], dict[str | None, str]()
    for layer in _rf_layers(report):
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
              for layer in _rf_layers(report)]
    return json.dumps({"model": report.model, "layers": layers}, indent=2)


def _find_layer(report: Report, name: str) -> LayerRecord:
    names = [layer.name for layer in _rf_layers(report)]
    for layer in _rf_layers(report):
        if layer.name == name:
            return layer
    # a container module (layer4, features): its output is the last row that ran inside it
    inside = [layer for layer in _rf_layers(report) if layer.name.startswith(name + ".")]
    if name in report.modules and inside:
        return inside[-1]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else f" Spatial layers: {', '.join(names[:10])}"
    raise ConfigError(f"--layer {name!r}: no spatial layer of that name.{hint}")


def unit_box(report: Report, name: str, at: str) -> dict[str, Any]:
    """The input box output unit ``at`` (``i,j``) of layer ``name`` sees, per axis."""
    from ..analyse.receptive_field import unit_box as axis_box

    layer = _find_layer(report, name)
    rf = layer.receptive_field
    assert rf is not None
    if rf.kind == "unknown":
        raise ConfigError(f"--layer {name!r}: its receptive field is unknown ({rf.unknown_op} has no rule)")
    if not rf.aligned:
        raise ConfigError(
            f"--layer {name!r}: its units do not map to the input by one start and jump (branches "
            "with different centres or jumps meet there, or it concatenates along a spatial axis), so "
            "no per-unit box is given. Pick a layer before the merge.")
    nd = len(rf.axes) if rf.kind == "spatial" else 0
    image = next((i for i in report.inputs if len(i.shape) >= 3), None)
    if rf.kind == "global" or image is None:
        return {"layer": name, "global": True}
    try:
        index = [int(v) for v in at.split(",")]
    except ValueError:
        raise ConfigError(f"--at {at!r}: give {nd} integer output indices separated by commas, e.g. 0,0") from None
    spatial = [place.extent for place in rf.places]
    if len(index) != nd or any(not 0 <= i < n for i, n in zip(index, spatial)):
        raise ConfigError(f"--at {at!r}: {name} has {nd} spatial axes of sizes "
                          f"{'x'.join(map(str, spatial))}; give {nd} indices within them")
    axes = []
    for axis, i, extent in zip(rf.axes, index, image.shape[-nd:]):
        lo, hi, clo, chi = axis_box(axis, i, extent)
        inside = max(0, chi - clo + 1)
        axes.append({"index": i, "box": [lo, hi], "clipped": [clo, chi], "inside": inside,
                     "padding": (hi - lo + 1) - inside})
    return {"layer": name, "global": False, "aligned": rf.aligned, "input": image.key, "axes": axes}


def box_text(box: dict[str, Any]) -> str:
    if box["global"]:
        return f"{box['layer']}: every output unit sees the whole input (global receptive field)\n"
    lines = [f"{box['layer']} unit ({', '.join(str(a['index']) for a in box['axes'])}) sees input "
             f"{box['input']}:"]
    for n, a in enumerate(box["axes"]):
        lines.append(f"  axis {n}: [{a['box'][0]}, {a['box'][1]}] -> in the image [{a['clipped'][0]}, "
                     f"{a['clipped'][1]}] ({a['inside']} pixels), {a['padding']} in the padding")
    return "\n".join(lines) + "\n"


def rf(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    layer: Annotated[str | None, typer.Option("--layer", help="Layer whose output unit to map back.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Output unit index, e.g. 3,4 (with --layer).")] = None,
    format: Annotated[RFFormat, typer.Option("--format", "-f", help="table or json.")] = RFFormat.table,
    output: Output = None,
    tracer: TracerOpt = Tracer.auto,
    leaf: Leaves = None,
    traceback: Traceback = False,
) -> None:
    """Receptive field (size, jump, start) of every spatial layer; --layer/--at: one unit's input box."""

    def run() -> None:
        if (layer is None) != (at is None):
            raise ConfigError("--layer and --at go together: e.g. --layer layer4 --at 3,3")
        report = analyze_from_cli(spec, input, arg, tracer, leaf)
        if layer is not None and at is not None:
            box = unit_box(report, layer, at)
            text = json.dumps(box, indent=2) if format == RFFormat.json else box_text(box)
        else:
            text = rf_json(report) if format == RFFormat.json else rf_table(report)
        write_output(text, output)

    guarded(run, traceback)
