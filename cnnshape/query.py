"""Questions answered from a finished Report: which row a layer name means, and which input box one
output unit of it sees. Sits on top of the report, beside check.py; the CLI and the API call it."""
from __future__ import annotations

import difflib
from typing import Any

from .analyse.receptive_field.boxes import Refused, input_box
from .errors import ConfigError, param
from .report import LayerRecord, Report


def rf_layers(report: Report) -> list[LayerRecord]:
    """The rows with a spatial, global or unknown receptive field, in execution order."""
    return [layer for layer in report.layers
            if layer.receptive_field is not None and layer.receptive_field.kind != "flat"]


def spatial_layer(report: Report, name: str) -> LayerRecord:
    """The row ``name`` names: a traced node, or a module (its output: the last row inside it)."""
    names = [layer.name for layer in rf_layers(report)]
    for layer in rf_layers(report):
        if layer.name == name:
            return layer
    # a container module (layer4, features): its output is the last row that ran inside it
    inside = [layer for layer in rf_layers(report) if layer.name.startswith(name + ".")]
    if name in report.modules and inside:
        return inside[-1]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else f" Spatial layers: {', '.join(names[:10])}"
    raise ConfigError(f"{param('layer')} {name!r}: no spatial layer of that name.{hint}")


def unit_box(report: Report, name: str, index: tuple[int, ...]) -> dict[str, Any]:
    """The input box output unit ``index`` of layer ``name`` sees, per axis (``--layer/--at``): the
    nominal box (padding positions counted) and, exactly, the input pixels it depends on
    (``clipped``). A global layer whose units all see the whole input says so; one that sees part of
    it gives that part. No box rather than a wrong one: refused with the reason."""
    layer = spatial_layer(report, name)
    rf = layer.receptive_field
    assert rf is not None
    if rf.kind == "unknown":
        raise ConfigError(f"{param('layer')} {name!r}: its receptive field is unknown ({rf.unknown_op} has no rule)")
    if not rf.aligned:
        raise ConfigError(
            f"{param('layer')} {name!r}: its units do not map to the input by one start and jump (branches "
            "with different centres or jumps meet there, or it concatenates along a spatial axis), so "
            "no per-unit box is given. Pick a layer before the merge.")
    nd = len(rf.axes) if rf.kind == "spatial" else 0
    image = next((i for i in report.inputs if len(i.shape) >= 3), None)
    if image is None:
        return {"layer": name, "global": True}
    spatial = [place.extent for place in rf.places]
    if rf.kind == "spatial" and (len(index) != nd or any(not 0 <= i < n for i, n in zip(index, spatial))):
        at = ",".join(map(str, index))
        raise ConfigError(f"{param('at')} {at!r}: {name} has {nd} spatial axes of sizes "
                          f"{'x'.join(map(str, spatial))}; give {nd} indices within them")
    try:
        box = input_box(rf, index if rf.kind == "spatial" else None, image=image.key)
    except Refused as e:
        raise ConfigError(f"{param('layer')} {name!r}: no exact input box for this unit: {e}.") from None
    extents = image.shape[2:]
    if rf.kind == "global" and box.pixels == tuple((0, n - 1) for n in extents):
        return {"layer": name, "global": True}
    axes = []
    for k in range(len(extents)):  # a unit that reads only padding has no pixels (and a box only if nominal)
        lo, hi = box.nominal[k] if box.nominal else (0, -1)
        clo, chi = box.pixels[k] if box.pixels else (lo, lo - 1)
        inside = max(0, chi - clo + 1)
        axes.append({"index": index[k] if k < len(index) else 0, "box": [lo, hi], "clipped": [clo, chi],
                     "inside": inside, "padding": max(0, (hi - lo + 1) - inside)})
    return {"layer": name, "global": False, "aligned": rf.aligned, "input": image.key, "axes": axes}
