"""Several models side by side: the frozen comparison record, built from finished reports.

Torch-free and pure, like :mod:`cnnshape.check`: :func:`build_comparison` reads each model's
(uncollapsed) :class:`~cnnshape.report.Report` and, where it was run, its size analysis, and fills
:class:`Comparison`; the renderers (``render/compare.py``, ``render/compare_html.py``) only read
it, and ``Comparison.to_dict()`` is the JSON schema ``cnnshape.compare/1`` (docs/json.md).

Ratios are to the first model. The per-stage view collapses each report to a depth (top-level
modules by default) and aligns the rows by name (a name the models share is one row, the others
keep their order between them) or by position (the i-th stage of each model).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, param
from .report import LayerRecord, Report, TensorInfo
from .vocab import COMPARE_ALIGNS, COMPARE_SCHEMA

if TYPE_CHECKING:
    from .analyse.sizes.records import SizeReport

#: how a comparison shows itself: "text" (``str(comparison)``) and "html" (Jupyter's
#: ``_repr_html_``), installed by :mod:`cnnshape.render.views` as the report's views are
_VIEWS: dict[str, Callable[[Comparison], str]] = {}


def install_view(name: str, view: Callable[[Comparison], str]) -> None:
    _VIEWS[name] = view

#: the totals compared, in the order they are shown: (key, label, kind) with kind "count" or "bytes"
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("params", "Params", "count"),
    ("macs", "MACs", "count"),
    ("flops", "FLOPs", "count"),
    ("activation_bytes", "Activation memory", "bytes"),
    ("peak_bytes", "Inference peak memory", "bytes"),
    ("param_bytes", "Param memory", "bytes"),
)


@dataclass(frozen=True)
class AxisMinimum:
    """The smallest size one spatial axis of the first input accepts (None: not characterised)."""

    symbol: str
    minimum: int | None
    #: the accepted sizes in words ("every size ≥ 63"); None with ``reason``
    accepted: str | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.symbol, "minimum": self.minimum, "accepted": self.accepted, "reason": self.reason}


@dataclass(frozen=True)
class DeepestRF:
    """The receptive field of the last row that still has a spatial layout: how much of the input
    the deepest features see before the model pools or flattens them away."""

    layer: str
    #: per axis, as the table prints it: ``"195"``, ``"7x5"``
    size: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "size": self.size, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelColumn:
    """One model's totals: a column of the comparison."""

    label: str
    model: str
    tracer: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    params: int
    trainable_params: int
    param_bytes: int
    buffer_bytes: int
    macs: int
    flops: int
    activation_bytes: int
    input_bytes: int
    #: False when some op had no formula: MACs and FLOPs are lower bounds
    complete: bool
    #: the receptive field of the (first) output: ``"global"``, ``"195"``, ``"unknown"``, ``""`` (none)
    output_rf: str
    deepest_rf: DeepestRF | None
    #: per spatial axis of the first input; empty with ``minimum_note`` saying why (:data:`NOT_RUN`:
    #: the size analysis was not asked for)
    minimum_input: tuple[AxisMinimum, ...]
    minimum_note: str | None
    unsupported_ops: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: peak memory of one forward pass, once the report carries a memory analysis (None: not known)
    peak_bytes: int | None = None

    def figure(self, key: str) -> int | None:
        value = getattr(self, key)
        return value if value is None else int(value)

    def minimum_text(self) -> str:
        """``"63x63"``; ``"32x?"`` where an axis is not characterised (``"not characterised"`` when
        none is); ``""`` when not determined."""
        if not self.minimum_input:
            return ""
        if all(a.minimum is None for a in self.minimum_input):
            return "not characterised"
        return "x".join(str(a.minimum) if a.minimum is not None else "?" for a in self.minimum_input)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "model": self.model,
            "tracer": self.tracer,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "totals": {key: self.figure(key) for key, _, _ in FIGURES} | {
                "trainable_params": self.trainable_params, "buffer_bytes": self.buffer_bytes,
                "input_bytes": self.input_bytes, "complete": self.complete},
            "output_receptive_field": self.output_rf,
            "deepest_receptive_field": self.deepest_rf.to_dict() if self.deepest_rf else None,
            "minimum_input": [a.to_dict() for a in self.minimum_input],
            "minimum_input_note": self.minimum_note,
            "unsupported_ops": list(self.unsupported_ops),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class StageCell:
    """One model's row in a stage: a module at the chosen depth (its rows summed), or a row above it."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    #: parameters first counted in this stage (a shared one counts where it is first used), so the
    #: stages of a model sum to its total less the parameters the forward pass never uses
    params: int
    macs: int
    flops: int
    activation_bytes: int
    #: shares of the model's totals, 0..1 (0 when the total is 0)
    params_share: float
    macs_share: float
    receptive_field: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params, "macs": self.macs, "flops": self.flops,
            "activation_bytes": self.activation_bytes, "params_share": self.params_share,
            "macs_share": self.macs_share, "receptive_field": self.receptive_field,
        }


@dataclass(frozen=True)
class StageRow:
    """A stage: one cell per model, None where that model has no such stage."""

    label: str
    cells: tuple[StageCell | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.label, "cells": [c.to_dict() if c else None for c in self.cells]}


@dataclass(frozen=True)
class FailedModel:
    """A model left out of the comparison (``keep_going``) because its analysis failed."""

    #: its place among the models given, from 1
    position: int
    model: str
    error: str

    def text(self, total: int) -> str:
        return f"model {self.position} of {total} ({self.model}) failed: " + self.error.replace("\n", "\n  ")

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "model": self.model, "error": self.error}


@dataclass(frozen=True)
class Comparison:
    models: tuple[ModelColumn, ...]
    #: the depth the stages were collapsed to
    depth: int
    #: how the stages were aligned: ``"name"`` or ``"position"``
    align: str
    stages: tuple[StageRow, ...]
    #: each model's report (uncollapsed), for API users; not part of the JSON
    reports: tuple[Report, ...] = field(default=(), compare=False, repr=False)
    #: models whose analysis failed, left out (only with ``keep_going``)
    failed: tuple[FailedModel, ...] = ()

    @property
    def given(self) -> int:
        """How many models were given, those that failed included."""
        return len(self.models) + len(self.failed)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(m.label for m in self.models)

    def ratio(self, key: str, index: int) -> float | None:
        """Model ``index``'s figure ``key`` over the first model's (None: either is unknown, or the first is 0)."""
        first, value = self.models[0].figure(key), self.models[index].figure(key)
        if first is None or value is None or first == 0:
            return None
        return value / first

    def top_stage(self, index: int, key: str) -> StageCell | None:
        """The stage of model ``index`` with the largest ``key`` (``"macs"`` or ``"params"``); None when all are 0."""
        cells = [row.cells[index] for row in self.stages if row.cells[index] is not None]
        best = max(cells, key=lambda c: getattr(c, key), default=None)
        return best if best is not None and getattr(best, key) > 0 else None

    def __str__(self) -> str:
        """The tables (once the renderers' views are installed, as the API does)."""
        if "text" in _VIEWS:
            return _VIEWS["text"](self)
        return f"<cnnshape comparison of {', '.join(self.labels)}>"

    def _repr_html_(self) -> str | None:
        """Jupyter shows the HTML page inline (in an iframe, its styles kept to itself)."""
        return _VIEWS["html"](self) if "html" in _VIEWS else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_SCHEMA,
            "depth": self.depth,
            "align": self.align,
            "models": [m.to_dict() | {"ratios": {key: self.ratio(key, i) for key, _, _ in FIGURES}}
                       for i, m in enumerate(self.models)],
            "stages": [row.to_dict() for row in self.stages],
            "failed": [f.to_dict() for f in self.failed],
        }


