"""The per-layer table (tabulate) in plain text, markdown or CSV, with a totals footer."""
from __future__ import annotations

import csv
import io

from tabulate import tabulate

from ..report import WINDOW_KEYS, LayerRecord, Report, leaf_of, scopes_of
from ..units import binary_bytes, grouped, si
from .text import per_axis_text, shape_text

HEADERS = ("Layer", "Type", "Output shape", "Params", "MACs", "Window", "RF")


def _output_text(layer: LayerRecord) -> str:
    if len(layer.output_shapes) > 1:
        return ", ".join(f"{k}: {shape_text(s)}" for k, s in layer.output_shapes)
    return shape_text(layer.output_shape)


#: (attribute, its letter, the default text left out) of the window column
_WINDOW = tuple(zip(WINDOW_KEYS, "kspdg", (None, "1", "0", "1", "1")))


def window_text(layer: LayerRecord) -> str:
    """``k3 s2 p1 d1 g32``: kernel, stride, padding, dilation, groups; defaults left out."""
    if not layer.attrs:
        return ""
    attrs = dict(layer.attrs)  # once per row: LayerRecord.attr builds it per key
    parts = []
    for key, letter, default in _WINDOW:
        value = attrs.get(key)
        if value is None:
            continue
        text = per_axis_text(value)
        if text != default:
            parts.append(f"{letter}{text}")
    return " ".join(parts)


def rf_text(layer: LayerRecord) -> str:
    """``7``, ``7x5``, ``global``, ``unknown``; ``*`` marks a merge of misaligned branches."""
    return layer.receptive_field.size_text() if layer.receptive_field is not None else ""


def _param_text(layer: LayerRecord) -> str:
    if layer.params == 0 and layer.kind not in ("module", "group", "attribute"):
        return ""
    text = grouped(layer.params)
    return f"({text}) shared with {layer.shared_with}" if layer.shared_with else text


class _Texts:
    """The cells that repeat from row to row (a scope's modules, a window, a shape, a MACs count),
    each formatted once per table: a deep network repeats the same few thousand times. Each memo is
    keyed on everything its text is made from, and lives for one table."""

    def __init__(self) -> None:
        self._scopes: dict[str, list[str]] = {}
        self._windows: dict[tuple[tuple[str, object], ...], str] = {}
        self._shapes: dict[tuple[int, ...] | None, str] = {}
        self._macs: dict[int, str] = {}
        #: by the RF's identity: an element-wise layer passes its input's RF on as the same record,
        #: and the report holds every RF (so no id is reused) while its table is made
        self._rfs: dict[int, str] = {}

    def scopes(self, name: str) -> list[str]:
        """``list(scopes_of(name))``: the same for every row of one module's body."""
        owner = name.split("#")[0].rpartition(".")[0]  # scopes_of reads only this much of the name
        found = self._scopes.get(owner)
        if found is None:
            found = self._scopes[owner] = list(scopes_of(name))
        return found

    def window(self, layer: LayerRecord) -> str:
        try:
            found = self._windows.get(layer.attrs)
        except TypeError:  # an attribute value that is no key (a list): formatted each time
            return window_text(layer)
        if found is None:
            found = self._windows[layer.attrs] = window_text(layer)
        return found

    def output(self, layer: LayerRecord) -> str:
        if len(layer.output_shapes) > 1:
            return _output_text(layer)
        shape = layer.output_shape
        found = self._shapes.get(shape)
        if found is None:
            found = self._shapes[shape] = shape_text(shape)
        return found

    def rf(self, layer: LayerRecord) -> str:
        rf = layer.receptive_field
        if rf is None:
            return ""
        found = self._rfs.get(id(rf))
        if found is None:
            found = self._rfs[id(rf)] = rf_text(layer)
        return found

    def macs(self, n: int) -> str:
        if not n:
            return ""
        found = self._macs.get(n)
        if found is None:
            found = self._macs[n] = si(n)
        return found


def _rows(report: Report, indent: bool) -> list[list[str]]:
    rows: list[list[str]] = []
    open_scopes: list[str] = []
    texts = _Texts()
    modules = report.modules
    for layer in report.layers:
        scope = texts.scopes(layer.name) if layer.kind not in ("input", "output") else []
        # header rows for the modules this row sits in, when they begin
        common = 0
        if scope is not open_scopes:  # the same list: every module already open
            while common < min(len(scope), len(open_scopes)) and scope[common] == open_scopes[common]:
                common += 1
        else:
            common = len(scope)
        for level in range(common, len(scope)):
            path = scope[level]
            name = ("  " * level + leaf_of(path)) if indent else path
            rows.append([name, modules.get(path, ""), "", "", "", "", ""])
        open_scopes = scope
        name = ("  " * len(scope) + leaf_of(layer.name)) if indent else layer.name
        rows.append([name, layer.type, texts.output(layer), _param_text(layer), texts.macs(layer.macs),
                     texts.window(layer), texts.rf(layer)])
    return rows


def _with_unit(n: int, unit: str) -> str:
    """``4.089 GMACs``; ``324 MACs`` below a thousand, where there is no prefix."""
    text = si(n, 3)
    return f"{text}{unit}" if text[-1].isalpha() else f"{text} {unit}"


