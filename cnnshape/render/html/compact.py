"""The compact view Jupyter shows inline (``Report._repr_html_``): the totals, the per-layer table
and the diagram, as static HTML (no script, so it shows the same in a trusted notebook, an
untrusted one and a notebook viewer). The full page is :func:`cnnshape.render.html.to_html`."""
from __future__ import annotations

import html

from ...report import LayerRecord, Report
from ...units import binary_bytes, grouped, si
from ..text import shape_text
from .data import node_id
from .page import asset, diagram_svg

_COLUMNS = ("Layer", "Type", "Output", "Params", "MACs", "Memory", "RF")


def _rf_text(layer: LayerRecord) -> str:
    rf = layer.receptive_field.to_dict() if layer.receptive_field else None
    if not rf:
        return ""
    size = rf["size"]
    if not isinstance(size, list):
        return str(size)
    return str(size[0]) if len(set(map(str, size))) == 1 else "×".join(map(str, size))


def _row(layer: LayerRecord) -> str:
    e = html.escape
    mark = ' <span class="lb" title="no formula for some op: a lower bound">≥</span>' if layer.unsupported else ""
    out = (f"{len(layer.output_shapes)} tensors" if len(layer.output_shapes) > 1
           else shape_text(layer.output_shape, "×"))
    cells = [
        f'<td class="name" style="padding-left:{4 + 12 * (layer.depth - 1)}px" title="{e(layer.name)}">'
        f"{e(layer.name)}{mark}</td>",
        f"<td>{e(layer.type)}</td>",
        f"<td>{e(out)}</td>",
        f'<td class="num" title="{grouped(layer.params)}">{si(layer.params) if layer.params else ""}</td>',
        f'<td class="num" title="{grouped(layer.macs)}">{si(layer.macs) if layer.macs else ""}</td>',
        f'<td class="num" title="{grouped(layer.output_bytes)} bytes">'
        f'{binary_bytes(layer.output_bytes) if layer.output_bytes else ""}</td>',
        f'<td class="num">{e(_rf_text(layer))}</td>',
    ]
    return f'<tr data-name="{e(layer.name)}" data-node="{e(node_id(layer.name))}">{"".join(cells)}</tr>'


def compact_html(report: Report, diagram: bool = True) -> str:
    """The totals line, the per-layer table (scrolling) and, when ``diagram``, the diagram beside it
    (a note saying how to get it when Graphviz ``dot`` is missing)."""
    t, e = report.totals, html.escape
    lb = "" if t.complete else "≥ "
    head = (f"<b>{e(report.model)}</b> · {si(t.params)} params · {lb}{si(t.macs)} MACs · "
            f"{lb}{si(t.flops)} FLOPs · {binary_bytes(t.activation_bytes)} activations · {len(report.layers)} rows")
    rows = "".join(_row(layer) for layer in report.layers)
    table = (f'<div class="scroll"><table><thead><tr>{"".join(f"<th>{c}</th>" for c in _COLUMNS)}</tr></thead>'
             f"<tbody>{rows}</tbody></table></div>")
    parts = [f"<style>{asset('compact.css')}</style>", f'<div class="cnnshape-report"><p>{head}</p>']
    if not t.complete:
        parts.append('<p class="lb">MACs and FLOPs are lower bounds: some ops have no formula (rows marked ≥).</p>')
    parts.append(f'<div class="cols">{table}')
    if diagram:
        svg, why = diagram_svg(report)
        body = svg if svg is not None else f'<p class="hint">No diagram: {e(why or "")}</p>'
        parts.append(f'<div class="diagram">{body}</div>')
    parts.append('</div><p class="hint">The full interactive page: <code>report.to_html()</code> or '
                 "<code>cnnshape report SPEC -o model.html</code>.</p></div>")
    return "".join(parts)
