"""A finished :class:`~cnnshape.comparison.Comparison` as one self-contained HTML page.

Models in columns; inline CSS, no script, no font, image or link fetched: the file opens offline
from disk and can be mailed. The page has the totals with their ratios to the first model (and a
bar per figure, scaled to the largest model), a stacked bar per model showing which stages its
MACs and parameters go to (a stage keeps its colour across models), and the per-stage table.
Every figure cell carries its exact value in ``data-value`` (tests read the DOM). Never recomputes:
shares and ratios come from the record.
"""
from __future__ import annotations

from html import escape

from ..comparison import FIGURES, Comparison, StageCell
from ..units import grouped, si
from .compare import (
    cost_lines,
    deepest_rf_text,
    figure_text,
    input_text,
    minimum_input_text,
    note_lines,
    output_text,
    ratio_text,
    stage_title,
    title_text,
)
from .text import shape_text

#: colours of the stages that cost something, in stage order (cycled); chosen to stay apart for
#: colour-blind readers. A stage without MACs or parameters in any model is :data:`NEUTRAL`.
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#332288", "#117733",
           "#882255", "#44aa99", "#999933", "#dd7733")
NEUTRAL = "#d0d5da"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       margin: 24px auto; max-width: 1200px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #5a6570; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e7eb; text-align: right; vertical-align: top;
         white-space: nowrap; }