def footer_lines(report: Report) -> list[str]:
    t = report.totals
    bound = "" if t.complete else " (lower bound: some ops have no formula, see below)"
    lines = [
        f"Total params: {grouped(t.params)}" + (f" ({si(t.params)})" if t.params >= 1000 else ""),
        f"Trainable params: {grouped(t.trainable_params)}",
        f"Non-trainable params: {grouped(t.non_trainable_params)}",
        f"Buffer elements: {grouped(t.buffers)}",
        f"Param memory: {binary_bytes(t.param_bytes)} (buffers {binary_bytes(t.buffer_bytes)})",
        f"MACs: {grouped(t.macs)} ({_with_unit(t.macs, 'MACs')}){bound}",
        f"FLOPs: {grouped(t.flops)} ({_with_unit(t.flops, 'FLOPs')}){bound}",
        f"Activation memory (new layer outputs): {binary_bytes(t.activation_bytes)}",
        f"Input memory: {binary_bytes(t.input_bytes)}",
        f"Tracer: {report.tracer}",
    ]
    if report.memory is not None:
        from .memory import footer_lines as memory_lines

        lines[-1:-1] = memory_lines(report.memory)
    for u in report.unsupported:
        where = ", ".join(u.layers[:3]) + (", ..." if len(u.layers) > 3 else "")
        lines.append(f"Unsupported op (cost unknown, not counted): {u.op} x{u.count} in {where}")
    lines += [f"Note: {n}" for n in report.notes]
    lines += [f"Warning: {w}" for w in report.warnings]
    return lines


def simple_table(rows: list[list[str]], headers: tuple[str, ...], colalign: tuple[str, ...]) -> str:
    """``tabulate(rows, headers, tablefmt="simple", colalign=colalign, preserve_whitespace=True,
    disable_numparse=True)``, written directly when every cell is one line of printable ASCII (each
    character one column wide): tabulate inspects every cell's type and width on its way there,
    most of a deep model's table time. Any other text (wide characters, line breaks, colour codes)
    goes to tabulate."""
    plain = (bool(rows) and len(colalign) == len(headers) and all(len(r) == len(headers) for r in rows)
             and all(a in ("left", "right") for a in colalign))
    if plain:
        text = "".join([*headers, *(c for r in rows for c in r)])  # a non-str cell raises: not plain
        plain = text.isascii() and text.isprintable()
    if not plain:
        return tabulate(rows, headers=headers, tablefmt="simple", preserve_whitespace=True, colalign=colalign,
                        disable_numparse=True)
    # a column is as wide as its widest cell, and at least its header plus tabulate's padding of 2
    widths = [max(len(h) + 2, max(map(len, column))) for h, column in zip(headers, zip(*rows))]
    # one format for every line: "{:<8}" pads a str as str.ljust(8) does, "{:>8}" as str.rjust(8)
    line = "  ".join(f"{{:{'<' if a == 'left' else '>'}{w}}}" for a, w in zip(colalign, widths)).format
    return "\n".join([line(*headers).rstrip(), "  ".join("-" * w for w in widths),
                      *(line(*r).rstrip() for r in rows)])


def render_table(report: Report) -> str:
    inputs = ", ".join(f"{i.key} {shape_text(i.shape)} {i.dtype}" for i in report.inputs)
    title = f"{report.model}  (input: {inputs})"
    # preserve_whitespace: the names' indentation is the module hierarchy; every cell is already text
    align = ("left", "left", "left", "right", "right", "left", "right")
    body = simple_table(_rows(report, indent=True), HEADERS, align)
    return "\n".join([title, "", body, "", *footer_lines(report)])


def render_markdown(report: Report) -> str:
    body = tabulate(_rows(report, indent=False), headers=HEADERS, tablefmt="github")
    footer = "\n".join(f"- {line}" for line in footer_lines(report))
    return f"### {report.model}\n\n{body}\n\n{footer}\n"


BY_OP_HEADERS = ("Op", "Calls", "MACs", "FLOPs", "% FLOPs")


def render_by_op(report: Report, markdown: bool = False) -> str:
    """MACs and FLOPs per op over the whole model (``report.by_op``); ops that cost nothing
    (views, copies, padding) are counted in one closing line."""
    total = report.totals.flops
    costly = [o for o in report.by_op if o.flops or o.macs]
    rows = [[o.op, grouped(o.calls), grouped(o.macs), grouped(o.flops),
             f"{100 * o.flops / total:.1f}" if total else ""] for o in costly]
    free = [o for o in report.by_op if not (o.flops or o.macs)]
    body = tabulate(rows, headers=BY_OP_HEADERS, tablefmt="github" if markdown else "simple",
                    colalign=("left", "right", "right", "right", "right"), disable_numparse=True)
    title = "#### Per-op breakdown" if markdown else "Per-op breakdown"
    lines = [title, "", body]
    if free:
        calls = sum(o.calls for o in free)
        lines += ["", f"{grouped(calls)} call(s) of {len(free)} op(s) that cost nothing (data movement): "
                      + ", ".join(o.op for o in free[:6]) + (", ..." if len(free) > 6 else "")]
    return "\n".join(lines)


CSV_COLUMNS = ("name", "kind", "type", "depth", "output_shape", "params", "shared_with", "macs",
               "flops", "activation_bytes", "kernel_size", "stride", "padding", "dilation", "groups")


def render_csv(report: Report) -> str:
    """One row per layer, exact integers, shapes as ``1x64x56x56``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for layer in report.layers:
        d = layer.to_dict()
        row = []
        for col in CSV_COLUMNS:
            value = d.get(col)
            if col == "output_shape":  # several outputs as the table gives them: "[0]: 1x10, [1]: 1x48"
                value = _output_text(layer)
            elif isinstance(value, list):
                value = "x".join(str(v) for v in value)
            row.append("" if value is None else value)
        writer.writerow(row)
    return buf.getvalue()
