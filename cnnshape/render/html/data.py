"""What the HTML page shows, as one JSON-able dict read from a finished Report (never recomputed).

Module sums come from :meth:`Report.collapse` (the one place rows are summed), the exact input box of
each spatial layer's centre unit from :func:`cnnshape.query.unit_box`; the page's script only lays
these out, sorts, filters, and evaluates the receptive field's closed form for other units.
"""
from __future__ import annotations

from typing import Any

from ...analyse.sizes.records import SizeReport
from ...errors import CnnshapeError
from ...query import unit_box
from ...report import LayerRecord, Report, scopes_of
from ..graphviz import family, key_attributes
from ..memory import footer_lines


def node_id(name: str) -> str:
    """The DOT node id the diagram gives a row (render/graphviz.py: ':' is DOT's port separator)."""
    return name.replace(":", "_")


def _rf(report: Report, layer: LayerRecord) -> dict[str, Any] | None:
    rf = layer.receptive_field
    if rf is None:
        return None
    d: dict[str, Any] = {"kind": rf.kind, "aligned": rf.aligned}
    d.update(rf.to_dict() or {})
    if rf.kind == "spatial":
        d["extents"] = [p.extent for p in rf.places]
        if rf.aligned:
            centre = tuple(p.extent // 2 for p in rf.places)
            try:
                d["centre"] = unit_box(report, layer.name, centre)
            except CnnshapeError as e:  # refused: no exact box rather than a wrong one
                d["centre_refused"] = str(e)
            except Exception as e:  # a bug in a secondary figure never takes the page down
                d["centre_refused"] = f"cnnshape bug ({type(e).__name__}: {e})"
    return d


def _layer(report: Report, layer: LayerRecord) -> dict[str, Any]:
    d = layer.to_dict()
    d.update(
        family=family(layer),
        window_text=key_attributes(layer),
        node=node_id(layer.name),
        new_params=layer.new_params,
        scopes=list(scopes_of(layer.name)) if layer.kind not in ("input", "output") else [],
        rf=_rf(report, layer),
    )
    d.pop("receptive_field", None)
    if len(layer.output_shapes) > 1:
        d["outputs"] = [{"key": k, "shape": list(s)} for k, s in layer.output_shapes]
    return d


def _modules(report: Report) -> dict[str, dict[str, Any]]:
    """Each module above the rows, with its rows summed (Report.collapse to its depth)."""
    deepest = max((layer.depth for layer in report.layers), default=0)
    modules: dict[str, dict[str, Any]] = {}
    for depth in range(1, deepest):
        for row in report.collapse(depth).layers:
            if row.kind == "group" and row.name not in modules:
                modules[row.name] = {
                    "name": row.name, "type": row.type, "depth": depth, "params": row.params,
                    "macs": row.macs, "flops": row.flops, "activation_bytes": row.activation_bytes,
                    "nodes": row.nodes, "input_shapes": [list(s) for s in row.input_shapes],
                    "output_shape": list(row.output_shape) if row.output_shape is not None else None,
                    "unsupported_ops": list(row.unsupported),
                }
    return modules


def _sizes(sizes: SizeReport | str | None, report: Report) -> dict[str, Any]:
    """The accepted input sizes: a size report's axes, or why there is none and the report's note."""
    note = [n for n in report.notes if n.startswith("accepted input sizes")]
    if isinstance(sizes, SizeReport):
        axes = [{"axis": a.axis, "symbol": a.symbol, "given": a.given, "minimum": a.minimum,
                 "accepted": a.accepted.words() if a.accepted else None, "reason": a.reason,
                 "engine": a.engine} for a in sizes.axes]
        return {"axes": axes, "outputs": [{"key": f.key, "dim": f.dim, "formula": f.formula, "symbol": a.symbol}
                                          for a in sizes.axes for f in a.outputs]}
    return {"axes": None, "error": sizes, "note": note[0] if note else None}


def page_data(report: Report, sizes: SizeReport | str | None = None, color_by: str = "macs") -> dict[str, Any]:
    """Everything the page shows. ``sizes``: a size report, or why none was made (a message)."""
    layers = [_layer(report, layer) for layer in report.layers]
    image = next((i for i in report.inputs if len(i.shape) >= 3), None)
    d: dict[str, Any] = {
        "model": report.model,
        "tracer": report.tracer,
        "depth": report.depth,
        "color_by": color_by,
        "totals": report.totals.to_dict(),
        "inputs": [i.to_dict() for i in report.inputs],
        "outputs": [o.to_dict() for o in report.outputs],
        "image": image.to_dict() if image else None,
        "notes": list(report.notes),
        "warnings": list(report.warnings),
        "unsupported_ops": [u.to_dict() for u in report.unsupported],
        "by_op": [o.to_dict() for o in report.by_op],
        "layers": layers,
        "modules": _modules(report),
        "sizes": _sizes(sizes, report),
    }
    if report.memory is not None:  # the summary's footer lines, as "label: figures"
        d["memory"] = dict(line.split(": ", 1) for line in footer_lines(report.memory))
        d["memory_layers"] = {layer.name: layer.live_bytes for layer in report.memory.inference.layers}
    if report.verification is not None:
        d["verification"] = {k: v for k, v in report.verification.to_dict().items() if k != "layers"}
    return d