# --- per-model inputs in a spec: "a.py:A@1,3,227,227" (several inputs: "@1,3,32,32@1,10")

_INPUT_LIKE = re.compile(r"^\s*(?:[A-Za-z_]\w*\s*=\s*)?(?:\d|scalar\b)")


def split_spec(text: str) -> tuple[str, tuple[str, ...]]:
    """``"a.py:A@1,3,227,227@mask=1,1,227,227"`` -> (``"a.py:A"``, the input texts in order).

    Only trailing ``@...`` parts that read as an input (sizes, ``scalar``, or ``NAME=`` sizes) are
    taken, so a path with an ``@`` in a folder name stays whole."""
    spec, inputs = text, list[str]()
    while True:
        head, sep, tail = spec.rpartition("@")
        if not sep or not head or not _INPUT_LIKE.match(tail):
            break
        inputs.insert(0, tail)
        spec = head
    name = spec.rpartition(":")[2]
    if "@" in name:  # a class or factory name holds no '@': what follows it is a malformed input
        bad = name.rpartition("@")[2]
        what = "nothing after '@'" if not bad else f"{bad!r} after '@' is not an input shape"
        raise ConfigError(f"{param('models')} {text!r}: {what}; give the model's input there as sizes, e.g. "
                          "a.py:Net@1,3,224,224 (NAME=SIZES for an input passed by keyword), or leave the '@' out "
                          "to use the shared input")
    return spec, tuple(inputs)


