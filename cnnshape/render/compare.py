"""A finished :class:`~cnnshape.comparison.Comparison` as text, markdown or JSON (never recomputes).

Text and markdown give three parts: the totals side by side (one column per model, the ratio to
the first model beside each figure), the stages side by side (output shape, parameters and MACs,
each with its share of the model's total), and a line per model naming where its cost goes.
"""
from __future__ import annotations

import json

from tabulate import tabulate

from ..comparison import FIGURES, NOT_RUN, Comparison, ModelColumn, StageCell
from ..units import binary_bytes, si
from .text import shape_text


def ratio_text(ratio: float | None) -> str:
    """``2.26x``; ``""`` when there is no ratio."""
    return "" if ratio is None else f"{ratio:.2f}x"


def figure_text(model: ModelColumn, key: str, kind: str) -> str:
    """One total as the tables print it: ``138.36 M``, ``57.65 MiB``; ``≥`` marks a lower bound,
    ``n/a`` a figure this model's report does not have."""
    value = model.figure(key)
    if value is None:
        return "n/a"
    text = binary_bytes(value) if kind == "bytes" else si(value)
    return f"≥ {text}" if key in ("macs", "flops") and not model.complete else text


def input_text(model: ModelColumn) -> str:
    return ", ".join(f"{i.key} {shape_text(i.shape)} {i.dtype}" for i in model.inputs)


def output_text(model: ModelColumn) -> str:
    if len(model.outputs) == 1:
        return shape_text(model.outputs[0].shape)
    return ", ".join(f"{o.key}: {shape_text(o.shape)}" for o in model.outputs)


def deepest_rf_text(model: ModelColumn) -> str:
    rf = model.deepest_rf
    return f"{rf.size} at {rf.layer}" if rf else "none"


def minimum_input_text(model: ModelColumn) -> str:
    return model.minimum_text() or ("not run" if model.minimum_note == NOT_RUN else "not determined")


def total_rows(comparison: Comparison) -> list[list[str]]:
    """Figure, then one cell per model: the value, and the ratio to the first model after the first."""
    rows = []
    for key, label, kind in FIGURES:
        if key == "peak_bytes" and all(m.peak_bytes is None for m in comparison.models):
            continue  # no report carries a memory analysis: no row of n/a
        cells = [figure_text(m, key, kind) for m in comparison.models]
        for i in range(1, len(cells)):
            ratio = ratio_text(comparison.ratio(key, i))
            cells[i] += f" ({ratio})" if ratio else ""
        rows.append([label, *cells])
    models = comparison.models
    rows += [
        ["Output", *(output_text(m) for m in models)],
        ["Receptive field of the output", *(m.output_rf or "none" for m in models)],
        ["Deepest spatial receptive field", *(deepest_rf_text(m) for m in models)],
        ["Minimum input size", *(minimum_input_text(m) for m in models)],
        ["Tracer", *(m.tracer for m in models)],
    ]
    return rows


def _share(value: int, share: float) -> str:
    """``14.71 M (10.6%)``; empty for 0, as the summary table leaves it (a missing stage is ``-``)."""
    return f"{si(value)} ({100 * share:.1f}%)" if value else ""


def _stage_cells(cell: StageCell | None) -> list[str]:
    if cell is None:
        return ["-", "", ""]
    return [shape_text(cell.output_shape), _share(cell.params, cell.params_share), _share(cell.macs, cell.macs_share)]


def stage_rows(comparison: Comparison, sep: str = "\n") -> tuple[list[str], list[list[str]]]:
    """The stage table: a model's label over its three columns (``sep``: between label and figure)."""
    headers = ["Stage"]
    for label in comparison.labels:
        headers += [f"{label}{sep}output", f"{label}{sep}params", f"{label}{sep}MACs"]
    rows = [[row.label, *(text for cell in row.cells for text in _stage_cells(cell))] for row in comparison.stages]
    return headers, rows


def cost_lines(comparison: Comparison) -> list[str]:
    """Per model, the stage with most MACs and the stage with most parameters."""
    lines = []
    for i, model in enumerate(comparison.models):
        parts = []
        for key, what in (("macs", "MACs"), ("params", "params")):
            top = comparison.top_stage(i, key)
            if top is not None:
                share = top.macs_share if key == "macs" else top.params_share
                parts.append(f"{100 * share:.1f}% of its {what} in {top.name}")
        lines.append(f"{model.label}: " + ("; ".join(parts) if parts else "no MACs or parameters"))
    return lines