th { background: #f4f6f8; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
th[colspan] { text-align: center; border-left: 1px solid #e3e7eb; }
td.text { text-align: left; }
.ratio { color: #5a6570; font-size: 12px; margin-left: 4px; }
.bar { height: 6px; background: #4477aa; border-radius: 3px; margin-top: 3px; }
.share { display: block; height: 4px; background: #4477aa; opacity: .55; margin-top: 2px; }
.missing { color: #aab3bb; }
.stack { display: flex; height: 22px; border-radius: 4px; overflow: hidden; background: #eef1f4;
         width: 100%; max-width: 760px; }
.stack span { display: block; height: 100%; }
.stackrow { display: grid; grid-template-columns: 140px 1fr; align-items: center; gap: 10px; margin: 6px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0 0; font-size: 12px; }
i.key { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
ul { margin: 4px 0; padding-left: 20px; }
code { background: #f4f6f8; padding: 1px 4px; border-radius: 3px; }
"""


def _figure_cells(comparison: Comparison, key: str, kind: str) -> str:
    values = [m.figure(key) for m in comparison.models]
    largest = max((v for v in values if v is not None), default=0)
    cells = []
    for i, model in enumerate(comparison.models):
        value = values[i]
        ratio = ratio_text(comparison.ratio(key, i)) if i else ""
        width = 100 * value / largest if value is not None and largest else 0
        cells.append(
            f'<td data-model="{escape(model.label)}" data-figure="{key}" '
            f'data-value="{"" if value is None else value}" title="{"" if value is None else grouped(value)}">'
            f'{escape(figure_text(model, key, kind))}'
            + (f'<span class="ratio">{ratio}</span>' if ratio else "")
            + f'<div class="bar" style="width:{width:.1f}%"></div></td>')
    return "".join(cells)


def _totals(comparison: Comparison) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in comparison.labels)
    rows = []
    for key, label, kind in FIGURES:
        if key == "peak_bytes" and all(m.peak_bytes is None for m in comparison.models):
            continue
        rows.append(f"<tr><td>{label}</td>{_figure_cells(comparison, key, kind)}</tr>")
    models = comparison.models
    for label, texts in (("Output", [output_text(m) for m in models]),
                         ("Receptive field of the output", [m.output_rf or "none" for m in models]),
                         ("Deepest spatial receptive field", [deepest_rf_text(m) for m in models]),
                         ("Minimum input size", [minimum_input_text(m) for m in models]),
                         ("Tracer", [m.tracer for m in models])):
        rows.append(f"<tr><td>{label}</td>" + "".join(f'<td class="text">{escape(t)}</td>' for t in texts) + "</tr>")
    return f'<table id="totals"><tr><th>Total</th>{head}</tr>{"".join(rows)}</table>'


def _colours(comparison: Comparison) -> list[str]:
    """One colour per stage: the palette in turn for those with MACs or parameters in some model."""
    colours, used = [], 0
    for row in comparison.stages:
        if any(cell is not None and (cell.macs or cell.params) for cell in row.cells):
            colours.append(PALETTE[used % len(PALETTE)])
            used += 1
        else:
            colours.append(NEUTRAL)
    return colours


def _stacks(comparison: Comparison, key: str, what: str) -> str:
    """One bar per model, its segments the stages' shares of ``key``; a legend of the stages that have any."""
    bars = []
    used: set[int] = set()
    colour = _colours(comparison)
    for m, model in enumerate(comparison.models):
        spans = []
        for s, row in enumerate(comparison.stages):
            cell = row.cells[m]
            share = (cell.macs_share if key == "macs" else cell.params_share) if cell else 0.0
            if share > 0:
                used.add(s)
                tip = f"{row.label}: {100 * share:.1f}% of {model.label}'s {what}"
                spans.append(f'<span style="width:{100 * share:.3f}%;background:{colour[s]}" '
                             f'title="{escape(tip)}"></span>')
        bars.append(f'<div class="stackrow"><div>{escape(model.label)}</div>'
                    f'<div class="stack" data-model="{escape(model.label)}" data-figure="{key}">{"".join(spans)}</div>'
                    "</div>")
    legend = "".join(f'<span><i style="background:{colour[s]}"></i>{escape(comparison.stages[s].label)}</span>'
                     for s in sorted(used))
    return "".join(bars) + f'<div class="legend">{legend}</div>'


def _stage_cell(cell: StageCell | None, label: str) -> str:
    if cell is None:
        return '<td class="text missing">-</td><td class="missing"></td><td class="missing"></td>'
    out = f'<td class="text">{escape(shape_text(cell.output_shape))}</td>'
    for key, value, share in (("params", cell.params, cell.params_share), ("macs", cell.macs, cell.macs_share)):
        text = f"{si(value)} <span class=\"ratio\">{100 * share:.1f}%</span>" if value else ""
        out += (f'<td data-model="{escape(label)}" data-figure="{key}" data-value="{value}" title="{grouped(value)}">'
                f'{text}<span class="share" style="width:{100 * share:.1f}%"></span></td>')
    return out


def _stage_table(comparison: Comparison) -> str:
    top = "".join(f'<th colspan="3">{escape(label)}</th>' for label in comparison.labels)
    sub = "<th>Output</th><th>Params</th><th>MACs</th>" * len(comparison.models)
    rows = []
    colour = _colours(comparison)
    for s, row in enumerate(comparison.stages):
        name = f'<td><i class="key" style="background:{colour[s]}"></i>{escape(row.label)}</td>'
        cells = "".join(_stage_cell(cell, label) for cell, label in zip(row.cells, comparison.labels))
        rows.append(f'<tr data-stage="{escape(row.label)}">{name}{cells}</tr>')
    return (f'<table id="stages"><tr><th rowspan="2">Stage</th>{top}</tr><tr>{sub}</tr>'
            f'{"".join(rows)}</table>')


def render_compare_html(comparison: Comparison) -> str:
    models = "".join(f"<li><b>{escape(m.label)}</b>: <code>{escape(m.model)}</code>, input {escape(input_text(m))}</li>"
                     for m in comparison.models)
    cost = "".join(f"<li>{escape(line)}</li>" for line in cost_lines(comparison))
    notes = note_lines(comparison)
    notes_html = (f'<h2>Notes</h2><ul id="notes">{"".join(f"<li>{escape(n)}</li>" for n in notes)}</ul>'
                  if notes else "")
    title = " vs ".join(comparison.labels)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{escape(title)} · cnnshape compare</title>
<style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="sub">{escape(title_text(comparison))}.</p>
<ul id="models">{models}</ul>
<h2>Totals</h2>
{_totals(comparison)}
<h2>Where the MACs go</h2>
{_stacks(comparison, "macs", "MACs")}
<h2>Where the parameters go</h2>
{_stacks(comparison, "params", "parameters")}
<ul id="cost">{cost}</ul>
<h2>{escape(stage_title(comparison))}</h2>
{_stage_table(comparison)}
{notes_html}
<p class="sub">Made by cnnshape from a static analysis on meta tensors: nothing was run for real.</p>
</body></html>
"""


def render_compare_notebook(comparison: Comparison) -> str:
    """The page for Jupyter's ``_repr_html_``: inside an ``iframe`` (``srcdoc``), so that its
    stylesheet stays off the notebook's own page."""
    height = min(700 + 36 * len(comparison.stages), 1600)
    return (f'<iframe srcdoc="{escape(render_compare_html(comparison), quote=True)}" '
            f'style="width:100%;height:{height}px;border:0" title="cnnshape compare"></iframe>')