# --- building the record


def default_labels(names: Sequence[str], inputs: Sequence[str]) -> tuple[str, ...]:
    """Short column names: the part of each spec after its last ``:`` (a class name stays as it
    is); where two models share one, their ``inputs`` texts tell them apart (``AlexNet@227x227``),
    else the whole spec, else its position (``#2``)."""
    short = [name.rpartition(":")[2] or name for name in names]
    for candidates in ([f"{s}@{i}" for s, i in zip(short, inputs)], list(names)):
        short = [c if short.count(s) > 1 else s for s, c in zip(short, candidates)]
    return tuple(s if short.count(s) == 1 else f"{s} #{i + 1}" for i, s in enumerate(short))


def check_labels(labels: Sequence[str], count: int) -> tuple[str, ...]:
    if len(labels) != count:
        raise ConfigError(f"{param('labels')}: {len(labels)} label(s) for {count} models; give one per model, in order")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{param('labels')}: {', '.join(labels)} repeats a label; give each model its own")
    return tuple(labels)


def _rf_text(layer: LayerRecord | None) -> str:
    return layer.receptive_field.size_text() if layer is not None and layer.receptive_field is not None else ""


def _deepest_rf(report: Report) -> DeepestRF | None:
    for layer in reversed(report.layers):
        rf = layer.receptive_field
        # an axis flattened into a wider dim (after ``flatten``) keeps its RF but is no map any more
        if (layer.kind not in ("input", "output") and rf is not None and rf.kind == "spatial"
                and all(place.whole for place in rf.places)):
            return DeepestRF(layer.name, _rf_text(layer), layer.output_shape or ())
    return None


#: ``minimum_note`` of a model whose size analysis was not asked for (``sizes=False``)
NOT_RUN = "not run"


def _minimum(sizes: SizeReport | str | None) -> tuple[tuple[AxisMinimum, ...], str | None]:
    if sizes is None:
        return (), NOT_RUN
    if isinstance(sizes, str):
        return (), sizes
    if not sizes.axes:
        return (), "the first input has no spatial axes"
    axes = tuple(AxisMinimum(a.symbol, a.minimum, a.accepted.words() if a.accepted else None, a.reason)
                 for a in sizes.axes)
    return axes, None