def note_lines(comparison: Comparison) -> list[str]:
    """What qualifies the figures: models left out, lower bounds, unsupported ops, sizes not found,
    warnings."""
    lines = [f.text(comparison.given) for f in comparison.failed]
    for m in comparison.models:
        if not m.complete:
            lines.append(f"{m.label}: MACs and FLOPs are lower bounds; no formula for "
                         + ", ".join(m.unsupported_ops))
        if m.minimum_note and m.minimum_note != NOT_RUN:
            lines.append(f"{m.label}: minimum input size {m.minimum_note}")
        reasons: dict[str, list[str]] = {}  # axes that share a reason get one line
        for axis in m.minimum_input:
            if axis.minimum is None:
                reasons.setdefault(axis.reason or "no reason given", []).append(axis.symbol)
        for reason, symbols in reasons.items():
            lines.append(f"{m.label}: input {'axes' if len(symbols) > 1 else 'axis'} {', '.join(symbols)} not "
                         f"characterised by the layer arithmetic ({reason}); `cnnshape sizes` also tries torch's "
                         "symbolic shapes")
        lines += [f"{m.label}: warning: {w}" for w in m.warnings]
    shown = [deepest_rf_text(m) for m in comparison.models] + [m.output_rf for m in comparison.models] + [
        cell.receptive_field for row in comparison.stages for cell in row.cells if cell is not None]
    if any(text.endswith("*") or "* " in text for text in shown):
        lines.append("*: not aligned (branches with different centres or jumps merged, a concatenation along a "
                     "spatial axis, or an adaptive pool with irregular windows): the size is their union or the "
                     "largest window (docs/receptive_field.md)")
    return lines


def title_text(comparison: Comparison) -> str:
    left_out = f" ({len(comparison.failed)} more failed, see the notes)" if comparison.failed else ""
    return f"Comparing {len(comparison.models)} models{left_out}; ratios are to the first, {comparison.labels[0]}"


def stage_title(comparison: Comparison) -> str:
    how = "by name" if comparison.align == "name" else "by position"
    return (f"Per stage (modules at depth {comparison.depth}, aligned {how}; "
            "each share is of that model's total)")


def render_compare_table(comparison: Comparison) -> str:
    width = max(len(label) for label in comparison.labels)
    spec_width = max(len(m.model) for m in comparison.models)
    models = [f"  {m.label.ljust(width)}  {m.model.ljust(spec_width)}  input: {input_text(m)}"
              for m in comparison.models]
    totals = tabulate(total_rows(comparison), headers=["Total", *comparison.labels], tablefmt="simple",
                      colalign=("left", *("right",) * len(comparison.models)), disable_numparse=True)
    headers, rows = stage_rows(comparison)
    stages = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True,
                      colalign=("left", *("left", "right", "right") * len(comparison.models)))
    parts = [title_text(comparison), *models, "", totals, "", stage_title(comparison), "", stages, "",
             "Where the cost goes:", *(f"  {line}" for line in cost_lines(comparison))]
    notes = note_lines(comparison)
    if notes:
        parts += ["", "Notes:", *(f"  {line}" for line in notes)]
    return "\n".join(parts) + "\n"


def render_compare_markdown(comparison: Comparison) -> str:
    models = [f"- **{m.label}**: `{m.model}` (input: {input_text(m)})" for m in comparison.models]
    totals = tabulate(total_rows(comparison), headers=["Total", *comparison.labels], tablefmt="github",
                      colalign=("left", *("right",) * len(comparison.models)), disable_numparse=True)
    headers, rows = stage_rows(comparison, " ")
    stages = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                      colalign=("left", *("left", "right", "right") * len(comparison.models)))
    parts = ["### Model comparison", "", title_text(comparison) + ".", "", *models, "", totals, "",
             f"#### {stage_title(comparison)}", "", stages, "", "#### Where the cost goes", "",
             *(f"- {line}" for line in cost_lines(comparison))]
    notes = note_lines(comparison)
    if notes:
        parts += ["", "#### Notes", "", *(f"- {line}" for line in notes)]
    return "\n".join(parts) + "\n"


def render_compare_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False) + "\n"