def _peak_bytes(report: Report) -> int | None:
    """The inference peak of a report that carries a memory analysis (``Report.memory``); None for
    one without it (a finished report given as it is, or a memory analysis that failed)."""
    return report.memory.inference.peak_bytes if report.memory is not None else None


def model_column(label: str, report: Report, sizes: SizeReport | str | None) -> ModelColumn:
    t = report.totals
    output = next((layer for layer in report.layers if layer.kind == "output"), None)
    minimum, note = _minimum(sizes)
    return ModelColumn(
        label=label, model=report.model, tracer=report.tracer, inputs=report.inputs, outputs=report.outputs,
        params=t.params, trainable_params=t.trainable_params, param_bytes=t.param_bytes,
        buffer_bytes=t.buffer_bytes, macs=t.macs, flops=t.flops, activation_bytes=t.activation_bytes,
        input_bytes=t.input_bytes, complete=t.complete, output_rf=_rf_text(output), deepest_rf=_deepest_rf(report),
        minimum_input=minimum, minimum_note=note, unsupported_ops=tuple(u.op for u in report.unsupported),
        notes=report.notes, warnings=report.warnings, peak_bytes=_peak_bytes(report),
    )


def _cells(report: Report, depth: int) -> list[StageCell]:
    t = report.totals
    return [StageCell(
        name=layer.name, type=layer.type, output_shape=layer.output_shape, params=layer.new_params,
        macs=layer.macs, flops=layer.flops, activation_bytes=layer.activation_bytes,
        params_share=layer.new_params / t.params if t.params else 0.0,
        macs_share=layer.macs / t.macs if t.macs else 0.0, receptive_field=_rf_text(layer),
    ) for layer in report.collapse(depth).layers if layer.kind not in ("input", "output")]


def _align_by_name(columns: list[list[StageCell]]) -> list[StageRow]:
    """Stage names merged into one order: each model's names go in where difflib matches them
    with the order so far, a name the order lacks right after the last match before it."""
    order: list[str] = []
    for cells in columns:
        names = [c.name for c in cells]
        merged: list[str] = []
        matcher = difflib.SequenceMatcher(a=order, b=names, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            merged += order[i1:i2]
            if tag != "equal":
                merged += names[j1:j2]
        order = merged
    index = [{c.name: c for c in cells} for cells in columns]
    return [StageRow(name, tuple(by_name.get(name) for by_name in index)) for name in order]


def _align_by_position(columns: list[list[StageCell]]) -> list[StageRow]:
    rows = []
    for i in range(max((len(c) for c in columns), default=0)):
        cells = tuple(c[i] if i < len(c) else None for c in columns)
        names = list(dict.fromkeys(c.name for c in cells if c is not None))
        rows.append(StageRow(" / ".join(names), cells))
    return rows


def build_comparison(reports: Sequence[Report], sizes: Sequence[SizeReport | str | None], labels: Sequence[str],
                     depth: int = 1, align: str = "name", failed: Sequence[FailedModel] = ()) -> Comparison:
    """The comparison of ``reports`` (uncollapsed; the first is the reference of the ratios).
    ``sizes``: each model's size analysis, or why there is none; ``labels``: the column names;
    ``failed``: the models left out."""
    if len(reports) < 2:
        raise ConfigError(f"{param('models')}: compare needs at least two models, got {len(reports)}")
    if align not in COMPARE_ALIGNS:
        raise ConfigError(f"{param('align')} {align!r}: choose one of {', '.join(COMPARE_ALIGNS)}")
    if depth < 1:
        raise ConfigError(f"{param('depth')} {depth}: give a depth of at least 1 (1: the top-level modules)")
    labels = check_labels(labels, len(reports))
    models = tuple(model_column(label, r, s) for label, r, s in zip(labels, reports, sizes))
    columns = [_cells(r, depth) for r in reports]
    stages = _align_by_name(columns) if align == "name" else _align_by_position(columns)
    return Comparison(models, depth, align, tuple(stages), tuple(reports), tuple(failed))
